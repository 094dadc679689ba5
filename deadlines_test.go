package symbot_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/symbot/symbot"
)

// clock is a settable clock for an engine whose scheduler is not running.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// An approval (or denial, or cancel) clicked after the approval timeout
// but before the scheduler has run (symbot was down, say) must not be
// accepted: the request times out in the same transaction and the click
// is refused as decided by symbot.
func TestDecisionAfterApprovalTimeoutBeforeSchedulerRunsIsRefused(t *testing.T) {
	for _, verb := range []string{"approve", "deny", "cancel"} {
		t.Run(verb, func(t *testing.T) {
			h := newHarness(t, nil) // no Run: the scheduler never fires
			c := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
			h.eng.Now = c.now
			r := h.mustSubmit(t, alice, "admin", time.Hour)
			c.add(24*time.Hour + time.Second) // past the default approval_timeout
			var err error
			switch verb {
			case "approve":
				_, err = h.eng.Approve(t.Context(), r.ID, bob, "")
			case "deny":
				_, err = h.eng.Deny(t.Context(), r.ID, bob, "")
			case "cancel":
				_, err = h.eng.Cancel(t.Context(), r.ID, alice)
			}
			var de *symbot.DecidedError
			if !errors.As(err, &de) || de.State != symbot.StateTimedOut || de.By != symbot.System {
				t.Fatalf("%s after the timeout: got %v, want a DecidedError timed_out by symbot", verb, err)
			}
			got := h.wantState(t, r.ID, symbot.StateTimedOut)
			if len(got.Approvals) != 0 {
				t.Errorf("approvals recorded after the timeout: %+v", got.Approvals)
			}
			if h.dir.isMember("00ualice", "GADMIN") {
				t.Errorf("access granted after the timeout")
			}
			var kinds []symbot.JobKind
			for _, j := range h.pendingJobs(t) {
				kinds = append(kinds, j.Kind)
			}
			for _, k := range kinds {
				if k == symbot.JobGrant {
					t.Errorf("a grant job was queued after the timeout: %v", kinds)
				}
			}
		})
	}
}

// The check holds at the moment of the transaction too: MayDecide (a form
// opened before the timeout) and the decision itself agree.
func TestMayDecideAfterApprovalTimeoutTimesOut(t *testing.T) {
	h := newHarness(t, nil)
	c := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	h.eng.Now = c.now
	r := h.mustSubmit(t, alice, "admin", time.Hour)
	if err := h.eng.MayDecide(t.Context(), r.ID, bob, symbot.VerbApprove); err != nil {
		t.Fatalf("MayDecide before the timeout: %v", err)
	}
	c.add(25 * time.Hour)
	var de *symbot.DecidedError
	if err := h.eng.MayDecide(t.Context(), r.ID, bob, symbot.VerbApprove); !errors.As(err, &de) || de.State != symbot.StateTimedOut {
		t.Fatalf("MayDecide after the timeout: got %v, want timed_out", err)
	}
	h.wantState(t, r.ID, symbot.StateTimedOut)
}
