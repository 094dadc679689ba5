package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/store"
	"github.com/symbot/symbot/store/postgres"
	"github.com/symbot/symbot/store/postgres/pgtest"
	"github.com/symbot/symbot/store/storetest"

	"github.com/symbot/symbot/cmd/symbot/internal/admin"
)

// TestOfflineReadsRefusedWhileTheDaemonRuns stops an offline reader from
// reading (or racing) a store the daemon holds: --db and --offline say
// that the daemon holds it and what to do instead.
func TestOfflineReadsRefusedWhileTheDaemonRuns(t *testing.T) {
	w, cfgPath := mustWorld(t, "1h", "0")
	d := mustOpenDaemon(t, w, cfgPath, nil)
	runDaemon(t, d)
	cli := configCLI(t, cfgPath)
	db := d.cfg.Store.Path
	for _, args := range [][]string{
		{"grants", "--db", db},
		{"requests", "--offline"},
		{"backup", filepath.Join(t.TempDir(), "b.db"), "--db", db},
	} {
		out, code := cli(args...)
		if code != exitFail || !strings.Contains(out, "the daemon holds the database "+db+"; use the admin socket") || !strings.Contains(out, "or stop it") {
			t.Errorf("symbot %s while the daemon runs: exit %d, want 1 and the daemon-holds-it error:\n%s", strings.Join(args, " "), code, out)
		}
	}
	// Asking the daemon still works.
	if out, code := cli("grants"); code != exitOK {
		t.Errorf("grants over the socket: exit %d\n%s", code, out)
	}
}

// TestOfflineReadsAfterTheDaemonStopped stops the README's upgrade order
// from being impossible: with the daemon stopped, every read command works
// on its store with --db (and --offline), prints what it prints over the
// socket, writes nothing, and the commands that change things do not take
// --db.
func TestOfflineReadsAfterTheDaemonStopped(t *testing.T) {
	w, cfgPath := mustWorld(t, "1h", "0")
	d := mustOpenDaemon(t, w, cfgPath, nil)
	stop := runDaemon(t, d)
	wait := waiter(t, w, nil)
	cli := configCLI(t, cfgPath)
	wait("symbot to connect", d.bot.Connected)
	ref := mustApprovalMessage(t, w, wait, demoAlice, "req prod-admin 1h offline reads")
	if _, err := w.slack.ClickButton(demoBob, ref, "sym_approve"); err != nil {
		t.Fatal(err)
	}
	wait("the grant and its DMs", func() bool {
		return w.okta.IsMember(w.groupID, w.aliceOkta) && len(w.slack.DMs(demoAlice)) >= 2
	})
	wait("the grant to be recorded", func() bool {
		rs, err := d.engine.ListByState(t.Context(), symbot.StateActive)
		return err == nil && len(rs) == 1
	})
	online, code := cli("grants", "--json")
	if code != exitOK {
		t.Fatalf("grants over the socket: exit %d\n%s", code, online)
	}
	stop()
	db := d.cfg.Store.Path
	before, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}

	offline, code := cli("grants", "--json", "--db", db)
	if code != exitOK || offline != online {
		t.Fatalf("grants --json --db: exit %d, and it differs from the daemon's answer:\n--- daemon ---\n%s--- --db ---\n%s", code, online, offline)
	}
	var grants []admin.RequestJSON
	if err := json.Unmarshal([]byte(offline), &grants); err != nil || len(grants) != 1 {
		t.Fatalf("grants --json --db: %v\n%s", err, offline)
	}
	id := grants[0].ID
	backup := filepath.Join(t.TempDir(), "backup.db")
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"grants", "--db", db}, []string{id, "prod-admin", "alice@example.com"}},
		{[]string{"grants", "--offline"}, []string{id, "prod-admin"}},
		{[]string{"requests", "--db", db}, []string{"no pending or approved requests"}},
		{[]string{"show", strings.ToLower(id), "--db", db}, []string{id, "state:    active", "transitions:", "approve"}},
		{[]string{"audit", "--since", "all", "--db", db}, []string{id, "approve", "state:active"}},
		{[]string{"audit", "verify", "--db", db}, []string{"audit chain ok"}},
		{[]string{"audit", "export", "--db", db}, []string{`"type":"entry"`, id}},
		{[]string{"report", "--db", db}, []string{id}},
		{[]string{"standing", "--db", db}, []string{"no standing members"}},
		// The daemon bound alice's and bob's Slack accounts to their Okta
		// users (by email, through the real Okta adapter).
		{[]string{"identities", "--db", db}, []string{demoAlice, w.aliceOkta, "alice@example.com", "email", "ok"}},
		{[]string{"backup", backup, "--db", db}, []string{"wrote " + backup}},
	} {
		out, code := cli(c.args...)
		if code != exitOK {
			t.Errorf("symbot %s: exit %d\n%s", strings.Join(c.args, " "), code, out)
			continue
		}
		for _, want := range c.want {
			if !strings.Contains(out, want) {
				t.Errorf("symbot %s: output lacks %q:\n%s", strings.Join(c.args, " "), want, out)
			}
		}
	}
	bst, err := store.Open(backup, store.Config{ReadOnly: true})
	if err != nil {
		t.Fatalf("open the offline backup: %v", err)
	}
	if err := bst.View(t.Context(), func(tx symbot.Tx) error { _, err := tx.Request(id); return err }); err != nil {
		t.Errorf("the offline backup lacks %s: %v", id, err)
	}
	bst.Close()

	// Nothing that changes things reads offline.
	for _, args := range [][]string{{"revoke", id, "--db", db}, {"reconcile", "--db", db}, {"identity", "reset", demoAlice, "--db", db}} {
		if out, code := cli(args...); code != exitUsage || !strings.Contains(out, "-db") {
			t.Errorf("symbot %s: exit %d, want 2 (no such flag)\n%s", strings.Join(args, " "), code, out)
		}
	}
	if out, code := cli("grants", "--db", db, "--socket", filepath.Join(t.TempDir(), "s.sock")); code != exitUsage || !strings.Contains(out, "give one") {
		t.Errorf("grants --db --socket: exit %d, want 2\n%s", code, out)
	}
	if out, code := cli("grants", "--db", filepath.Join(t.TempDir(), "missing.db")); code != exitFail || !strings.Contains(out, "missing.db") {
		t.Errorf("grants --db of a missing file: exit %d\n%s", code, out)
	}
	after, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Error("the offline commands changed the store file")
	}
}

// TestEndToEndUpgradeSteps follows the README's upgrade steps literally
// with the real binary: a read refused while the daemon runs; stop; backup
// --offline; audit verify --db and grants --offline on the stopped store;
// start again; and the roll-back: stop, restore, start.
func TestEndToEndUpgradeSteps(t *testing.T) {
	bin := symbotBinary(t)
	w, cfgPath := mustWorld(t, "1h", "0")
	env := w.env()
	logs := &lockedBuffer{}
	wait := waiter(t, w, logs)
	cli := binaryCLI(t, bin, cfgPath, env)
	c := startChild(t, bin, cfgPath, env, logs)
	wait("symbot to connect", w.slack.Connected)
	ref := mustApprovalMessage(t, w, wait, demoAlice, "req prod-admin 1h before the upgrade")
	if _, err := w.slack.ClickButton(demoBob, ref, "sym_approve"); err != nil {
		t.Fatal(err)
	}
	wait("the grant and its DMs", func() bool {
		return w.okta.IsMember(w.groupID, w.aliceOkta) && len(w.slack.DMs(demoAlice)) >= 2
	})
	var id string
	wait("the grant to be listed", func() bool {
		out, code := cli("grants", "--json")
		var gs []admin.RequestJSON
		if code != exitOK || json.Unmarshal([]byte(out), &gs) != nil || len(gs) != 1 {
			return false
		}
		id = gs[0].ID
		return true
	})
	if out, code := cli("grants", "--offline"); code != exitFail || !strings.Contains(out, "the daemon holds the database") {
		t.Fatalf("grants --offline while the daemon runs: exit %d\n%s", code, out)
	}

	// 1. Stop symbot.
	c.stop(t)
	wait("the old connection to close", func() bool { return !w.slack.Connected() })
	// 2. Back up the stopped store.
	backup := filepath.Join(w.dir, "symbot-before-upgrade.db")
	if out, code := cli("backup", "--offline", backup); code != exitOK || !strings.Contains(out, "wrote "+backup) {
		t.Fatalf("backup --offline: exit %d\n%s", code, out)
	}
	// 3. Check it, and see what is in flight.
	if out, code := cli("audit", "verify", "--db", backup); code != exitOK || !strings.Contains(out, "audit chain ok") {
		t.Fatalf("audit verify --db: exit %d\n%s", code, out)
	}
	if out, code := cli("grants", "--offline"); code != exitOK || !strings.Contains(out, id) {
		t.Fatalf("grants --offline: exit %d, want %s listed\n%s", code, id, out)
	}
	// 4. Start the (new) binary.
	c = startChild(t, bin, cfgPath, env, logs)
	wait("symbot to connect after the upgrade", w.slack.Connected)
	if out, code := cli("grants"); code != exitOK || !strings.Contains(out, id) {
		t.Fatalf("grants after the upgrade: exit %d\n%s", code, out)
	}
	// Roll back: stop, restore the backup, start.
	c.stop(t)
	wait("the connection to close", func() bool { return !w.slack.Connected() })
	if out, code := cli("restore", backup); code != exitOK {
		t.Fatalf("restore: exit %d\n%s", code, out)
	}
	startChild(t, bin, cfgPath, env, logs)
	wait("symbot to connect after the roll-back", w.slack.Connected)
	if out, code := cli("grants"); code != exitOK || !strings.Contains(out, id) {
		t.Fatalf("grants after the roll-back: exit %d\n%s", code, out)
	}
}

// TestOfflineReadsPostgresBesideARunningReplica: with store.url, --offline
// reads the PostgreSQL store while a replica holds it open (reads are safe
// there), prints what it holds, and writes nothing: no audit entry for
// the backup it took.
func TestOfflineReadsPostgresBesideARunningReplica(t *testing.T) {
	url := pgtest.NewDatabase(t)
	cfgPath := pgConfig(t, url)
	replica, err := postgres.Open(t.Context(), url, postgres.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer replica.Close()
	storetest.MustPut(t, replica, &symbot.Request{ID: "SYM-1-ABCD", Flow: "prod", Target: "admin", GroupID: "00gADMIN000000000001",
		State: symbot.StateActive, Requester: symbot.Person{SlackID: "U0ALICE"}, OktaLogin: "alice@example.com",
		Duration: time.Hour, CreatedAt: storetest.T0, UpdatedAt: storetest.T0, GrantedAt: storetest.T0, ExpiresAt: storetest.T0.Add(time.Hour)})
	for _, a := range []string{"request", "approve", "state:active"} {
		storetest.MustUpdate(t, replica, func(tx symbot.Tx) error {
			return symbot.AppendAudit(tx, nil, &symbot.AuditEntry{At: storetest.T0, RequestID: "SYM-1-ABCD", Actor: "U0ALICE", Action: a})
		})
	}
	auditRows := func() int {
		var n int
		storetest.MustView(t, replica, func(tx symbot.Tx) error {
			seq, _, err := tx.AuditHead()
			n = int(seq)
			return err
		})
		return n
	}
	before := auditRows()
	backup := filepath.Join(t.TempDir(), "dump.json")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"grants", "--offline"}, "SYM-1-ABCD"},
		{[]string{"show", "sym-1-abcd", "--offline"}, "state:    active"},
		{[]string{"audit", "--since", "all", "--offline"}, "state:active"},
		{[]string{"audit", "verify", "--offline"}, "audit chain ok: 3 entries"},
		{[]string{"backup", backup, "--offline"}, "wrote " + backup},
	} {
		code, out, errOut := runSymbot(t, append(c.args, "--config", cfgPath)...)
		if code != exitOK || !strings.Contains(out, c.want) {
			t.Errorf("symbot %s: exit %d, want %q\n%s%s", strings.Join(c.args, " "), code, c.want, out, errOut)
		}
	}
	if after := auditRows(); after != before {
		t.Errorf("audit entries %d -> %d: the offline commands wrote to the database", before, after)
	}
}
