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
	"strings"
	"testing"
	"time"

	"github.com/symbot/symbot"
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
	d.credentialCheckEvery = 20 * time.Millisecond
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
	wait("the bot token to be checked", valid("1"))

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
	d.credentialCheckEvery = 20 * time.Millisecond
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
// no Slack), and it reconnects once the token works again.
func TestRevokedAppTokenWhileRunningKeepsRemovingAccess(t *testing.T) {
	w, cfgPath := mustWorld(t, "1h", "0")
	d := mustOpenDaemon(t, w, cfgPath, nil)
	d.credentialCheckEvery = 20 * time.Millisecond
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
