package store

import (
	"time"

	bolt "go.etcd.io/bbolt"
)

// QueueLen returns how many writes wait for the next group commit.
func QueueLen(s *Store) int {
	return s.writes.Len()
}

// LaterLen returns how many UpdateLater writes wait to join a group.
func LaterLen(s *Store) int { return s.writes.LaterLen() }

// SetLaterWait sets how long UpdateLater waits for a group to join.
func SetLaterWait(s *Store, d time.Duration) { s.laterWait = d }

// Commits returns how many group transactions s has committed.
func Commits(s *Store) uint64 { return s.commits.Load() }

// Closed reports whether Close was called on s.
func Closed(s *Store) bool {
	return s.writes.Closed()
}

// SetFlushAt sets how many pending index entries, and how many record
// journal entries, a group commit may leave (0: every commit flushes and
// applies them).
func SetFlushAt(s *Store, n uint64) { s.flushAt, s.journalFlushAt = n, n }

// PendingIndexEntries returns how many index entries are pending.
func PendingIndexEntries(s *Store) uint64 {
	var n uint64
	s.db.View(func(btx *bolt.Tx) error { n = pendingCount(btx); return nil })
	return n
}

// PagesWritten returns how many pages s's committed write transactions
// have written (bbolt's cumulative transaction stats).
func PagesWritten(s *Store) int64 {
	st := s.db.Stats().TxStats
	return st.GetWrite()
}

// JournalEntries returns how many entries the record journal holds.
func JournalEntries(s *Store) int {
	n := 0
	s.db.View(func(btx *bolt.Tx) error {
		l, err := loadJournal(btx, nil)
		if l != nil {
			n = l.n
		}
		return err
	})
	return n
}

// ApplyJournal moves the record journal's entries into their buckets in
// btx, a raw bbolt transaction on a store file.
func ApplyJournal(btx *bolt.Tx) error {
	_, err := applyCommitted(btx, nil)
	return err
}

// JournalReader reads and writes the record journal of a raw bbolt file,
// with a cache of its own, as a Store does.
type JournalReader struct{ cache journalCache }

// NewJournalReader returns a JournalReader with an empty cache.
func NewJournalReader() *JournalReader { return &JournalReader{} }

// Put appends to the journal, in the write transaction btx, an entry
// setting request id to val.
func (r *JournalReader) Put(btx *bolt.Tx, id, val string) error {
	return appendEntry(btx, &r.cache, func(t *tx) error { return t.rput(jRequests, []byte(id), []byte(val)) })
}

// Get returns request id's stored value as btx's snapshot holds it.
func (r *JournalReader) Get(btx *bolt.Tx, id string) (string, error) {
	t := &tx{tx: btx, jcache: &r.cache}
	v, err := t.rget(jRequests, []byte(id))
	return string(v), err
}
