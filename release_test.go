package symbot_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/store/memstore"
	"github.com/symbot/symbot/store/storetest"
)

// stallStore holds back the first transaction that records the outcome
// of a revoke job (an Update hinted with that job) until release is
// closed; stalled is closed when it starts waiting.
type stallStore struct {
	symbot.Store
	all         bool // hold back every revocation's outcome, not only the first
	once        sync.Once
	stalled     chan struct{}
	release     chan struct{}
	releaseOnce sync.Once
}

// unstall lets the held-back outcomes go; it may be called more than once.
func (s *stallStore) unstall() { s.releaseOnce.Do(func() { close(s.release) }) }

// stallWorld is an engine with one worker and a fake clock on a memstore
// behind a stallStore (wrapped by wrap, when not nil), with an active
// 15-minute admin grant for each of who; it returns the grants' IDs.
func stallWorld(t *testing.T, all bool, wrap func(symbot.Store) symbot.Store, who ...symbot.Actor) (*harness, *stallStore, *fakeClock, []string) {
	t.Helper()
	var inner symbot.Store = memstore.New()
	if wrap != nil {
		inner = wrap(inner)
	}
	st := &stallStore{Store: inner, all: all, stalled: make(chan struct{}), release: make(chan struct{})}
	h := newHarness(t, st)
	clk := newFakeClock()
	h.eng.Now = clk.Now
	h.eng.Runtime.Workers = 1
	for _, a := range who {
		h.dir.addUser("00u"+a.Name, a.Email, "ACTIVE")
	}
	return h, st, clk, h.mustActivate(t, who...)
}

// startAndExpire starts the engine and lets the grants expire; the held
// outcomes are let go at the end of the test, before the engine stops, so
// that a failing test does not hang.
func startAndExpire(t *testing.T, h *harness, st *stallStore, clk *fakeClock) {
	t.Helper()
	h.start(t)
	t.Cleanup(st.unstall)
	clk.Advance(time.Hour)
	if err := h.eng.FireDue(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func (s *stallStore) Update(ctx context.Context, fn func(symbot.Tx) error) error {
	if id, ok := symbot.JobFromContext(ctx); ok {
		revoke := false
		if err := s.Store.View(ctx, func(tx symbot.Tx) error {
			j, err := tx.Job(id)
			revoke = err == nil && j.Kind == symbot.JobRevoke
			return nil
		}); err != nil {
			return err
		}
		first, hold := false, false
		if revoke {
			s.once.Do(func() { first = true })
			hold = first || s.all
		}
		if first {
			close(s.stalled)
		}
		if hold {
			<-s.release
		}
	}
	return s.Store.Update(ctx, fn)
}

// TestRevokeFreesItsWorkerWhileRecording: once a revocation has removed
// the membership, its worker takes the next job while the revocation
// records its outcome; with one worker, a second removal happens while
// the first one's outcome is still being written, and both are recorded.
func TestRevokeFreesItsWorkerWhileRecording(t *testing.T) {
	h, st, clk, ids := stallWorld(t, false, nil, alice, carol)
	a, c := h.get(t, ids[0]), h.get(t, ids[1])
	startAndExpire(t, h, st, clk)
	select {
	case <-st.stalled:
	case <-time.After(30 * time.Second):
		t.Fatal("no revocation came to record its outcome")
	}
	storetest.WaitFor(t, 30*time.Second, "the second removal while the first one's outcome waits", func() bool {
		_, ra := h.dir.counts("00u"+alice.Name, a.GroupID)
		_, rc := h.dir.counts("00u"+carol.Name, c.GroupID)
		return ra+rc == 2
	})
	st.unstall()
	storetest.WaitFor(t, 30*time.Second, "both removals recorded", func() bool {
		return h.get(t, a.ID).Removed && h.get(t, c.ID).Removed
	})
}

// TestRevokeWorkerMovesOnSeveralTimes: a worker moves on from up to four
// revocations that are still recording their outcome (tailsPerWorker),
// not one: with one worker and every outcome held back, five removals
// happen (four recording, the fifth's worker waiting for it), the sixth
// only once the outcomes are written.
func TestRevokeWorkerMovesOnSeveralTimes(t *testing.T) {
	var who []symbot.Actor
	for i := range 6 {
		who = append(who, symbot.Actor{Person: symbot.Person{SlackID: fmt.Sprintf("UREQ%d", i), Name: fmt.Sprintf("req%d", i), Email: fmt.Sprintf("req%d@example.com", i)}})
	}
	h, st, clk, ids := stallWorld(t, true, nil, who...)
	removed := func() int {
		n := 0
		for _, id := range ids {
			r := h.get(t, id)
			_, rm := h.dir.counts(r.OktaUserID, r.GroupID)
			n += rm
		}
		return n
	}
	startAndExpire(t, h, st, clk)
	storetest.WaitFor(t, 30*time.Second, "five removals while the outcomes wait", func() bool { return removed() >= 5 })
	// The sixth waits for the worker, which waits for its fifth outcome.
	time.Sleep(200 * time.Millisecond)
	if n := removed(); n != 5 {
		t.Fatalf("%d removals while every outcome was held back, want 5", n)
	}
	st.unstall()
	storetest.WaitFor(t, 30*time.Second, "all six removals recorded", func() bool {
		for _, id := range ids {
			if !h.get(t, id).Removed {
				return false
			}
		}
		return true
	})
}

// claimWatch passes on each job claim's result once it is made.
type claimWatch struct {
	symbot.Store
	claims chan []symbot.Job
}

func (s *claimWatch) ClaimJobs(ctx context.Context, owner string, now time.Time, lease time.Duration, max int) ([]symbot.Job, error) {
	js, err := s.Store.ClaimJobs(ctx, owner, now, lease, max)
	select {
	case s.claims <- js:
	default:
	}
	return js, err
}

// TestQueuedJobWhoseLeaseRanOutRunsOnce: a removal that waited in the
// executor's queue until its lease ran out is claimed again by the claim
// loop while its worker renews the lease; it must not be queued a second
// time, or it runs twice (the copy's fresh lease skips the store's look)
// and removes the membership from Okta twice.
func TestQueuedJobWhoseLeaseRanOutRunsOnce(t *testing.T) {
	var watch *claimWatch
	// The first attempt's outcome is held back, so that a second run
	// would pass its look at the request before the first is recorded.
	h, st, clk, ids := stallWorld(t, false, func(inner symbot.Store) symbot.Store {
		watch = &claimWatch{Store: inner, claims: make(chan []symbot.Job, 1)}
		return watch
	}, alice)
	a := h.get(t, ids[0])
	var once sync.Once
	symbot.SetPoppedHook(h.eng, func(j symbot.Job) {
		if j.Kind != symbot.JobRevoke {
			return
		}
		once.Do(func() {
			// It waited past its lease (15 s), and the claim loop looks
			// before its worker renews it.
			clk.Advance(time.Hour)
			for len(watch.claims) > 0 {
				<-watch.claims
			}
			symbot.KickExecutor(h.eng)
			select {
			case <-watch.claims:
			case <-time.After(10 * time.Second):
				t.Error("no claim after the kick")
			}
		})
	})
	startAndExpire(t, h, st, clk)
	select {
	case <-st.stalled:
	case <-time.After(30 * time.Second):
		t.Fatal("the removal did not come to record its outcome")
	}
	// A second run would read the request now (not yet removed) and
	// wait for the membership lock, which the first holds until its
	// outcome is recorded.
	time.Sleep(300 * time.Millisecond)
	st.unstall()
	storetest.WaitFor(t, 30*time.Second, "the removal recorded", func() bool { return h.get(t, a.ID).Removed })
	time.Sleep(300 * time.Millisecond)
	if _, removes := h.dir.counts("00u"+alice.Name, a.GroupID); removes != 1 {
		t.Errorf("the membership was removed from Okta %d times, want once", removes)
	}
}
