package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/cmd/symbot/internal/admin"
	"github.com/symbot/symbot/store/memstore"
)

// identityDaemon serves the real admin service over an engine whose store
// holds two bindings: one fine, one in mismatch.
func identityDaemon(t *testing.T) (sock string, st *memstore.Store) {
	t.Helper()
	st = memstore.New()
	flow := symbot.Flow{Name: "prod", Channel: "C1", Approvers: symbot.Approvers{Users: []string{"U0BOB"}},
		Durations: []time.Duration{time.Hour}, Targets: []symbot.Target{{Name: "admin", GroupID: "00g1"}}}
	eng, err := symbot.NewEngine(st, nil, nil, []symbot.Flow{flow})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	if err := st.Update(t.Context(), func(tx symbot.Tx) error {
		if err := tx.PutIdentity(symbot.Identity{SlackID: "U0ANN", Email: "ann@example.com", OktaUserID: "00uann", OktaLogin: "ann@example.com", CachedAt: at, BoundAt: at, Via: symbot.ViaEmail}); err != nil {
			return err
		}
		return tx.PutIdentity(symbot.Identity{SlackID: "U0BOB", Email: "bob@example.com", OktaUserID: "00ubob", OktaLogin: "bob@example.com", CachedAt: at, BoundAt: at, Via: symbot.ViaOverride,
			ConflictOktaUserID: "00umallory", ConflictOktaLogin: "mallory@example.com", ConflictEmail: "bob@example.com", ConflictAt: at.Add(time.Hour)})
	}); err != nil {
		t.Fatal(err)
	}
	d := &daemon{store: st, engine: eng}
	return startAdmin(t, &adminService{d: d}), st
}

func TestIdentitiesListsBindingsAndMismatches(t *testing.T) {
	sock, _ := identityDaemon(t)
	code, out, errOut := cli(t, "identities", "--socket", sock)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"SLACK ID", "OKTA USER", "LOGIN", "HOW", "BOUND", "STATUS",
		"U0ANN", "00uann", "email", "ok",
		"U0BOB", "00ubob", "override", "mismatch: now finds mallory@example.com (00umallory)", "symbot identity reset SLACK_ID"} {
		if !strings.Contains(out, want) {
			t.Errorf("identities output lacks %q:\n%s", want, out)
		}
	}
	code, out, errOut = cli(t, "identities", "--json", "--socket", sock)
	if code != exitOK {
		t.Fatalf("--json: exit %d: %s", code, errOut)
	}
	var ids []admin.IdentityJSON
	if err := json.Unmarshal([]byte(out), &ids); err != nil {
		t.Fatalf("--json output: %v\n%s", err, out)
	}
	if len(ids) != 2 || ids[0].Status != admin.IdentityOK || ids[1].Status != admin.IdentityMismatch || ids[1].Conflict == nil || ids[1].Conflict.OktaUserID != "00umallory" {
		t.Errorf("--json = %+v", ids)
	}
}

// A reset removes the binding and is recorded with the operator at the
// other end of the admin socket.
func TestIdentityResetIsAuditedWithTheOperator(t *testing.T) {
	sock, st := identityDaemon(t)
	code, out, errOut := cli(t, "identity", "reset", "U0BOB", "--socket", sock)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "reset U0BOB: it was bound to Okta user bob@example.com (00ubob) (in mismatch") {
		t.Errorf("output = %q", out)
	}
	var entries []symbot.AuditEntry
	if err := st.View(context.Background(), func(tx symbot.Tx) error {
		if _, ok, _ := tx.Identity("U0BOB"); ok {
			t.Errorf("binding still stored after the reset")
		}
		if _, ok, _ := tx.Identity("U0ANN"); !ok {
			t.Errorf("the reset removed another binding")
		}
		var err error
		entries, err = tx.Audit(0, 100)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Action != symbot.ActionIdentityReset || !strings.HasPrefix(entries[0].Actor, "admin:") || !strings.Contains(entries[0].Detail, "okta_user=00ubob") {
		t.Fatalf("audit = %+v, want one identity reset by admin:<operator>", entries)
	}

	code, _, errOut = cli(t, "identity", "reset", "U0BOB", "--socket", sock)
	if code != exitFail || !strings.Contains(errOut, "symbot identities") {
		t.Errorf("second reset: exit %d, %q; want a failure pointing at `symbot identities`", code, errOut)
	}
	if code, _, errOut := cli(t, "identity", "forget", "U0ANN", "--socket", sock); code != exitUsage || !strings.Contains(errOut, "identity reset SLACK_ID") {
		t.Errorf("unknown subcommand: exit %d, %q", code, errOut)
	}
}
