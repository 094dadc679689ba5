package bot_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/symbot/symbot"
	"github.com/symbot/symbot/bot"
	"github.com/symbot/symbot/bot/slacktest"
)

// MustNotifier returns a bot (not running: Notifier methods need no
// connection) on a fresh simulator.
func MustNotifier(tb testing.TB, cfg bot.Config) (*bot.Bot, *slacktest.Server) {
	tb.Helper()
	s := slacktest.NewServer()
	tb.Cleanup(s.Close)
	s.AddUser(slacktest.User{ID: alice, Name: "alice", Email: "alice@example.com"})
	s.AddChannel(slacktest.Channel{ID: chAcc, Name: "access", BotIsMember: true})
	s.AddChannel(slacktest.Channel{ID: chErr, Name: "symbot-errors", BotIsMember: true})
	s.AddChannel(slacktest.Channel{ID: "C0OUTSIDE", Name: "outside", BotIsMember: false})
	api := slack.New(s.BotToken, slack.OptionAPIURL(s.APIURL()), slack.OptionAppLevelToken(s.AppToken))
	if cfg.Logger == nil {
		cfg.Logger = testLogger(tb)
	}
	return bot.New(api, cfg), s
}

func sampleRequest() (*symbot.Flow, *symbot.Request) {
	f := testFlows()[0]
	f.ApplyDefaults()
	return &f, &symbot.Request{ID: "SYM-9", Flow: "prod", Target: "admin", GroupID: "G-ADMIN",
		Requester: symbot.Person{SlackID: alice}, Duration: time.Hour, Reason: "fix", State: symbot.StatePending, CreatedAt: time.Now()}
}

func TestChannelProblemsReportedOnce(t *testing.T) {
	b, s := MustNotifier(t, bot.Config{ErrorsChannel: chErr})
	f, r := sampleRequest()
	tests := []struct {
		name, channel string
		want          error
		words         []string
	}{
		{"missing channel", "C0MISSING", symbot.ErrChannelNotFound, []string{"C0MISSING", "/invite @symbot"}},
		{"bot not in channel", "C0OUTSIDE", symbot.ErrNotInChannel, []string{"C0OUTSIDE", "/invite @symbot"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.Channel = tt.channel
			for range 3 {
				_, err := b.PostRequest(t.Context(), f, r)
				if !errors.Is(err, tt.want) || !symbot.IsPermanent(err) {
					t.Fatalf("PostRequest error = %v, want permanent %v", err, tt.want)
				}
				for _, w := range tt.words {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q lacks %q", err, w)
					}
				}
			}
			n := 0
			for _, m := range s.Messages(chErr) {
				if strings.Contains(m.Text, tt.channel) {
					n++
				}
			}
			if n != 1 {
				t.Errorf("alerts about %s = %d, want 1", tt.channel, n)
			}
		})
	}
}

func TestChannelNotFoundThroughEngineAlertsOnce(t *testing.T) {
	flows := testFlows()
	flows[0].Channel = "C0GONE"
	h := MustHarness(t, withFlows(flows))
	h.slash(alice, "req admin 1h one")
	h.slash(alice, "req prod/readonly 1h two")
	refused := func() int64 {
		return h.bot.Stats().SlackCalls[bot.CallKey{Method: "chat.postMessage", Result: "channel_not_found"}]
	}
	h.waitFor("both posts refused", func() bool { return refused() >= 2 })
	alerts := func() int {
		n := 0
		for _, m := range h.s.Messages(chErr) {
			if strings.Contains(m.Text, "C0GONE") {
				n++
			}
		}
		return n
	}
	// The alert is posted after the refused call returns, so wait for it.
	h.waitFor("an alert about C0GONE", func() bool { return alerts() >= 1 })
	// Once the channel exists the approval messages appear: the requests
	// were never lost.
	h.s.AddChannel(slacktest.Channel{ID: "C0GONE", Name: "gone", BotIsMember: true})
	h.waitFor("both approval messages after the fix", func() bool { return len(h.s.Messages("C0GONE")) >= 2 })
	if n := alerts(); n != 1 {
		t.Errorf("alerts about C0GONE = %d, want 1", n)
	}
	if st, err := h.eng.Stats(t.Context()); err != nil || st.JobsAbandoned != 0 {
		t.Errorf("abandoned jobs = %d (%v), want 0", st.JobsAbandoned, err)
	}
}

func TestMissingScope(t *testing.T) {
	b, s := MustNotifier(t, bot.Config{ErrorsChannel: chErr})
	s.SetScopes("chat:write", "commands", "users:read", "users:read.email")
	f, r := sampleRequest()
	err := b.NotifyUser(t.Context(), alice, f, r, symbot.EventApproved)
	if !errors.Is(err, symbot.ErrMissingScope) || !symbot.IsPermanent(err) {
		t.Fatalf("NotifyUser error = %v, want permanent ErrMissingScope", err)
	}
	for _, w := range []string{"im:write", "reinstall"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
	_ = b.NotifyUser(t.Context(), alice, f, r, symbot.EventApproved)
	if n := len(s.Messages(chErr)); n != 1 {
		t.Errorf("alerts = %d, want 1", n)
	}
}

func TestRateLimitDurableReturnsRetryableError(t *testing.T) {
	b, s := MustNotifier(t, bot.Config{})
	f, r := sampleRequest()
	f.Channel = chAcc
	s.RateLimitNext("chat.postMessage", 30*time.Second, 1)
	_, err := b.PostRequest(t.Context(), f, r)
	if !errors.Is(err, symbot.ErrRateLimited) || symbot.IsPermanent(err) {
		t.Fatalf("PostRequest error = %v, want retryable ErrRateLimited", err)
	}
	if n := len(s.CallsTo("chat.postMessage")); n != 1 {
		t.Errorf("chat.postMessage calls = %d, want 1 (the job retries later, not the call)", n)
	}
	ref, err := b.PostRequest(t.Context(), f, r)
	if err != nil || ref.TS == "" || ref.Channel != chAcc {
		t.Fatalf("second PostRequest = %+v, %v", ref, err)
	}
}

func TestRateLimitInteractiveWaitsAndRetries(t *testing.T) {
	h := MustHarness(t)
	h.s.RateLimitNext("views.open", time.Second, 1)
	h.slash(alice, "")
	h.openView(alice, bot.CallbackRequest)
	calls := h.s.CallsTo("views.open")
	if len(calls) != 2 || calls[0].Error != "ratelimited" || calls[1].Error != "" {
		t.Errorf("views.open calls = %+v, want one rate limited then one ok", calls)
	}
	h.waitFor("calls counted", func() bool {
		st := h.bot.Stats()
		return st.SlackCalls[bot.CallKey{Method: "views.open", Result: "ok"}] == 1
	})
	if n := h.bot.Stats().SlackCalls[bot.CallKey{Method: "views.open", Result: "rate_limited"}]; n != 1 {
		t.Errorf("rate limited views.open counted %d times, want 1", n)
	}
}

func TestUpdateBeforePostFails(t *testing.T) {
	b, _ := MustNotifier(t, bot.Config{})
	f, r := sampleRequest()
	err := b.UpdateRequest(t.Context(), f, r, symbot.EventApproved)
	if err == nil || symbot.IsPermanent(err) {
		t.Fatalf("UpdateRequest without a message = %v, want a retryable error", err)
	}
}

func TestAlert(t *testing.T) {
	b, s := MustNotifier(t, bot.Config{ErrorsChannel: chErr})
	if err := b.Alert(t.Context(), symbot.Alert{RequestID: "SYM-3", Event: symbot.EventRevokeStuck, Text: "removal keeps failing <!channel>"}); err != nil {
		t.Fatalf("Alert: %v", err)
	}
	ms := s.Messages(chErr)
	if len(ms) != 1 || !strings.Contains(ms[0].Text, "SYM-3") || strings.Contains(ms[0].Text, "<!channel>") {
		t.Errorf("errors channel = %+v", ms)
	}
	quiet, _ := MustNotifier(t, bot.Config{})
	if err := quiet.Alert(t.Context(), symbot.Alert{Text: "x"}); err != nil {
		t.Errorf("Alert without errors channel = %v, want nil (logged)", err)
	}
}
