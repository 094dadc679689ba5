package symbot_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/store/memstore"
	"github.com/symbot/symbot/store/postgres"
	"github.com/symbot/symbot/store/postgres/pgtest"
	"github.com/symbot/symbot/store/storetest"
)

// fireTurnKey is the lock the schedulers sharing a store take turns with
// (scheduler.go); the tests hold it to play a replica that is firing.
const fireTurnKey = "symbot:fire-due"

// fireTurnWorld is a pending request whose approval has timed out, on a
// PostgreSQL database, and a replica's engine on it (not running).
func fireTurnWorld(t *testing.T) (eng *symbot.Engine, other *postgres.Store, id string) {
	t.Helper()
	eng, other, id, _ = fireTurnWorldClock(t)
	return eng, other, id
}

// fireTurnWorldClock is fireTurnWorld with the engine's clock.
func fireTurnWorldClock(t *testing.T) (eng *symbot.Engine, other *postgres.Store, id string, c *clock) {
	t.Helper()
	url := pgtest.NewDatabase(t)
	open := func() *postgres.Store {
		st, err := postgres.Open(t.Context(), url, postgres.Config{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	st := open()
	c = &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	h := newHarness(t, st)
	h.eng.Now = c.now
	r := h.mustSubmit(t, alice, "admin", time.Hour)
	c.add(25 * time.Hour) // past the approval timeout
	return h.eng, open(), r.ID, c
}

func stateOf(t *testing.T, eng *symbot.Engine, id string) symbot.State {
	t.Helper()
	r, err := eng.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return r.State
}

// TestSchedulerLeavesDeadlinesToTheReplicaFiring: while another replica
// has the fire turn, a running scheduler does not fire (it does not queue
// for the writer lock to find the batch handled); once the turn is free, it
// fires what is due within its retry.
func TestSchedulerLeavesDeadlinesToTheReplicaFiring(t *testing.T) {
	eng, other, id := fireTurnWorld(t)
	unlock, ok, err := other.TryLockMembership(t.Context(), fireTurnKey)
	if err != nil || !ok {
		t.Fatalf("take the fire turn: ok %v, %v", ok, err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); _ = eng.Run(ctx) }()
	defer func() { cancel(); <-done }()
	// Several tries of the scheduler (one each 100 ms), well inside its
	// patience (5 s): the deadline is left to the holder.
	storetest.WaitFor(t, 10*time.Second, "the scheduler to try the turn again three times", func() bool {
		s, err := eng.Stats(t.Context())
		return err == nil && s.SchedulerWakeups >= 3
	})
	if got := stateOf(t, eng, id); got != symbot.StatePending {
		t.Fatalf("while another replica has the fire turn: state %s, want pending", got)
	}
	unlock()
	storetest.WaitFor(t, 10*time.Second, "the timeout fired once the turn is free", func() bool {
		return stateOf(t, eng, id) == symbot.StateTimedOut
	})
}

// TestSchedulerFiresAnywayAfterItsPatience: a holder of the fire turn that
// never lets go (a paused process whose session lives on) holds up the
// deadlines only for the scheduler's patience, not forever.
func TestSchedulerFiresAnywayAfterItsPatience(t *testing.T) {
	eng, other, id, c := fireTurnWorldClock(t)
	unlock, ok, err := other.TryLockMembership(t.Context(), fireTurnKey)
	if err != nil || !ok {
		t.Fatalf("take the fire turn: ok %v, %v", ok, err)
	}
	defer unlock()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); _ = eng.Run(ctx) }()
	defer func() { cancel(); <-done }()
	storetest.WaitFor(t, 30*time.Second, "the timeout fired despite the stuck turn", func() bool {
		return stateOf(t, eng, id) == symbot.StateTimedOut
	})
	// The turn is still stuck: the next deadline fires when it is due,
	// not after another wait of the patience.
	next, err := eng.Submit(t.Context(), carol, symbot.RequestInput{Target: "ro", Duration: time.Hour, Reason: "next"})
	if err != nil {
		t.Fatal(err)
	}
	c.add(25 * time.Hour)
	// A new request wakes the scheduler, as any new deadline does.
	if _, err := eng.Submit(t.Context(), dave, symbot.RequestInput{Target: "ro", Duration: time.Hour, Reason: "wake"}); err != nil {
		t.Fatal(err)
	}
	storetest.WaitFor(t, 3*time.Second, "the next timeout fired without another wait", func() bool {
		return stateOf(t, eng, next.ID) == symbot.StateTimedOut
	})
}

// TestFireDueWaitsForTheTurn: FireDue, which promises that what is due has
// been handled when it returns, waits while another replica has the turn,
// then fires.
func TestFireDueWaitsForTheTurn(t *testing.T) {
	eng, other, id := fireTurnWorld(t)
	unlock, ok, err := other.TryLockMembership(t.Context(), fireTurnKey)
	if err != nil || !ok {
		t.Fatalf("take the fire turn: ok %v, %v", ok, err)
	}
	fired := make(chan error, 1)
	go func() { fired <- eng.FireDue(t.Context()) }()
	select {
	case err := <-fired:
		t.Fatalf("FireDue returned (%v) while another replica had the turn", err)
	case <-time.After(300 * time.Millisecond):
	}
	unlock()
	if err := <-fired; err != nil {
		t.Fatal(err)
	}
	if got := stateOf(t, eng, id); got != symbot.StateTimedOut {
		t.Fatalf("after FireDue: state %s, want timed_out", got)
	}
}

// brokenTurnStore is a store shared by several processes whose lock calls
// fail (its lock service is unreachable, say), while its reads and writes
// work.
type brokenTurnStore struct{ symbot.Store }

func (brokenTurnStore) LockMembership(ctx context.Context, key string) (func(), error) {
	return nil, errors.New("lock service unreachable")
}

func (brokenTurnStore) TryLockMembership(ctx context.Context, key string) (func(), bool, error) {
	return nil, false, errors.New("lock service unreachable")
}

// TestSchedulerFiresWhenTheTurnCannotBeAsked: a scheduler whose try of the
// fire turn fails fires without it at once (any trouble of the store
// itself then shows, and is backed off, where it fires), rather than
// taking the failure for another replica firing and waiting out its
// patience.
func TestSchedulerFiresWhenTheTurnCannotBeAsked(t *testing.T) {
	h := newHarness(t, brokenTurnStore{memstore.New()})
	c := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	h.eng.Now = c.now
	r := h.mustSubmit(t, alice, "admin", time.Hour)
	c.add(25 * time.Hour) // past the approval timeout
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); _ = h.eng.Run(ctx) }()
	defer func() { cancel(); <-done }()
	// Well inside the patience (5 s) that a busy turn would wait out.
	storetest.WaitFor(t, 4*time.Second, "the timeout fired", func() bool {
		return stateOf(t, h.eng, r.ID) == symbot.StateTimedOut
	})
}
