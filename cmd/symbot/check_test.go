package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunChecks(t *testing.T) {
	var sawDeadline bool
	checks := []Check{
		{Name: "slack auth.test", Run: func(context.Context) error { return nil }},
		{Name: "post in #access", Run: func(context.Context) error { return errors.New("not_in_channel:\n the bot is not a member") }, Fix: "invite the bot: /invite @symbot"},
		{Name: "assume role", Run: func(ctx context.Context) error {
			_, sawDeadline = ctx.Deadline()
			return nil
		}},
		{Name: "read secret", Run: func(context.Context) error { panic("boom") }, Fix: "grant secretsmanager:GetSecretValue"},
		{Name: "nothing to run"},
	}
	var b strings.Builder
	failed := RunChecks(t.Context(), &b, checks)
	if failed != 3 {
		t.Errorf("failed: got %d, want 3", failed)
	}
	if !sawDeadline {
		t.Error("check ran without a deadline")
	}
	want := "ok    slack auth.test\n" +
		"FAIL  post in #access: not_in_channel: the bot is not a member\n" +
		"      fix: invite the bot: /invite @symbot\n" +
		"ok    assume role\n" +
		"FAIL  read secret: check crashed: boom\n" +
		"      fix: grant secretsmanager:GetSecretValue\n" +
		"FAIL  nothing to run: check has nothing to run\n"
	if got := b.String(); got != want {
		t.Errorf("output:\ngot:\n%s\nwant:\n%s", got, want)
	}
}

func writeFile(tb testing.TB, path, content string) string {
	tb.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

func TestCheckCommand(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, filepath.Join(dir, "symbot.yml"), baseYAML)
	bad := writeFile(t, filepath.Join(dir, "bad.yml"), edit(t, baseYAML, "        group_id: 00gADMIN000000000001\n", "        gruop_id: 00gADMIN000000000001\n"))

	t.Run("good config with tokens", func(t *testing.T) {
		t.Setenv("SLACK_BOT_TOKEN", "xoxb-1")
		t.Setenv("SLACK_APP_TOKEN", "xapp-1")
		code, out, errOut := cli(t, "check", "--config", good)
		if code != 0 {
			t.Fatalf("exit %d:\n%s%s", code, out, errOut)
		}
		for _, w := range []string{"ok    config " + good + ": 1 flows, 1 targets", "ok    runtime: credentials re-checked every 1m, early Okta look-ups stand for 5m, 16 job workers\n", "ok    SLACK_BOT_TOKEN is set", "all checks passed"} {
			if !strings.Contains(out, w) {
				t.Errorf("output lacks %q:\n%s", w, out)
			}
		}
	})
	t.Run("runtime settings", func(t *testing.T) {
		t.Setenv("SLACK_BOT_TOKEN", "xoxb-1")
		t.Setenv("SLACK_APP_TOKEN", "xapp-1")
		tuned := writeFile(t, filepath.Join(dir, "tuned.yml"), baseYAML+"runtime:\n  credential_check_interval: 30s\n  grant_check_ttl: 0\n  job_workers: 4\n")
		code, out, _ := cli(t, "check", "--config", tuned)
		if want := "ok    runtime: credentials re-checked every 30s, early Okta look-ups off, 4 job workers\n"; code != 0 || !strings.Contains(out, want) {
			t.Errorf("exit %d, want a line %q:\n%s", code, want, out)
		}
		wrong := writeFile(t, filepath.Join(dir, "wrong.yml"), baseYAML+"runtime:\n  job_workers: 0\n")
		code, out, _ = cli(t, "check", "--config", wrong)
		if want := "wrong.yml:"; code != exitFail || !strings.Contains(out, want) || !strings.Contains(out, "runtime.job_workers: must be at least 1") {
			t.Errorf("exit %d, want runtime.job_workers refused at its file:line:\n%s", code, out)
		}
	})
	t.Run("missing tokens fail with the fix", func(t *testing.T) {
		t.Setenv("SLACK_BOT_TOKEN", "")
		t.Setenv("SLACK_APP_TOKEN", "")
		code, out, _ := cli(t, "check", "--config", good)
		if code != exitFail || !strings.Contains(out, "FAIL  SLACK_APP_TOKEN is set: not set\n      fix: export SLACK_APP_TOKEN=xapp-") {
			t.Errorf("exit %d:\n%s", code, out)
		}
	})
	t.Run("bad config lists every problem", func(t *testing.T) {
		code, out, _ := cli(t, "check", "--config", bad)
		if code != exitFail {
			t.Errorf("exit: got %d, want %d", code, exitFail)
		}
		for _, w := range []string{"FAIL  config " + bad, `bad.yml:19: flows[0].targets[0].gruop_id: unknown key "gruop_id" (did you mean "group_id"?)`, "bad.yml:18: flows[0].targets[0].group_id: missing"} {
			if !strings.Contains(out, w) {
				t.Errorf("output lacks %q:\n%s", w, out)
			}
		}
	})
	t.Run("store file not created yet", func(t *testing.T) {
		t.Setenv("SLACK_BOT_TOKEN", "xoxb-1")
		t.Setenv("SLACK_APP_TOKEN", "xapp-1")
		code, out, _ := cli(t, "check", "--config", good)
		db := filepath.Join(dir, "symbot.db")
		want := "ok    store file " + db + " does not exist yet: symbot run creates it with mode 0600\n"
		if code != 0 || !strings.Contains(out, want) || strings.Contains(out, "is private") {
			t.Errorf("exit %d, want a line %q and no claim that a missing file is private:\n%s", code, want, out)
		}
	})
	t.Run("one problem is one problem", func(t *testing.T) {
		code, out, _ := cli(t, "check", "--config", bad)
		if code != exitFail || !strings.Contains(out, "FAIL  config "+bad+": 2 problems\n") {
			t.Errorf("exit %d:\n%s", code, out)
		}
		one := writeFile(t, filepath.Join(dir, "one.yml"), edit(t, baseYAML, "errors_channel: C0ERRORS", "errors_channel: errors"))
		code, out, _ = cli(t, "check", "--config", one)
		if code != exitFail || !strings.Contains(out, "FAIL  config "+one+": 1 problem\n") {
			t.Errorf("exit %d, want \"1 problem\":\n%s", code, out)
		}
	})
	t.Run("world-readable store file", func(t *testing.T) {
		t.Setenv("SLACK_BOT_TOKEN", "xoxb-1")
		t.Setenv("SLACK_APP_TOKEN", "xapp-1")
		db := filepath.Join(dir, "symbot.db")
		writeFile(t, db, "x")
		os.Chmod(db, 0o644)
		code, out, _ := cli(t, "check", "--config", good)
		if code != exitFail || !strings.Contains(out, "fix: chmod 600 "+db) {
			t.Errorf("exit %d:\n%s", code, out)
		}
	})
}

// TestRunChecksNetworkFix: when the service cannot be reached at all, the
// fix is about the network, not the check's token or settings.
func TestRunChecksNetworkFix(t *testing.T) {
	dnsErr := fmt.Errorf("post auth.test: %w", &net.DNSError{Err: "no such host", Name: "slack.com", IsNotFound: true})
	dialErr := &url.Error{Op: "Post", URL: "https://slack.com/api/auth.test", Err: &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}}
	var b strings.Builder
	RunChecks(t.Context(), &b, []Check{
		{Name: "slack auth", Run: func(context.Context) error { return dnsErr }, Fix: "set SLACK_BOT_TOKEN to the bot token"},
		{Name: "slack post", Run: func(context.Context) error { return dialErr }, Fix: "set SLACK_BOT_TOKEN to the bot token"},
	})
	out := b.String()
	if strings.Contains(out, "SLACK_BOT_TOKEN") {
		t.Errorf("a network failure is blamed on the token:\n%s", out)
	}
	for _, want := range []string{"fix: cannot resolve slack.com: check DNS", "fix: cannot connect: check this host's network access"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestRunChecksSkipsDependents(t *testing.T) {
	var ran bool
	var b strings.Builder
	failed := RunChecks(t.Context(), &b, []Check{
		{Name: "base", Run: func(context.Context) error { return errors.New("no credentials") }},
		{Name: "role", Needs: "base", Run: func(context.Context) error { ran = true; return nil }},
		{Name: "secret", Needs: "role", Run: func(context.Context) error { ran = true; return nil }},
	})
	if failed != 1 || ran {
		t.Errorf("failed %d (want 1), dependents ran: %v", failed, ran)
	}
	want := "FAIL  base: no credentials\nskip  role: not checked, it needs \"base\"\nskip  secret: not checked, it needs \"role\"\n"
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}
