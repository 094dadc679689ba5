package slacktest_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"

	"github.com/symbot/symbot/bot/slacktest"
)

func waitFor(tb testing.TB, srv *slacktest.Server, what string, cond func() bool) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.WaitFor(ctx, cond); err != nil {
		tb.Fatalf("waiting for %s: %v", what, err)
	}
}

func TestUnackedEnvelopeIsRedelivered(t *testing.T) {
	srv := newServer(t)
	srv.AckTimeout = 100 * time.Millisecond
	var seen atomic.Int32
	a := MustApp(t, srv, func(evt socketmode.Event) (bool, any) {
		return seen.Add(1) > 1, nil // ignore the first delivery
	})
	ack, err := srv.SlashCommand("U1", "/sym", "list", "C1")
	if err != nil {
		t.Fatalf("SlashCommand: %v", err)
	}
	if got, want := ack.Attempts, 2; got != want {
		t.Errorf("attempts = %d, want %d", got, want)
	}
	cmds := a.requests(socketmode.EventTypeSlashCommand)
	if len(cmds) != 2 {
		t.Fatalf("got %d deliveries, want 2", len(cmds))
	}
	first, second := cmds[0].Request, cmds[1].Request
	if first.EnvelopeID != second.EnvelopeID {
		t.Errorf("envelope IDs differ: %q vs %q", first.EnvelopeID, second.EnvelopeID)
	}
	if first.RetryAttempt != 0 || second.RetryAttempt != 1 || second.RetryReason != "timeout" {
		t.Errorf("retry fields = (%d,%q) then (%d,%q), want (0,\"\") then (1,\"timeout\")",
			first.RetryAttempt, first.RetryReason, second.RetryAttempt, second.RetryReason)
	}
}

func TestNeverAckedGivesUp(t *testing.T) {
	srv := newServer(t)
	srv.AckTimeout = 20 * time.Millisecond
	srv.MaxRetries = 2
	a := MustApp(t, srv, func(socketmode.Event) (bool, any) { return false, nil })
	_, err := srv.SlashCommand("U1", "/sym", "", "C1")
	if !errors.Is(err, slacktest.ErrNotAcked) {
		t.Fatalf("got %v, want ErrNotAcked", err)
	}
	if got, want := len(a.requests(socketmode.EventTypeSlashCommand)), 3; got != want {
		t.Errorf("deliveries = %d, want %d", got, want)
	}
}

func TestDisconnectReconnectsAndDeliveryContinues(t *testing.T) {
	for _, tc := range []struct {
		name string
		cut  func(*slacktest.Server)
	}{
		{"refresh_requested", func(s *slacktest.Server) { s.Disconnect("refresh_requested") }},
		{"link_disabled", func(s *slacktest.Server) { s.Disconnect("link_disabled") }},
		{"dropped TCP", func(s *slacktest.Server) { s.DropConnections() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newServer(t)
			a := MustApp(t, srv, nil)
			if got := srv.Connections(); got != 1 {
				t.Fatalf("connections = %d, want 1", got)
			}
			tc.cut(srv)
			waitFor(t, srv, "reconnect", func() bool { return srv.Connections() == 2 && srv.Connected() })
			if _, err := srv.SlashCommand("U1", "/sym", "after", "C1"); err != nil {
				t.Fatalf("SlashCommand after reconnect: %v", err)
			}
			if got := len(a.requests(socketmode.EventTypeSlashCommand)); got != 1 {
				t.Errorf("slash commands = %d, want 1", got)
			}
			if got := len(srv.CallsTo("apps.connections.open")); got != 2 {
				t.Errorf("apps.connections.open calls = %d, want 2", got)
			}
		})
	}
}

func TestAckArrivesOnNextSocket(t *testing.T) {
	srv := newServer(t)
	srv.AckTimeout = 5 * time.Second
	received := make(chan struct{})
	release := make(chan struct{})
	MustApp(t, srv, func(socketmode.Event) (bool, any) {
		close(received)
		<-release
		return true, nil
	})
	type result struct {
		ack slacktest.Ack
		err error
	}
	done := make(chan result, 1)
	go func() {
		ack, err := srv.SlashCommand("U1", "/sym", "slow", "C1")
		done <- result{ack, err}
	}()
	<-received
	srv.Disconnect("refresh_requested")
	waitFor(t, srv, "reconnect", func() bool { return srv.Connections() == 2 && srv.Connected() })
	close(release)
	r := <-done
	if r.err != nil {
		t.Fatalf("SlashCommand: %v", r.err)
	}
	if r.ack.Attempts != 1 {
		t.Errorf("attempts = %d, want 1 (ack over the new socket)", r.ack.Attempts)
	}
}

func TestDuplicateDelivery(t *testing.T) {
	srv := newServer(t)
	a := MustApp(t, srv, nil)
	srv.DuplicateNext(1)
	if _, err := srv.SlashCommand("U1", "/sym", "dup", "C1"); err != nil {
		t.Fatalf("SlashCommand: %v", err)
	}
	cmds := a.requests(socketmode.EventTypeSlashCommand)
	if len(cmds) != 2 {
		t.Fatalf("deliveries = %d, want 2", len(cmds))
	}
	if cmds[0].Request.EnvelopeID != cmds[1].Request.EnvelopeID || cmds[1].Request.RetryAttempt != 1 {
		t.Errorf("second delivery = %+v, want same envelope with retry_attempt 1", cmds[1].Request)
	}
	// The next command is delivered once again.
	if _, err := srv.SlashCommand("U1", "/sym", "once", "C1"); err != nil {
		t.Fatalf("SlashCommand: %v", err)
	}
	if got := len(a.requests(socketmode.EventTypeSlashCommand)); got != 3 {
		t.Errorf("deliveries = %d, want 3", got)
	}
}

func TestMissingPingsMakeClientReconnect(t *testing.T) {
	srv := newServer(t)
	srv.SetPings(false)
	MustApp(t, srv, nil, socketmode.OptionPingInterval(200*time.Millisecond))
	waitFor(t, srv, "reconnect after ping timeout", func() bool { return srv.Connections() >= 2 })
}

func TestEventsAPIEnvelope(t *testing.T) {
	srv := newServer(t)
	a := MustApp(t, srv, nil)
	payload := map[string]any{
		"token": "x", "team_id": srv.TeamID, "api_app_id": srv.AppID, "type": "event_callback",
		"event_id": "Ev1", "event_time": 1700000000,
		"event": map[string]any{"type": "app_home_opened", "user": "U1", "channel": "D1", "tab": "home", "event_ts": "1700000000.000100"},
	}
	if _, err := srv.SendEnvelope("events_api", payload); err != nil {
		t.Fatalf("SendEnvelope: %v", err)
	}
	evs := a.requests(socketmode.EventTypeEventsAPI)
	if len(evs) != 1 {
		t.Fatalf("events = %d, want 1", len(evs))
	}
	if evs[0].Request.AcceptsResponsePayload {
		t.Errorf("events_api envelope accepts_response_payload = true, want false")
	}
}

func TestInvalidAppTokenIsFatalForSocketMode(t *testing.T) {
	srv := newServer(t)
	api := slack.New(srv.BotToken, slack.OptionAPIURL(srv.APIURL()), slack.OptionAppLevelToken("xapp-wrong"))
	client := socketmode.New(api)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	go func() {
		for {
			select {
			case <-client.Events:
			case <-ctx.Done():
				return
			}
		}
	}()
	err := client.RunContext(ctx)
	if err == nil || err.Error() != "invalid_auth" {
		t.Fatalf("RunContext = %v, want invalid_auth", err)
	}
}

func TestRetryOnlyEvents(t *testing.T) {
	srv := newServer(t)
	srv.AckTimeout = 20 * time.Millisecond
	srv.RetryOnlyEvents = true
	a := MustApp(t, srv, func(socketmode.Event) (bool, any) { return false, nil })
	if _, err := srv.SlashCommand("U1", "/sym", "", "C1"); !errors.Is(err, slacktest.ErrNotAcked) {
		t.Fatalf("got %v, want ErrNotAcked", err)
	}
	if got := len(a.requests(socketmode.EventTypeSlashCommand)); got != 1 {
		t.Errorf("slash command deliveries = %d, want 1 (no retry)", got)
	}
}

func TestEnvelopesSpreadAmongConnections(t *testing.T) {
	srv := newServer(t)
	apps := []*app{MustApp(t, srv, nil), MustApp(t, srv, nil), MustApp(t, srv, nil)}
	waitFor(t, srv, "three connections", func() bool { return srv.Connections() == 3 })
	const n = 60
	for i := range n {
		if _, err := srv.SlashCommand("U1", "/sym", "list", "C1"); err != nil {
			t.Fatalf("SlashCommand %d: %v", i, err)
		}
	}
	total := 0
	for i, a := range apps {
		got := len(a.requests(socketmode.EventTypeSlashCommand))
		// Each connection is picked with chance 1/3: none of 60 is a
		// 1-in-10^10 event.
		if got == 0 {
			t.Errorf("connection %d got no envelope of %d", i, n)
		}
		total += got
	}
	if total != n {
		t.Errorf("apps got %d envelopes in all, want %d (each delivered once)", total, n)
	}
}
