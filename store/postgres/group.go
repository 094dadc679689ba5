// Group commit: concurrent Updates of one process share one PostgreSQL
// transaction, one turn of the writer lock and one durable commit.

package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/internal/groupcommit"
)

// maxGroup caps the fns in one group commit: it bounds the work re-run
// when one of them fails and how long a group holds the writer lock.
const maxGroup = 64

// groupTimeout bounds the statements a group sends on behalf of all its
// fns (begin, the writer lock, commit), which no single caller's context
// may cancel.
const groupTimeout = time.Minute

// write is one caller's fn waiting for, or in, a group commit.
type write = groupcommit.Write[symbot.Tx]

// Update runs fn in a read-write transaction and returns once it is
// committed; if fn returns an error (or panics) nothing fn wrote is kept,
// fn's error is returned unchanged (the panic is re-raised in the caller's
// goroutine), and other callers' updates are not affected. See the
// package comment for how writers of several replicas are ordered.
//
// Group commit, as in the bbolt store (internal/groupcommit): a call made
// while no write of this process is in flight runs at once in its own
// transaction; calls made while one runs queue up and the first of them
// then runs them all, one after another in one transaction (each fn seeing
// the writes of those before it), under one turn of the writer lock and
// with one commit. When a fn fails, the transaction is rolled back and the
// others run again; the failing fn's error stands only if it failed on
// committed state (first in its transaction), else it runs again on its
// own. When a statement fails (the database aborts the whole transaction
// then, and which fn caused it is not certain) each fn of the group runs
// again in a transaction of its own, where a serialisation failure or a
// deadlock makes it run again (at most maxRetries times). So fn may run
// more than once: it must read what it needs through the Tx and only write
// through it, and keep no effects of a run except in variables it resets
// at its start.
//
// A call whose ctx is done before its fn starts returns ctx's error
// (wrapped) without running fn. fn must not call Update: it would wait for
// its own group.
func (s *Store) Update(ctx context.Context, fn func(symbot.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store update: %w", err)
	}
	return s.writes.Do(ctx, "store update", fn)
}

// attempt runs the fns of *group, one after another, in one transaction
// and commits it (see groupcommit.Queue.Each). A failing statement aborts
// the whole transaction, so then it asks for each fn to run again alone,
// and for a retry when the failure was a conflict.
func (s *Store) attempt(group *[]*write, takeIn bool) (r groupcommit.Result) {
	r.Failed = -1
	var dbErr error // the database error that ended the attempt, if any
	defer func() {
		if dbErr != nil && retryable(dbErr) {
			r.Retry = dbErr
		}
	}()
	g := *group
	gctx, cancel := context.WithTimeout(context.WithoutCancel(g[0].Ctx), groupTimeout)
	defer cancel()
	bctx := gctx // begin: a write alone may give up waiting for the lock
	if len(g) == 1 {
		var cancel context.CancelFunc
		bctx, cancel = context.WithTimeout(g[0].Ctx, groupTimeout)
		defer cancel()
	}
	conn, err := s.pool.Acquire(bctx)
	if err != nil {
		r.Err = fmt.Errorf("begin: %w", classify(err))
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
	p := newPipe(conn.Conn())
	if locked, err := p.begin(bctx, g); err != nil {
		if !locked {
			r.Err = fmt.Errorf("begin and take the writer lock: %w", classify(err))
			return r
		}
		// No fn's doing, but the transaction is aborted: run each again
		// on its own.
		dbErr, r.Alone = err, true
		r.Err = fmt.Errorf("begin: %w", classify(err))
		return r
	}
	r.Failed = s.writes.Each(group, takeIn, func(g []*write, i int) error {
		w := g[i]
		if err := p.prefetchJobs(w.Ctx, g[i:]); err != nil {
			// Not the fn's doing, but the transaction is aborted: run
			// each again on its own.
			dbErr, r.Alone = err, true
			return fmt.Errorf("%s: read jobs ahead: %w", w.Op, classify(err))
		}
		t := &tx{ctx: w.Ctx, q: p, p: p, writable: true}
		defer func() { t.done = true }()
		if err := s.writes.Call(w, t); err != nil {
			dbErr = t.dbErr
			r.Alone = t.dbErr != nil || p.broken
			return err
		}
		return nil
	})
	if r.Failed >= 0 || len(*group) == 0 {
		return r // rolled back; nothing to commit when the group is empty
	}
	unknown, err := p.commit(gctx)
	finished = unknown || err == nil
	if err == nil {
		s.commits.Add(1)
	} else {
		dbErr = err
		r.Err = fmt.Errorf("commit: %w", classify(err))
		r.Alone = !unknown
	}
	return r
}
