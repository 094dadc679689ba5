// Writes: Update groups concurrent read-write transactions into one bbolt
// commit and re-runs the others when one fails; View runs a read-only
// transaction.

package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/internal/groupcommit"
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

// UpdateLater is Update for a write that no one waits on at once (a
// finished job's outcome, a look-up's record): it starts no commit of its
// own but joins, after their fns, the next group of Update calls, so it
// adds no commit and no fsync for an Update to wait behind. When no Update
// comes within 10 ms it commits on its own. It returns, as Update does,
// once its transaction is committed.
func (s *Store) UpdateLater(ctx context.Context, fn func(symbot.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store update: %w", err)
	}
	return s.writes.DoLater(ctx, "store update", func(t *tx) error { return fn(t) }, s.laterWait)
}

// defaultLaterWait bounds how long UpdateLater waits for an Update to
// share a commit with: under load Updates come every few milliseconds;
// an idle store commits a late write on its own this much later.
const defaultLaterWait = 10 * time.Millisecond

// maxGroup caps the fns in one group commit, which bounds the work re-run
// when one of them fails.
const maxGroup = 128

// errGroupFailed makes bbolt roll back a group after one fn failed.
var errGroupFailed = errors.New("a write in the group failed")

// write is one caller's fn waiting for, or in, a group commit.
type write = groupcommit.Write[*tx]

// update queues fn for the next group commit (see Update) and returns fn's
// outcome. op prefixes store errors.
func (s *Store) update(ctx context.Context, op string, fn func(*tx) error) error {
	return s.writes.Do(ctx, op, fn)
}

// attempt runs the writes of *group (and, with takeIn, those queued while
// its fns run) in one bbolt transaction: writes queued meanwhile would
// otherwise wait for this commit and then pay for one of their own, and a
// caller alone adds nothing. If a fn fails, bbolt rolls the transaction
// back.
func (s *Store) attempt(group *[]*write, takeIn bool) groupcommit.Result {
	failed := -1
	err := s.db.Update(func(btx *bolt.Tx) error {
		base, err := loadJournal(btx, &s.jcache)
		if err != nil {
			return err
		}
		j := &jview{base: base, ws: map[string]jop{}}
		failed = s.writes.Each(group, takeIn, func(g []*write, i int) error { return s.call(g[i], btx, j) })
		if failed >= 0 {
			return errGroupFailed
		}
		if err := commitJournal(btx, j, s.journalFlushAt); err != nil {
			return err
		}
		if pendingCount(btx) > s.flushAt {
			return flushPending(btx, s.log)
		}
		return nil
	})
	switch {
	case failed >= 0:
		return groupcommit.Result{Failed: failed}
	case err != nil:
		return groupcommit.Result{Failed: -1, Err: fmt.Errorf("write transaction: %w", err)}
	}
	s.commits.Add(1)
	return groupcommit.Result{Failed: -1}
}

// call runs w.fn in btx (see groupcommit.Queue.Call).
func (s *Store) call(w *write, btx *bolt.Tx, j *jview) error {
	t := s.txOf(btx)
	t.j = j
	defer func() { t.done = true }()
	return s.writes.Call(w, t)
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
		t := s.txOf(btx)
		defer func() { t.done = true }()
		return fn(t)
	})
}
