package symbot_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/store/memstore"
)

// prefetchStore is a memstore whose transactions implement
// symbot.RequestPrefetcher and record what they were asked to prefetch.
type prefetchStore struct {
	symbot.Store
	mu  sync.Mutex
	got [][]string
}

func (s *prefetchStore) Update(ctx context.Context, fn func(symbot.Tx) error) error {
	return s.Store.Update(ctx, func(tx symbot.Tx) error { return fn(prefetchTx{Tx: tx, s: s}) })
}

type prefetchTx struct {
	symbot.Tx
	s *prefetchStore
}

func (t prefetchTx) PrefetchRequests(ids []string) error {
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	t.s.got = append(t.s.got, slices.Clone(ids))
	return nil
}

// TestFireDuePrefetchesItsBatch: on a store where every read is a round
// trip (PostgreSQL), the scheduler asks for a batch's requests at once
// instead of one read each.
func TestFireDuePrefetchesItsBatch(t *testing.T) {
	st := &prefetchStore{Store: memstore.New()}
	h := newHarness(t, st)
	clk := newFakeClock()
	h.eng.Now = clk.Now
	ids := h.mustActivate(t, alice, carol, dave)
	st.mu.Lock()
	st.got = nil
	st.mu.Unlock()
	clk.Advance(time.Hour)
	if err := h.eng.FireDue(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		h.wantState(t, id, symbot.StateExpired)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, got := range st.got {
		if slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(ids))) {
			return
		}
	}
	t.Errorf("prefetched %v, want one call with the batch %v", st.got, ids)
}
