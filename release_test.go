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
	all     bool // hold back every revocation's outcome, not only the first
	once    sync.Once
	stalled chan struct{}
	release chan struct{}
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
	st := &stallStore{Store: memstore.New(), stalled: make(chan struct{}), release: make(chan struct{})}
	var releaseOnce sync.Once
	unstall := func() { releaseOnce.Do(func() { close(st.release) }) }
	h := newHarness(t, st)
	clk := newFakeClock()
	h.eng.Now = clk.Now
	h.eng.Runtime.Workers = 1
	a := h.mustSubmit(t, alice, "admin", 15*time.Minute)
	h.mustApprove(t, a.ID, bob)
	c := h.mustSubmit(t, carol, "admin", 15*time.Minute)
	h.mustApprove(t, c.ID, bob)
	if _, err := h.eng.RunDueJobs(t.Context()); err != nil {
		t.Fatal(err)
	}
	h.wantState(t, a.ID, symbot.StateActive)
	h.wantState(t, c.ID, symbot.StateActive)
	h.start(t)
	t.Cleanup(unstall) // runs before the engine stops: a failing test does not hang
	clk.Advance(time.Hour)
	if err := h.eng.FireDue(t.Context()); err != nil {
		t.Fatal(err)
	}
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
	unstall()
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
	st := &stallStore{Store: memstore.New(), all: true, stalled: make(chan struct{}), release: make(chan struct{})}
	var releaseOnce sync.Once
	unstall := func() { releaseOnce.Do(func() { close(st.release) }) }
	h := newHarness(t, st)
	clk := newFakeClock()
	h.eng.Now = clk.Now
	h.eng.Runtime.Workers = 1
	var ids []string
	removed := func() int {
		n := 0
		for _, id := range ids {
			r := h.get(t, id)
			_, rm := h.dir.counts(r.OktaUserID, r.GroupID)
			n += rm
		}
		return n
	}
	for i := range 6 {
		who := symbot.Actor{Person: symbot.Person{SlackID: fmt.Sprintf("UREQ%d", i), Name: fmt.Sprintf("req%d", i), Email: fmt.Sprintf("req%d@example.com", i)}}
		h.dir.addUser("00u"+who.Name, who.Email, "ACTIVE")
		r := h.mustSubmit(t, who, "admin", 15*time.Minute)
		h.mustApprove(t, r.ID, bob)
		ids = append(ids, r.ID)
	}
	if _, err := h.eng.RunDueJobs(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		h.wantState(t, id, symbot.StateActive)
	}
	h.start(t)
	t.Cleanup(unstall) // runs before the engine stops: a failing test does not hang
	clk.Advance(time.Hour)
	if err := h.eng.FireDue(t.Context()); err != nil {
		t.Fatal(err)
	}
	storetest.WaitFor(t, 30*time.Second, "five removals while the outcomes wait", func() bool { return removed() >= 5 })
	// The sixth waits for the worker, which waits for its fifth outcome.
	time.Sleep(200 * time.Millisecond)
	if n := removed(); n != 5 {
		t.Fatalf("%d removals while every outcome was held back, want 5", n)
	}
	unstall()
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
	watch := &claimWatch{Store: memstore.New(), claims: make(chan []symbot.Job, 1)}
	// The first attempt's outcome is held back, so that a second run
	// would pass its look at the request before the first is recorded.
	st := &stallStore{Store: watch, stalled: make(chan struct{}), release: make(chan struct{})}
	var releaseOnce sync.Once
	unstall := func() { releaseOnce.Do(func() { close(st.release) }) }
	h := newHarness(t, st)
	clk := newFakeClock()
	h.eng.Now = clk.Now
	h.eng.Runtime.Workers = 1
	a := h.mustSubmit(t, alice, "admin", 15*time.Minute)
	h.mustApprove(t, a.ID, bob)
	if _, err := h.eng.RunDueJobs(t.Context()); err != nil {
		t.Fatal(err)
	}
	h.wantState(t, a.ID, symbot.StateActive)
	clk.Advance(time.Hour)
	if err := h.eng.FireDue(t.Context()); err != nil {
		t.Fatal(err)
	}
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
	h.start(t)
	t.Cleanup(unstall) // runs before the engine stops: a failing test does not hang
	select {
	case <-st.stalled:
	case <-time.After(30 * time.Second):
		t.Fatal("the removal did not come to record its outcome")
	}
	// A second run would read the request now (not yet removed) and
	// wait for the membership lock, which the first holds until its
	// outcome is recorded.
	time.Sleep(300 * time.Millisecond)
	unstall()
	storetest.WaitFor(t, 30*time.Second, "the removal recorded", func() bool { return h.get(t, a.ID).Removed })
	time.Sleep(300 * time.Millisecond)
	if _, removes := h.dir.counts("00u"+alice.Name, a.GroupID); removes != 1 {
		t.Errorf("the membership was removed from Okta %d times, want once", removes)
	}
}
