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

// SetFlushAt sets how many pending index entries a group commit may leave
// (0: every commit flushes them).
func SetFlushAt(s *Store, n uint64) { s.flushAt = n }

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
