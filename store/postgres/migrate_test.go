package postgres_test

import (
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/symbot/symbot"
	"github.com/symbot/symbot/store/postgres"
	"github.com/symbot/symbot/store/postgres/pgtest"
	"github.com/symbot/symbot/store/storetest"
)

func TestMigrationsNumbered(t *testing.T) {
	for i, m := range postgres.Migrations() {
		if m.Version != i+1 {
			t.Errorf("migration %s has version %d, want %d (versions run from 1 without gaps)", m.Name, m.Version, i+1)
		}
	}
}

func TestCheckSchema(t *testing.T) {
	url := pgtest.NewDatabase(t)
	st, err := postgres.CheckSchema(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	if st.UpToDate() || st.Current != 0 || len(st.Pending) != postgres.SchemaVersion() {
		t.Errorf("empty database: got %+v, want version 0 with every step pending", st)
	}
	s, err := postgres.Open(t.Context(), url, postgres.Config{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	st, err = postgres.CheckSchema(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	if !st.UpToDate() || st.Current != postgres.SchemaVersion() {
		t.Errorf("after Open: got %+v, want current", st)
	}
}

func TestOpenNoMigrateRefusesOldSchema(t *testing.T) {
	url := pgtest.NewDatabase(t)
	if _, err := postgres.Open(t.Context(), url, postgres.Config{NoMigrate: true}); err == nil {
		t.Fatal("Open with NoMigrate on an empty database: got nil error")
	}
}

func TestConcurrentOpenMigratesOnce(t *testing.T) {
	url := pgtest.NewDatabase(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			s, err := postgres.Open(t.Context(), url, postgres.Config{})
			if err == nil {
				s.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open %d: %v", i, err)
		}
	}
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	var n int
	if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM symbot_migrations").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != postgres.SchemaVersion() {
		t.Errorf("symbot_migrations has %d rows, want %d", n, postgres.SchemaVersion())
	}
}

func TestSchemaTooNew(t *testing.T) {
	_, url := MustOpen(t)
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	if _, err := conn.Exec(t.Context(), "INSERT INTO symbot_migrations (version, name) VALUES (9999, '9999_future.sql')"); err != nil {
		t.Fatal(err)
	}
	_, err = postgres.Open(t.Context(), url, postgres.Config{})
	var se *postgres.SchemaError
	if !errors.Is(err, symbot.ErrSchemaTooNew) || !errors.As(err, &se) || se.Found != 9999 {
		t.Errorf("Open of a newer schema: got %v, want a SchemaError wrapping ErrSchemaTooNew", err)
	}
	if _, err := postgres.CheckSchema(t.Context(), url); !errors.Is(err, symbot.ErrSchemaTooNew) {
		t.Errorf("CheckSchema of a newer schema: got %v", err)
	}
}

func TestOpenRedactsPassword(t *testing.T) {
	_, err := postgres.Open(t.Context(), "postgres://u:sekrit@[::1/db", postgres.Config{})
	if err == nil {
		t.Fatal("Open of a malformed URL: got nil error")
	}
	if got := err.Error(); strings.Contains(got, "sekrit") {
		t.Errorf("error quotes the password: %s", got)
	}
}

// TestOpenReadOnlyNeverWrites stops the offline admin commands from
// changing a live database: a ReadOnly store reads what a replica wrote,
// migrates nothing, and the server refuses its writes.
func TestOpenReadOnlyNeverWrites(t *testing.T) {
	url := pgtest.NewDatabase(t)
	if _, err := postgres.Open(t.Context(), url, postgres.Config{ReadOnly: true}); err == nil {
		t.Fatal("ReadOnly Open of an empty database migrated it or opened it anyway")
	}
	rw, err := postgres.Open(t.Context(), url, postgres.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer rw.Close()
	storetest.MustPut(t, rw, &symbot.Request{ID: "R1", State: symbot.StateActive, Requester: symbot.Person{SlackID: "U1"}})
	ro, err := postgres.Open(t.Context(), url, postgres.Config{ReadOnly: true})
	if err != nil {
		t.Fatalf("ReadOnly Open beside a running replica: %v", err)
	}
	defer ro.Close()
	if got := storetest.MustGet(t, ro, "R1"); got.State != symbot.StateActive {
		t.Errorf("R1 read in state %s, want active", got.State)
	}
	err = ro.Update(t.Context(), func(tx symbot.Tx) error {
		return tx.PutRequest(&symbot.Request{ID: "R2", State: symbot.StatePending, Requester: symbot.Person{SlackID: "U1"}})
	})
	if err == nil {
		t.Fatal("Update on a ReadOnly store succeeded")
	}
	if !strings.Contains(err.Error(), "read-only") {
		t.Errorf("Update on a ReadOnly store: %v, want the server's read-only refusal", err)
	}
}

// TestOpenTellsUnreachableFromRefused: Open of a server that cannot be
// reached (no server on the port, or one stopped) fails with an error
// wrapping symbot.ErrStoreUnavailable, worth trying again; one whose
// server refuses the role or has no such database fails with one that
// does not, and names the cause.
func TestOpenTellsUnreachableFromRefused(t *testing.T) {
	c := pgtest.Shared(t)
	url := pgtest.NewDatabase(t)
	tests := []struct {
		name        string
		url         string
		unavailable bool
		want        string
	}{
		{"no server on the port", "postgres://postgres@127.0.0.1:1/x?sslmode=disable&connect_timeout=2", true, "connect"},
		{"unknown database", c.URL("no_such_database"), false, "no_such_database"},
		{"unknown role", strings.Replace(url, "postgres@", "no_such_role@", 1), false, "no_such_role"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := postgres.Open(t.Context(), tt.url, postgres.Config{})
			if err == nil {
				st.Close()
				t.Fatal("Open: got nil error")
			}
			if got := errors.Is(err, symbot.ErrStoreUnavailable); got != tt.unavailable {
				t.Errorf("Open: %v; wraps ErrStoreUnavailable = %v, want %v", err, got, tt.unavailable)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Open: %v; want it to mention %q", err, tt.want)
			}
		})
	}
}
