package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/cmd/symbot/internal/config"
)

// TestRevokedBotTokenStopsStartupNamingEnvVar runs the binary with a token
// Slack has revoked: it exits 1 before serving anything (no admin socket,
// no Okta call), naming the environment variable that holds the token,
// never the config file, and never printing the token.
func TestRevokedBotTokenStopsStartupNamingEnvVar(t *testing.T) {
	bin := symbotBinary(t)
	for _, tc := range []struct {
		name, env string
		token     func(w *world) string
	}{
		{"bot token", "SLACK_BOT_TOKEN", func(w *world) string { return w.slack.BotToken }},
		{"app token", "SLACK_APP_TOKEN", func(w *world) string { return w.slack.AppToken }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, cfgPath := mustWorld(t, "1h", "0")
			w.slack.RevokeToken(tc.token(w))
			// A guard against a hang, not a speed assertion.
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "run", "--config", cfgPath)
			cmd.Env = environ(w.env())
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != exitFail {
				t.Fatalf("symbot run with a revoked %s: %v, want exit %d\n%s", tc.env, err, exitFail, out)
			}
			var runLine string
			for l := range strings.Lines(string(out)) {
				if strings.HasPrefix(l, "symbot run:") {
					runLine = l
				}
			}
			if !strings.Contains(runLine, tc.env+" (token_revoked)") || !strings.Contains(runLine, "environment") {
				t.Errorf("the error does not name %s as refused:\n%s", tc.env, out)
			}
			if strings.Contains(runLine, "symbot.yml") || strings.Contains(runLine, "config") {
				t.Errorf("the error points at the config file, but tokens live in the environment:\n%s", runLine)
			}
			for _, tok := range []string{w.slack.BotToken, w.slack.AppToken} {
				if strings.Contains(string(out), tok) {
					t.Errorf("a token was printed:\n%s", out)
				}
			}
			if strings.Contains(string(out), "symbot running") {
				t.Errorf("symbot served with a revoked token:\n%s", out)
			}
			if _, err := os.Stat(filepath.Join(w.dir, "admin.sock")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("admin socket created (or left behind) with a revoked token: %v", err)
			}
			if calls := w.okta.Calls(); len(calls) != 0 {
				t.Errorf("symbot called Okta %d times before finding its token refused", len(calls))
			}
		})
	}
}

// TestReadyzGoesNotReadyWhenTokenRevoked: a running symbot whose bot token
// Slack revokes turns not ready at its next check, /readyz saying which
// token without Slack's error text, symbot_credential_valid dropping to 0;
// when the token works again it is ready again.
func TestReadyzGoesNotReadyWhenTokenRevoked(t *testing.T) {
	w, cfgPath := mustWorld(t, "1h", "0")
	d := mustOpenDaemon(t, w, cfgPath, nil)
	d.setCredentialInterval(20 * time.Millisecond)
	runDaemon(t, d)
	wait := waiter(t, w, nil)
	srv := httptest.NewServer(NewHTTPHandler(d.ready, d.metrics, nil))
	t.Cleanup(srv.Close)
	readyz := func() (int, string) {
		resp, err := http.Get(srv.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	valid := func(want string) func() bool {
		re := regexp.MustCompile(`(?m)^symbot_credential_valid\{credential="slack_bot_token"\} ` + want + `$`)
		return func() bool {
			var b strings.Builder
			return d.metrics.WriteText(&b) == nil && re.MatchString(b.String())
		}
	}

	wait("symbot to be ready", func() bool { return d.ready(t.Context()) == nil })
	// symbot_credential_valid is 1 from start, so it proves nothing by
	// itself: wait until a periodic check has run after this point (the
	// checks run one after another, so the start of a second auth.test
	// means the first has recorded its outcome), then the gauge must still
	// say the token is accepted.
	checked := len(w.slack.CallsTo("auth.test"))
	wait("a periodic check of the bot token", func() bool { return len(w.slack.CallsTo("auth.test")) >= checked+2 })
	if !valid("1")() || d.ready(t.Context()) != nil {
		t.Fatal("a check of the accepted bot token left symbot_credential_valid not 1 or symbot not ready")
	}

	w.slack.RevokeToken(w.slack.BotToken)
	wait("symbot to notice the revoked token", func() bool { return d.ready(t.Context()) != nil })
	code, body := readyz()
	if code != http.StatusServiceUnavailable || body != "not ready: slack refuses the bot token (SLACK_BOT_TOKEN)\n" {
		t.Errorf("/readyz with a revoked bot token = %d %q", code, body)
	}
	if strings.Contains(body, "token_revoked") || strings.Contains(body, w.slack.BotToken) {
		t.Errorf("/readyz shows internal error text: %q", body)
	}
	wait("symbot_credential_valid to drop", valid("0"))

	w.slack.RestoreToken(w.slack.BotToken)
	wait("symbot to be ready again", func() bool { return d.ready(t.Context()) == nil })
	if code, body := readyz(); code != http.StatusOK {
		t.Errorf("/readyz once the token works again = %d %q", code, body)
	}
	wait("symbot_credential_valid to recover", valid("1"))
}

// TestReadyzGoesNotReadyWhenOktaTokenRefused: the same for the Okta token
// read through the AWS chain: Okta refusing it (and the secret holding no
// better one) makes symbot not ready until Okta accepts it again.
func TestReadyzGoesNotReadyWhenOktaTokenRefused(t *testing.T) {
	w, cfgPath := mustWorld(t, "1h", "0")
	d := mustOpenDaemon(t, w, cfgPath, nil)
	d.setCredentialInterval(20 * time.Millisecond)
	runDaemon(t, d)
	wait := waiter(t, w, nil)
	wait("symbot to be ready", func() bool { return d.ready(t.Context()) == nil })

	good := w.okta.Token()
	w.okta.SetToken("00not-the-token-symbot-holds")
	wait("symbot to notice the refused Okta token", func() bool {
		err := d.ready(t.Context())
		var nr *notReadyError
		return errors.As(err, &nr) && nr.public == "the okta api token is refused, lacks permissions, or cannot be read from aws secrets manager"
	})
	w.okta.SetToken(good)
	wait("symbot to be ready again", func() bool { return d.ready(t.Context()) == nil })
}

// TestRevokedAppTokenWhileRunningKeepsRemovingAccess: when Slack refuses
// the app-level token after start-up (Socket Mode cannot reconnect), symbot
// does not exit: it is not ready, access still ends in Okta (removals need
// no Slack), and it reconnects once the token works again, on its own
// retry pace, not after runtime.credential_check_interval (here an hour).
func TestRevokedAppTokenWhileRunningKeepsRemovingAccess(t *testing.T) {
	w, cfgPath := mustWorld(t, "1h", "0")
	d := mustOpenDaemon(t, w, cfgPath, nil)
	d.setCredentialInterval(time.Hour)
	d.slackRetry = 20 * time.Millisecond
	runDaemon(t, d)
	wait := waiter(t, w, nil)
	cli := configCLI(t, cfgPath)
	wait("symbot to be ready", func() bool { return d.ready(t.Context()) == nil })
	ref := mustApprovalMessage(t, w, wait, demoAlice, "req prod-admin 1h deploy")
	if _, err := w.slack.ClickButton(demoBob, ref, "sym_approve"); err != nil {
		t.Fatal(err)
	}
	wait("the grant", func() bool { return w.okta.IsMember(w.groupID, w.aliceOkta) })
	var id string
	wait("the grant to be recorded", func() bool {
		rs, err := d.engine.ListByState(t.Context(), symbot.StateActive)
		if err != nil || len(rs) != 1 {
			return false
		}
		id = rs[0].ID
		return true
	})

	w.slack.RevokeToken(w.slack.AppToken)
	w.slack.DropConnections()
	wait("Socket Mode to fail to reconnect", func() bool {
		for _, c := range w.slack.CallsTo("apps.connections.open") {
			if c.Error == "token_revoked" {
				return !d.bot.Connected()
			}
		}
		return false
	})
	if err := d.ready(t.Context()); err == nil {
		t.Error("ready without a Socket Mode connection")
	}
	if out, code := cli("revoke", id, "--reason", "incident over"); code != 0 {
		t.Fatalf("revoke while the app token is refused: exit %d\n%s", code, out)
	}
	wait("the removal from Okta", func() bool { return !w.okta.IsMember(w.groupID, w.aliceOkta) })

	w.slack.RestoreToken(w.slack.AppToken)
	wait("symbot to reconnect", func() bool { return d.ready(t.Context()) == nil })
}

// TestRuntimeSettingsApplyAndReload: the runtime section reaches the
// engine and the credential watcher at start; a reload applies a new
// credential check interval at once (a watcher waiting out an hour checks
// again within the new interval) and a new grant_check_ttl, and keeps the
// job worker count, saying it needs a restart.
func TestRuntimeSettingsApplyAndReload(t *testing.T) {
	w, cfgPath := mustWorld(t, "1h", "0")
	base, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	writeRuntime := func(section string) {
		t.Helper()
		if err := os.WriteFile(cfgPath, append(slices.Clone(base), section...), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeRuntime("runtime:\n  credential_check_interval: 1h\n  grant_check_ttl: 10m\n  job_workers: 4\n")
	d := mustOpenDaemon(t, w, cfgPath, nil)
	if got := d.credentialInterval(); got != time.Hour {
		t.Errorf("credential check interval at start = %v, want 1h", got)
	}
	if d.engine.GrantCheckTTLInEffect() != 10*time.Minute || d.engine.Runtime.Workers != 4 {
		t.Errorf("engine at start: GrantCheckTTL %v, Workers %d; want 10m and 4", d.engine.GrantCheckTTLInEffect(), d.engine.Runtime.Workers)
	}
	logs := &lockedBuffer{}
	d.log = newLogger(config.Log{Level: "info"}, logs)
	runDaemon(t, d)
	wait := waiter(t, w, logs)
	wait("symbot to be ready", func() bool { return d.ready(t.Context()) == nil })

	// Checked at start, then not for an hour: a revoked token goes
	// unnoticed until the interval changes.
	w.slack.RevokeToken(w.slack.BotToken)
	t.Cleanup(func() { w.slack.RestoreToken(w.slack.BotToken) })
	writeRuntime("runtime:\n  credential_check_interval: 10s\n  grant_check_ttl: 0\n  job_workers: 8\n")
	d.reload(t.Context())
	if got := d.credentialInterval(); got != 10*time.Second {
		t.Errorf("credential check interval after the reload = %v, want 10s", got)
	}
	if got := d.live.Load().Runtime; got.JobWorkers != 4 || !got.GrantCheckOff {
		t.Errorf("runtime in effect after the reload = %+v, want job_workers kept at 4 and the early look-ups off", got)
	}
	if got := d.engine.GrantCheckTTLInEffect(); got != 0 {
		t.Errorf("the engine's early look-ups stand for %v after the reload, want 0 (off)", got)
	}
	for _, want := range []string{
		"runtime.credential_check_interval 1h -> 10s",
		"runtime.grant_check_ttl 10m -> 0 (off)",
		"needs_restart=runtime.job_workers",
	} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the reload's log lacks %q:\n%s", want, logs.String())
		}
	}
	wait("the revoked token to be noticed at the new interval", func() bool { return d.ready(t.Context()) != nil })
}
