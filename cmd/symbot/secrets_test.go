package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/symbot/symbot/cmd/symbot/internal/admin"
	"github.com/symbot/symbot/cmd/symbot/internal/config"
)

const pastedOktaToken = "00AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_xY"

// An operator pastes the Okta API token itself into okta.token_secret:
// `symbot check` (and every other command that loads the config) must
// refuse it without printing it anywhere.
func TestOktaTokenPastedIntoTokenSecretIsNotEchoed(t *testing.T) {
	t.Setenv("SLACK_BOT_TOKEN", "xoxb-1")
	t.Setenv("SLACK_APP_TOKEN", "xapp-1")
	path := writeFile(t, filepath.Join(t.TempDir(), "symbot.yml"),
		edit(t, baseYAML, "  token_secret: symbot/okta\n", "  token_secret: "+pastedOktaToken+"\n"))
	for _, args := range [][]string{{"check", "--config", path}, {"run", "--config", path}} {
		code, out, errOut := cli(t, args...)
		if code == 0 {
			t.Errorf("symbot %s: exit 0, want a failure", args[0])
		}
		all := out + errOut
		if strings.Contains(all, pastedOktaToken[2:20]) {
			t.Errorf("symbot %s echoes the pasted token:\n%s", args[0], all)
		}
		if !strings.Contains(all, "okta.token_secret: looks like an Okta API token (value not shown)") {
			t.Errorf("symbot %s does not say what is wrong:\n%s", args[0], all)
		}
	}
}

// A library error that carries a token (an SDK echoing a header, a secret
// value in a parse error) must not reach the log.
func TestTokenInAnErrorIsNotLogged(t *testing.T) {
	secrets := []string{pastedOktaToken, "xoxb-1234-5678-AbCdEfGhIj", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}
	for _, format := range []string{"text", "json"} {
		var buf bytes.Buffer
		log := newLogger(config.Log{Format: format, Level: "debug"}, &buf)
		log = log.With("bound", "token "+secrets[1])
		log.WithGroup("g").Error("grant failed: "+secrets[0],
			"err", errors.New("okta said: bad token "+secrets[0]),
			"aws", secrets[2],
			slog.Group("inner", "value", secrets[1]),
			"list", []string{secrets[0]})
		for _, s := range secrets {
			if strings.Contains(buf.String(), s) {
				t.Errorf("%s log contains %q:\n%s", format, s, buf.String())
			}
		}
		if !strings.Contains(buf.String(), "grant failed") {
			t.Errorf("%s log lost the message:\n%s", format, buf.String())
		}
	}
}

// /readyz has no authentication: anyone who can reach it must not learn
// internal error text (paths, hosts, library errors); the reason goes to
// the log.
func TestReadyzDoesNotLeakInternalErrors(t *testing.T) {
	internal := "open store /var/lib/symbot/symbot.db: dial tcp 10.1.2.3:5432: connection refused"
	var logs bytes.Buffer
	h := NewHTTPHandler(func(context.Context) error { return errors.New(internal) }, nil,
		slog.New(slog.NewTextHandler(&logs, nil)))
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("status = %d, want 503", resp.StatusCode)
	}
	for _, leak := range []string{"/var/lib", "10.1.2.3", "connection refused"} {
		if strings.Contains(string(body), leak) {
			t.Errorf("/readyz body %q reveals %q", body, leak)
		}
	}
	if !strings.Contains(logs.String(), "10.1.2.3") {
		t.Errorf("the reason is not logged:\n%s", logs.String())
	}
}

// Another local user who can write the admin socket's directory could
// remove the socket and listen in its place, then answer (and collect)
// every admin command: symbot refuses such a directory.
func TestAdminSocketInWorldWritableDirectoryIsRefused(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	ln, err := admin.Listen(filepath.Join(dir, "s.sock"))
	if err == nil {
		ln.Close()
		t.Fatal("ListenAdmin in a world-writable directory: got nil error")
	}
	if !strings.Contains(err.Error(), "chmod o-w "+dir) {
		t.Errorf("error does not say how to fix it: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "s.sock")); err == nil {
		t.Errorf("socket created despite the refusal")
	}
}

// A store file other users can read hands them every request and the
// audit chain; a store path that is a symbolic link lets whoever controls
// the link choose the database. `symbot check` fails both with the fix.
func TestCheckRefusesExposedOrSymlinkedStore(t *testing.T) {
	t.Setenv("SLACK_BOT_TOKEN", "xoxb-1")
	t.Setenv("SLACK_APP_TOKEN", "xapp-1")
	dir := t.TempDir()
	cfg := writeFile(t, filepath.Join(dir, "symbot.yml"), baseYAML)
	db := filepath.Join(dir, "symbot.db")
	real := writeFile(t, filepath.Join(dir, "real.db"), "x")
	if err := os.Symlink(real, db); err != nil {
		t.Fatal(err)
	}
	code, out, _ := cli(t, "check", "--config", cfg)
	if code != exitFail || !strings.Contains(out, "is a symbolic link") {
		t.Errorf("symlinked store: exit %d:\n%s", code, out)
	}
}

func TestReadyzShowsOnlyPublicReasons(t *testing.T) {
	srv := httptest.NewServer(NewHTTPHandler(func(context.Context) error {
		return NotReady("the store is not answering", errors.New("open /var/lib/symbot/symbot.db: input/output error"))
	}, nil, nil))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if got, want := string(body), "not ready: the store is not answering\n"; got != want {
		t.Errorf("/readyz = %q, want %q", got, want)
	}
}

// A flow whose target group is also its approver group turns every grant
// into a new approver: symbot refuses such a config at load time.
func TestTargetThatGrantsApprovalRightsIsRefused(t *testing.T) {
	t.Setenv("SLACK_BOT_TOKEN", "xoxb-1")
	t.Setenv("SLACK_APP_TOKEN", "xapp-1")
	path := writeFile(t, filepath.Join(t.TempDir(), "symbot.yml"),
		edit(t, baseYAML, "      users: [U0APPROVER]\n", "      okta_group: 00gADMIN000000000001\n"))
	code, out, errOut := cli(t, "check", "--config", path)
	if code == 0 || !strings.Contains(out+errOut, `flows[0].targets[0].group_id: "00gADMIN000000000001" is also this flow's approvers.okta_group`) {
		t.Errorf("exit %d:\n%s%s", code, out, errOut)
	}
}
