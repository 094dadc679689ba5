package symbot_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/store/memstore"
)

// historyCounter wraps a store and counts reads of a person's whole
// history (Tx.RequestsByRequester).
type historyCounter struct {
	symbot.Store
	reads atomic.Int64
}

type historyTx struct {
	symbot.Tx
	c *historyCounter
}

func (t historyTx) RequestsByRequester(id string) ([]*symbot.Request, error) {
	t.c.reads.Add(1)
	return t.Tx.RequestsByRequester(id)
}

func (c *historyCounter) Update(ctx context.Context, fn func(symbot.Tx) error) error {
	return c.Store.Update(ctx, func(tx symbot.Tx) error { return fn(historyTx{tx, c}) })
}

func (c *historyCounter) View(ctx context.Context, fn func(symbot.Tx) error) error {
	return c.Store.View(ctx, func(tx symbot.Tx) error { return fn(historyTx{tx, c}) })
}

// A grant must not read the requester's whole history to find out whether
// they were a member before: a person with thousands of past requests
// would make every grant of theirs slow (the check uses the open-requests
// index, and reads history only when Okta says they are already a member
// and no open request explains it).
func TestGrantReadsNoHistoryOfTheRequester(t *testing.T) {
	ms := memstore.New()
	ms.RerunUpdates = true
	st := &historyCounter{Store: ms}
	h := newHarness(t, st)
	if err := ms.Update(t.Context(), func(tx symbot.Tx) error {
		for i := range 200 {
			r := &symbot.Request{ID: fmt.Sprintf("OLD-%d", i), Flow: "prod", Target: "admin", GroupID: "GADMIN", Requester: alice.Person,
				Duration: time.Hour, Reason: "old", State: symbot.StateExpired, GrantChecked: true, Removed: true, OktaUserID: "00ualice"}
			if err := tx.PutRequest(r); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	r := h.mustSubmit(t, alice, "admin", time.Hour)
	h.mustApprove(t, r.ID, bob)
	if _, err := h.eng.RunDueJobs(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := h.wantState(t, r.ID, symbot.StateActive); got.Preexisting {
		t.Errorf("recorded as a member before symbot")
	}
	if n := st.reads.Load(); n != 0 {
		t.Errorf("the requester's whole history was read %d times on the way to a grant, want 0", n)
	}
}

// A grant made while an ended grant of the same group still awaits its
// removal (Okta failing) must not take that membership for one the person
// had before symbot: when both have ended, the membership goes.
func TestGrantDuringPendingRemovalDoesNotCountItAsPrior(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, nil)
		h.start(t)
		r1 := h.mustGrant(t, alice, "admin", 15*time.Minute)
		unavailable := fmt.Errorf("okta down: %w", symbot.ErrUnavailable)
		for range 50 {
			h.dir.failNext("remove", unavailable)
		}
		time.Sleep(15*time.Minute + time.Second)
		synctest.Wait()
		if got := h.wantState(t, r1.ID, symbot.StateExpired); got.Removed {
			t.Fatalf("removal done despite Okta failing")
		}
		r2 := h.mustGrant(t, alice, "admin", 15*time.Minute)
		if got := h.get(t, r2.ID); got.Preexisting {
			t.Fatalf("the grant took the membership of %s, awaiting removal, for one alice had before symbot", r1.ID)
		}
		time.Sleep(time.Hour)
		synctest.Wait()
		h.wantState(t, r2.ID, symbot.StateExpired)
		if h.dir.isMember("00ualice", "GADMIN") {
			t.Fatal("membership left behind after both grants ended")
		}
	})
}
