package store_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/store"
	"github.com/symbot/symbot/store/memstore"
	"github.com/symbot/symbot/store/storetest"
)

// TestAgainstMemstore applies the same random operations to the bbolt store
// and to memstore (whose indexes are plain scans, hence obviously right)
// and compares everything observable after each step. This exercises the
// index re-keying on every kind of update.
//
// Each seed runs with the pending index entries (pending.go) flushed at
// every commit, every few entries, as by default, and never: reads must
// merge the index buckets with the pending entries in every mix.
func TestAgainstMemstore(t *testing.T) {
	for _, flush := range []struct {
		name string
		at   uint64
	}{{"flush-always", 0}, {"flush-at-5", 5}, {"flush-default", 0}, {"flush-never", math.MaxUint64}} {
		for seed := range uint64(3) {
			t.Run(fmt.Sprint(flush.name, "/seed", seed), func(t *testing.T) {
				bb := MustOpen(t, store.Config{NoSync: true})
				if flush.name != "flush-default" {
					store.SetFlushAt(bb, flush.at)
				}
				testAgainstMemstore(t, seed, bb, memstore.New())
			})
		}
	}
}

func testAgainstMemstore(t *testing.T, seed uint64, bb *store.Store, mem *memstore.Store) {
	rng := rand.New(rand.NewPCG(seed, 42))
	ctx := context.Background()
	at := func() time.Time { return storetest.T0.Add(time.Duration(rng.IntN(40)) * time.Minute) }
	maybe := func() time.Time {
		if rng.IntN(4) == 0 {
			return time.Time{}
		}
		return at()
	}
	states := []symbot.State{symbot.StatePending, symbot.StateActive, symbot.StateApproved, symbot.StateExpired, symbot.StateDenied}
	lanes := []string{"", "", "A", "B"}
	both := func(fn func(symbot.Tx) error) (error, error) {
		return bb.Update(ctx, fn), mem.Update(ctx, fn)
	}
	var maxJob uint64
	for step := range 250 {
		var op string
		switch k := rng.IntN(12); {
		case k < 4:
			r := &symbot.Request{
				ID:        fmt.Sprintf("R%d", rng.IntN(25)),
				Requester: symbot.Person{SlackID: fmt.Sprintf("U%d", rng.IntN(4))},
				State:     states[rng.IntN(len(states))],
				TimeoutAt: maybe(), WarnAt: maybe(), ExpiresAt: maybe(), Warned: rng.IntN(2) == 0,
			}
			op = fmt.Sprintf("put %s %s", r.ID, r.State)
			e1, e2 := both(func(tx symbot.Tx) error { return tx.PutRequest(r) })
			if e1 != nil || e2 != nil {
				t.Fatalf("step %d %s: %v / %v", step, op, e1, e2)
			}
		case k < 6:
			j := symbot.Job{Kind: symbot.JobNotify, Lane: lanes[rng.IntN(len(lanes))], NotBefore: maybe()}
			op = "add job"
			j1, j2 := j, j
			e1 := bb.Update(ctx, func(tx symbot.Tx) error { return tx.AddJob(&j1) })
			e2 := mem.Update(ctx, func(tx symbot.Tx) error { return tx.AddJob(&j2) })
			if e1 != nil || e2 != nil || j1.ID != j2.ID {
				t.Fatalf("step %d %s: ids %d/%d, errors %v / %v", step, op, j1.ID, j2.ID, e1, e2)
			}
			maxJob = j1.ID
		case k < 7 && maxJob > 0:
			id := 1 + rng.Uint64N(maxJob)
			nb, lease := maybe(), maybe()
			op = fmt.Sprintf("update job %d", id)
			fn := func(tx symbot.Tx) error {
				j, err := tx.Job(id)
				if err != nil {
					return err
				}
				j.NotBefore, j.LeaseUntil, j.Attempts = nb, lease, j.Attempts+1
				return tx.UpdateJob(j)
			}
			e1, e2 := both(fn)
			if (e1 == nil) != (e2 == nil) {
				t.Fatalf("step %d %s: %v / %v", step, op, e1, e2)
			}
		case k < 8 && maxJob > 0:
			id := 1 + rng.Uint64N(maxJob)
			op = fmt.Sprintf("delete job %d", id)
			e1, e2 := both(func(tx symbot.Tx) error { return tx.DeleteJob(id) })
			if (e1 == nil) != (e2 == nil) {
				t.Fatalf("step %d %s: %v / %v", step, op, e1, e2)
			}
		case k >= 10:
			// Several writes to the same records in one transaction, after
			// reading them (the store remembers their index keys).
			user := fmt.Sprintf("U%d", rng.IntN(4))
			st1, st2 := states[rng.IntN(len(states))], states[rng.IntN(len(states))]
			t1, t2, w := maybe(), maybe(), rng.IntN(2) == 0
			var id uint64
			if maxJob > 0 {
				id = 1 + rng.Uint64N(maxJob)
			}
			nb, del := maybe(), rng.IntN(2) == 0
			op = fmt.Sprintf("rewrite requests of %s, job %d", user, id)
			fn := func(tx symbot.Tx) error {
				rs, err := tx.RequestsByRequester(user)
				if err != nil {
					return err
				}
				for _, r := range rs {
					r.State, r.ExpiresAt = st1, t1
					if err := tx.PutRequest(r); err != nil {
						return err
					}
					r.State, r.TimeoutAt, r.Warned = st2, t2, w
					if err := tx.PutRequest(r); err != nil {
						return err
					}
				}
				if id == 0 {
					return nil
				}
				j, err := tx.Job(id)
				if errors.Is(err, symbot.ErrNotFound) {
					return nil
				} else if err != nil {
					return err
				}
				j.LeaseUntil = nb
				if err := tx.UpdateJob(j); err != nil {
					return err
				}
				j.NotBefore = nb
				if err := tx.UpdateJob(j); err != nil {
					return err
				}
				if del {
					return tx.DeleteJob(id)
				}
				return nil
			}
			e1, e2 := both(fn)
			if e1 != nil || e2 != nil {
				t.Fatalf("step %d %s: %v / %v", step, op, e1, e2)
			}
		default:
			now, max := at(), 1+rng.IntN(4)
			op = fmt.Sprintf("claim at %v max %d", now, max)
			c1, e1 := bb.ClaimJobs(ctx, "w", now, 5*time.Minute, max)
			c2, e2 := mem.ClaimJobs(ctx, "w", now, 5*time.Minute, max)
			if e1 != nil || e2 != nil || !reflect.DeepEqual(c1, c2) {
				t.Fatalf("step %d %s:\nbbolt %+v %v\n  mem %+v %v", step, op, c1, e1, c2, e2)
			}
		}
		compareStores(t, fmt.Sprintf("step %d (%s)", step, op), bb, mem, at())
	}
}

type snapshot struct {
	Due       []string
	NextID    string
	NextAt    time.Time
	NextOK    bool
	ByState   map[symbot.State][]string
	ByUser    map[string][]string
	Jobs      []symbot.Job
	NextJob   time.Time
	NextJobOK bool
}

func snap(t *testing.T, st symbot.Store, now time.Time) snapshot {
	t.Helper()
	s := snapshot{ByState: map[symbot.State][]string{}, ByUser: map[string][]string{}}
	storetest.MustView(t, st, func(tx symbot.Tx) (err error) {
		if s.Due, err = tx.DueRequests(now, 0); err != nil {
			return err
		}
		if s.NextID, s.NextAt, s.NextOK, err = tx.NextDeadline(); err != nil {
			return err
		}
		s.NextAt = s.NextAt.UTC()
		for _, st := range []symbot.State{symbot.StatePending, symbot.StateActive, symbot.StateApproved, symbot.StateExpired, symbot.StateDenied} {
			rs, err := tx.RequestsByState(st)
			if err != nil {
				return err
			}
			for _, r := range rs {
				s.ByState[st] = append(s.ByState[st], r.ID)
			}
		}
		for i := range 4 {
			u := fmt.Sprintf("U%d", i)
			rs, err := tx.RequestsByRequester(u)
			if err != nil {
				return err
			}
			for _, r := range rs {
				s.ByUser[u] = append(s.ByUser[u], r.ID)
			}
		}
		s.Jobs, err = tx.Jobs()
		return err
	})
	var err error
	if s.NextJob, s.NextJobOK, err = st.NextJobTime(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.NextJob = s.NextJob.UTC()
	if s.NextJob.Equal(time.Time{}) {
		s.NextJob = time.Time{}
	}
	return s
}

func compareStores(t *testing.T, step string, bb, mem symbot.Store, now time.Time) {
	t.Helper()
	a, b := snap(t, bb, now), snap(t, mem, now)
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("%s: stores differ at now=%v:\nbbolt %+v\n  mem %+v", step, now, a, b)
	}
}
