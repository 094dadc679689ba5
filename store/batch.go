// Writes: Update groups concurrent read-write transactions into one bbolt
// commit and re-runs the others when one fails; View runs a read-only
// transaction.

package store

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"

	berrors "go.etcd.io/bbolt/errors"

	"github.com/symbot/symbot"
	bolt "go.etcd.io/bbolt"
)

// Update runs fn in a read-write transaction and returns once that
// transaction is committed (durably, unless Config.NoSync); if fn returns
// an error (or panics) nothing fn wrote is kept, fn's error is returned
// unchanged (the panic is re-raised in the caller's goroutine), and updates
// of other callers are not affected.
//
// Group commit: concurrent calls share one bbolt transaction and so one
// commit and fsync. A call made while no write is in flight runs at once
// in its own transaction (no added latency, no timer). Calls made while a
// group's fns run join that group; calls made while it commits queue up,
// and the first of them then runs them all as the next group. The fns of
// a group run one after another, each seeing the writes of those before
// it, as if they had run one by one. When a fn in a group fails, the
// whole transaction is rolled back and the other fns run again in a fresh
// one. So fn may run more than once before its transaction commits: it
// must read what it needs through the Tx and only write through it, keep
// no effects of a run except in variables it resets at its start, and use
// the Tx only until it returns.
//
// A call whose ctx is done before its fn starts returns ctx's error
// (wrapped) without running fn. fn must not call Update or ClaimJobs: it
// would wait for its own group.
func (s *Store) Update(ctx context.Context, fn func(symbot.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store update: %w", err)
	}
	return s.update(ctx, "store update", func(t *tx) error { return fn(t) })
}

// maxGroup caps the fns in one group commit, which bounds the work re-run
// when one of them fails.
const maxGroup = 128

// errGroupFailed makes bbolt roll back a group after one fn failed.
var errGroupFailed = errors.New("a write in the group failed")

// write is one caller's fn waiting for, or in, a group commit.
type write struct {
	ctx  context.Context
	op   string // prefixes store errors
	fn   func(*tx) error
	wake chan bool // true: lead the next group; false: finished (see err); nil for a leader's own write
	lead bool      // chosen to lead the next group (under Store.mu)

	// Outcome, set by the goroutine running the group before wake.
	err      error
	panicVal any // what fn panicked with; nil if it did not (recover never yields nil for a panic)
}

// update queues fn for the next group commit, leading it when no commit is
// in flight, and returns fn's outcome. op prefixes store errors.
func (s *Store) update(ctx context.Context, op string, fn func(*tx) error) error {
	w := &write{ctx: ctx, op: op, fn: fn}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return fmt.Errorf("%s: store %s: %w", op, s.path, berrors.ErrDatabaseNotOpen)
	}
	if !s.busy {
		s.busy = true
		s.queue = append(s.queue, w)
		s.mu.Unlock()
		s.lead()
		return w.outcome()
	}
	w.wake = make(chan bool, 1)
	s.queue = append(s.queue, w)
	s.mu.Unlock()
	select {
	case lead := <-w.wake:
		if lead {
			s.lead()
		}
		return w.outcome()
	case <-ctx.Done():
	}
	s.mu.Lock()
	if i := slices.Index(s.queue, w); i >= 0 && !w.lead {
		s.queue = slices.Delete(s.queue, i, i+1)
		s.mu.Unlock()
		return fmt.Errorf("%s: %w", op, ctx.Err())
	}
	s.mu.Unlock()
	// Already in a running group (or chosen to lead one): wait for it.
	if <-w.wake {
		s.lead()
	}
	return w.outcome()
}

// finish tells w's caller, if it waits, that w is done.
func (w *write) finish() {
	if w.wake != nil {
		w.wake <- false
	}
}

// outcome returns the result of a finished write to its caller.
func (w *write) outcome() error {
	if w.panicVal != nil {
		panic(w.panicVal)
	}
	return w.err
}

// lead runs one group, starting with the writes queued now and taking in
// those queued while it runs (see runGroup). Then it hands the lead to the
// first write queued meanwhile, or marks the store idle. The caller's own
// write is in the group, so its caller can return as soon as that commit
// ends.
func (s *Store) lead() {
	defer func() {
		s.mu.Lock()
		if len(s.queue) == 0 {
			s.busy = false
			s.idle.Broadcast()
			s.mu.Unlock()
			return
		}
		next := s.queue[0]
		next.lead = true
		s.mu.Unlock()
		next.wake <- true
	}()
	s.runGroup(s.take(nil))
}

// take appends to group the queued writes, up to maxGroup in all.
func (s *Store) take(group []*write) []*write {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := min(len(s.queue), maxGroup-len(group))
	if n <= 0 {
		return group
	}
	group = append(group, s.queue[:n]...)
	s.queue = slices.Clone(s.queue[n:])
	return group
}

// runGroup commits the writes of group in one bbolt transaction. Writes
// queued while its fns run join the group before the commit: they would
// otherwise wait for this commit and then pay for one of their own, and a
// caller alone adds nothing. A write whose ctx is done before its fn starts
// gets ctx's error at once and leaves the group. If a fn fails, the
// transaction is rolled back and the rest run again in a new transaction.
// The failing fn's error stands only if it failed on committed state (it
// ran first in its transaction); otherwise it runs again after the rest
// commit, first in a transaction of its own, since its failure may have
// come from a write that was rolled back.
func (s *Store) runGroup(group []*write) {
	var retry []*write // failed writes to run again, in the order they failed
	defer func() {
		// Both are empty unless a fn called runtime.Goexit (t.FailNow, say)
		// on this goroutine: bbolt rolled back; do not leave the others
		// waiting forever.
		for _, w := range slices.Concat(group, retry) {
			w.err = fmt.Errorf("%s: a fn in the same group ended the goroutine running the group; nothing was written", w.op)
			w.finish()
		}
	}()
	for len(group) > 0 || len(retry) > 0 {
		if len(group) == 0 {
			group, retry = []*write{retry[0]}, retry[1:]
		}
		failed := -1 // index in group of the fn that failed
		err := s.db.Update(func(btx *bolt.Tx) error {
			for i := 0; ; {
				if i == len(group) {
					if group = s.take(group); i == len(group) {
						return nil
					}
				}
				w := group[i]
				w.err, w.panicVal = nil, nil // from a run that was rolled back
				if err := w.ctx.Err(); err != nil {
					w.err = fmt.Errorf("%s: %w", w.op, err)
					w.finish()
					group = slices.Delete(group, i, i+1)
					continue
				}
				if w.err = s.call(w, btx); w.err != nil {
					failed = i
					return errGroupFailed
				}
				i++
			}
		})
		if failed < 0 {
			if err == nil {
				s.commits.Add(1)
			}
			for _, w := range group {
				if err != nil {
					w.err = fmt.Errorf("%s: write transaction: %w", w.op, err)
				}
				w.finish()
			}
			group = nil
			continue
		}
		w := group[failed]
		group = slices.Delete(group, failed, failed+1)
		if failed == 0 {
			w.finish() // it failed on committed state: its error stands
		} else {
			retry = append(retry, w)
		}
	}
}

// call runs w.fn in btx, turning a panic into an error (recorded in w, to
// be re-raised in w's caller) so that the rest of the group goes on.
func (s *Store) call(w *write, btx *bolt.Tx) (err error) {
	t := &tx{tx: btx}
	defer func() {
		t.done = true
		if r := recover(); r != nil {
			s.log.Error("store update: fn panicked; its writes are rolled back and the panic is raised in its caller", "panic", r, "stack", string(debug.Stack()))
			w.panicVal = r
			err = fmt.Errorf("%s: fn panicked: %v", w.op, r)
		}
	}()
	return w.fn(t)
}

// View runs fn in a read-only transaction; writes in it fail.
func (s *Store) View(ctx context.Context, fn func(symbot.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store view: %w", err)
	}
	if s.unreadable != nil {
		return s.unreadable
	}
	return s.db.View(func(btx *bolt.Tx) error {
		t := &tx{tx: btx}
		defer func() { t.done = true }()
		return fn(t)
	})
}
