package bot_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/bot"
)

func TestEscape(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"plain", "fix prod", "fix prod"},
		{"channel ping", "<!channel>", "&lt;!channel&gt;"},
		{"user mention", "<@U123>", "&lt;@U123&gt;"},
		{"link", "<http://evil|ok>", "&lt;http://evil|ok&gt;"},
		{"ampersand first", "&lt;", "&amp;lt;"},
		{"unicode", "naïve → ok", "naïve → ok"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := bot.Escape(tt.in); got != tt.want {
				t.Errorf("Escape(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestExplain(t *testing.T) {
	at := time.Unix(1_800_000_000, 0)
	tests := []struct {
		name    string
		err     error
		want    []string
		notWant []string
	}{
		{"nil", nil, nil, nil},
		{"input", &symbot.InputError{Field: "duration", Problem: "3h is not offered"}, []string{"Duration: 3h is not offered"}, nil},
		{"input escaped", &symbot.InputError{Field: "target", Problem: `no target "<!here>"`}, []string{"&lt;!here&gt;"}, []string{"<!here>"}},
		{"duplicate", fmt.Errorf("submit: %w", &symbot.DuplicateError{ExistingID: "SYM-7"}), []string{"already have a pending request (`SYM-7`)"}, nil},
		{"decided", &symbot.DecidedError{ID: "SYM-1", State: symbot.StateApproved, By: "U0BOB", At: at}, []string{"`SYM-1` is already approved by <@U0BOB>", "<!date^1800000000^", "Nothing was changed"}, nil},
		{"decided note escaped", &symbot.DecidedError{ID: "SYM-1", State: symbot.StateDenied, By: "U0BOB", Note: "<!channel>"}, []string{"denied by <@U0BOB>", "&lt;!channel&gt;"}, []string{"<!channel>"}},
		{"decided by system", &symbot.DecidedError{ID: "SYM-1", State: symbot.StateExpired, By: symbot.System}, []string{"already expired by symbot"}, nil},
		{"policy keeps mentions", &symbot.PolicyError{Reason: "approvers: <@U0BOB>, <!channel>"}, []string{"You can't do that: approvers: <@U0BOB>, &lt;!channel&gt;"}, []string{"<!channel>"}},
		{"not found", fmt.Errorf("get request x: %w", symbot.ErrNotFound), []string{"can't find that request"}, nil},
		{"flow no longer configured", fmt.Errorf("approve: %w", &symbot.NotConfiguredError{ID: "SYM-4-ABCD", Flow: "old", Target: "admin"}), []string{"`SYM-4-ABCD` is for flow `old`", "no longer in symbot's configuration", "Nothing was changed"}, []string{"can't find"}},
		{"target no longer configured", &symbot.NotConfiguredError{ID: "SYM-4-ABCD", Flow: "prod", Target: "gone", TargetOnly: true}, []string{"target `gone` of flow `prod`"}, nil},
		{"out of date", fmt.Errorf("request x: %w", symbot.ErrOutOfDate), []string{"This message is out of date", "Nothing was changed"}, nil},
		{"okta user", fmt.Errorf("resolve: %w", symbot.ErrUserNotFound), []string{"Okta account", "Slack email"}, nil},
		{"channel", fmt.Errorf("post: %w", symbot.ErrChannelNotFound), []string{"admins have been told"}, nil},
		{"rate limited", fmt.Errorf("x: %w", symbot.ErrRateLimited), []string{"try again in a minute"}, nil},
		{"timeout", context.DeadlineExceeded, []string{"took too long"}, nil},
		{"database unreachable", fmt.Errorf("submit: %w", errors.Join(context.DeadlineExceeded, symbot.ErrStoreUnavailable)), []string{"symbot can't reach its database; try again in a minute."}, []string{"took too long"}},
		{"slack token refused", fmt.Errorf("post: %w", &bot.TokenError{Env: bot.EnvBotToken, Code: "token_revoked", Method: "chat.postMessage"}), []string{"SLACK_BOT_TOKEN in symbot's environment (not its config file)"}, []string{"token_revoked"}},
		{"okta token refused", fmt.Errorf("grant: %w", symbot.ErrTokenRejected), []string{"`okta.token_secret`", "`symbot check --live`"}, nil},
		{"usage", &bot.UsageError{Problem: "Huh?"}, []string{"Huh?", "/sym help"}, nil},
		{"internal details hidden", errors.New("dial tcp 10.0.0.5:443: token xoxb-secret"), []string{"Something went wrong"}, []string{"xoxb", "10.0.0.5"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := bot.Explain(tt.err, "")
			if tt.err == nil && got != "" {
				t.Fatalf("Explain(nil) = %q, want empty", got)
			}
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("Explain = %q, want it to contain %q", got, w)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(got, w) {
					t.Errorf("Explain = %q, must not contain %q", got, w)
				}
			}
		})
	}
}

func TestExplainNamesTheCommand(t *testing.T) {
	for _, err := range []error{&bot.UsageError{Problem: "Huh?"}, symbot.ErrNotFound, symbot.ErrInvalidRequest, symbot.ErrNotAllowed, &symbot.TransitionError{ID: "SYM-1", From: symbot.StateDenied}} {
		got := bot.Explain(err, "/access")
		if !strings.Contains(got, "/access") || strings.Contains(got, "/sym") {
			t.Errorf("Explain(%v, /access) = %q, want it to name /access and not /sym", err, got)
		}
	}
}
