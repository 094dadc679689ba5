package postgres

// QueueLen returns how many writes wait for the next group commit.
func QueueLen(s *Store) int {
	return s.writes.Len()
}

// Commits returns how many read-write transactions s committed.
func Commits(s *Store) uint64 { return s.commits.Load() }
