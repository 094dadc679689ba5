package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/symbot/symbot/store/postgres"
	"github.com/symbot/symbot/store/storetest"
)

// lockWatch is a connection of the test's own that looks at the server's
// membership locks.
type lockWatch struct {
	t    *testing.T
	conn *pgx.Conn
}

func newLockWatch(t *testing.T, url string) *lockWatch {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return &lockWatch{t: t, conn: conn}
}

// holders returns the sessions that hold membership locks, and how many
// locks they hold.
func (w *lockWatch) holders() (sessions, locks int) {
	w.t.Helper()
	if err := w.conn.QueryRow(w.t.Context(), `SELECT count(DISTINCT pid), count(*) FROM pg_locks
		WHERE locktype = 'advisory' AND classid = $1 AND objsubid = 2 AND granted`, 0x7379).Scan(&sessions, &locks); err != nil {
		w.t.Fatal(err)
	}
	return sessions, locks
}

// held reports whether a live session holds the membership lock key.
func (w *lockWatch) held(key string) bool {
	w.t.Helper()
	var n int
	if err := w.conn.QueryRow(w.t.Context(), `SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
		WHERE l.locktype = 'advisory' AND l.classid = $1 AND l.objid = hashtext($2)::oid AND l.objsubid = 2 AND l.granted`,
		0x7379, key).Scan(&n); err != nil {
		w.t.Fatal(err)
	}
	return n > 0
}

// releaseAtEnd returns unlock, made to run when the test ends if it has not
// run by then: a failed test must not leave the store's Close waiting for
// a lock.
func releaseAtEnd(t *testing.T, unlock func()) func() {
	once := sync.OnceFunc(unlock)
	t.Cleanup(once)
	return once
}

// TestManyMembershipLocksFewSessions: the locks a replica holds at once
// share a few sessions instead of taking a connection each.
func TestManyMembershipLocksFewSessions(t *testing.T) {
	rs, url := replicas(t, 1)
	a := rs[0]
	w := newLockWatch(t, url)
	const n = 50
	unlocks := make([]func(), n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			key := fmt.Sprintf("00u%d|00g1", i)
			if i%2 == 0 {
				u, err := a.LockMembership(t.Context(), key)
				if err != nil {
					t.Errorf("lock %s: %v", key, err)
					return
				}
				unlocks[i] = releaseAtEnd(t, u)
				return
			}
			u, ok, err := a.TryLockMembership(t.Context(), key)
			if err != nil || !ok {
				t.Errorf("try %s = %v, %v; want it taken", key, ok, err)
				return
			}
			unlocks[i] = releaseAtEnd(t, u)
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	sessions, locks := w.holders()
	if locks != n || sessions > postgres.LockHolders {
		t.Errorf("%d locks held by %d sessions; want %d held by at most %d", locks, sessions, n, postgres.LockHolders)
	}
	// Another replica is still kept out of every one of them.
	b, err := postgres.Open(t.Context(), url, postgres.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for i := range n {
		if _, ok, err := b.TryLockMembership(t.Context(), fmt.Sprintf("00u%d|00g1", i)); err != nil || ok {
			t.Fatalf("another replica's try of a held lock = %v, %v; want refused", ok, err)
		}
	}
	for _, u := range unlocks {
		u()
	}
	if _, locks := w.holders(); locks != 0 {
		t.Errorf("%d locks still held after every unlock", locks)
	}
}

// TestMembershipLockInProcess: callers of one replica, whose locks share
// a session (where advisory locks are re-entrant), still exclude each
// other: a key held in the process is refused to a try and waited for by
// a lock, and a given-up wait never takes it.
func TestMembershipLockInProcess(t *testing.T) {
	rs, _ := replicas(t, 2)
	a, b := rs[0], rs[1]
	const key = "00u1|00g1"
	held, err := a.LockMembership(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	unlock := releaseAtEnd(t, held)
	if _, ok, err := a.TryLockMembership(t.Context(), key); err != nil || ok {
		t.Fatalf("try a lock the same replica holds = %v, %v; want refused", ok, err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	gaveUp := make(chan error, 1)
	go func() {
		_, err := a.LockMembership(ctx, key)
		gaveUp <- err
	}()
	cancel()
	if err := <-gaveUp; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled wait for a lock the same replica holds = %v; want context.Canceled", err)
	}
	unlock()
	// The given-up waiter took nothing: another replica gets it at once.
	ub, ok, err := b.TryLockMembership(t.Context(), key)
	if err != nil || !ok {
		t.Fatalf("other replica's try after the release = %v, %v; want it taken", ok, err)
	}
	ub()

	// Many callers of one key: one at a time.
	var inside, most atomic.Int32
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			u, err := a.LockMembership(t.Context(), key)
			if err != nil {
				t.Error(err)
				return
			}
			n := inside.Add(1)
			for {
				m := most.Load()
				if n <= m || most.CompareAndSwap(m, n) {
					break
				}
			}
			if u, ok, err := a.TryLockMembership(t.Context(), key); err != nil || ok {
				t.Errorf("try while another caller holds the lock = %v, %v; want refused", ok, err)
				if ok {
					u()
				}
			}
			inside.Add(-1)
			u()
		})
	}
	wg.Wait()
	if m := most.Load(); m != 1 {
		t.Errorf("%d callers held one membership lock at once; want 1", m)
	}
}

// TestMembershipLockHolderKilled: when a holder session dies, the server
// releases its locks (as when a lock's own connection dies); their unlocks
// then return quietly, later calls take locks on a new session, and every
// lock reported held is held on the server.
func TestMembershipLockHolderKilled(t *testing.T) {
	rs, url := replicas(t, 2)
	a, b := rs[0], rs[1]
	w := newLockWatch(t, url)
	u1, err := a.LockMembership(t.Context(), "k1")
	if err != nil {
		t.Fatal(err)
	}
	u1 = releaseAtEnd(t, u1)
	u2, ok, err := a.TryLockMembership(t.Context(), "k2")
	if err != nil || !ok {
		t.Fatalf("try k2 = %v, %v", ok, err)
	}
	u2 = releaseAtEnd(t, u2)
	var killed int
	if err := w.conn.QueryRow(t.Context(), `SELECT count(pg_terminate_backend(pid)) FROM (SELECT DISTINCT pid FROM pg_locks
		WHERE locktype = 'advisory' AND classid = $1 AND objsubid = 2 AND granted) h`, 0x7379).Scan(&killed); err != nil {
		t.Fatal(err)
	}
	if killed == 0 {
		t.Fatal("no session holds the locks")
	}
	storetest.WaitFor(t, 20*time.Second, "the killed sessions' locks to be released", func() bool {
		_, locks := w.holders()
		return locks == 0
	})
	// The first call after the loss finds the session dead and takes the
	// lock on a new one.
	u3, ok, err := a.TryLockMembership(t.Context(), "k3")
	if err != nil || !ok {
		t.Fatalf("try k3 after the holder died = %v, %v; want it taken", ok, err)
	}
	u3 = releaseAtEnd(t, u3)
	if !w.held("k3") {
		t.Error("k3 is reported held but the server does not hold it")
	}
	if ub, ok, _ := b.TryLockMembership(t.Context(), "k3"); ok {
		t.Error("another replica took k3")
		ub()
	}
	// k1 was lost with the session: another replica can take it, as when
	// a lock's own connection dies.
	ub, ok, err := b.TryLockMembership(t.Context(), "k1")
	if err != nil || !ok {
		t.Fatalf("other replica's try of a lock lost with its session = %v, %v; want it taken", ok, err)
	}
	ub()
	// Unlocks of lost locks return, and release the keys in the process.
	u1()
	u2()
	u4, err := a.LockMembership(t.Context(), "k2")
	if err != nil {
		t.Fatalf("lock k2 again: %v", err)
	}
	u4 = releaseAtEnd(t, u4)
	if !w.held("k2") {
		t.Error("k2 is reported held but the server does not hold it")
	}
	u4()
	u3()
	if _, locks := w.holders(); locks != 0 {
		t.Errorf("%d locks held after every unlock; want 0", locks)
	}
}

// TestMembershipLocksBatched: tries that arrive while a holder's batch is
// in flight go together as its next batch, in one round trip; a try whose
// context ends while it is queued is withdrawn and takes nothing.
func TestMembershipLocksBatched(t *testing.T) {
	rs, url := replicas(t, 2)
	a, b := rs[0], rs[1]
	w := newLockWatch(t, url)
	// Each batch waits at the gate, while one is set, so that the
	// operations made meanwhile queue up.
	var gate atomic.Pointer[chan struct{}]
	// Operations in batches that reached the gate (not batches: callers
	// that come before the first batch is gathered join it).
	var calls atomic.Int32
	postgres.SetBeforeLockBatch(a, func(ops int) {
		calls.Add(int32(ops))
		if g := gate.Load(); g != nil {
			<-*g
		}
	})
	shut := func() func() {
		g := make(chan struct{})
		gate.Store(&g)
		open := sync.OnceFunc(func() { gate.Store(nil); close(g) })
		t.Cleanup(open)
		return open
	}
	openGate := shut()
	const n = 100
	unlocks := make([]func(), n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			u, ok, err := a.TryLockMembership(t.Context(), fmt.Sprintf("00u%d|00g1", i))
			if err != nil || !ok {
				t.Errorf("try %d = %v, %v; want it taken", i, ok, err)
				return
			}
			unlocks[i] = releaseAtEnd(t, u)
		})
	}
	ctx, cancel := context.WithCancel(t.Context())
	withdrawn := make(chan error, 1)
	storetest.WaitFor(t, 20*time.Second, "the tries to queue behind the first batches", func() bool {
		return postgres.QueuedLockOps(a)+int(calls.Load()) == n
	})
	go func() {
		u, ok, err := a.TryLockMembership(ctx, "withdrawn")
		if ok {
			u()
			err = errors.New("taken")
		}
		withdrawn <- err
	}()
	storetest.WaitFor(t, 20*time.Second, "one more try to queue", func() bool {
		return postgres.QueuedLockOps(a)+int(calls.Load()) == n+1
	})
	cancel()
	if err := <-withdrawn; !errors.Is(err, context.Canceled) {
		t.Fatalf("try cancelled while queued = %v; want context.Canceled", err)
	}
	openGate()
	wg.Wait()
	if got, most := postgres.LockBatches(a), uint64(2*postgres.LockHolders); got > most {
		t.Errorf("%d tries took %d batches; want at most %d", n, got, most)
	}
	if _, locks := w.holders(); locks != n {
		t.Errorf("%d locks held; want %d", locks, n)
	}
	if ub, ok, err := b.TryLockMembership(t.Context(), "withdrawn"); err != nil || !ok {
		t.Errorf("other replica's try of the withdrawn key = %v, %v; want it taken", ok, err)
	} else {
		ub()
	}
	openGate = shut()
	before, held := postgres.LockBatches(a), calls.Load()
	for _, u := range unlocks {
		if u != nil {
			wg.Go(u)
		}
	}
	storetest.WaitFor(t, 20*time.Second, "the unlocks to queue behind the first batches", func() bool {
		return postgres.QueuedLockOps(a)+int(calls.Load()-held) == n
	})
	openGate()
	wg.Wait()
	if got, most := postgres.LockBatches(a)-before, uint64(2*postgres.LockHolders); got > most {
		t.Errorf("%d unlocks took %d batches; want at most %d", n, got, most)
	}
	if _, locks := w.holders(); locks != 0 {
		t.Errorf("%d locks held after every unlock; want 0", locks)
	}
}

// TestCloseReleasesLockSessions: Close refuses new locks, waits for the
// locks held to be released (as it waits for connections in use), and
// ends every session of the store.
func TestCloseReleasesLockSessions(t *testing.T) {
	url := migratedDatabase(t)
	a, err := postgres.Open(t.Context(), url, postgres.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var unlocks []func()
	for i := range 10 {
		u, err := a.LockMembership(t.Context(), fmt.Sprint("k", i))
		if err != nil {
			t.Fatal(err)
		}
		unlocks = append(unlocks, releaseAtEnd(t, u))
	}
	w := newLockWatch(t, url)
	closed := make(chan struct{})
	go func() {
		a.Close()
		close(closed)
	}()
	storetest.WaitFor(t, 20*time.Second, "locks to be refused once Close began", func() bool {
		u, ok, err := a.TryLockMembership(t.Context(), "late")
		if ok {
			u()
		}
		return errors.Is(err, postgres.ErrClosed)
	})
	if u, err := a.LockMembership(t.Context(), "late"); !errors.Is(err, postgres.ErrClosed) {
		t.Errorf("lock during Close = %v; want ErrClosed", err)
		if err == nil {
			u()
		}
	}
	select {
	case <-closed:
		t.Fatal("Close returned while locks were held")
	default:
	}
	for _, u := range unlocks {
		u()
	}
	select {
	case <-closed:
	case <-time.After(20 * time.Second):
		t.Fatal("Close did not return after the locks were released")
	}
	storetest.WaitFor(t, 20*time.Second, "the store's sessions to end", func() bool {
		var n int
		if err := w.conn.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid()`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 0
	})
}

// TestMembershipLockRefusesKeysThatAreNotText: a key the server cannot
// read as text (a NUL byte, bytes that are not UTF-8) is refused before it
// reaches a holder, whose batch it would fail; a failed batch costs the
// holder its session, and with it another caller's lock, which another
// replica could then take.
func TestMembershipLockRefusesKeysThatAreNotText(t *testing.T) {
	rs, _ := replicas(t, 2)
	a, b := rs[0], rs[1]
	for _, bad := range []string{"00u1\x00|00g1", "00u1|\xff"} {
		u, ok, err := a.TryLockMembership(t.Context(), "00u1|00g1")
		if err != nil || !ok {
			t.Fatalf("try = %v, %v; want it taken", ok, err)
		}
		if _, _, err := a.TryLockMembership(t.Context(), bad); err == nil {
			t.Errorf("try of %q: no error", bad)
		}
		if _, err := a.LockMembership(t.Context(), bad); err == nil {
			t.Errorf("lock of %q: no error", bad)
		}
		if ub, ok, err := b.TryLockMembership(t.Context(), "00u1|00g1"); err != nil || ok {
			if ok {
				ub()
			}
			t.Errorf("after a try of %q, another replica's try of a held key = %v, %v; want it refused", bad, ok, err)
		}
		u()
	}
}
