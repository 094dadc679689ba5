// Package groupcommit queues concurrent writes of one process so that one
// leader runs them together in one transaction with one commit, and gives
// each writer its own outcome; the stores (store, store/postgres) supply
// the transaction.
//
// A write made while no group is in flight runs at once, in a group of its
// own (no added latency, no timer). Writes made while a group runs queue up
// (and, when the store's attempt takes them in, join that group before its
// commit); the first of those left queued then leads the next group. The
// fns of a group run one after another, each seeing the writes of those
// before it, as if they had run one by one.
//
// A failing fn does not fail the others: its transaction is rolled back and
// the others run again in a fresh one. The failing fn's error stands only
// if it failed on committed state (it ran first in its transaction);
// otherwise it runs again, first in a transaction of its own, after the
// rest commit, since its failure may have come from a write that was
// rolled back. When the store cannot tell which fn made a transaction fail
// (Result.Alone), each fn of the group runs again in a transaction of its
// own, again after a conflict (Result.Retry) up to Queue.MaxRetries times.
// A panic in a fn is re-raised in its caller's goroutine and handled like
// an error for the rest of the group.
//
// A write no one waits on at once (DoLater) starts no group: it joins the
// next group that runs, after the other writes, so that it adds no commit
// for them to wait behind, and runs on its own only when no group comes
// within its wait.
package groupcommit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"sync"
	"time"
)

// ErrClosed is what Do returns (prefixed by its op) after Close, unless
// Queue.ClosedErr says otherwise.
var ErrClosed = errors.New("store is closed")

// Write is one caller's fn waiting for, or in, a group.
type Write[T any] struct {
	Ctx context.Context
	Op  string // prefixes the errors the queue makes for this write
	Fn  func(T) error

	// Outcome, set by the goroutine running the group before the write
	// is finished.
	Err      error
	PanicVal any // what Fn panicked with; nil if it did not (recover never yields nil for a panic)

	wake chan bool // true: lead the next group; false: finished; nil for a leader's own write
	lead bool      // chosen to lead the next group (under Queue.mu)
}

// finish tells w's caller, if it waits, that w is done.
func (w *Write[T]) finish() {
	if w.wake != nil {
		w.wake <- false
	}
}

// outcome returns the result of a finished write to its caller.
func (w *Write[T]) outcome() error {
	if w.PanicVal != nil {
		panic(w.PanicVal)
	}
	return w.Err
}

// Result is how one transaction of a group ended.
type Result struct {
	// Failed is the index in the group of the write whose fn failed (its
	// Err is set), or -1.
	Failed int
	// Err, with Failed -1, is a failure not of a fn (begin, commit): every
	// write of the group gets it, prefixed by its Op, unless Alone. Nil
	// when the transaction committed.
	Err error
	// Alone: the transaction failed and which fn caused it is not certain
	// (the database aborted it), or a commit failed that surely committed
	// nothing: run each write of the group again in a transaction of its
	// own.
	Alone bool
	// Retry, in a write run alone, is a conflict (serialisation failure,
	// deadlock) that running it again may resolve; nil otherwise.
	Retry error
}

// Attempt runs the fns of *group, one after another, in one transaction and
// commits it (see Queue.Each). With takeIn, writes queued meanwhile may join
// the group; *group is what ran.
type Attempt[T any] func(group *[]*Write[T], takeIn bool) Result

// Queue orders the writes of one store. Build one with New.
type Queue[T any] struct {
	// MaxRetries bounds how often a write run alone runs again after a
	// Result.Retry.
	MaxRetries int
	// ClosedErr is what Do returns (prefixed by its op) after Close;
	// ErrClosed when nil.
	ClosedErr error
	// Logger receives a fn's panic and the retries; discarded when nil.
	Logger *slog.Logger

	max     int
	attempt Attempt[T]

	mu     sync.Mutex
	idle   sync.Cond // broadcast when busy becomes false
	busy   bool      // a leader is running a group
	closed bool      // Close was called: no new writes
	queue  []*Write[T]
	later  []*Write[T] // DoLater writes waiting to join a group
}

// New returns a queue that runs groups of at most max writes with attempt.
// max bounds the work re-run when a fn fails and how long one transaction
// runs.
func New[T any](max int, attempt Attempt[T]) *Queue[T] {
	if max < 1 {
		max = 1
	}
	q := &Queue[T]{max: max, attempt: attempt}
	q.idle.L = &q.mu
	return q
}

func (q *Queue[T]) log() *slog.Logger {
	if q.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return q.Logger
}

// Do queues fn for the next group, leading it when no group is in flight,
// and returns fn's outcome: nil once its transaction committed, fn's own
// error unchanged, or an error prefixed by op (the transaction's, or ctx's
// when ctx is done before fn starts, and fn then does not run). A panic of
// fn is raised again here. fn may run more than once before its
// transaction commits (see the package comment); it must not call Do of the
// same queue, as it would wait for its own group.
func (q *Queue[T]) Do(ctx context.Context, op string, fn func(T) error) error {
	w := &Write[T]{Ctx: ctx, Op: op, Fn: fn}
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return q.closedErr(op)
	}
	return q.run(w)
}

// closedErr is the error of a write made after Close.
func (q *Queue[T]) closedErr(op string) error {
	cerr := q.ClosedErr
	if cerr == nil {
		cerr = ErrClosed
	}
	return fmt.Errorf("%s: %w", op, cerr)
}

// run queues w, leading its group when none is in flight, and returns w's
// outcome. The caller holds q.mu, which run releases, and w is in no list.
func (q *Queue[T]) run(w *Write[T]) error {
	if !q.busy {
		q.busy = true
		q.queue = append(q.queue, w)
		q.mu.Unlock()
		q.lead()
		return w.outcome()
	}
	if w.wake == nil {
		w.wake = make(chan bool, 1)
	}
	q.queue = append(q.queue, w)
	q.mu.Unlock()
	select {
	case lead := <-w.wake:
		if lead {
			q.lead()
		}
		return w.outcome()
	case <-w.Ctx.Done():
	}
	q.mu.Lock()
	if i := slices.Index(q.queue, w); i >= 0 && !w.lead {
		q.queue = slices.Delete(q.queue, i, i+1)
		q.mu.Unlock()
		return fmt.Errorf("%s: %w", w.Op, w.Ctx.Err())
	}
	q.mu.Unlock()
	// Already in a running group (or chosen to lead one): wait for it.
	if <-w.wake {
		q.lead()
	}
	return w.outcome()
}

// DoLater is Do for a write no one waits on at once (a finished job's
// outcome, a look-up's record): it starts no group of its own but joins,
// after the writes of Do, the next group that runs, so that it adds no
// commit for a Do to wait behind. When no group runs within wait it runs
// as Do would. It returns, as Do does, once its transaction committed.
func (q *Queue[T]) DoLater(ctx context.Context, op string, fn func(T) error, wait time.Duration) error {
	w := &Write[T]{Ctx: ctx, Op: op, Fn: fn, wake: make(chan bool, 1)}
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return q.closedErr(op)
	}
	q.later = append(q.later, w)
	q.mu.Unlock()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-w.wake: // taken into a group, and finished
		return w.outcome()
	case <-t.C:
	case <-ctx.Done():
	}
	q.mu.Lock()
	i := slices.Index(q.later, w)
	if i < 0 {
		// Taken into a group already: wait for it.
		q.mu.Unlock()
		<-w.wake
		return w.outcome()
	}
	q.later = slices.Delete(q.later, i, i+1)
	if err := ctx.Err(); err != nil {
		q.mu.Unlock()
		return fmt.Errorf("%s: %w", op, err)
	}
	// No group came along: run it (with the late writes it takes in).
	return q.run(w)
}

// Close makes later calls of Do and DoLater fail and returns once the
// writes already queued (late ones too) have finished.
func (q *Queue[T]) Close() {
	q.mu.Lock()
	q.closed = true
	for q.busy || len(q.later) > 0 {
		if !q.busy {
			// Late writes still waiting for a group: run them now.
			q.busy = true
			q.mu.Unlock()
			q.lead()
			q.mu.Lock()
			continue
		}
		q.idle.Wait()
	}
	q.mu.Unlock()
}

// Closed reports whether Close was called.
func (q *Queue[T]) Closed() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.closed
}

// Len returns how many writes wait for the next group.
func (q *Queue[T]) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.queue)
}

// LaterLen returns how many DoLater writes wait to join a group.
func (q *Queue[T]) LaterLen() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.later)
}

// lead runs one group, starting with the writes queued now, then hands the
// lead to the first write queued meanwhile, or marks the queue idle. The
// caller's own write is in the group, so its caller can return as soon as
// that group ends.
func (q *Queue[T]) lead() {
	defer func() {
		q.mu.Lock()
		if len(q.queue) == 0 {
			q.busy = false
			q.idle.Broadcast()
			q.mu.Unlock()
			return
		}
		next := q.queue[0]
		next.lead = true
		q.mu.Unlock()
		next.wake <- true
	}()
	q.runGroup(q.take(nil))
}

// take appends to group the queued writes, then the late ones (DoLater),
// up to the queue's max in all.
func (q *Queue[T]) take(group []*Write[T]) []*Write[T] {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, l := range []*[]*Write[T]{&q.queue, &q.later} {
		n := min(len(*l), q.max-len(group))
		if n <= 0 {
			continue
		}
		group = append(group, (*l)[:n]...)
		*l = slices.Clone((*l)[n:])
	}
	return group
}

// runGroup commits the writes of group (and those its attempts take in)
// and finishes each; see the package comment for what happens when one
// fails.
func (q *Queue[T]) runGroup(group []*Write[T]) {
	var retry, alone []*Write[T] // to run again: first alone, then in a group; alone, with retries
	defer func() {
		// Empty unless a fn called runtime.Goexit (t.FailNow, say) on
		// this goroutine: the transaction was not committed; do not leave
		// the others waiting forever.
		for _, w := range slices.Concat(group, retry, alone) {
			w.Err = fmt.Errorf("%s: a fn in the same group ended the goroutine running the group; nothing was written", w.Op)
			w.finish()
		}
	}()
	for len(group) > 0 || len(retry) > 0 || len(alone) > 0 {
		if len(group) == 0 && len(alone) > 0 {
			w := alone[0]
			alone = alone[1:]
			q.runAlone(w)
			continue
		}
		if len(group) == 0 {
			group, retry = []*Write[T]{retry[0]}, retry[1:]
		}
		r := q.attempt(&group, true)
		switch {
		case r.Alone:
			alone = append(alone, group...)
			group = nil
		case r.Failed < 0:
			// Committed; or nothing ran, or the commit's outcome is
			// unknown: every fn gets the error (running them again
			// could repeat a committed write).
			for _, w := range group {
				if r.Err != nil {
					w.Err = fmt.Errorf("%s: %w", w.Op, r.Err)
				}
				w.finish()
			}
			group = nil
		default:
			w := group[r.Failed]
			group = slices.Delete(group, r.Failed, r.Failed+1)
			if r.Failed == 0 {
				w.finish() // it failed on committed state: its error stands
			} else {
				retry = append(retry, w)
			}
		}
	}
}

// runAlone runs w in a transaction of its own, again after a conflict (up
// to MaxRetries times), and finishes it.
func (q *Queue[T]) runAlone(w *Write[T]) {
	for n := 0; ; n++ {
		group := []*Write[T]{w}
		r := q.attempt(&group, false)
		if len(group) == 0 {
			return // its ctx ended first: finished with ctx's error
		}
		if r.Failed < 0 {
			w.Err = nil
			if r.Err != nil {
				w.Err = fmt.Errorf("%s: %w", w.Op, r.Err)
			}
		}
		if r.Retry == nil || n >= q.MaxRetries || w.Ctx.Err() != nil {
			w.finish()
			return
		}
		q.log().Debug(w.Op+": retrying after a conflict", "attempt", n+1, "err", r.Retry)
	}
}

// Each runs the fns of *group one after another with run(g, i), which runs
// g[i].Fn (through Call) and returns its error; Each stores that error in
// the write and returns its index, or -1 when every fn succeeded. With
// takeIn, writes queued meanwhile join the group before Each returns (up to
// the queue's max). A write whose ctx is done before its fn starts is
// finished with ctx's error (prefixed by its Op) and leaves the group.
// *group is updated as writes join and leave.
func (q *Queue[T]) Each(group *[]*Write[T], takeIn bool, run func(g []*Write[T], i int) error) int {
	g := *group
	defer func() { *group = g }()
	for i := 0; ; {
		if i == len(g) {
			if takeIn {
				g = q.take(g)
			}
			if i == len(g) {
				return -1
			}
		}
		w := g[i]
		w.Err, w.PanicVal = nil, nil // from a run that was rolled back
		if err := w.Ctx.Err(); err != nil {
			w.Err = fmt.Errorf("%s: %w", w.Op, err)
			w.finish()
			g = slices.Delete(g, i, i+1)
			continue
		}
		if w.Err = run(g, i); w.Err != nil {
			return i
		}
		i++
	}
}

// Call runs w.Fn(t), turning a panic into an error (recorded in w, to be
// raised again in w's caller) so that the rest of the group goes on.
func (q *Queue[T]) Call(w *Write[T], t T) (err error) {
	defer func() {
		if r := recover(); r != nil {
			q.log().Error(w.Op+": fn panicked; its writes are rolled back and the panic is raised in its caller", "panic", r, "stack", string(debug.Stack()))
			w.PanicVal = r
			err = fmt.Errorf("%s: fn panicked: %v", w.Op, r)
		}
	}()
	return w.Fn(t)
}
