package store

// QueueLen returns how many writes wait for the next group commit.
func QueueLen(s *Store) int {
	return s.writes.Len()
}

// Commits returns how many group transactions s has committed.
func Commits(s *Store) uint64 { return s.commits.Load() }

// Closed reports whether Close was called on s.
func Closed(s *Store) bool {
	return s.writes.Closed()
}
