package symbot_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/store/memstore"
)

// racingStore runs before once, after the first read-only transaction
// that lists due requests, as another replica acting between a replica's
// snapshot read and its write; and counts the requests its write
// transactions put.
type racingStore struct {
	symbot.Store
	before func()
	once   sync.Once
	puts   atomic.Int64
}

func (s *racingStore) View(ctx context.Context, fn func(symbot.Tx) error) error {
	if err := s.Store.View(ctx, fn); err != nil {
		return err
	}
	if s.before != nil {
		s.once.Do(s.before)
	}
	return nil
}

func (s *racingStore) Update(ctx context.Context, fn func(symbot.Tx) error) error {
	return s.Store.Update(ctx, func(tx symbot.Tx) error { return fn(countingTx{Tx: tx, s: s}) })
}

type countingTx struct {
	symbot.Tx
	s *racingStore
}

func (t countingTx) PutRequest(r *symbot.Request) error {
	t.s.puts.Add(1)
	return t.Tx.PutRequest(r)
}

// TestDeadlinesAnotherReplicaHandledAreNotRewritten: when another replica
// handles a batch of expiries between this replica's read of what is due
// and its write, this replica leaves those requests alone instead of
// rewriting each one (with three replicas, every expiry was written three
// times, all under PostgreSQL's writer lock).
func TestDeadlinesAnotherReplicaHandledAreNotRewritten(t *testing.T) {
	mem := memstore.New()
	a := newHarness(t, mem)
	rs := &racingStore{Store: mem}
	b := newHarness(t, rs)
	clk := newFakeClock()
	a.eng.Now, b.eng.Now = clk.Now, clk.Now
	ids := a.mustActivate(t, alice, carol, dave)
	clk.Advance(time.Hour)
	rs.before = func() {
		if err := a.eng.FireDue(t.Context()); err != nil {
			t.Error(err)
		}
	}
	if err := b.eng.FireDue(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		a.wantState(t, id, symbot.StateExpired)
	}
	if n := rs.puts.Load(); n != 0 {
		t.Errorf("the replica that came second wrote %d requests, want 0: they were handled already", n)
	}
}
