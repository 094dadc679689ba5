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

// gatedAlerts is a Notifier whose alerts each wait for the test to let
// them go, one at a time, and say which alert arrived.
type gatedAlerts struct {
	*fakeNotifier
	arrived chan string
	release chan struct{}
	stop    chan struct{}
}

func (g *gatedAlerts) Alert(ctx context.Context, a symbot.Alert) error {
	select {
	case g.arrived <- a.Text:
	case <-g.stop:
		return nil
	}
	select {
	case <-g.release:
	case <-g.stop:
	case <-ctx.Done():
	}
	return g.fakeNotifier.Alert(ctx, a)
}

// gatedHarness is a harness whose engine has one worker (its queue holds
// 4) and sends alerts to a gatedAlerts, with alice's access granted before
// the executor runs. st nil: a memstore.
func gatedHarness(t *testing.T, st symbot.Store) (*harness, *gatedAlerts, *symbot.Request) {
	t.Helper()
	g := &gatedAlerts{fakeNotifier: &fakeNotifier{}, arrived: make(chan string), release: make(chan struct{}), stop: make(chan struct{})}
	h := newHarness(t, st)
	eng, err := symbot.NewEngine(h.st, h.dir, g, []symbot.Flow{testFlow()})
	if err != nil {
		t.Fatal(err)
	}
	eng.Runtime.Workers = 1 // one worker; the queue holds 4
	h.eng, h.notes = eng, g.fakeNotifier

	r := h.mustSubmit(t, alice, "admin", time.Hour)
	h.mustApprove(t, r.ID, bob)
	if _, err := eng.RunDueJobs(t.Context()); err != nil {
		t.Fatal(err)
	}
	h.wantState(t, r.ID, symbot.StateActive)
	return h, g, r
}

// addNotices adds n alerts "notice 1".."notice n", all due now.
func addNotices(t *testing.T, h *harness, n int) {
	t.Helper()
	now := time.Now()
	if err := h.st.Update(t.Context(), func(tx symbot.Tx) error {
		for i := range n {
			if err := tx.AddJob(&symbot.Job{Kind: symbot.JobAlert, Text: fmt.Sprintf("notice %d", i+1), CreatedAt: now, NotBefore: now}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// next is the text of the next alert to reach the notifier.
func (g *gatedAlerts) next(t *testing.T) string {
	t.Helper()
	select {
	case s := <-g.arrived:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("no notice reached the notifier within 10s")
		return ""
	}
}

// removalQueued is a Store that tells when the executor has queued the
// removal it claimed: the claim loop pushes what a claim returned into its
// queue before it calls the store again, so its next ClaimJobs or
// NextJobTime after the claim that returned the removal means that the
// removal waits in the queue. (A claim seen in the store is not enough:
// the job is queued just after the claim commits.)
type removalQueued struct {
	symbot.Store
	mu      sync.Mutex
	claimed bool          // a claim returned the removal
	queued  chan struct{} // closed at the executor's next call after it
}

func (s *removalQueued) next() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.claimed {
		s.claimed = false
		close(s.queued)
	}
}

func (s *removalQueued) ClaimJobs(ctx context.Context, owner string, now time.Time, lease time.Duration, max int) ([]symbot.Job, error) {
	s.next()
	js, err := s.Store.ClaimJobs(ctx, owner, now, lease, max)
	for _, j := range js {
		if j.Kind == symbot.JobRevoke {
			s.mu.Lock()
			s.claimed = true
			s.mu.Unlock()
		}
	}
	return js, err
}

func (s *removalQueued) NextJobTime(ctx context.Context) (time.Time, bool, error) {
	s.next()
	return s.Store.NextJobTime(ctx)
}

// TestExecutorRunsARemovalBeforeQueuedNotices: the executor claims jobs
// ahead of its workers; a removal claimed after a Slack notice was queued
// there runs as soon as a worker is free, before the notice queued ahead
// of it (the queue honours the store's claim rank), rather than after it.
//
// One worker, held at the notifier by notice 1; notice 2, claimed with
// it, waits in the queue. The removal is claimed (with its message
// update) while the queue has room to spare, so the claim loop calls the
// store again once it has queued them, which is when the test lets
// notice 1 end. The worker then takes the removal first: alice is out of
// the group when notice 2 reaches the notifier. A first-in first-out
// queue runs notice 2 first, every time.
func TestExecutorRunsARemovalBeforeQueuedNotices(t *testing.T) {
	ms := memstore.New()
	ms.RerunUpdates = true
	st := &removalQueued{Store: ms, queued: make(chan struct{})}
	// alice's access, granted before the executor runs.
	h, g, r := gatedHarness(t, st)
	eng := h.eng

	// Two notices, due together: the executor's first claim takes both;
	// notice 1 runs (held at the notifier), notice 2 waits in the queue.
	addNotices(t, h, 2)
	h.start(t)
	t.Cleanup(func() { close(g.stop) }) // runs before the engine stops
	if got := g.next(t); got != "notice 1" {
		t.Fatalf("first alert %q, want notice 1", got)
	}

	// alice relinquishes: the removal is due, claimed behind notice 2.
	if _, err := eng.Revoke(t.Context(), r.ID, alice, ""); err != nil {
		t.Fatal(err)
	}
	select {
	case <-st.queued:
	case <-time.After(10 * time.Second):
		t.Fatal("the executor did not claim and queue the removal within 10s")
	}
	if !h.dir.isMember("00ualice", "GADMIN") {
		t.Fatal("the removal ran while the only worker was busy with notice 1")
	}
	g.release <- struct{}{} // notice 1 ends; the worker takes the next job
	got := g.next(t)
	if got != "notice 2" {
		t.Fatalf("second alert %q, want notice 2", got)
	}
	if h.dir.isMember("00ualice", "GADMIN") {
		t.Fatal("notice 2 ran before the removal, which was queued before notice 1 ended: the queue is not by rank")
	}
	g.release <- struct{}{}
}

// TestExecutorClaimsWhenAWorkerTakesAQueuedJob: the executor's queue has
// room again as soon as a worker takes a job from it, and the executor
// fills it then, not only when a job ends: a removal that became due while
// the queue was full is claimed while the job the worker took still runs.
func TestExecutorClaimsWhenAWorkerTakesAQueuedJob(t *testing.T) {
	h, g, r := gatedHarness(t, nil)
	eng := h.eng
	addNotices(t, h, 6)
	h.start(t)
	t.Cleanup(func() { close(g.stop) }) // runs before the engine stops
	claimed := func(kind symbot.JobKind) int {
		n := 0
		for _, j := range h.pendingJobs(t) {
			if j.Kind == kind && j.LeaseOwner != "" {
				n++
			}
		}
		return n
	}
	if got := g.next(t); got != "notice 1" {
		t.Fatalf("first alert %q, want notice 1", got)
	}
	// The worker runs notice 1; the first claim took notices 1-4, and the
	// worker taking notice 1 made room for notice 5: the queue is full.
	storetest.WaitFor(t, 10*time.Second, "notices 2-5 queued behind notice 1", func() bool { return claimed(symbot.JobAlert) == 5 })

	// The removal is due, but the queue has no room.
	if _, err := eng.Revoke(t.Context(), r.ID, alice, ""); err != nil {
		t.Fatal(err)
	}
	g.release <- struct{}{} // notice 1 ends; the worker takes notice 2
	if got := g.next(t); got != "notice 2" {
		t.Fatalf("second alert %q, want notice 2", got)
	}
	// Notice 2 runs (held); the queue has room for one: the removal.
	storetest.WaitFor(t, 10*time.Second, "the removal claimed while notice 2 runs", func() bool { return claimed(symbot.JobRevoke) == 1 })
	if n := claimed(symbot.JobAlert); n != 4 {
		t.Fatalf("%d notices claimed, want 4 (notices 2-5: the removal is claimed before notice 6)", n)
	}
}
