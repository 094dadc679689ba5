package admin_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/symbot/symbot/cmd/symbot/internal/admin"
)

// startSlow serves a handler that signals when a request arrives and then
// waits for release or for its request context to end, answering which.
func startSlow(t *testing.T, grace time.Duration) (ctx context.Context, stop context.CancelFunc, path string, arrived, release chan struct{}, done chan error) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "s.sock")
	ln, err := admin.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	arrived, release = make(chan struct{}), make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		select {
		case <-release:
			io.WriteString(w, "finished")
		case <-r.Context().Done():
			io.WriteString(w, "cancelled")
		}
	})
	ctx, stop = context.WithCancel(t.Context())
	done = make(chan error, 1)
	go func() { done <- admin.ServeUntilGrace(ctx, ln, h, grace) }()
	return ctx, stop, path, arrived, release, done
}

func get(path string) (string, error) {
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}}
	resp, err := c.Get("http://symbot/slow")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// TestShutdownGraceLetsRequestsFinish: a command in flight when the daemon
// is told to stop keeps a live context and finishes within the grace; it is
// not cut off by the end of the run context.
func TestShutdownGraceLetsRequestsFinish(t *testing.T) {
	_, stop, path, arrived, release, done := startSlow(t, time.Minute)
	got := make(chan string, 1)
	go func() {
		body, err := get(path)
		if err != nil {
			body = "error: " + err.Error()
		}
		got <- body
	}()
	<-arrived
	stop()
	// The server is shutting down now; the request still runs.
	select {
	case body := <-got:
		t.Fatalf("request ended before release: %q", body)
	case err := <-done:
		t.Fatalf("ServeUntil returned %v with a request in flight", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if body := <-got; body != "finished" {
		t.Errorf("request in flight during shutdown answered %q, want finished", body)
	}
	if err := <-done; err != nil {
		t.Errorf("ServeUntil: %v", err)
	}
}

// TestShutdownGraceEnds: a request still running when the grace runs out
// has its context cancelled and ServeUntil returns.
func TestShutdownGraceEnds(t *testing.T) {
	_, stop, path, arrived, _, done := startSlow(t, 10*time.Millisecond)
	got := make(chan error, 1)
	go func() {
		_, err := get(path)
		got <- err
	}()
	<-arrived
	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("ServeUntil: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("ServeUntil did not return after the grace ran out")
	}
	if err := <-got; err == nil {
		// The handler may answer "cancelled" before the connection is
		// closed; either way it did not hang.
		return
	} else if errors.Is(err, context.Canceled) {
		t.Errorf("client error: %v", err)
	}
}
