package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/cmd/symbot/internal/config"
)

// TestDemo runs `symbot demo` (shortened) in-process, so the README's first
// command keeps working.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole demo")
	}
	// The demo points the process's environment at its simulators; restore it.
	w, _ := mustWorld(t, "1h", "0")
	for k := range w.env() {
		t.Setenv(k, os.Getenv(k))
	}
	var out, errOut bytes.Buffer
	code := run(t.Context(), []string{"demo", "--duration", "4s", "--warning", "2s"}, strings.NewReader(""), &out, &errOut)
	if code != 0 {
		t.Fatalf("demo exited %d\n%s\n%s", code, out.String(), errOut.String())
	}
	for _, want := range []string{
		"sts:AssumeRole", `ExternalId "symbot-demo-7f3c9a2e"`, "secretsmanager:GetSecretValue",
		"PUT /api/v1/groups/", "DELETE /api/v1/groups/", "not an approver",
		"[Approve] [Approve with note…] [Deny]", "has ended and was removed from Okta",
		"hash chain intact", "demo passed",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo transcript lacks %q\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "xoxb-") || strings.Contains(out.String(), "xapp-") {
		t.Error("a Slack token is in the demo transcript")
	}
}

// runDemoWith runs the demo (shortened) with hooks, in-process, and
// returns its transcript and error.
func runDemoWith(t *testing.T, hooks demoHooks) (string, error) {
	t.Helper()
	w, _ := mustWorld(t, "1h", "0")
	for k := range w.env() {
		t.Setenv(k, os.Getenv(k))
	}
	var out bytes.Buffer
	err := runDemo(t.Context(), &out, io.Discard, 3*time.Second, time.Second, false, hooks)
	return out.String(), err
}

// TestDemoFailsWhenARevocationDMStandsInForTheWarning stops the demo from
// counting DMs: with the expiry warning turned off and a revocation DM
// sent to alice instead, the demo fails naming the missing warning.
func TestDemoFailsWhenARevocationDMStandsInForTheWarning(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo")
	}
	out, err := runDemoWith(t, demoHooks{
		tune: func(cfg *config.Config) { cfg.Flows[0].ExpiryWarning = 0 },
		afterGrant: func(ctx context.Context, d *daemon, id string) error {
			r, err := d.engine.Get(ctx, id)
			if err != nil {
				return err
			}
			return d.bot.NotifyUser(ctx, demoAlice, &d.cfg.Flows[0], r, symbot.EventRevoked)
		},
	})
	want := "the expiry warning DM to alice: did not happen: the expiry (state expired) came first"
	if err == nil || err.Error() != want {
		t.Fatalf("demo: got %v, want %q\n%s", err, want, out)
	}
}

// TestDemoFailsWhenTheGrantIsRevokedEarly stops a demo whose grant was
// revoked before its warning from passing: it fails at the warning step,
// saying that the request was revoked instead.
func TestDemoFailsWhenTheGrantIsRevokedEarly(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo")
	}
	out, err := runDemoWith(t, demoHooks{
		afterGrant: func(ctx context.Context, d *daemon, id string) error {
			_, err := d.engine.AdminRevoke(ctx, id, "revoked before the warning")
			return err
		},
	})
	if err == nil || !strings.HasPrefix(err.Error(), "the expiry warning DM to alice: did not happen: the request went to revoked instead") {
		t.Fatalf("demo: got %v, want the warning step to fail on the revocation\n%s", err, out)
	}
}
