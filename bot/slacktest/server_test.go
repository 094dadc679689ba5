package slacktest_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"

	"github.com/symbot/symbot/bot/slacktest"
)

// app is a minimal Socket Mode app built on the real slack-go client.
type app struct {
	api    *slack.Client
	client *socketmode.Client

	mu     sync.Mutex
	events []socketmode.Event
	hellos int
	// handle decides what to do with a request; nil acks with no payload.
	handle func(evt socketmode.Event) (ack bool, payload any)
}

// MustApp connects a slack-go socketmode client to srv and runs it until the test ends.
func MustApp(tb testing.TB, srv *slacktest.Server, handle func(evt socketmode.Event) (bool, any), opts ...socketmode.Option) *app {
	tb.Helper()
	api := slack.New(srv.BotToken, slack.OptionAPIURL(srv.APIURL()), slack.OptionAppLevelToken(srv.AppToken))
	a := &app{api: api, client: socketmode.New(api, opts...), handle: handle}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = a.client.RunContext(ctx) })
	wg.Go(func() { a.loop(ctx) })
	tb.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	if err := srv.WaitFor(wctx, srv.Connected); err != nil {
		tb.Fatalf("app did not connect: %v", err)
	}
	return a
}

func (a *app) loop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case evt := <-a.client.Events:
			a.mu.Lock()
			a.events = append(a.events, evt)
			if evt.Type == socketmode.EventTypeHello {
				a.hellos++
			}
			handle := a.handle
			a.mu.Unlock()
			if evt.Request == nil || evt.Type == socketmode.EventTypeHello {
				continue
			}
			ack, payload := true, any(nil)
			if handle != nil {
				ack, payload = handle(evt)
			}
			if ack {
				if payload != nil {
					_ = a.client.Ack(*evt.Request, payload)
				} else {
					_ = a.client.Ack(*evt.Request)
				}
			}
		}
	}
}

func (a *app) requests(typ socketmode.EventType) []socketmode.Event {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []socketmode.Event
	for _, e := range a.events {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

func newServer(tb testing.TB) *slacktest.Server {
	tb.Helper()
	srv := slacktest.NewServer()
	tb.Cleanup(srv.Close)
	srv.AddUser(slacktest.User{ID: "U1", Name: "alice", RealName: "Alice A", Email: "alice@example.com", TZ: "Europe/Berlin"})
	srv.AddUser(slacktest.User{ID: "U2", Name: "bob", RealName: "Bob B", Email: "bob@example.com"})
	srv.AddUser(slacktest.User{ID: "U3", Name: "guest", Email: "guest@example.com", IsRestricted: true})
	srv.AddChannel(slacktest.Channel{ID: "C1", Name: "approvals", Members: []string{"U1", "U2"}, BotIsMember: true})
	srv.AddChannel(slacktest.Channel{ID: "C2", Name: "random", Members: []string{"U1"}})
	return srv
}

func TestSlashCommandDeliveredAndAcked(t *testing.T) {
	srv := newServer(t)
	a := MustApp(t, srv, nil)
	ack, err := srv.SlashCommand("U1", "/sym", "req okta-admins 2h because", "C1")
	if err != nil {
		t.Fatalf("SlashCommand: %v", err)
	}
	if ack.EnvelopeID == "" || ack.Attempts != 1 {
		t.Errorf("ack = %+v, want an envelope ID and 1 attempt", ack)
	}
	cmds := a.requests(socketmode.EventTypeSlashCommand)
	if len(cmds) != 1 {
		t.Fatalf("got %d slash commands, want 1", len(cmds))
	}
	cmd := cmds[0].Data.(slack.SlashCommand)
	if cmd.Command != "/sym" || cmd.Text != "req okta-admins 2h because" || cmd.UserID != "U1" || cmd.UserName != "alice" || cmd.ChannelID != "C1" {
		t.Errorf("slash command = %+v", cmd)
	}
	if cmd.TriggerID == "" || cmd.ResponseURL == "" || cmd.TeamID == "" || cmd.APIAppID == "" {
		t.Errorf("slash command lacks trigger_id/response_url/team_id/api_app_id: %+v", cmd)
	}
	if a.hellos < 1 {
		t.Errorf("got %d hellos, want at least 1", a.hellos)
	}
	if !cmds[0].Request.AcceptsResponsePayload || cmds[0].Request.RetryAttempt != 0 {
		t.Errorf("request = %+v, want accepts_response_payload and retry_attempt 0", cmds[0].Request)
	}
}

func TestSendWithoutConnectionFails(t *testing.T) {
	srv := newServer(t)
	srv.DeliveryTimeout = 50 * time.Millisecond
	_, err := srv.SlashCommand("U1", "/sym", "", "C1")
	if !errors.Is(err, slacktest.ErrNotConnected) {
		t.Fatalf("got %v, want ErrNotConnected", err)
	}
}

func TestWaitForRechecksOutsideState(t *testing.T) {
	srv := newServer(t)
	var flag atomic.Bool
	go flag.Store(true) // no server state change follows
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := srv.WaitFor(ctx, flag.Load); err != nil {
		t.Fatalf("WaitFor: %v", err)
	}
	short, cancelShort := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancelShort()
	if err := srv.WaitFor(short, func() bool { return false }); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitFor on a false condition = %v, want DeadlineExceeded", err)
	}
}
