package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/symbot/symbot"
	"github.com/symbot/symbot/store/postgres"
	"github.com/symbot/symbot/store/postgres/pgtest"
	"github.com/symbot/symbot/store/storetest"
)

// replicas opens n stores on one fresh database, as n symbot processes would.
func replicas(t *testing.T, n int) ([]*postgres.Store, string) {
	t.Helper()
	url := migratedDatabase(t)
	var out []*postgres.Store
	for range n {
		st, err := postgres.Open(t.Context(), url, postgres.Config{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		out = append(out, st)
	}
	return out, url
}

func TestMembershipLockAcrossReplicas(t *testing.T) {
	rs, url := replicas(t, 3)
	a, b := rs[0], rs[1]
	unlock, err := a.LockMembership(t.Context(), "00u1|00g1")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	_, err = b.LockMembership(ctx, "00u1|00g1")
	cancel()
	if err == nil {
		t.Fatal("a second replica took a membership lock that is held")
	}
	other, err := b.LockMembership(t.Context(), "00u1|00g2") // another membership: free
	if err != nil {
		t.Fatalf("lock of another membership: %v", err)
	}
	other()
	unlock()
	unlockB, err := b.LockMembership(t.Context(), "00u1|00g1")
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	// A holder that dies (its connections end) releases the lock.
	c := rs[2]
	got := make(chan error, 1)
	go func() {
		u, err := c.LockMembership(t.Context(), "00u1|00g1")
		if err == nil {
			u()
		}
		got <- err
	}()
	// Kill b's lock connection, as when its process dies.
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	if _, err := conn.Exec(t.Context(), `SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid()`); err != nil {
		t.Fatal(err)
	}
	defer unlockB() // fails on the dead connection and drops it
	select {
	case err := <-got:
		if err != nil {
			t.Errorf("lock after the holder died: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the lock of a closed replica was never released")
	}
}

func TestDedupAcrossReplicas(t *testing.T) {
	rs, _ := replicas(t, 2)
	a, b := rs[0], rs[1]
	now := storetest.T0
	if first, err := a.Mark(t.Context(), "env|E1", now, time.Minute); err != nil || !first {
		t.Fatalf("first Mark = %v, %v; want true", first, err)
	}
	if seen, err := b.Seen(t.Context(), "env|E1", now.Add(time.Second)); err != nil || !seen {
		t.Errorf("Seen on another replica = %v, %v; want true", seen, err)
	}
	if first, err := b.Mark(t.Context(), "env|E1", now.Add(time.Second), time.Minute); err != nil || first {
		t.Errorf("second Mark on another replica = %v, %v; want false", first, err)
	}
	if seen, _ := b.Seen(t.Context(), "env|E2", now); seen {
		t.Errorf("an unmarked key is seen")
	}
	later := now.Add(2 * time.Minute)
	if seen, _ := b.Seen(t.Context(), "env|E1", later); seen {
		t.Errorf("an expired mark is still seen")
	}
	if first, err := b.Mark(t.Context(), "env|E1", later, time.Minute); err != nil || !first {
		t.Errorf("Mark after expiry = %v, %v; want true", first, err)
	}
}

// TestAuditOneChainUnderConcurrentWriters has three replicas append to the
// audit log at once: the result must be one chain, no gaps, no forks.
func TestAuditOneChainUnderConcurrentWriters(t *testing.T) {
	rs, _ := replicas(t, 3)
	const perWriter, writersPer = 20, 4
	var wg sync.WaitGroup
	for i, st := range rs {
		for w := range writersPer {
			wg.Go(func() {
				for k := range perWriter {
					err := st.Update(t.Context(), func(tx symbot.Tx) error {
						return symbot.AppendAudit(tx, nil, &symbot.AuditEntry{At: storetest.T0, Actor: fmt.Sprintf("r%d", i), Action: "x", Detail: fmt.Sprintf("%d/%d", w, k)})
					})
					if err != nil {
						t.Errorf("append: %v", err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	storetest.MustView(t, rs[0], func(tx symbot.Tx) error {
		es, err := tx.Audit(0, storetest.AllAudit)
		if err != nil {
			return err
		}
		seq, hash, err := tx.AuditHead()
		if err != nil {
			return err
		}
		if want := len(rs) * writersPer * perWriter; len(es) != want || int(seq) != want {
			t.Errorf("%d entries, head %d; want %d", len(es), seq, want)
		}
		if err := symbot.VerifyAudit(es, seq, hash); err != nil {
			t.Errorf("chain: %v", err)
		}
		return nil
	})
}

// TestDatabaseOutage stops the server under an open store: calls fail with
// ErrStoreUnavailable, and work again once it is back, without reopening.
func TestDatabaseOutage(t *testing.T) {
	pgtest.Shared(t) // skips without PostgreSQL
	c, err := pgtest.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Destroy()
	url, err := c.CreateDatabase(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	st, err := postgres.Open(t.Context(), url, postgres.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	put := func(id string) error {
		return st.Update(t.Context(), func(tx symbot.Tx) error {
			return tx.PutRequest(&symbot.Request{ID: id, State: symbot.StatePending, Requester: symbot.Person{SlackID: "U1"}})
		})
	}
	if err := put("R1"); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"Update": put("R2"),
		"View":   st.View(t.Context(), func(tx symbot.Tx) error { _, err := tx.Request("R1"); return err }),
		"Ping":   st.Ping(t.Context()),
	} {
		if !errors.Is(err, symbot.ErrStoreUnavailable) {
			t.Errorf("%s while the database is down: got %v, want ErrStoreUnavailable", name, err)
		}
	}
	if _, err := st.ClaimJobs(t.Context(), "w", storetest.T0, time.Minute, 1); !errors.Is(err, symbot.ErrStoreUnavailable) {
		t.Errorf("ClaimJobs while the database is down: got %v, want ErrStoreUnavailable", err)
	}
	if err := c.Restart(); err != nil {
		t.Fatal(err)
	}
	var lastErr error
	t.Cleanup(func() {
		if t.Failed() && lastErr != nil {
			t.Logf("last write error: %v", lastErr)
		}
	})
	storetest.WaitFor(t, 20*time.Second, "a write to succeed after the database came back", func() bool {
		lastErr = put("R2")
		return lastErr == nil
	})
	if got := storetest.MustGet(t, st, "R1"); got.State != symbot.StatePending {
		t.Errorf("R1 after the outage: %+v", got)
	}
}

// TestTryLockMembershipAcrossReplicas: an approval tries the membership
// lock to record the grant's check; a lock held by any replica makes the
// try fail at once, and a free one is taken, held until unlock.
func TestTryLockMembershipAcrossReplicas(t *testing.T) {
	rs, _ := replicas(t, 2)
	a, b := rs[0], rs[1]
	unlock, ok, err := a.TryLockMembership(t.Context(), "00u1|00g1")
	if err != nil || !ok {
		t.Fatalf("try a free lock = %v, %v; want it taken", ok, err)
	}
	if _, ok, err := b.TryLockMembership(t.Context(), "00u1|00g1"); err != nil || ok {
		t.Fatalf("try a lock another replica holds = %v, %v; want refused", ok, err)
	}
	if _, ok, err := a.TryLockMembership(t.Context(), "00u1|00g1"); err != nil || ok {
		t.Fatalf("try a lock the same replica holds = %v, %v; want refused", ok, err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	_, err = b.LockMembership(ctx, "00u1|00g1")
	cancel()
	if err == nil {
		t.Fatal("LockMembership took a lock TryLockMembership holds")
	}
	unlock()
	unlockB, ok, err := b.TryLockMembership(t.Context(), "00u1|00g1")
	if err != nil || !ok {
		t.Fatalf("try after release = %v, %v; want it taken", ok, err)
	}
	unlockB()
}

// TestCancelledLockWaitNeverTakesTheLock: a LockMembership whose context
// ends while it waits must leave no backend waiting for the lock. A backend
// left waiting (the client merely closed its socket) is granted the lock
// when the holder releases it and holds it until it notices the client is
// gone, so a try from another replica right after the release would fail.
func TestCancelledLockWaitNeverTakesTheLock(t *testing.T) {
	rs, url := replicas(t, 3)
	a, b, c := rs[0], rs[1], rs[2]
	const key = "00u1|00g1"
	held, err := a.LockMembership(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	// Release it on a failure too: closing a store waits for its lock
	// connections to come back.
	unlock := sync.OnceFunc(held)
	defer unlock()
	watch, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Close(context.Background())
	waiters := func() int {
		var n int
		if err := watch.QueryRow(t.Context(), `SELECT count(*) FROM pg_locks
			WHERE locktype = 'advisory' AND classid = $1 AND objid = hashtext($2)::oid AND objsubid = 2 AND NOT granted`,
			0x7379, key).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := b.LockMembership(ctx, key)
		done <- err
	}()
	storetest.WaitFor(t, 20*time.Second, "b to wait for the lock", func() bool { return waiters() == 1 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled LockMembership = %v, want context.Canceled", err)
	}
	if n := waiters(); n != 0 {
		t.Fatalf("%d backends still wait for the lock after the wait was cancelled; want none", n)
	}
	unlock()
	unlockC, ok, err := c.TryLockMembership(t.Context(), key)
	if err != nil || !ok {
		t.Fatalf("try after the holder released, the other waiter having given up = %v, %v; want it taken", ok, err)
	}
	unlockC()
	// b's connection went back to its pool holding nothing: b can take the
	// lock again.
	unlockB, ok, err := b.TryLockMembership(t.Context(), key)
	if err != nil || !ok {
		t.Fatalf("b try after its cancelled wait = %v, %v; want it taken", ok, err)
	}
	unlockB()
}
