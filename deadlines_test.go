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

// Asking to extend access whose expiry has passed, before the scheduler
// has run (symbot was down, say), must not make an extension request that
// could later bring the access back: the grant expires in that moment, its
// removal is queued, and the ask is refused as decided by symbot.
func TestExtendAfterExpiryBeforeSchedulerRunsIsRefused(t *testing.T) {
	h := newHarness(t, nil) // no Run: the scheduler never fires
	c := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	h.eng.Now = c.now
	r := h.mustSubmit(t, alice, "admin", time.Hour)
	h.mustApprove(t, r.ID, bob)
	if _, err := h.eng.RunDueJobs(t.Context()); err != nil {
		t.Fatal(err)
	}
	h.wantState(t, r.ID, symbot.StateActive)
	if err := h.eng.MayDecide(t.Context(), r.ID, alice, symbot.VerbExtend); err != nil {
		t.Fatalf("MayDecide(extend) before the expiry: %v", err)
	}

	c.add(time.Hour + time.Second) // past the expiry
	_, err := h.eng.Extend(t.Context(), r.ID, alice, time.Hour, "need more time")
	var de *symbot.DecidedError
	if !errors.As(err, &de) || de.State != symbot.StateExpired || de.By != symbot.System {
		t.Fatalf("Extend after the expiry: got %v, want a DecidedError expired by symbot", err)
	}
	got := h.wantState(t, r.ID, symbot.StateExpired)
	if got.Removed {
		t.Errorf("expired grant marked removed before its removal ran")
	}
	mine, err := h.eng.ListForUser(t.Context(), alice.SlackID)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range mine {
		if x.ExtensionOf == r.ID {
			t.Errorf("an extension request %s (%s) was made of expired access", x.ID, x.State)
		}
	}
	revokes := 0
	for _, j := range h.pendingJobs(t) {
		if j.Kind == symbot.JobRevoke && j.RequestID == r.ID {
			revokes++
		}
	}
	if revokes != 1 {
		t.Errorf("revoke jobs queued for the expired grant = %d, want 1", revokes)
	}
	if _, err := h.eng.RunDueJobs(t.Context()); err != nil {
		t.Fatal(err)
	}
	if h.dir.isMember("00ualice", "GADMIN") {
		t.Errorf("alice is still a member after her expired access was asked to be extended")
	}
}

// An extension request whose own approval timeout has passed is refused
// like any pending request: it times out in the same transaction, and the
// grant it would extend keeps its expiry.
func TestApproveExtensionAfterApprovalTimeoutIsRefused(t *testing.T) {
	h := newHarness(t, nil)
	c := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	h.eng.Now = c.now
	r := h.mustSubmit(t, alice, "admin", 4*time.Hour)
	h.mustApprove(t, r.ID, bob)
	if _, err := h.eng.RunDueJobs(t.Context()); err != nil {
		t.Fatal(err)
	}
	granted := h.wantState(t, r.ID, symbot.StateActive)
	x, err := h.eng.Extend(t.Context(), r.ID, alice, time.Hour, "longer")
	if err != nil {
		t.Fatal(err)
	}
	c.add(24*time.Hour + time.Second) // past the extension's approval timeout (and the grant's expiry)
	_, err = h.eng.Approve(t.Context(), x.ID, bob, "")
	var de *symbot.DecidedError
	if !errors.As(err, &de) || de.State != symbot.StateTimedOut {
		t.Fatalf("Approve of an extension after its timeout: got %v, want timed_out", err)
	}
	h.wantState(t, x.ID, symbot.StateTimedOut)
	if got := h.get(t, r.ID); !got.ExpiresAt.Equal(granted.ExpiresAt) || len(got.ExtendedBy) != 0 {
		t.Errorf("the grant was extended by a timed-out extension: expires %v (was %v), extended by %v", got.ExpiresAt, granted.ExpiresAt, got.ExtendedBy)
	}
}
