package postgres_test

import (
	"os"
	"testing"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/store/postgres"
	"github.com/symbot/symbot/store/postgres/pgtest"
	"github.com/symbot/symbot/store/storetest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// MustOpen opens a store on a fresh database.
func MustOpen(tb testing.TB) (*postgres.Store, string) {
	tb.Helper()
	url := pgtest.NewDatabase(tb)
	st, err := postgres.Open(tb.Context(), url, postgres.Config{})
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { st.Close() })
	return st, url
}

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) symbot.Store {
		st, _ := MustOpen(t)
		return st
	})
}
