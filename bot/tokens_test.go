package bot_test

import (
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
