package postgres_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/store/postgres"
	"github.com/symbot/symbot/store/postgres/pgtest"
	"github.com/symbot/symbot/store/storetest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// migratedDatabase returns the URL of a fresh database with the current
// schema: a copy of one migrated once per test binary, cheaper than
// migrating each test's database.
func migratedDatabase(tb testing.TB) string {
	tb.Helper()
	return pgtest.NewDatabaseFrom(tb, "migrated", func(ctx context.Context, url string) error {
		st, err := postgres.Open(ctx, url, postgres.Config{})
		if err != nil {
			return err
		}
		return st.Close()
	})
}

// MustOpen opens a store on a fresh database.
func MustOpen(tb testing.TB) (*postgres.Store, string) {
	tb.Helper()
	url := migratedDatabase(tb)
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

// TestBackupDumpsEverything: the JSON dump holds the sink cursors and named
// records beside the requests, jobs and audit chain.
func TestBackupDumpsEverything(t *testing.T) {
	st, _ := MustOpen(t)
	// A binding in mismatch: the dump must carry the conflict, or a
	// restore would let the account act again.
	ident := symbot.Identity{SlackID: "U1", Email: "a@example.com", OktaUserID: "00u1", OktaLogin: "a", CachedAt: storetest.T0, BoundAt: storetest.T0, Via: symbot.ViaEmail,
		ConflictOktaUserID: "00u2", ConflictOktaLogin: "b", ConflictEmail: "a@example.com", ConflictAt: storetest.T0}
	storetest.MustPut(t, st, storetest.FullRequest("R1"))
	storetest.MustUpdate(t, st, func(tx symbot.Tx) error {
		if err := symbot.AppendAudit(tx, nil, &symbot.AuditEntry{At: storetest.T0, Action: "request"}); err != nil {
			return err
		}
		if err := tx.SetSinkCursor("file", 1); err != nil {
			return err
		}
		if err := tx.PutIdentity(ident); err != nil {
			return err
		}
		return tx.(symbot.RecordTx).PutRecord("reconcile/group/00g1", []byte("rec"))
	})
	var buf bytes.Buffer
	if _, err := st.Backup(t.Context(), &buf); err != nil {
		t.Fatal(err)
	}
	var d postgres.Dump
	if err := json.Unmarshal(buf.Bytes(), &d); err != nil {
		t.Fatal(err)
	}
	if len(d.Requests) != 1 || len(d.Audit) != 1 {
		t.Errorf("dump: %d requests, %d audit entries; want 1 and 1", len(d.Requests), len(d.Audit))
	}
	if len(d.Identities) != 1 || d.Identities[0] != ident {
		t.Errorf("dump: identities %+v, want [%+v]", d.Identities, ident)
	}
	if got := d.SinkCursors["file"]; got != 1 {
		t.Errorf("dump: sink cursor file = %d, want 1", got)
	}
	if got := string(d.Records["reconcile/group/00g1"]); got != "rec" {
		t.Errorf("dump: record = %q, want rec", got)
	}
}

// TestDueAmong: of some requests, those whose deadline is due, in the
// order asked; in a transaction hinted with the scheduler's batch
// (symbot.ContextWithDeadlines) as well as without, and after a request of
// the batch was written in the transaction.
func TestDueAmong(t *testing.T) {
	st, _ := MustOpen(t)
	now := storetest.T0.Add(time.Minute)
	pending := &symbot.Request{ID: "R1", State: symbot.StatePending, Requester: symbot.Person{SlackID: "U1"}, TimeoutAt: storetest.T0}
	active := &symbot.Request{ID: "R2", State: symbot.StateActive, Requester: symbot.Person{SlackID: "U1"}, ExpiresAt: storetest.T0.Add(time.Hour)}
	expired := &symbot.Request{ID: "R3", State: symbot.StateExpired, Requester: symbot.Person{SlackID: "U1"}}
	storetest.MustPut(t, st, pending, active, expired)
	ids := []string{"R3", "R2", "R9", "R1"}
	dueAmong := func(tx symbot.Tx) []string {
		t.Helper()
		got, err := tx.(symbot.DueAmonger).DueAmong(now, ids)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	storetest.MustView(t, st, func(tx symbot.Tx) error {
		if got, want := dueAmong(tx), []string{"R1"}; !slices.Equal(got, want) {
			t.Errorf("in a view: %v, want %v", got, want)
		}
		return nil
	})
	for _, hinted := range []bool{true, false} {
		ctx := t.Context()
		if hinted {
			ctx = symbot.ContextWithDeadlines(ctx, now, ids)
		}
		err := st.Update(ctx, func(tx symbot.Tx) error {
			if got, want := dueAmong(tx), []string{"R1"}; !slices.Equal(got, want) {
				t.Errorf("hinted %t: %v, want %v", hinted, got, want)
			}
			r, err := tx.Request("R1")
			if err != nil || r.State != symbot.StatePending {
				t.Errorf("hinted %t: R1 after DueAmong = %+v, %v", hinted, r, err)
			}
			moved := *active
			moved.ExpiresAt = storetest.T0
			if err := tx.PutRequest(&moved); err != nil {
				return err
			}
			if got, want := dueAmong(tx), []string{"R2", "R1"}; !slices.Equal(got, want) {
				t.Errorf("hinted %t, after R2 was written: %v, want %v", hinted, got, want)
			}
			return errors.New("roll back")
		})
		if err == nil || err.Error() != "roll back" {
			t.Fatalf("Update: %v", err)
		}
	}
}

// TestPoolKeepsConnectionsOpen: the pool keeps MinConns connections open
// (MaxConns/2 by default) so that a burst after a quiet while does not
// begin by connecting; a read-only store keeps none.
func TestPoolKeepsConnectionsOpen(t *testing.T) {
	url := migratedDatabase(t)
	for _, tc := range []struct {
		name string
		conf postgres.Config
		want int32
	}{
		{"default", postgres.Config{MaxConns: 6}, 3},
		{"set", postgres.Config{MaxConns: 6, MinConns: 4}, 4},
		{"above MaxConns", postgres.Config{MaxConns: 6, MinConns: 9}, 6},
		{"none", postgres.Config{MaxConns: 6, MinConns: -1}, 0},
		{"read-only", postgres.Config{MaxConns: 6, ReadOnly: true}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := postgres.Open(t.Context(), url, tc.conf)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if got := st.Pool().Config().MinConns; got != tc.want {
				t.Fatalf("MinConns = %d; want %d", got, tc.want)
			}
			storetest.WaitFor(t, 20*time.Second, "the pool to open its MinConns connections", func() bool {
				return st.Pool().Stat().TotalConns() >= tc.want
			})
		})
	}
}
