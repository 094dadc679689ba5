// Group commit: concurrent Updates of one process share one PostgreSQL
// transaction, one turn of the writer lock and one durable commit.

package postgres

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/symbot/symbot"
)

// maxGroup caps the fns in one group commit: it bounds the work re-run
// when one of them fails and how long a group holds the writer lock.
const maxGroup = 64

// groupTimeout bounds the statements a group sends on behalf of all its
// fns (begin, the writer lock, commit), which no single caller's context
// may cancel.
const groupTimeout = time.Minute

// write is one caller's fn waiting for, or in, a group commit.
type write struct {
	ctx  context.Context
	fn   func(symbot.Tx) error
	wake chan bool // true: lead the next group; false: finished; nil for a leader's own write
	lead bool      // chosen to lead the next group (under Store.mu)

	// Outcome, set by the goroutine running the group before wake.
	err      error
	panicVal any
}

// Update runs fn in a read-write transaction and returns once it is
// committed; if fn returns an error (or panics) nothing fn wrote is kept,
// fn's error is returned unchanged (the panic is re-raised in the caller's
// goroutine), and other callers' updates are not affected. See the
// package comment for how writers of several replicas are ordered.
//
// Group commit, as in the bbolt store: a call made while no write of this
// process is in flight runs at once in its own transaction; calls made
// while one runs queue up and the first of them then runs them all, one
// after another in one transaction (each fn seeing the writes of those
// before it), under one turn of the writer lock and with one commit. When
// a fn fails, the transaction is rolled back and the others run again; the
// failing fn's error stands only if it failed on committed state (first in
// its transaction), else it runs again on its own. When a statement fails
// (the database aborts the whole transaction then, and which fn caused it
// is not certain) each fn of the group runs again in a transaction of its
// own, where a serialisation failure or a deadlock makes it run again (at
// most maxRetries times). So fn may run more than once: it must read what
// it needs through the Tx and only write through it, and keep no effects
// of a run except in variables it resets at its start.
//
// A call whose ctx is done before its fn starts returns ctx's error
// (wrapped) without running fn. fn must not call Update: it would wait for
// its own group.
func (s *Store) Update(ctx context.Context, fn func(symbot.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store update: %w", err)
	}
	w := &write{ctx: ctx, fn: fn}
	s.mu.Lock()
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
		return fmt.Errorf("store update: %w", ctx.Err())
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

// lead runs one group from the writes queued now (and those queued while
// it runs), then hands the lead to the first write queued meanwhile, or
// marks the store idle.
func (s *Store) lead() {
	defer func() {
		s.mu.Lock()
		if len(s.queue) == 0 {
			s.busy = false
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

// runGroup commits the writes of group (and those queued while its fns
// run) in one transaction; see Update for what happens when one fails.
func (s *Store) runGroup(group []*write) {
	var retry, alone []*write // to run again: first alone, in a group; alone, with retries
	defer func() {
		// Empty unless a fn called runtime.Goexit (t.FailNow, say) on this
		// goroutine: do not leave the others waiting forever.
		for _, w := range slices.Concat(group, retry, alone) {
			w.err = errors.New("store update: a fn in the same group ended the goroutine running the group; nothing was written")
			w.finish()
		}
	}()
	for len(group) > 0 || len(retry) > 0 || len(alone) > 0 {
		if len(group) == 0 && len(alone) > 0 {
			w := alone[0]
			alone = alone[1:]
			s.runAlone(w)
			continue
		}
		if len(group) == 0 {
			group, retry = []*write{retry[0]}, retry[1:]
		}
		r := s.attempt(&group, true)
		switch {
		case r.failed < 0 && r.err == nil: // committed
			for _, w := range group {
				w.finish()
			}
			group = nil
		case r.failed < 0 && !r.rerun:
			// Nothing ran, or the commit's outcome is unknown: every
			// fn gets the error (running them again could repeat a
			// committed write).
			for _, w := range group {
				w.err = r.err
				w.finish()
			}
			group = nil
		case r.dbFailed || r.failed < 0:
			// A statement failed: run each fn again on its own.
			alone = append(alone, group...)
			group = nil
		default:
			w := group[r.failed]
			group = slices.Delete(group, r.failed, r.failed+1)
			if r.failed == 0 {
				w.finish() // it failed on committed state: its error stands
			} else {
				retry = append(retry, w)
			}
		}
	}
}

// runAlone runs w in a transaction of its own, again after a serialisation
// failure or a deadlock, and finishes it.
func (s *Store) runAlone(w *write) {
	for n := 0; ; n++ {
		group := []*write{w}
		r := s.attempt(&group, false)
		if len(group) == 0 {
			return // its ctx ended first: finished with ctx's error
		}
		if r.err != nil {
			w.err = r.err
		}
		if r.failed < 0 && r.err == nil {
			w.err = nil
		}
		if r.dbErr == nil || !retryable(r.dbErr) || n == maxRetries || w.ctx.Err() != nil {
			w.finish()
			return
		}
		s.log.Debug("store update: retrying after a conflict", "attempt", n+1, "err", r.dbErr)
	}
}

// attemptResult is how one transaction of a group ended.
type attemptResult struct {
	failed   int   // index in the group of the fn that failed, or -1
	dbFailed bool  // that fn failed on a database error: the transaction is aborted
	dbErr    error // the database error that ended the attempt, if any
	err      error // the failure not of a fn (begin, lock, commit); nil when committed or a fn failed
	rerun    bool  // with err: the fns may run again (nothing was committed)
}

// attempt runs the fns of *group, one after another, in one transaction
// and commits it. With takeIn, writes queued meanwhile join the group. A
// write whose ctx is done before its fn starts is finished with ctx's error
// and leaves the group.
func (s *Store) attempt(group *[]*write, takeIn bool) (r attemptResult) {
	r.failed = -1
	g := *group
	gctx, cancel := context.WithTimeout(context.WithoutCancel(g[0].ctx), groupTimeout)
	defer cancel()
	bctx := gctx // begin: a write alone may give up waiting for the lock
	if len(g) == 1 {
		var cancel context.CancelFunc
		bctx, cancel = context.WithTimeout(g[0].ctx, groupTimeout)
		defer cancel()
	}
	conn, err := s.pool.Acquire(bctx)
	if err != nil {
		r.err = fmt.Errorf("store update: begin: %w", classify(err))
		return r
	}
	finished := false
	defer func() {
		if !finished {
			// Rolled back; a connection left inside a transaction is
			// closed by the pool on release.
			rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, _ = conn.Exec(rctx, `ROLLBACK`)
			cancel()
		}
		conn.Release()
	}()
	b := &pgx.Batch{}
	b.Queue(`BEGIN ISOLATION LEVEL READ COMMITTED`)
	b.Queue(`SELECT pg_advisory_xact_lock($1)`, writerLock)
	if err := conn.SendBatch(bctx, b).Close(); err != nil {
		r.err = fmt.Errorf("store update: begin and take the writer lock: %w", classify(err))
		return r
	}
	p := newPipe(conn.Conn())
	for i := 0; ; {
		if i == len(g) {
			if takeIn {
				g = s.take(g)
				*group = g
			}
			if i == len(g) {
				break
			}
		}
		w := g[i]
		w.err, w.panicVal = nil, nil // from a run that was rolled back
		if err := w.ctx.Err(); err != nil {
			w.err = fmt.Errorf("store update: %w", err)
			w.finish()
			g = slices.Delete(g, i, i+1)
			*group = g
			continue
		}
		if err := p.prefetchJobs(w.ctx, g[i:]); err != nil {
			// Not the fn's doing, but the transaction is aborted: run
			// each again on its own.
			r.failed, r.dbErr, r.dbFailed = i, err, true
			w.err = fmt.Errorf("store update: read jobs ahead: %w", classify(err))
			return r
		}
		t := &tx{ctx: w.ctx, q: p, p: p, writable: true}
		if w.err = s.call(w, t); w.err != nil {
			r.failed = i
			r.dbErr = t.dbErr
			r.dbFailed = t.dbErr != nil || p.broken
			return r
		}
		i++
	}
	if len(g) == 0 {
		return r // nothing to commit; rolled back
	}
	unknown, err := p.commit(gctx)
	finished = unknown || err == nil
	if err == nil {
		s.commits.Add(1)
	} else {
		r.dbErr = err
		r.err = fmt.Errorf("store update: commit: %w", classify(err))
		r.rerun = !unknown
		r.dbFailed = !unknown
	}
	return r
}

// call runs w.fn in t, turning a panic into an error (recorded in w, to be
// re-raised in w's caller) so that the rest of the group goes on.
func (s *Store) call(w *write, t *tx) (err error) {
	defer func() {
		t.done = true
		if r := recover(); r != nil {
			s.log.Error("store update: fn panicked; its writes are rolled back and the panic is raised in its caller", "panic", r, "stack", string(debug.Stack()))
			w.panicVal = r
			err = fmt.Errorf("store update: fn panicked: %v", r)
		}
	}()
	return w.fn(t)
}
