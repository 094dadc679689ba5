package main

import (
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/symbot/symbot/cmd/symbot/internal/config"
)

// TestSlackClientReusesConnections: the bot's and the executor's workers
// call Slack at once. slack-go's default client keeps 2 idle connections
// per host, so every other call of a busy moment dialled a new one (a TLS
// handshake, against Slack). The wired client keeps its connections.
func TestSlackClientReusesConnections(t *testing.T) {
	var conns atomic.Int64
	gate := make(chan struct{})
	var inFlight sync.WaitGroup
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inFlight.Done()
		<-gate // hold every call until all are in flight: one connection each
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"ok":true,"url":"https://example.slack.com/","team":"T","user":"U","team_id":"T1","user_id":"U1"}`))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	api := slackClient(&config.Config{Slack: config.Slack{BotToken: "xoxb-test", AppToken: "xapp-test", APIURL: srv.URL + "/"}})

	const parallel = 16
	round := func() {
		var wg sync.WaitGroup
		inFlight.Add(parallel)
		for range parallel {
			wg.Go(func() {
				if _, err := api.AuthTestContext(t.Context()); err != nil {
					t.Error(err)
				}
			})
		}
		inFlight.Wait()
		gate <- struct{}{} // let one finish at a time so that each goes idle
		for range parallel - 1 {
			gate <- struct{}{}
		}
		wg.Wait()
	}
	round()
	first := conns.Load()
	round()
	if opened := conns.Load() - first; opened > 0 {
		t.Errorf("a second round of %d concurrent calls opened %d new connections (the first opened %d); want them all reused", parallel, opened, first)
	}
}
