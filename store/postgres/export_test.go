package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// QueueLen returns how many writes wait for the next group commit.
func QueueLen(s *Store) int {
	return s.writes.Len()
}

// Commits returns how many read-write transactions s committed.
func Commits(s *Store) uint64 { return s.commits.Load() }

// MigrateTo applies the embedded migrations up to version the way migrate
// does (each step in its own transaction, recorded in symbot_migrations),
// so that a test can write rows of an older schema.
func MigrateTo(ctx context.Context, conn *pgx.Conn, version int) error {
	if _, err := conn.Exec(ctx, createMigrationsTable); err != nil {
		return err
	}
	for _, m := range Migrations() {
		if m.Version > version {
			break
		}
		if err := applyMigration(ctx, conn, m); err != nil {
			return fmt.Errorf("apply %s: %w", m.Name, err)
		}
	}
	return nil
}

// HeadOfLane is the SQL condition that a job row j heads its lane.
const HeadOfLane = headOfLane

// LockHolders is how many sessions hold a store's uncontended membership
// locks.
const LockHolders = lockHolders

// LockBatches returns how many batches of membership lock operations s's
// holder sessions sent.
func LockBatches(s *Store) uint64 { return s.memLocks.batches.Load() }

// QueuedLockOps returns how many membership lock operations of s wait for
// a batch.
func QueuedLockOps(s *Store) int {
	n := 0
	for _, h := range s.memLocks.holders {
		h.mu.Lock()
		n += len(h.queue)
		h.mu.Unlock()
	}
	return n
}

// SetBeforeLockBatch makes s call f, with the number of its operations,
// before each batch of membership lock operations it sends. Call it before
// s takes any lock.
func SetBeforeLockBatch(s *Store, f func(ops int)) { s.memLocks.beforeBatch = f }

// OpenReadBatches returns how many statements s sent for ReadOpenRequests,
// and how many of those reads wait for the batch in flight.
func OpenReadBatches(s *Store) (sent, queued int) {
	s.opens.mu.Lock()
	defer s.opens.mu.Unlock()
	return s.opens.batches, len(s.opens.queue)
}
