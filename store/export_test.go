package store

// QueueLen returns how many writes wait for the next group commit.
func QueueLen(s *Store) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue)
}

// Commits returns how many group transactions s has committed.
func Commits(s *Store) uint64 { return s.commits.Load() }

// Closed reports whether Close was called on s.
func Closed(s *Store) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}
