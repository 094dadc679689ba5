package main

import (
	"bytes"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

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
