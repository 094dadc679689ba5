package bot_test

import (
	"strings"
	"testing"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/bot"
)

// An error whose words carry a token (a policy reason or input problem
// built from outside text) must not put the token into Slack.
func TestExplainDoesNotEchoTokens(t *testing.T) {
	const tok = "xoxb-1234-5678-AbCdEfGhIjKl"
	for _, err := range []error{
		&symbot.InputError{Field: "reason", Problem: "bad value " + tok},
		&symbot.PolicyError{Reason: "refused for " + tok},
		&bot.UsageError{Problem: "no command " + tok},
	} {
		if got := bot.Explain(err, ""); strings.Contains(got, "AbCdEfGhIjKl") {
			t.Errorf("Explain(%T) = %q, echoes the token", err, got)
		}
	}
}
