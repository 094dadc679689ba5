package symbot_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/symbot/symbot"
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

// TestExecutorRunsARemovalBeforeQueuedNotices: the executor claims jobs
// ahead of its workers; a removal claimed after a burst of Slack notices
// filled that queue runs as soon as a worker is free, before the notices
// queued ahead of it (the queue honours the store's claim rank), rather
// than after all of them.
func TestExecutorRunsARemovalBeforeQueuedNotices(t *testing.T) {
	g := &gatedAlerts{fakeNotifier: &fakeNotifier{}, arrived: make(chan string), release: make(chan struct{}), stop: make(chan struct{})}
	h := newHarness(t, nil)
	eng, err := symbot.NewEngine(h.st, h.dir, g, []symbot.Flow{testFlow()})
	if err != nil {
		t.Fatal(err)
	}
	eng.Runtime.Workers = 1 // one worker; the queue holds 4
	h.eng, h.notes = eng, g.fakeNotifier

	// alice's access, granted before the executor runs.
	r := h.mustSubmit(t, alice, "admin", time.Hour)
	h.mustApprove(t, r.ID, bob)
	if _, err := eng.RunDueJobs(t.Context()); err != nil {
		t.Fatal(err)
	}
	h.wantState(t, r.ID, symbot.StateActive)

	// A burst of notices: one runs (held at the notifier), the others
	// wait in the queue.
	now := time.Now()
	if err := h.st.Update(t.Context(), func(tx symbot.Tx) error {
		for i := range 5 {
			if err := tx.AddJob(&symbot.Job{Kind: symbot.JobAlert, Text: fmt.Sprintf("notice %d", i+1), CreatedAt: now, NotBefore: now}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	h.start(t)
	t.Cleanup(func() { close(g.stop) }) // runs before the engine stops
	next := func() string {
		t.Helper()
		select {
		case s := <-g.arrived:
			return s
		case <-time.After(10 * time.Second):
			t.Fatal("no notice reached the notifier within 10s")
			return ""
		}
	}
	claimed := func(kind symbot.JobKind, want int) func() bool {
		return func() bool {
			n := 0
			for _, j := range h.pendingJobs(t) {
				if j.Kind == kind && j.LeaseOwner != "" {
					n++
				}
			}
			return n >= want
		}
	}
	if got := next(); got != "notice 1" {
		t.Fatalf("first alert %q, want notice 1", got)
	}
	// The worker is busy with notice 1; notices 2-4 (and 5 when the worker
	// took notice 1 before the claim was repeated) wait in the queue.
	storetest.WaitFor(t, 10*time.Second, "the queue filled with notices", claimed(symbot.JobAlert, 4))

	// alice relinquishes: the removal is due, and claimed behind the
	// notices as soon as the queue has room.
	if _, err := eng.Revoke(t.Context(), r.ID, alice, ""); err != nil {
		t.Fatal(err)
	}
	g.release <- struct{}{} // notice 1 ends
	running := next()       // the next notice (after the removal, if it was queued by then)
	storetest.WaitFor(t, 10*time.Second, "the removal claimed, or done", func() bool {
		return claimed(symbot.JobRevoke, 1)() || !h.dir.isMember("00ualice", "GADMIN")
	})
	g.release <- struct{}{}
	after := next()
	if h.dir.isMember("00ualice", "GADMIN") {
		t.Fatalf("%s ran after %s while the removal claimed before it still waited: the queue is not by rank", after, running)
	}
	for range 2 { // notices 4 and 5
		g.release <- struct{}{}
		next()
	}
	g.release <- struct{}{}
}
