package symbot_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/store/memstore"
)

// readerStore is a memstore that implements symbot.RequestReader (each
// read in a View of the memstore's own) and counts the engine's Views
// and reads.
type readerStore struct {
	symbot.Store
	views, reads atomic.Int64
}

func newReaderStore() *readerStore {
	ms := memstore.New()
	ms.RerunUpdates = true
	return &readerStore{Store: ms}
}

func (s *readerStore) View(ctx context.Context, fn func(symbot.Tx) error) error {
	s.views.Add(1)
	return s.Store.View(ctx, fn)
}

func (s *readerStore) ReadRequest(ctx context.Context, id string) (r *symbot.Request, err error) {
	s.reads.Add(1)
	err = s.Store.View(ctx, func(tx symbot.Tx) error {
		r, err = tx.Request(id)
		return err
	})
	return r, err
}

func (s *readerStore) ReadOpenRequests(ctx context.Context, slackID string) (rs []*symbot.Request, err error) {
	s.reads.Add(1)
	err = s.Store.View(ctx, func(tx symbot.Tx) error {
		rs, err = tx.OpenRequests(slackID)
		return err
	})
	return rs, err
}

// TestRevokeReadsWithoutView: on a store that can read one statement
// without a transaction block (symbot.RequestReader, PostgreSQL), a
// removal and the Slack jobs it causes make their reads with it and open
// no View: each of their reads is one round trip, not a BEGIN, the read
// and a ROLLBACK.
func TestRevokeReadsWithoutView(t *testing.T) {
	st := newReaderStore()
	h := newHarness(t, st)
	clk := newFakeClock()
	h.eng.Now = clk.Now
	r := h.mustSubmit(t, alice, "admin", 15*time.Minute)
	h.mustApprove(t, r.ID, bob)
	if _, err := h.eng.RunDueJobs(t.Context()); err != nil {
		t.Fatal(err)
	}
	h.wantState(t, r.ID, symbot.StateActive)
	clk.Advance(time.Hour)
	if err := h.eng.FireDue(t.Context()); err != nil {
		t.Fatal(err)
	}
	st.views.Store(0)
	st.reads.Store(0)
	n, err := h.eng.RunDueJobs(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	views, reads := st.views.Load(), st.reads.Load()
	if got := h.wantState(t, r.ID, symbot.StateExpired); !got.Removed || got.Kept {
		t.Fatalf("removed=%t kept=%t (note %q), want removed", got.Removed, got.Kept, got.RemovalNote)
	}
	if _, removes := h.dir.counts("00ualice", "GADMIN"); removes != 1 {
		t.Errorf("removes = %d, want 1", removes)
	}
	// The revoke job and the message update the expiry queued, then the
	// message update and the DM the removal queues.
	if n != 4 {
		t.Errorf("ran %d jobs, want 4 (revoke, update, update, notify)", n)
	}
	if views != 0 {
		t.Errorf("the removal and its Slack jobs opened %d Views, want 0", views)
	}
	// Revoke: the request and the requester's open requests; each of the
	// 3 Slack jobs: the request.
	if reads != 5 {
		t.Errorf("the removal and its Slack jobs made %d reads, want 5", reads)
	}
}
