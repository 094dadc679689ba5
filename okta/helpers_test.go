package okta_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/symbot/symbot/okta"
	"github.com/symbot/symbot/okta/oktatest"
)

// fakeTokens is an okta.TokenSource: Token returns tok; Refresh swaps in
// next (once tok is the stale one) and counts refreshes.
type fakeTokens struct {
	mu        sync.Mutex
	tok       string
	next      string
	refreshes int
}

func (f *fakeTokens) Token(context.Context) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tok, nil
}

func (f *fakeTokens) Refresh(_ context.Context, stale string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refreshes++
	if f.tok == stale && f.next != "" {
		f.tok = f.next
	}
	return f.tok, nil
}

func (f *fakeTokens) Refreshes() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.refreshes
}

// isolate keeps the SDK's config readers away from the machine's
// ~/.okta/okta.yaml and OKTA_* variables.
func isolate(tb testing.TB) {
	tb.Helper()
	t, ok := tb.(interface{ Setenv(k, v string) })
	if !ok {
		return
	}
	t.Setenv("HOME", tb.TempDir())
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "OKTA_") {
			t.Setenv(k, "")
			_ = os.Unsetenv(k)
		}
	}
}

type env struct {
	sim    *oktatest.Server
	tokens *fakeTokens
	dir    *okta.Directory
	logs   *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// MustEnv starts a simulator and a Directory against it. edit may change
// the config before New.
func MustEnv(tb testing.TB, edit func(*okta.Config)) *env {
	tb.Helper()
	isolate(tb)
	sim := oktatest.NewServer()
	tb.Cleanup(sim.Close)
	e := &env{sim: sim, tokens: &fakeTokens{tok: sim.Token()}, logs: &syncBuffer{}}
	cfg := okta.Config{
		OrgURL:     sim.URL(),
		BackoffMin: 5 * time.Millisecond,
		BackoffMax: 50 * time.Millisecond,
		Logger:     slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if edit != nil {
		edit(&cfg)
	}
	d, err := okta.New(cfg, e.tokens)
	if err != nil {
		tb.Fatalf("okta.New: %v", err)
	}
	e.dir = d
	return e
}

func contextWithCancel(tb testing.TB) (context.Context, context.CancelFunc) {
	tb.Helper()
	ctx, cancel := context.WithCancel(tb.Context())
	tb.Cleanup(cancel)
	return ctx, cancel
}
