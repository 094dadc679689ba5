package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/symbot/symbot"
)

// membershipLockSpace is the first key of the two-key advisory locks that
// guard memberships ("sy"); the second is the hash of the membership key.
// Two keys that hash alike only share a lock, which is safe.
const membershipLockSpace int32 = 0x7379

var (
	_ symbot.MembershipLocker    = (*Store)(nil)
	_ symbot.MembershipTryLocker = (*Store)(nil)
	_ symbot.Deduper             = (*Store)(nil)
)

// LockMembership takes a session advisory lock on a connection of its own
// pool, held until unlock. If the process dies, its connection ends and
// PostgreSQL releases the lock. Lock connections come from a separate pool
// so that lock holders, which go on to write through the main pool, can
// never use up the connections they wait for.
func (s *Store) LockMembership(ctx context.Context, key string) (func(), error) {
	conn, err := s.locks.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("membership lock: %w", classify(err))
	}
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1, hashtext($2))`, membershipLockSpace, key); err != nil {
		// The lock's state is unknown (the wait was cancelled).
		dropLockConn(context.WithoutCancel(ctx), conn)
		return nil, fmt.Errorf("membership lock: %w", classify(err))
	}
	return unlockMembership(conn, key), nil
}

// TryLockMembership takes the lock as LockMembership does if no session
// holds it, without waiting for it; ok is false when it is held.
func (s *Store) TryLockMembership(ctx context.Context, key string) (unlock func(), ok bool, err error) {
	conn, err := s.locks.Acquire(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("membership lock: %w", classify(err))
	}
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, hashtext($2))`, membershipLockSpace, key).Scan(&ok); err != nil {
		// The lock's state is unknown.
		dropLockConn(context.WithoutCancel(ctx), conn)
		return nil, false, fmt.Errorf("membership lock: %w", classify(err))
	}
	if !ok {
		conn.Release()
		return nil, false, nil
	}
	return unlockMembership(conn, key), true, nil
}

// unlockMembership returns the function that releases the membership lock
// key held by conn's session, and conn.
func unlockMembership(conn *pgxpool.Conn, key string) func() {
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := conn.Exec(ctx, `SELECT pg_advisory_unlock($1, hashtext($2))`, membershipLockSpace, key); err != nil {
			dropLockConn(ctx, conn)
			return
		}
		conn.Release()
	}
}

// dropLockConn closes the session of a lock connection whose locks are in
// doubt, which releases whatever it holds, and gives it back to the pool,
// which discards it.
func dropLockConn(ctx context.Context, conn *pgxpool.Conn) {
	_ = conn.Conn().Close(ctx)
	conn.Release()
}

// Seen reports whether key was marked and has not expired.
func (s *Store) Seen(ctx context.Context, key string, now time.Time) (bool, error) {
	var seen bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM dedup WHERE key = $1 AND expires > $2)`, key, clampNanos(now)).Scan(&seen)
	if err != nil {
		return false, fmt.Errorf("dedup: %w", classify(err))
	}
	return seen, nil
}

// Mark records key until now+ttl and reports whether it was new (not
// marked, or expired). Expired keys are swept now and then.
func (s *Store) Mark(ctx context.Context, key string, now time.Time, ttl time.Duration) (bool, error) {
	tag, err := s.pool.Exec(ctx, `INSERT INTO dedup (key, expires) VALUES ($1, $2)
		ON CONFLICT (key) DO UPDATE SET expires = EXCLUDED.expires WHERE dedup.expires <= $3`,
		key, clampNanos(now.Add(ttl)), clampNanos(now))
	if err != nil {
		return false, fmt.Errorf("dedup: %w", classify(err))
	}
	if s.marks.Add(1)%1000 == 0 {
		_, _ = s.pool.Exec(ctx, `DELETE FROM dedup WHERE expires <= $1`, clampNanos(now))
	}
	return tag.RowsAffected() == 1, nil
}
