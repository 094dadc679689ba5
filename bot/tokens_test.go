package bot_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/slack-go/slack"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/bot"
	"github.com/symbot/symbot/bot/slacktest"
	"github.com/symbot/symbot/store/memstore"
)

// TestRefusedTokensNameTheirVariable: a refused token says which
// environment variable holds it, since tokens never live in the config.
func TestRefusedTokensNameTheirVariable(t *testing.T) {
	tests := []struct {
		name     string
		appToken func(s *slacktest.Server) string
		setup    func(s *slacktest.Server)
		want     string
	}{
		{
			name:     "app token",
			appToken: func(*slacktest.Server) string { return "xapp-1-wrong" },
			want:     "Slack refused the app-level token in SLACK_APP_TOKEN (invalid_auth)",
		},
		{
			name:     "bot token",
			appToken: func(s *slacktest.Server) string { return s.AppToken },
			setup:    func(s *slacktest.Server) { s.FailNext("auth.test", "invalid_auth", 1) },
			want:     "set SLACK_BOT_TOKEN in symbot's environment",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := slacktest.NewServer()
			t.Cleanup(s.Close)
			if tt.setup != nil {
				tt.setup(s)
			}
			b := bot.New(slack.New(s.BotToken, slack.OptionAPIURL(s.APIURL()), slack.OptionAppLevelToken(tt.appToken(s))), bot.Config{})
			eng, err := symbot.NewEngine(memstore.New(), newFakeDir(), b, testFlows())
			if err != nil {
				t.Fatal(err)
			}
			err = b.Run(t.Context(), eng)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Run = %v, want an error containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "configuration") {
				t.Errorf("error points at the configuration, but tokens live in the environment: %v", err)
			}
		})
	}
}

// TestCheckTokens: CheckBotToken and CheckAppToken tell a token Slack
// refused (a *bot.TokenError naming its variable, without the token) from
// Slack being unreachable (another error), and pass once it works again.
func TestCheckTokens(t *testing.T) {
	s := slacktest.NewServer()
	t.Cleanup(s.Close)
	b := bot.New(slack.New(s.BotToken, slack.OptionAPIURL(s.APIURL()), slack.OptionAppLevelToken(s.AppToken)), bot.Config{})
	ctx := t.Context()
	if err := b.CheckBotToken(ctx); err != nil {
		t.Fatalf("CheckBotToken with a good token: %v", err)
	}
	if err := b.CheckAppToken(ctx); err != nil {
		t.Fatalf("CheckAppToken with a good token: %v", err)
	}
	for _, tc := range []struct {
		env   string
		token string
		check func(context.Context) error
	}{
		{bot.EnvBotToken, s.BotToken, b.CheckBotToken},
		{bot.EnvAppToken, s.AppToken, b.CheckAppToken},
	} {
		s.RevokeToken(tc.token)
		err := tc.check(ctx)
		var te *bot.TokenError
		if !errors.As(err, &te) || te.Env != tc.env || te.Code != "token_revoked" || !strings.Contains(err.Error(), tc.env+" (token_revoked)") {
			t.Errorf("check of a revoked %s = %v, want a *bot.TokenError naming it", tc.env, err)
		}
		if err != nil && strings.Contains(err.Error(), tc.token) {
			t.Errorf("the error holds the token: %v", err)
		}
		s.RestoreToken(tc.token)
		if err := tc.check(ctx); err != nil {
			t.Errorf("check of %s once it works again: %v", tc.env, err)
		}
	}
	s.FailNext("auth.test", "internal_error", 1)
	err := b.CheckBotToken(ctx)
	var te *bot.TokenError
	if err == nil || errors.As(err, &te) {
		t.Errorf("CheckBotToken while Slack fails = %v, want an error that is not a *bot.TokenError", err)
	}
}
