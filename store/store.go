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
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/internal/groupcommit"
)

// SchemaVersion is the layout version this code reads and writes. It is
// recorded in the meta bucket when a store is created; a store with a newer
// version is refused rather than misread.
//
// Version 2 added the pending index entries (pending.go): a symbot that
// reads version 1 would miss the index entries not yet flushed. A version 1
// store is upgraded when it is opened read-write (the pending bucket is
// created and the version recorded); read-only, it reads as it is.
//
// Version 3 added the record journal (journal.go): a symbot that reads
// version 2 would miss the requests, audit entries and identity bindings
// not yet applied. Versions 1 and 2 are upgraded the same way (the journal
// bucket is created).
const SchemaVersion = 3

// schemaUpgradable is the oldest version Open upgrades.
const schemaUpgradable = 1

// Config configures Open; its zero value is fine (defaults apply).
type Config struct {
	// Timeout is how long Open waits for the file lock held by another
	// process; default 1s.
	Timeout time.Duration
	// Logger receives operational messages; default discards them.
	Logger *slog.Logger
	// NoSync skips fsync after each commit. Only for benchmarks and tests:
	// a crash can lose or corrupt committed data.
	NoSync bool
	// ReadOnly opens an existing store for reading only (the offline admin
	// commands): it takes a shared lock, so it waits (up to Timeout) for,
	// and then fails with a *LockedError against, a process holding the
	// store for writing, and never writes, not even the repairs a
	// read-write Open makes. Update and ClaimJobs fail.
	ReadOnly bool
}

// Store is a symbot.Store in a bbolt file.
type Store struct {
	db   *bolt.DB
	path string
	log  *slog.Logger

	writes *groupcommit.Queue[*tx] // group commit (see Update)
	// laterWait bounds an UpdateLater's wait for a group to join.
	laterWait time.Duration

	commits atomic.Uint64 // group transactions committed (for tests)

	// flushAt is how many pending index entries a group commit may leave
	// (see pending.go); it flushes them all when it would leave more.
	flushAt uint64
	// journalFlushAt is how many entries the record journal may hold
	// after a group commit (see journal.go); jcache holds its entries
	// decoded.
	journalFlushAt uint64
	jcache         journalCache
	// rcache holds requests decoded from, or encoded to, their stored
	// bytes (reqcache.go).
	rcache reqCache
	// jobs holds jobs decoded from, or encoded to, their stored bytes
	// (jobcache.go).
	jobs jobCache

	// unreadable, in a store opened read-only, says why its records cannot
	// be read as they are (a read-write Open would first repair them);
	// View fails with it. Backup still works.
	unreadable error
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
// when another process holds the file for longer than cfg.Timeout, and with
// one wrapping symbot.ErrSchemaTooNew (a *SchemaError) when the file was
// written by a newer symbot; such a file is not modified.
func Open(path string, cfg Config) (*Store, error) {
	if path == "" {
		return nil, errors.New("open store: empty path: set the store file path")
	}
	o := cfg
	if o.Timeout <= 0 {
		o.Timeout = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if err := CheckPath(path); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if o.ReadOnly {
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("open store read-only: %w", err)
		}
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: o.Timeout, NoSync: o.NoSync, FreelistType: bolt.FreelistMapType, ReadOnly: o.ReadOnly, InitialMmapSize: initialMmapSize()})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, &LockedError{Path: path}
		}
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	s := &Store{db: db, path: path, log: o.Logger}
	s.writes = groupcommit.New(maxGroup, s.attempt)
	s.laterWait = defaultLaterWait
	s.flushAt = defaultFlushAt
	s.journalFlushAt = defaultJournalFlushAt
	s.writes.Logger = o.Logger
	s.writes.ClosedErr = fmt.Errorf("store %s: %w", path, berrors.ErrDatabaseNotOpen)
	if err := s.init(o.ReadOnly); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// initialMmapSize is how much of the file bbolt maps at open. bbolt maps
// the file again when it grows past the mapping, and that waits for every
// read transaction to end: without room to grow, a long read (a backup or
// an export of a large store) held every write (grants, removals,
// approvals) until it ended. The mapping is address space, not memory: a
// gigabyte is nothing on a 64-bit system, and the file grows only as
// records are written. On Windows bbolt would grow the file itself to the
// mapping's size, and a 32-bit system lacks the address space, so there
// it maps as before.
func initialMmapSize() int {
	if runtime.GOOS == "windows" || strconv.IntSize < 64 {
		return 0
	}
	return 1 << 30
}

// ErrUnsafePath is wrapped by the errors of Open and CheckPath for a store
// file that other users may read, or that is reached through a symbolic
// link.
var ErrUnsafePath = errors.New("unsafe store file")

// CheckPath refuses a store path that is a symbolic link (whoever can
// change the link chooses which database symbot trusts) or a file that
// other users can read or write (it holds every request, identity binding
// and the audit chain). A missing file is fine: Open creates it with mode
// 0600. The error says how to fix it.
func CheckPath(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("check store file %s: %w", path, err)
	}
	if fi.Mode()&os.ModeSymlink != 0 {
		target, _ := filepath.EvalSymlinks(path)
		return fmt.Errorf("%s is a symbolic link (to %s): set store.path to the real file, or replace the link with the file itself: %w", path, target, ErrUnsafePath)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file (%s): point store.path at a file: %w", path, fi.Mode().Type(), ErrUnsafePath)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%s has mode %s, so other users can read it: run chmod 600 %s (as the user that runs symbot): %w", path, perm, path, ErrUnsafePath)
	}
	return nil
}

// init checks the schema (read-only first, so a newer file is never
// touched), creates the buckets of a new store, rebuilds stale indexes and
// clears stale leases. It writes only when there is something to do, so
// opening a healthy store costs no commit, and it reads each job once.
// With readOnly it only checks: a store that needs more than its leases
// cleared is marked unreadable instead of repaired.
func (s *Store) init(readOnly bool) error {
	var (
		fresh, missing bool // a new store; a bucket is missing (so is one of a new store)
		upgrade        bool // an older schema version, to record as SchemaVersion
		noPending      bool // the pending index bucket is missing (a version 1 store, or damage): made by a read-write open
		noJournal      bool // the record journal bucket is missing (a version 1 or 2 store, or damage): made by a read-write open
		work           openWork
	)
	err := s.db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			empty := true
			tx.ForEach(func([]byte, *bolt.Bucket) error { empty = false; return nil })
			if !empty {
				return fmt.Errorf("open store %s: the file is a bbolt database but not a symbot store (no meta bucket): check the path", s.path)
			}
			fresh, missing = true, true
			return nil
		}
		v := meta.Get(keySchema)
		if len(v) != 8 {
			return fmt.Errorf("open store %s: schema version missing or malformed (%d bytes): the file is damaged; restore it from a backup", s.path, len(v))
		}
		if got := binary.BigEndian.Uint64(v); got != SchemaVersion {
			switch {
			case got > SchemaVersion:
				return &SchemaError{Path: s.path, Found: got, Supported: SchemaVersion}
			case got < schemaUpgradable:
				return fmt.Errorf("open store %s: unknown schema version %d (this symbot writes %d): the file is damaged; restore it from a backup", s.path, got, SchemaVersion)
			}
			upgrade = true
		}
		// The pending bucket is missing in a version 1 store (or lost in a
		// damaged one): it reads as having no pending entries, and a
		// read-write open makes it.
		noPending = tx.Bucket(bucketPending) == nil
		noJournal = tx.Bucket(bucketJournal) == nil
		for _, name := range allBuckets {
			// A missing rank index is found stale by inspect, and rebuilt.
			// The journal, like the pending bucket, is missing in an
			// older store: it reads as empty, and a read-write open makes
			// it.
			if tx.Bucket(name) == nil && !bytes.Equal(name, bucketJobRank) && !bytes.Equal(name, bucketPending) && !bytes.Equal(name, bucketJournal) {
				missing = true
				return nil // inspected after the buckets are made
			}
		}
		var err error
		if work, err = inspect(tx); err != nil {
			return fmt.Errorf("open store %s: %w", s.path, err)
		}
		// Decoded once here: a damaged journal fails the open, not the
		// first read of one of its records.
		if _, err := loadJournal(tx, &s.jcache); err != nil {
			return fmt.Errorf("open store %s: %w", s.path, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if !missing && !upgrade && !noPending && !noJournal && work.none() {
		return nil
	}
	if readOnly {
		if fresh {
			return fmt.Errorf("open store %s read-only: the file is empty, not a symbot store: check the path", s.path)
		}
		// Leases left by a stopped daemon do not change what is read, nor
		// does the job rank index (missing in a file from before it, or
		// stale): it only orders job claims, which a read-only store never
		// makes. `symbot run` rebuilds it.
		if missing || work.failingStale || work.openStale {
			// (upgrade alone needs nothing: a version 1 store has no
			// pending entries to miss.)
			s.unreadable = fmt.Errorf("store %s was written by an older symbot and its indexes need rebuilding, which a read-only open cannot do: start `symbot run` with this version once (or read it with the symbot that wrote it); `symbot backup` still copies it", s.path)
		} else if work.rankStale {
			s.log.Debug("the job rank index is missing or stale; reads do not use it and `symbot run` rebuilds it", "path", s.path)
		}
		return nil
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		if fresh || upgrade {
			if err := tx.Bucket(bucketMeta).Put(keySchema, u64(SchemaVersion)); err != nil {
				return fmt.Errorf("record schema version: %w", err)
			}
		}
		if missing {
			var err error
			if work, err = inspect(tx); err != nil {
				return err
			}
		}
		return work.repair(tx)
	})
	if err != nil {
		return fmt.Errorf("open store %s: %w", s.path, err)
	}
	if fresh {
		s.log.Info("created store", "path", s.path, "schema", SchemaVersion)
	}
	if upgrade {
		s.log.Info("upgraded store schema; a symbot older than this one cannot open it now", "path", s.path, "schema", SchemaVersion)
	}
	if n := len(work.leased); n > 0 {
		s.log.Info("cleared job leases left by a previous process; those jobs run again now", "path", s.path, "jobs", n)
	}
	return nil
}

// errNothingToDo rolls back a transaction that found nothing to write.
var errNothingToDo = errors.New("nothing to do")

// Path returns the file the store was opened from.
func (s *Store) Path() string { return s.path }

// Close closes the file and releases the lock. Updates already queued are
// committed first; Update and ClaimJobs called after Close fail with an
// error wrapping bbolt's ErrDatabaseNotOpen.
//
// Close first applies the record journal (journal.go) in one commit, so
// that a store at rest holds its records in their buckets; if that fails
// the journal stays, and reads and applies as before after a reopen.
func (s *Store) Close() error {
	s.writes.Close()
	var applyErr error
	if !s.db.IsReadOnly() {
		applyErr = s.db.Update(func(btx *bolt.Tx) error {
			applied, err := applyCommitted(btx, &s.jcache)
			if err == nil && !applied {
				return errNothingToDo // no commit
			}
			return err
		})
		if errors.Is(applyErr, errNothingToDo) || errors.Is(applyErr, berrors.ErrDatabaseNotOpen) {
			applyErr = nil // an empty journal; a second Close
		}
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close store %s: %w", s.path, err)
	}
	if applyErr != nil {
		return fmt.Errorf("close store %s: apply the record journal: %w", s.path, applyErr)
	}
	return nil
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
	if s.unreadable != nil {
		return Stats{}, s.unreadable
	}
	st := Stats{ByState: map[symbot.State]int{}}
	err := s.db.View(func(btx *bolt.Tx) error {
		t := s.txOf(btx)
		var err error
		if st.Requests, err = t.rcount(jRequests); err != nil {
			return err
		}
		if st.Identities, err = t.rcount(jIdentity); err != nil {
			return err
		}
		st.Scheduled = t.idx(bucketReqTime).count()
		st.Jobs = btx.Bucket(bucketJobs).Stats().KeyN
		st.FileBytes = btx.Size()
		seq, _ := auditHead(btx)
		st.AuditEntries = seq
		c := t.idx(bucketReqState).cursor()
		for k, _ := c.first(); k != nil; k, _ = c.next() {
			if len(k) < 4 {
				return fmt.Errorf("malformed state index key %x", k)
			}
			n := int(binary.BigEndian.Uint32(k[:4]))
			if len(k) < 4+n {
				return fmt.Errorf("malformed state index key %x", k)
			}
			st.ByState[symbot.State(k[4:4+n])]++
		}
		return nil
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
