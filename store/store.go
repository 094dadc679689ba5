// Package store is the bbolt implementation of symbot.Store: requests with
// indexes by requester, by state and by deadline; durable jobs with a due
// index and lanes; the hash-chained audit log; and the identity cache, all
// in one file that a single symbot process holds exclusively.
//
// Records are JSON; index keys use big-endian fixed-width encodings so that
// cursor order is time (or sequence) order.
package store

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/symbot/symbot"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// SchemaVersion is the layout version this code reads and writes. It is
// recorded in the meta bucket when a store is created; a store with a newer
// version is refused rather than misread.
const SchemaVersion = 1

// Options configure Open. The zero value (or nil) is fine.
type Options struct {
	// Timeout is how long Open waits for the file lock held by another
	// process; default 1s.
	Timeout time.Duration
	// Logger receives operational messages; default discards them.
	Logger *slog.Logger
	// NoSync skips fsync after each commit. Only for benchmarks and tests:
	// a crash can lose or corrupt committed data.
	NoSync bool
}

// Store is a symbot.Store in a bbolt file.
type Store struct {
	db   *bolt.DB
	path string
	log  *slog.Logger

	// Group commit (see Update). mu guards the fields below it.
	mu     sync.Mutex
	idle   sync.Cond // broadcast when busy becomes false
	busy   bool      // a leader is running a group
	closed bool      // Close was called: no new writes
	queue  []*write  // writes waiting for the next group

	commits atomic.Uint64 // group transactions committed (for tests)
}

var _ symbot.Store = (*Store)(nil)

// LockedError is returned by Open when another process holds the store. It
// wraps symbot.ErrStoreLocked.
type LockedError struct{ Path string }

func (e *LockedError) Error() string {
	return fmt.Sprintf("store %s is locked by another process (is another symbot running?)", e.Path)
}

func (e *LockedError) Unwrap() error { return symbot.ErrStoreLocked }

// SchemaError is returned by Open for a store written by a newer symbot. It
// wraps symbot.ErrSchemaTooNew.
type SchemaError struct {
	Path      string
	Found     uint64
	Supported uint64
}

func (e *SchemaError) Error() string {
	return fmt.Sprintf("store %s has schema version %d but this symbot supports only up to %d: upgrade symbot to open it", e.Path, e.Found, e.Supported)
}

func (e *SchemaError) Unwrap() error { return symbot.ErrSchemaTooNew }

// Open opens (creating if needed, with mode 0600) the store at path.
//
// A bbolt file is held exclusively by one process, so nothing else can be
// running the jobs in it: Open clears every job lease left by a previous
// process (one that crashed or was killed mid-job), which makes a restart
// re-run in-flight jobs at once instead of waiting for their leases to end.
// Jobs are idempotent, so re-running one is safe.
//
// Open fails with an error wrapping symbot.ErrStoreLocked (a *LockedError)
// when another process holds the file for longer than opts.Timeout, and with
// one wrapping symbot.ErrSchemaTooNew (a *SchemaError) when the file was
// written by a newer symbot; such a file is not modified.
func Open(path string, opts *Options) (*Store, error) {
	if path == "" {
		return nil, errors.New("open store: empty path: set the store file path")
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Timeout <= 0 {
		o.Timeout = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: o.Timeout, NoSync: o.NoSync, FreelistType: bolt.FreelistMapType})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, &LockedError{Path: path}
		}
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	s := &Store{db: db, path: path, log: o.Logger}
	s.idle.L = &s.mu
	if err := s.init(); err != nil {
		db.Close()
		return nil, err
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		s.log.Warn("store file is readable by other users; chmod 600 it", "path", path, "mode", fi.Mode().Perm().String())
	}
	return s, nil
}

// init checks the schema (read-only first, so a newer file is never
// touched), creates the buckets of a new store and clears stale leases. It
// writes only when there is something to do, so opening a healthy store
// costs no commit.
func (s *Store) init() error {
	fresh, write := false, false
	err := s.db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			empty := true
			tx.ForEach(func([]byte, *bolt.Bucket) error { empty = false; return nil })
			if !empty {
				return fmt.Errorf("open store %s: the file is a bbolt database but not a symbot store (no meta bucket): check the path", s.path)
			}
			fresh, write = true, true
			return nil
		}
		v := meta.Get(keySchema)
		if len(v) != 8 {
			return fmt.Errorf("open store %s: schema version missing or malformed (%d bytes): the file is damaged; restore it from a backup", s.path, len(v))
		}
		if got := binary.BigEndian.Uint64(v); got != SchemaVersion {
			if got > SchemaVersion {
				return &SchemaError{Path: s.path, Found: got, Supported: SchemaVersion}
			}
			return fmt.Errorf("open store %s: unknown schema version %d (this symbot writes %d): the file is damaged; restore it from a backup", s.path, got, SchemaVersion)
		}
		for _, name := range allBuckets {
			if tx.Bucket(name) == nil {
				write = true
				return nil
			}
		}
		leased, err := leasedJobs(tx)
		if err != nil {
			return fmt.Errorf("open store %s: %w", s.path, err)
		}
		stale, err := failingIndexStale(tx)
		if err != nil {
			return fmt.Errorf("open store %s: %w", s.path, err)
		}
		write = len(leased) > 0 || stale
		return nil
	})
	if err != nil {
		return err
	}
	if !write {
		return nil
	}
	var cleared int
	err = s.db.Update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		if fresh {
			if err := tx.Bucket(bucketMeta).Put(keySchema, u64(SchemaVersion)); err != nil {
				return fmt.Errorf("record schema version: %w", err)
			}
		}
		if err := rebuildFailingIndex(tx); err != nil {
			return err
		}
		n, err := clearLeases(tx)
		cleared = n
		return err
	})
	if err != nil {
		return fmt.Errorf("open store %s: %w", s.path, err)
	}
	if fresh {
		s.log.Info("created store", "path", s.path, "schema", SchemaVersion)
	}
	if cleared > 0 {
		s.log.Info("cleared job leases left by a previous process; those jobs run again now", "path", s.path, "jobs", cleared)
	}
	return nil
}

// leasedJobs returns the jobs that carry a lease.
func leasedJobs(btx *bolt.Tx) ([]*symbot.Job, error) {
	var leased []*symbot.Job
	err := btx.Bucket(bucketJobs).ForEach(func(k, v []byte) error {
		var j symbot.Job
		if err := json.Unmarshal(v, &j); err != nil {
			return fmt.Errorf("job %d: decode: %w", binary.BigEndian.Uint64(k), err)
		}
		if j.LeaseOwner != "" || !j.LeaseUntil.IsZero() {
			leased = append(leased, &j)
		}
		return nil
	})
	return leased, err
}

// failingIndexStale reports whether the failing-revocations index differs
// from the jobs: a store from before the index, or one written since by an
// older symbot that did not keep it.
func failingIndexStale(btx *bolt.Tx) (bool, error) {
	idx := btx.Bucket(bucketJobFailing)
	if idx == nil {
		return true, nil
	}
	n := 0
	stale := false
	err := btx.Bucket(bucketJobs).ForEach(func(k, v []byte) error {
		var j symbot.Job
		if err := json.Unmarshal(v, &j); err != nil {
			return fmt.Errorf("job %d: decode: %w", binary.BigEndian.Uint64(k), err)
		}
		if failingRevoke(&j) {
			n++
			stale = stale || idx.Get(k) == nil
		}
		return nil
	})
	return stale || n != countKeys(idx), err
}

// rebuildFailingIndex rewrites the failing-revocations index from the jobs
// when it is stale.
func rebuildFailingIndex(btx *bolt.Tx) error {
	stale, err := failingIndexStale(btx)
	if err != nil || !stale {
		return err
	}
	if err := btx.DeleteBucket(bucketJobFailing); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
		return fmt.Errorf("rebuild job index: %w", err)
	}
	idx, err := btx.CreateBucket(bucketJobFailing)
	if err != nil {
		return fmt.Errorf("rebuild job index: %w", err)
	}
	return btx.Bucket(bucketJobs).ForEach(func(k, v []byte) error {
		var j symbot.Job
		if err := json.Unmarshal(v, &j); err != nil {
			return fmt.Errorf("job %d: decode: %w", binary.BigEndian.Uint64(k), err)
		}
		if !failingRevoke(&j) {
			return nil
		}
		return idx.Put(k, nil)
	})
}

// clearLeases removes every job lease and re-keys the due index.
func clearLeases(btx *bolt.Tx) (int, error) {
	leased, err := leasedJobs(btx)
	if err != nil {
		return 0, err
	}
	t := &tx{tx: btx}
	for _, j := range leased {
		j.LeaseOwner, j.LeaseUntil = "", time.Time{}
		if err := t.UpdateJob(j); err != nil {
			return 0, err
		}
	}
	return len(leased), nil
}

// Path returns the file the store was opened from.
func (s *Store) Path() string { return s.path }

// Close closes the file and releases the lock. Updates already queued are
// committed first; Update and ClaimJobs called after Close fail with an
// error wrapping bbolt's ErrDatabaseNotOpen.
func (s *Store) Close() error {
	s.mu.Lock()
	s.closed = true
	for s.busy {
		s.idle.Wait()
	}
	s.mu.Unlock()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close store %s: %w", s.path, err)
	}
	return nil
}

// Update runs fn in a read-write transaction and returns once that
// transaction is committed (durably, unless Options.NoSync); if fn returns
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
	return s.db.View(func(btx *bolt.Tx) error {
		t := &tx{tx: btx}
		defer func() { t.done = true }()
		return fn(t)
	})
}

// ClaimJobs atomically leases up to max jobs that are due at now, in ID
// order, honouring lanes. It walks the due index only as far as now.
func (s *Store) ClaimJobs(ctx context.Context, owner string, now time.Time, lease time.Duration, max int) ([]symbot.Job, error) {
	if owner == "" {
		return nil, errors.New("claim jobs: empty owner")
	}
	if lease <= 0 {
		return nil, fmt.Errorf("claim jobs: lease %v must be positive", lease)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("claim jobs: %w", err)
	}
	if max <= 0 {
		return nil, nil
	}
	var out []symbot.Job
	err := s.update(ctx, "claim jobs", func(t *tx) error {
		out = nil // a group commit may run this again
		btx := t.tx
		// Every due job is a candidate so that the lowest ids win, as the
		// contract says; the walk stops at now, so it is bounded by the
		// backlog, not by the number of jobs. Lane heads are looked up
		// only for candidates in id order, until max are found.
		type cand struct {
			id   uint64
			lane []byte // valid for the transaction
		}
		var cands []cand
		limit := timeBits(now)
		c := btx.Bucket(bucketJobDue).Cursor()
		for k, lane := c.First(); k != nil; k, lane = c.Next() {
			if binary.BigEndian.Uint64(k[:8]) > limit {
				break
			}
			cands = append(cands, cand{binary.BigEndian.Uint64(k[8:]), lane})
		}
		slices.SortFunc(cands, func(a, b cand) int { return cmp.Compare(a.id, b.id) })
		var ids []uint64
		for _, c := range cands {
			if len(ids) == max {
				break
			}
			if len(c.lane) > 0 && !t.laneHead(string(c.lane), c.id) {
				continue
			}
			ids = append(ids, c.id)
		}
		for _, id := range ids {
			j, err := t.Job(id)
			if err != nil {
				return fmt.Errorf("claim jobs: %w", err)
			}
			j.LeaseOwner = owner
			j.LeaseUntil = now.Add(lease)
			j.LeaseToken++
			if err := t.UpdateJob(j); err != nil {
				return fmt.Errorf("claim jobs: %w", err)
			}
			out = append(out, *j)
		}
		return nil
	})
	if err != nil {
		return nil, err // prefixed "claim jobs: " by update or above
	}
	return out, nil
}

// NextJobTime returns when the earliest claimable job becomes due; jobs
// blocked behind a lower job of their lane are skipped (the lane head's
// time counts).
func (s *Store) NextJobTime(ctx context.Context) (time.Time, bool, error) {
	if err := ctx.Err(); err != nil {
		return time.Time{}, false, fmt.Errorf("next job time: %w", err)
	}
	var (
		at time.Time
		ok bool
	)
	err := s.db.View(func(btx *bolt.Tx) error {
		t := &tx{tx: btx}
		c := btx.Bucket(bucketJobDue).Cursor()
		for k, lane := c.First(); k != nil; k, lane = c.Next() {
			if len(lane) > 0 && !t.laneHead(string(lane), binary.BigEndian.Uint64(k[8:])) {
				continue
			}
			at, ok = bitsTime(binary.BigEndian.Uint64(k[:8])), true
			return nil
		}
		return nil
	})
	if err != nil {
		return time.Time{}, false, fmt.Errorf("next job time: %w", err)
	}
	return at, ok, nil
}

// Backup writes a consistent copy of the store file to w from a read
// transaction, without blocking writers. The copy opens with Open.
func (s *Store) Backup(ctx context.Context, w io.Writer) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("store backup: %w", err)
	}
	var n int64
	err := s.db.View(func(btx *bolt.Tx) error {
		var err error
		n, err = btx.WriteTo(w)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("store backup: %w", err)
	}
	return n, nil
}

// Stats counts what the store holds, for admin commands.
type Stats struct {
	Requests     int
	ByState      map[symbot.State]int
	Scheduled    int // requests with a deadline
	Jobs         int
	AuditEntries uint64
	Identities   int
	FileBytes    int64
}

// Stats counts the store's records in one read transaction.
func (s *Store) Stats(ctx context.Context) (Stats, error) {
	if err := ctx.Err(); err != nil {
		return Stats{}, fmt.Errorf("store stats: %w", err)
	}
	st := Stats{ByState: map[symbot.State]int{}}
	err := s.db.View(func(btx *bolt.Tx) error {
		st.Requests = btx.Bucket(bucketRequests).Stats().KeyN
		st.Scheduled = btx.Bucket(bucketReqTime).Stats().KeyN
		st.Jobs = btx.Bucket(bucketJobs).Stats().KeyN
		st.Identities = btx.Bucket(bucketIdentity).Stats().KeyN
		st.FileBytes = btx.Size()
		seq, _ := auditHead(btx)
		st.AuditEntries = seq
		return btx.Bucket(bucketReqState).ForEach(func(k, _ []byte) error {
			if len(k) < 4 {
				return fmt.Errorf("malformed state index key %x", k)
			}
			n := int(binary.BigEndian.Uint32(k[:4]))
			if len(k) < 4+n {
				return fmt.Errorf("malformed state index key %x", k)
			}
			st.ByState[symbot.State(k[4:4+n])]++
			return nil
		})
	})
	if err != nil {
		return Stats{}, fmt.Errorf("store stats: %w", err)
	}
	return st, nil
}

// auditHead reads the recorded head of the audit chain.
func auditHead(btx *bolt.Tx) (uint64, string) {
	v := btx.Bucket(bucketMeta).Get(keyAuditHead)
	if len(v) < 8 {
		return 0, ""
	}
	return binary.BigEndian.Uint64(v[:8]), string(v[8:])
}

// tx implements symbot.Tx on a bbolt transaction.
type tx struct {
	tx   *bolt.Tx
	done bool

	// In a writable transaction, the index keys of the requests and jobs
	// this tx has decoded or written, as they are stored now, so that
	// PutRequest, UpdateJob and DeleteJob need not decode them again. The
	// records change only through this tx while it is in use.
	reqKeys map[string]map[string][]byte
	jobKeys map[uint64]map[string][]byte
}

// remember records in *m the stored index keys of the record id (keys
// nil: forgets them). Only a writable transaction keeps them.
func remember[K comparable](btx *bolt.Tx, m *map[K]map[string][]byte, id K, keys map[string][]byte) {
	if !btx.Writable() {
		return
	}
	if keys == nil {
		delete(*m, id)
		return
	}
	if *m == nil {
		*m = map[K]map[string][]byte{}
	}
	(*m)[id] = keys
}

func (t *tx) rememberReq(id string, keys map[string][]byte) { remember(t.tx, &t.reqKeys, id, keys) }
func (t *tx) rememberJob(id uint64, keys map[string][]byte) { remember(t.tx, &t.jobKeys, id, keys) }

var _ symbot.Tx = (*tx)(nil)

var errReadOnly = errors.New("write in a read-only transaction")

func (t *tx) check() error {
	if t.done {
		return errors.New("transaction already finished")
	}
	return nil
}

func (t *tx) checkWrite(op string) error {
	if err := t.check(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if !t.tx.Writable() {
		return fmt.Errorf("%s: %w", op, errReadOnly)
	}
	return nil
}

func (t *tx) b(name []byte) *bolt.Bucket { return t.tx.Bucket(name) }

func (t *tx) NextSeq(name string) (uint64, error) {
	if err := t.checkWrite("next sequence"); err != nil {
		return 0, err
	}
	if name == "" {
		return 0, errors.New("next sequence: empty counter name")
	}
	b := t.b(bucketSeq)
	var n uint64
	if v := b.Get([]byte(name)); len(v) == 8 {
		n = binary.BigEndian.Uint64(v)
	}
	n++
	if err := b.Put([]byte(name), u64(n)); err != nil {
		return 0, fmt.Errorf("next sequence %s: %w", name, err)
	}
	return n, nil
}

func (t *tx) Request(id string) (*symbot.Request, error) {
	if err := t.check(); err != nil {
		return nil, fmt.Errorf("get request: %w", err)
	}
	return t.request(id)
}

func (t *tx) request(id string) (*symbot.Request, error) {
	v := t.b(bucketRequests).Get([]byte(id))
	if v == nil {
		return nil, fmt.Errorf("request %q: %w", id, symbot.ErrNotFound)
	}
	var r symbot.Request
	if err := json.Unmarshal(v, &r); err != nil {
		return nil, fmt.Errorf("request %q: decode: %w", id, err)
	}
	t.rememberReq(id, reqIndexKeys(&r))
	return &r, nil
}

// reqIndexKeys returns the index keys of r, by bucket.
func reqIndexKeys(r *symbot.Request) map[string][]byte {
	id := []byte(r.ID)
	keys := map[string][]byte{
		string(bucketReqUser):  strKey(r.Requester.SlackID, id),
		string(bucketReqState): strKey(string(r.State), id),
	}
	if at, ok := r.Deadline(); ok {
		keys[string(bucketReqTime)] = timeKey(at, id)
	}
	return keys
}

func (t *tx) PutRequest(r *symbot.Request) error {
	if err := t.checkWrite("put request"); err != nil {
		return err
	}
	if r == nil || r.ID == "" {
		return errors.New("put request: request has no ID")
	}
	old, known := t.reqKeys[r.ID]
	if !known && t.b(bucketRequests).Get([]byte(r.ID)) != nil {
		o, err := t.request(r.ID)
		if err != nil {
			return fmt.Errorf("put request: %w", err)
		}
		old = reqIndexKeys(o)
	}
	v, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("put request %q: encode: %w", r.ID, err)
	}
	t.rememberReq(r.ID, nil)
	if err := t.b(bucketRequests).Put([]byte(r.ID), v); err != nil {
		return fmt.Errorf("put request %q: %w", r.ID, err)
	}
	keys := reqIndexKeys(r)
	if err := reindex(t.tx, old, keys, nil); err != nil {
		return fmt.Errorf("put request %q: %w", r.ID, err)
	}
	t.rememberReq(r.ID, keys)
	return nil
}

// reindex replaces the index keys old with new (both by bucket name).
// Keys present in both are kept; with vals nil they are not rewritten.
// Each new key gets the value vals[bucket] (nil: empty).
func reindex(btx *bolt.Tx, old, new, vals map[string][]byte) error {
	for name, k := range old {
		if bytes.Equal(new[name], k) {
			continue
		}
		if err := btx.Bucket([]byte(name)).Delete(k); err != nil {
			return fmt.Errorf("index %s: %w", name, err)
		}
	}
	for name, k := range new {
		if vals == nil && bytes.Equal(old[name], k) {
			continue
		}
		if err := btx.Bucket([]byte(name)).Put(k, vals[name]); err != nil {
			return fmt.Errorf("index %s: %w", name, err)
		}
	}
	return nil
}

// scan returns the requests whose ids follow prefix in the index bucket.
func (t *tx) scan(bucket []byte, prefix []byte) ([]*symbot.Request, error) {
	var out []*symbot.Request
	c := t.b(bucket).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		r, err := t.request(string(k[len(prefix):]))
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func (t *tx) RequestsByRequester(slackID string) ([]*symbot.Request, error) {
	if err := t.check(); err != nil {
		return nil, fmt.Errorf("requests by requester: %w", err)
	}
	rs, err := t.scan(bucketReqUser, strPrefix(slackID))
	if err != nil {
		return nil, fmt.Errorf("requests by requester %s: %w", slackID, err)
	}
	return rs, nil
}

func (t *tx) RequestsByState(s symbot.State) ([]*symbot.Request, error) {
	if err := t.check(); err != nil {
		return nil, fmt.Errorf("requests by state: %w", err)
	}
	rs, err := t.scan(bucketReqState, strPrefix(string(s)))
	if err != nil {
		return nil, fmt.Errorf("requests by state %s: %w", s, err)
	}
	return rs, nil
}

func (t *tx) NextDeadline() (string, time.Time, bool, error) {
	if err := t.check(); err != nil {
		return "", time.Time{}, false, fmt.Errorf("next deadline: %w", err)
	}
	k, _ := t.b(bucketReqTime).Cursor().First()
	if k == nil {
		return "", time.Time{}, false, nil
	}
	return string(k[8:]), bitsTime(binary.BigEndian.Uint64(k[:8])), true, nil
}

func (t *tx) DueRequests(now time.Time, limit int) ([]string, error) {
	if err := t.check(); err != nil {
		return nil, fmt.Errorf("due requests: %w", err)
	}
	var ids []string
	end := timeBits(now)
	c := t.b(bucketReqTime).Cursor()
	for k, _ := c.First(); k != nil && (limit <= 0 || len(ids) < limit); k, _ = c.Next() {
		if binary.BigEndian.Uint64(k[:8]) > end {
			break
		}
		ids = append(ids, string(k[8:]))
	}
	return ids, nil
}

// jobIndexKeys returns the index keys of j by bucket, and their values.
func jobIndexKeys(j *symbot.Job) (keys, vals map[string][]byte) {
	id := u64(j.ID)
	keys = map[string][]byte{string(bucketJobDue): timeKey(j.ClaimableAt(), id)}
	vals = map[string][]byte{string(bucketJobDue): []byte(j.Lane)}
	if j.Lane != "" {
		keys[string(bucketJobLane)] = strKey(j.Lane, id)
	}
	if failingRevoke(j) {
		keys[string(bucketJobFailing)] = id
	}
	return keys, vals
}

// failingRevoke reports whether j is counted in JobStats.FailingRevokes.
func failingRevoke(j *symbot.Job) bool { return j.Kind == symbot.JobRevoke && j.Attempts > 0 }

// laneHead reports whether id is the lowest job id in lane.
func (t *tx) laneHead(lane string, id uint64) bool {
	prefix := strPrefix(lane)
	k, _ := t.b(bucketJobLane).Cursor().Seek(prefix)
	return k != nil && bytes.HasPrefix(k, prefix) && len(k) == len(prefix)+8 &&
		binary.BigEndian.Uint64(k[len(prefix):]) == id
}

func (t *tx) putJob(j *symbot.Job) error {
	v, err := json.Marshal(j)
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	return t.b(bucketJobs).Put(u64(j.ID), v)
}

func (t *tx) AddJob(j *symbot.Job) error {
	if err := t.checkWrite("add job"); err != nil {
		return err
	}
	if j == nil {
		return errors.New("add job: nil job")
	}
	if j.Kind == "" {
		return errors.New("add job: job has no kind")
	}
	id, err := t.b(bucketJobs).NextSequence()
	if err != nil {
		return fmt.Errorf("add job: %w", err)
	}
	j.ID = id
	if err := t.putJob(j); err != nil {
		return fmt.Errorf("add job %d: %w", id, err)
	}
	keys, vals := jobIndexKeys(j)
	if err := reindex(t.tx, nil, keys, vals); err != nil {
		return fmt.Errorf("add job %d: %w", id, err)
	}
	t.rememberJob(id, keys)
	return nil
}

func (t *tx) Job(id uint64) (*symbot.Job, error) {
	if err := t.check(); err != nil {
		return nil, fmt.Errorf("get job: %w", err)
	}
	v := t.b(bucketJobs).Get(u64(id))
	if v == nil {
		return nil, fmt.Errorf("job %d: %w", id, symbot.ErrNotFound)
	}
	var j symbot.Job
	if err := json.Unmarshal(v, &j); err != nil {
		return nil, fmt.Errorf("job %d: decode: %w", id, err)
	}
	if t.tx.Writable() {
		keys, _ := jobIndexKeys(&j)
		t.rememberJob(id, keys)
	}
	return &j, nil
}

// storedJobKeys returns the index keys of the stored job id, or an error
// wrapping symbot.ErrNotFound.
func (t *tx) storedJobKeys(id uint64) (map[string][]byte, error) {
	if keys, ok := t.jobKeys[id]; ok {
		return keys, nil
	}
	old, err := t.Job(id)
	if err != nil {
		return nil, err
	}
	keys, _ := jobIndexKeys(old)
	return keys, nil
}

func (t *tx) UpdateJob(j *symbot.Job) error {
	if err := t.checkWrite("update job"); err != nil {
		return err
	}
	if j == nil {
		return errors.New("update job: nil job")
	}
	oldKeys, err := t.storedJobKeys(j.ID)
	if err != nil {
		return fmt.Errorf("update job: %w", err)
	}
	t.rememberJob(j.ID, nil)
	if err := t.putJob(j); err != nil {
		return fmt.Errorf("update job %d: %w", j.ID, err)
	}
	keys, vals := jobIndexKeys(j)
	if err := reindex(t.tx, oldKeys, keys, vals); err != nil {
		return fmt.Errorf("update job %d: %w", j.ID, err)
	}
	t.rememberJob(j.ID, keys)
	return nil
}

func (t *tx) DeleteJob(id uint64) error {
	if err := t.checkWrite("delete job"); err != nil {
		return err
	}
	oldKeys, err := t.storedJobKeys(id)
	if err != nil {
		return fmt.Errorf("delete job: %w", err)
	}
	t.rememberJob(id, nil)
	if err := t.b(bucketJobs).Delete(u64(id)); err != nil {
		return fmt.Errorf("delete job %d: %w", id, err)
	}
	if err := reindex(t.tx, oldKeys, nil, nil); err != nil {
		return fmt.Errorf("delete job %d: %w", id, err)
	}
	return nil
}

// JobStats counts the keys of the jobs bucket (outstanding work only: done
// jobs are deleted) and of the failing-revocations index, without decoding
// a job. (Bucket.Stats would be cheaper but misses this transaction's own
// writes.)
func (t *tx) JobStats() (symbot.JobStats, error) {
	if err := t.check(); err != nil {
		return symbot.JobStats{}, fmt.Errorf("job stats: %w", err)
	}
	return symbot.JobStats{
		Pending:        countKeys(t.b(bucketJobs)),
		FailingRevokes: countKeys(t.b(bucketJobFailing)),
	}, nil
}

func countKeys(b *bolt.Bucket) int {
	n := 0
	c := b.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		n++
	}
	return n
}

func (t *tx) Jobs() ([]symbot.Job, error) {
	if err := t.check(); err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	var out []symbot.Job
	err := t.b(bucketJobs).ForEach(func(k, v []byte) error {
		var j symbot.Job
		if err := json.Unmarshal(v, &j); err != nil {
			return fmt.Errorf("job %d: decode: %w", binary.BigEndian.Uint64(k), err)
		}
		out = append(out, j)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	return out, nil
}

func (t *tx) AppendAudit(e *symbot.AuditEntry) error {
	if err := t.checkWrite("append audit"); err != nil {
		return err
	}
	if e == nil {
		return errors.New("append audit: nil entry")
	}
	seq, hash := auditHead(t.tx)
	if e.Seq != seq+1 || e.PrevHash != hash {
		return fmt.Errorf("append audit: entry %d does not extend the head %d: link it with symbot.AppendAudit", e.Seq, seq)
	}
	if e.Hash == "" {
		return fmt.Errorf("append audit %d: entry is not sealed", e.Seq)
	}
	v, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("append audit: encode: %w", err)
	}
	if err := t.b(bucketAudit).Put(u64(e.Seq), v); err != nil {
		return fmt.Errorf("append audit %d: %w", e.Seq, err)
	}
	head := append(u64(e.Seq), e.Hash...)
	if err := t.b(bucketMeta).Put(keyAuditHead, head); err != nil {
		return fmt.Errorf("append audit %d: record head: %w", e.Seq, err)
	}
	return nil
}

// Audit returns the stored entries as they are on disk (their recorded
// Seq, not the key's), so symbot.VerifyAudit sees moved entries.
func (t *tx) Audit(after uint64, limit int) ([]symbot.AuditEntry, error) {
	if err := t.check(); err != nil {
		return nil, fmt.Errorf("read audit: %w", err)
	}
	if limit < 1 {
		return nil, fmt.Errorf("read audit: page size %d: want at least 1: %w", limit, symbot.ErrInvalidRequest)
	}
	var out []symbot.AuditEntry
	c := t.b(bucketAudit).Cursor()
	for k, v := c.Seek(u64(after + 1)); k != nil && len(out) < limit; k, v = c.Next() {
		var e symbot.AuditEntry
		if err := json.Unmarshal(v, &e); err != nil {
			return nil, fmt.Errorf("read audit: entry %d is damaged (%v): the audit log was altered; restore it from a backup", binary.BigEndian.Uint64(k), err)
		}
		out = append(out, e)
	}
	return out, nil
}

func (t *tx) AuditHead() (uint64, string, error) {
	if err := t.check(); err != nil {
		return 0, "", fmt.Errorf("audit head: %w", err)
	}
	seq, hash := auditHead(t.tx)
	return seq, hash, nil
}

func (t *tx) SinkCursor(sink string) (uint64, error) {
	if err := t.check(); err != nil {
		return 0, fmt.Errorf("sink cursor: %w", err)
	}
	v := t.b(bucketSinkCursor).Get([]byte(sink))
	if v == nil {
		return 0, nil
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("sink cursor %s: malformed (%d bytes)", sink, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

func (t *tx) SetSinkCursor(sink string, seq uint64) error {
	if err := t.checkWrite("set sink cursor"); err != nil {
		return err
	}
	if sink == "" {
		return errors.New("set sink cursor: empty sink name")
	}
	cur, err := t.SinkCursor(sink)
	if err != nil {
		return err
	}
	if seq <= cur {
		return nil
	}
	if err := t.b(bucketSinkCursor).Put([]byte(sink), u64(seq)); err != nil {
		return fmt.Errorf("set sink cursor %s: %w", sink, err)
	}
	return nil
}

func (t *tx) Identity(slackID string) (symbot.Identity, bool, error) {
	if err := t.check(); err != nil {
		return symbot.Identity{}, false, fmt.Errorf("get identity: %w", err)
	}
	v := t.b(bucketIdentity).Get([]byte(slackID))
	if v == nil {
		return symbot.Identity{}, false, nil
	}
	var id symbot.Identity
	if err := json.Unmarshal(v, &id); err != nil {
		return symbot.Identity{}, false, fmt.Errorf("identity %s: decode: %w", slackID, err)
	}
	return id, true, nil
}

func (t *tx) PutIdentity(id symbot.Identity) error {
	if err := t.checkWrite("put identity"); err != nil {
		return err
	}
	if id.SlackID == "" {
		return errors.New("put identity: identity has no SlackID")
	}
	v, err := json.Marshal(id)
	if err != nil {
		return fmt.Errorf("put identity %s: encode: %w", id.SlackID, err)
	}
	if err := t.b(bucketIdentity).Put([]byte(id.SlackID), v); err != nil {
		return fmt.Errorf("put identity %s: %w", id.SlackID, err)
	}
	return nil
}

var _ symbot.RecordTx = (*tx)(nil)

// Record returns a copy of the named record.
func (t *tx) Record(name string) ([]byte, bool, error) {
	if t.done {
		return nil, false, errors.New("get record: transaction already finished")
	}
	b := t.tx.Bucket(bucketRecords)
	if b == nil {
		return nil, false, nil // opened read-only before the bucket existed
	}
	v := b.Get([]byte(name))
	if v == nil {
		return nil, false, nil
	}
	return bytes.Clone(v), true, nil
}

// PutRecord stores (or, with a nil value, deletes) the named record.
func (t *tx) PutRecord(name string, value []byte) error {
	if err := t.checkWrite("put record"); err != nil {
		return err
	}
	if name == "" {
		return errors.New("put record: empty name")
	}
	if value == nil {
		return t.b(bucketRecords).Delete([]byte(name))
	}
	if err := t.b(bucketRecords).Put([]byte(name), bytes.Clone(value)); err != nil {
		return fmt.Errorf("put record %s: %w", name, err)
	}
	return nil
}
