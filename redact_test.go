package symbot_test

import (
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/symbot/symbot"
)

// Secrets pasted by mistake into config or echoed by a library in an error
// must never come out of the redactor.
func TestRedactMasksTokenShapedStrings(t *testing.T) {
	const (
		okta  = "00AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_xY"
		aws   = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
		xoxb  = "xoxb-1234567890-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"
		xapp  = "xapp-1-A0123456789-1234567890123-0123456789abcdef"
		xoxe  = "xoxe.xoxp-1-Mi0yLTEyMzQ1Njc4OTAtMTIz"
		sswsV = "SSWS s3cr3t-value"
	)
	tests := []struct {
		name, in string
		secrets  []string
	}{
		{"okta token in an error", "get secret: value " + okta + " is not json", []string{okta}},
		{"okta token alone", okta, []string{okta}},
		{"aws secret key", "aws_secret_access_key=" + aws + ";", []string{aws}},
		{"slack bot token", "auth failed for " + xoxb, []string{xoxb[5:]}},
		{"slack app token", "(" + xapp + ")", []string{xapp[5:]}},
		{"slack refresh token", xoxe, []string{"Mi0yLTEyMzQ1Njc4OTAtMTIz"}},
		{"ssws header", "Authorization: " + sswsV, []string{"s3cr3t-value"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := symbot.Redact(tc.in)
			for _, s := range tc.secrets {
				if strings.Contains(got, s) {
					t.Errorf("Redact(%q) = %q, still contains %q", tc.in, got, s)
				}
			}
			if !strings.Contains(got, symbot.Redacted) {
				t.Errorf("Redact(%q) = %q, want a %s marker", tc.in, got, symbot.Redacted)
			}
		})
	}
}

func TestRedactKeepsOrdinaryText(t *testing.T) {
	for _, s := range []string{
		"",
		"request SYM-12 approved by <@U0BOB>",
		"okta user 00u1abcdefGHIJKLmnop in group 00g1abcdefGHIJKLmnop",
		"hash 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		"commit 2fd4e1c67a2d28fced849ee1bb76e7391b93eb12",
		"arn:aws:secretsmanager:eu-west-1:123456789012:secret:symbot/okta-api-token",
		"xox is not a token",
	} {
		if got := symbot.Redact(s); got != s {
			t.Errorf("Redact(%q) = %q, want it unchanged", s, got)
		}
	}
}

// A directory error that echoes the Okta token (an SDK printing the
// Authorization header, say) makes the grant fail: the alert to the
// errors channel, the request's fail reason and the audit trail must not
// carry the token.
func TestTokenInDirectoryErrorIsNotEchoedToSlackOrAudit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const token = "00AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_xY"
		h := newHarness(t, nil)
		h.start(t)
		leak := symbot.Permanent(fmt.Errorf("okta add member: request with Authorization: SSWS %s refused (token %s)", token, token))
		h.dir.failNext("add", leak)
		r := h.mustSubmit(t, alice, "admin", time.Hour)
		h.mustApprove(t, r.ID, bob)
		synctest.Wait()
		got := h.wantState(t, r.ID, symbot.StateFailed)
		check := func(where, s string) {
			t.Helper()
			if strings.Contains(s, token[2:]) {
				t.Errorf("%s carries the token: %s", where, s)
			}
		}
		check("fail reason", got.FailReason)
		alerts := h.notes.find("alert", "", "")
		if len(alerts) == 0 {
			t.Fatal("no alert raised for the failed grant")
		}
		for _, a := range alerts {
			check("alert", a.Text)
		}
		var entries []symbot.AuditEntry
		if err := h.st.View(t.Context(), func(tx symbot.Tx) error {
			var err error
			entries, err = tx.Audit(0, 10000)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		sawRedacted := false
		for _, e := range entries {
			check("audit "+e.Action, e.Detail)
			sawRedacted = sawRedacted || strings.Contains(e.Detail, symbot.Redacted)
		}
		if !sawRedacted {
			t.Errorf("no audit entry records the (redacted) error")
		}
	})
}
