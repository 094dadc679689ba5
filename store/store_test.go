package store_test

import (
	"path/filepath"
	"testing"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/store"
	"github.com/symbot/symbot/store/storetest"
)

// MustOpen opens a store in a new temporary file, closed at cleanup.
func MustOpen(tb testing.TB, opts *store.Options) *store.Store {
	tb.Helper()
	s, err := store.Open(filepath.Join(tb.TempDir(), "symbot.db"), opts)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) symbot.Store { return MustOpen(t, &store.Options{NoSync: true}) })
}
