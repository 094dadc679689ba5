package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/bot/slacktest"
	"github.com/symbot/symbot/store"

	"github.com/symbot/symbot/cmd/symbot/internal/admin"
	"github.com/symbot/symbot/cmd/symbot/internal/config"
)

// mustWorld starts a seeded world in a new short temporary directory (unix
// socket paths are limited in length) and writes its config with the given
// access duration and expiry warning; it returns the config's path.
func mustWorld(t testing.TB, duration, warning string) (*world, string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "symw-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	w, err := newWorld(dir)
	if err != nil {
		t.Fatalf("newWorld: %v", err)
	}
	t.Cleanup(w.close)
	cfgPath, err := w.config(duration, warning)
	if err != nil {
		t.Fatalf("write config: %v", err)
	}
	return w, cfgPath
}

// mustOpenDaemon wires a daemon, in this process, from the config at
// cfgPath with w's environment (set for the test); tune, when not nil,
// changes the config first.
func mustOpenDaemon(tb testing.TB, w *world, cfgPath string, tune func(*config.Config)) *daemon {
	tb.Helper()
	for k, v := range w.env() {
		tb.Setenv(k, v)
	}
	cfg, err := config.Load(cfgPath, os.Getenv)
	if err != nil {
		tb.Fatal(err)
	}
	if tune != nil {
		tune(cfg)
	}
	d, err := openDaemon(tb.Context(), cfg, newLogger(cfg.Log, io.Discard))
	if err != nil {
		tb.Fatal(err)
	}
	return d
}

// runDaemon runs d until stop is called or the test ends, and fails the
// test when run returns an error.
func runDaemon(tb testing.TB, d *daemon) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				tb.Errorf("daemon run: %v", err)
			}
		})
	}
	tb.Cleanup(stop)
	return stop
}

// waiter returns wait(what, cond), which waits up to 30 s for cond,
// re-checked on every change of the Slack simulator, and fails the test if
// it does not come true; with the logs of symbot when logs is not nil.
func waiter(tb testing.TB, w *world, logs *lockedBuffer) func(what string, cond func() bool) {
	return func(what string, cond func() bool) {
		tb.Helper()
		ctx, cancel := context.WithTimeout(tb.Context(), 30*time.Second)
		defer cancel()
		if err := w.slack.WaitFor(ctx, cond); err != nil {
			if logs != nil {
				tb.Fatalf("timed out waiting for %s\n--- symbot logs ---\n%s", what, logs.String())
			}
			tb.Fatalf("timed out waiting for %s", what)
		}
	}
}

// configCLI returns cli(args...), which runs the symbot command line in
// this process with --config cfgPath and returns its stdout and stderr
// together, and its exit code.
func configCLI(t *testing.T, cfgPath string) func(args ...string) (string, int) {
	return func(args ...string) (string, int) {
		t.Helper()
		code, out, errOut := cli(t, append(args, "--config", cfgPath)...)
		return out + errOut, code
	}
}

// mustApprovalMessage has user ask for text in the demo channel and
// returns the approval message once its buttons are there.
func mustApprovalMessage(t *testing.T, w *world, wait func(string, func() bool), user, text string) slacktest.MessageRef {
	t.Helper()
	// The new message, not an earlier one whose buttons are still there
	// (its update after a decision may not have been made yet).
	before, _ := w.slack.FindButton(demoChannel, "sym_approve")
	if _, err := w.slack.SlashCommand(user, "/sym", text, demoChannel); err != nil {
		t.Fatal(err)
	}
	var ref slacktest.MessageRef
	wait("the approval message", func() bool {
		var ok bool
		ref, ok = w.slack.FindButton(demoChannel, "sym_approve")
		return ok && ref != before
	})
	return ref
}

// TestDaemonAdminCommands runs the wired daemon in-process against the
// simulators and drives the admin commands over its unix socket: grants,
// requests, revoke, audit, audit verify and backup; and checks readiness and
// the metrics it exports.
func TestDaemonAdminCommands(t *testing.T) {
	w, cfgPath := mustWorld(t, "1h", "0")
	d := mustOpenDaemon(t, w, cfgPath, nil)
	if err := d.ready(t.Context()); err == nil {
		t.Error("ready before Socket Mode connected")
	}
	runDaemon(t, d)
	wait := waiter(t, w, nil)
	cli := configCLI(t, cfgPath)

	wait("symbot to connect", d.bot.Connected)
	if err := d.ready(t.Context()); err != nil {
		t.Errorf("not ready once connected: %v", err)
	}
	ref := mustApprovalMessage(t, w, wait, demoAlice, "req prod-admin 1h rotate the <b>keys</b> & certs")
	out, code := cli("requests", "--json")
	if code != 0 || !strings.Contains(out, `"state": "pending"`) && !strings.Contains(out, `"state":"pending"`) {
		t.Fatalf("requests: exit %d\n%s", code, out)
	}
	if _, err := w.slack.ClickButton(demoBob, ref, "sym_approve"); err != nil {
		t.Fatal(err)
	}
	wait("the grant", func() bool { return w.okta.IsMember(w.groupID, w.aliceOkta) })
	wait("the grant to be recorded", func() bool {
		rs, err := d.engine.ListByState(t.Context(), symbot.StateActive)
		return err == nil && len(rs) == 1
	})

	out, code = cli("grants", "--json")
	var grants []admin.RequestJSON
	if code != 0 || json.Unmarshal([]byte(out), &grants) != nil || len(grants) != 1 {
		t.Fatalf("grants --json: exit %d\n%s", code, out)
	}
	id := grants[0].ID
	if out, code = cli("grants"); code != 0 || !strings.Contains(out, id) || !strings.Contains(out, "prod-admin") {
		t.Errorf("grants table: exit %d\n%s", code, out)
	}

	if out, code = cli("revoke", id, "--reason", "incident over"); code != 0 {
		t.Fatalf("revoke: exit %d\n%s", code, out)
	}
	wait("the removal", func() bool { return !w.okta.IsMember(w.groupID, w.aliceOkta) })
	if out, code = cli("revoke", id); code == 0 {
		t.Errorf("a second revoke succeeded:\n%s", out)
	}
	if out, code = cli("revoke", "SYM-999"); code == 0 || !strings.Contains(out, "SYM-999") {
		t.Errorf("revoke of an unknown id: exit %d\n%s", code, out)
	}

	out, code = cli("audit")
	if code != 0 || !strings.Contains(out, "state:revoked") || !strings.Contains(out, "incident over") {
		t.Errorf("audit: exit %d\n%s", code, out)
	}
	if out, code = cli("audit", "verify"); code != 0 {
		t.Errorf("audit verify: exit %d\n%s", code, out)
	}

	backup := filepath.Join(t.TempDir(), "backup.db")
	if out, code = cli("backup", backup); code != 0 {
		t.Fatalf("backup: exit %d\n%s", code, out)
	}
	bst, err := store.Open(backup, store.Config{})
	if err != nil {
		t.Fatalf("open backup: %v", err)
	}
	var got *symbot.Request
	if err := bst.View(t.Context(), func(tx symbot.Tx) error { var err error; got, err = tx.Request(id); return err }); err != nil {
		t.Fatalf("backup lacks %s: %v", id, err)
	}
	bst.Close()
	if got.State != symbot.StateRevoked {
		t.Errorf("backup has %s in state %s, want revoked (or later)", id, got.State)
	}

	// A pass through the admin socket reaches the reconcile metrics.
	if out, code = cli("reconcile"); code != 0 {
		t.Fatalf("reconcile: exit %d\n%s", code, out)
	}
	var m bytes.Buffer
	if err := d.metrics.WriteText(&m); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`symbot_requests_total{flow="prod",outcome="active"} 1`,
		`symbot_requests_total{flow="prod",outcome="revoked"} 1`,
		`symbot_external_calls_total{result="ok",service="aws"}`,
		`symbot_external_calls_total{result="ok",service="okta"}`,
		`symbot_external_calls_total{result="ok",service="slack"}`,
		`symbot_grant_latency_seconds_count 1`,
		`symbot_socket_reconnects_total 0`,
		`symbot_reconcile_drift{kind="unmanaged"} 0`,
		`symbot_reconcile_duration_seconds_count`,
	} {
		if !strings.Contains(m.String(), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(m.String(), w.okta.Token()) {
		t.Error("the Okta token is in the metrics")
	}
	// The reason is shown escaped in Slack.
	msg, _ := w.slack.Message(ref)
	shown := blockTexts(t, msg.Blocks)
	if strings.Contains(shown, "<b>") || !strings.Contains(shown, "&lt;b&gt;keys&lt;/b&gt; &amp; certs") {
		t.Errorf("reason not escaped in the approval message: %s", shown)
	}
}

// blockTexts returns every "text" string in Block Kit JSON, joined.
func blockTexts(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("blocks: %v", err)
	}
	var b strings.Builder
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, y := range x {
				if s, ok := y.(string); ok && k == "text" {
					b.WriteString(s)
					b.WriteString("\n")
				}
				walk(y)
			}
		case []any:
			for _, y := range x {
				walk(y)
			}
		}
	}
	walk(v)
	return b.String()
}
