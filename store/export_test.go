package store

import "time"

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
