package symbot_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/store/storetest"
)

func auditEntries(t *testing.T, st symbot.Store) []symbot.AuditEntry {
	t.Helper()
	var es []symbot.AuditEntry
	if err := st.View(t.Context(), func(tx symbot.Tx) (err error) { es, err = tx.Audit(0, storetest.AllAudit); return err }); err != nil {
		t.Fatal(err)
	}
	return es
}

func TestEnsureAuditKeySwitchIsAnEntry(t *testing.T) {
	h := newHarness(t, nil)
	h.mustSubmit(t, alice, "admin", time.Hour) // an unkeyed entry, as before keys existed
	k := testKey(t, 3)
	h.eng.AuditKey = k
	for range 2 { // the second call finds the head keyed already
		if err := h.eng.EnsureAuditKey(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	h.mustSubmit(t, carol, "admin", time.Hour)
	es := auditEntries(t, h.st)
	if len(es) != 3 {
		t.Fatalf("entries = %+v, want request, key switch, request", es)
	}
	if es[0].Key != "" || es[1].Action != symbot.ActionAuditKey || es[1].Key != k.ID() || es[2].Key != k.ID() {
		t.Errorf("keys/actions = %q %q/%q %q, want unkeyed, then %s from the switch on", es[0].Key, es[1].Action, es[1].Key, es[2].Key, k.ID())
	}
	if !strings.Contains(es[1].Detail, "before: unkeyed") {
		t.Errorf("switch detail = %q, want it to say what came before", es[1].Detail)
	}
	var seq uint64
	var hash string
	h.st.View(t.Context(), func(tx symbot.Tx) (err error) { seq, hash, err = tx.AuditHead(); return err })
	if err := symbot.VerifyAudit(es, seq, hash, k); err != nil {
		t.Errorf("VerifyAudit: %v", err)
	}
	// Rotating to a new key is a switch too; dropping the key is refused.
	k2 := testKey(t, 4)
	h.eng.AuditKey = k2
	if err := h.eng.EnsureAuditKey(t.Context()); err != nil {
		t.Fatal(err)
	}
	es = auditEntries(t, h.st)
	if last := es[len(es)-1]; last.Key != k2.ID() || !strings.Contains(last.Detail, "before: key "+k.ID()) {
		t.Errorf("rotation entry = %+v", last)
	}
	h.eng.AuditKey = nil
	if err := h.eng.EnsureAuditKey(t.Context()); err == nil || !strings.Contains(err.Error(), "no audit key is configured") {
		t.Errorf("EnsureAuditKey without a key on a keyed chain: %v", err)
	}
}

func TestEnsureAuditKeyOnEmptyChain(t *testing.T) {
	h := newHarness(t, nil)
	if err := h.eng.EnsureAuditKey(t.Context()); err != nil {
		t.Fatal(err)
	}
	if es := auditEntries(t, h.st); len(es) != 0 {
		t.Errorf("no key, empty chain: entries %+v, want none", es)
	}
	h.eng.AuditKey = testKey(t, 5)
	if err := h.eng.EnsureAuditKey(t.Context()); err != nil {
		t.Fatal(err)
	}
	if es := auditEntries(t, h.st); len(es) != 1 || es[0].Action != symbot.ActionAuditKey {
		t.Errorf("entries = %+v, want the switch entry first", es)
	}
}

func TestRefusalsAreAuditedAndRateLimited(t *testing.T) {
	h := newHarness(t, nil)
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	h.eng.Now = func() time.Time { return now }
	h.eng.RefusalAuditBurst = 2
	h.eng.RefusalAuditEvery = time.Minute
	r := h.mustSubmit(t, alice, "admin", time.Hour)
	// dave is no approver: every click is refused; alice may not approve her own.
	for range 5 {
		if _, err := h.eng.Approve(t.Context(), r.ID, dave, ""); err == nil {
			t.Fatal("dave approved")
		}
	}
	if _, err := h.eng.Approve(t.Context(), r.ID, alice, ""); err == nil {
		t.Fatal("alice approved her own request")
	}
	if _, err := h.eng.Submit(t.Context(), botUser, symbot.RequestInput{Target: "admin", Duration: time.Hour, Reason: "x"}); err == nil {
		t.Fatal("a bot submitted")
	}
	now = now.Add(time.Minute) // one more token for dave
	if _, err := h.eng.Deny(t.Context(), r.ID, dave, ""); err == nil {
		t.Fatal("dave denied")
	}
	// A request that has moved on is not a refusal by policy.
	h.mustApprove(t, r.ID, bob)
	if _, err := h.eng.Approve(t.Context(), r.ID, carol, ""); err == nil {
		t.Fatal("carol approved a decided request")
	}
	type row struct{ actor, action, id string }
	var got []row
	var details []string
	for _, e := range auditEntries(t, h.st) {
		if strings.HasPrefix(e.Action, symbot.ActionRefusedPrefix) {
			got = append(got, row{e.Actor, e.Action, e.RequestID})
			details = append(details, e.Detail)
		}
	}
	want := []row{
		{"UDAVE", "refused:approve", r.ID},
		{"UDAVE", "refused:approve", r.ID},
		{"UALICE", "refused:approve", r.ID},
		{"UBOT", "refused:request", ""},
		{"UDAVE", "refused:deny", r.ID},
	}
	if len(got) != len(want) {
		t.Fatalf("refusal entries = %v (%q), want %v", got, details, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("refusal %d = %v, want %v", i, got[i], want[i])
		}
	}
	if !strings.Contains(details[0], "not an approver") || !strings.Contains(details[2], "your own request") {
		t.Errorf("refusal details do not say why: %q", details)
	}
	if !strings.Contains(details[4], "3 earlier refusals of this person were not recorded") {
		t.Errorf("after the limit, detail = %q, want the count of unrecorded refusals", details[4])
	}
	verifyAudit(t, h.st)
}

func TestAdminRevokeRecordsOperator(t *testing.T) {
	h := newHarness(t, nil)
	r := h.mustSubmit(t, alice, "admin", time.Hour)
	ctx := symbot.WithOperator(t.Context(), symbot.Operator{User: "root", UID: 0, PID: 4242})
	if _, err := h.eng.AdminRevoke(ctx, r.ID, "left"); err != nil {
		t.Fatal(err)
	}
	if err := h.eng.AuditAdmin(ctx, "backup", "to /backups/x.db"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.eng.AdminRevoke(context.Background(), "SYM-404", ""); err == nil {
		t.Fatal("AdminRevoke of an unknown id succeeded")
	}
	var actors []string
	for _, e := range auditEntries(t, h.st) {
		if strings.HasPrefix(e.Actor, "admin") {
			actors = append(actors, e.Actor+" "+e.Action)
		}
	}
	want := []string{"admin:root(uid=0,pid=4242) state:denied", "admin:root(uid=0,pid=4242) admin:backup"}
	if strings.Join(actors, "|") != strings.Join(want, "|") {
		t.Errorf("admin entries = %q, want %q", actors, want)
	}
}
