package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
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

// LockMembership takes a session advisory lock, held until unlock. If the
// process dies, its connections end and PostgreSQL releases the lock.
// A lock no session holds is taken on one of the Store's holder sessions
// (memLocks), with other locks and in a batch with them; a lock another
// session holds is waited for on a connection of its own, from a pool of
// its own so that lock holders, which go on to write through the main
// pool, can never use up the connections they wait for, and that
// connection then holds it. A key held by another caller of this process
// is waited for here first.
//
// When ctx ends during the wait, the wait is cancelled on the server (see
// lockConnConfig) before LockMembership returns, so a given-up waiter never
// takes the lock later: once the holder releases it, another replica can
// take it at once.
func (s *Store) LockMembership(ctx context.Context, key string) (func(), error) {
	if err := checkLockKey(key); err != nil {
		return nil, err
	}
	if _, err := s.memLocks.take(ctx, key, true); err != nil {
		return nil, fmt.Errorf("membership lock: %w", err)
	}
	unlock, err := s.memLocks.try(ctx, key)
	if err != nil {
		s.memLocks.give(key)
		return nil, lockError(ctx, err)
	}
	if unlock != nil {
		return unlock, nil
	}
	// Another session holds it: wait on a connection of its own.
	conn, err := s.locks.Acquire(ctx)
	if err != nil {
		s.memLocks.give(key)
		return nil, fmt.Errorf("membership lock: %w", classify(err))
	}
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1, hashtext($2))`, membershipLockSpace, key); err != nil {
		// The wait was cancelled or failed; the lock may even have been
		// taken just before the cancel landed.
		releaseLockConn(context.WithoutCancel(ctx), conn)
		s.memLocks.give(key)
		return nil, lockError(ctx, err)
	}
	return sync.OnceFunc(func() {
		unlockMembership(conn, key)
		s.memLocks.give(key)
	}), nil
}

// TryLockMembership takes the lock as LockMembership does if no session
// holds it and no other caller of this process does, without waiting; ok
// is false when it is held.
func (s *Store) TryLockMembership(ctx context.Context, key string) (unlock func(), ok bool, err error) {
	if err := checkLockKey(key); err != nil {
		return nil, false, err
	}
	if ok, err = s.memLocks.take(ctx, key, false); err != nil {
		return nil, false, fmt.Errorf("membership lock: %w", err)
	}
	if !ok {
		return nil, false, nil // held by another caller of this process
	}
	if unlock, err = s.memLocks.try(ctx, key); err != nil {
		s.memLocks.give(key)
		return nil, false, lockError(ctx, err)
	}
	if unlock == nil {
		s.memLocks.give(key)
		return nil, false, nil
	}
	return unlock, true, nil
}

// checkLockKey refuses a key that PostgreSQL cannot take as text (a NUL
// byte, or bytes that are not UTF-8). Sent in a holder's batch, such a key
// would fail the whole batch, and a failed batch costs the holder its
// session, and so the other callers' locks on it.
func checkLockKey(key string) error {
	if !utf8.ValidString(key) || strings.IndexByte(key, 0) >= 0 {
		return fmt.Errorf("membership lock: key %q is not UTF-8 text without NUL bytes", key)
	}
	return nil
}

// lockError is the error of a lock call that failed with err: ctx's own
// error when ctx ended (the server then answers "canceling statement due to
// user request"), so callers can tell a given-up wait by errors.Is.
func lockError(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("membership lock: %w (%v)", cerr, err)
	}
	return fmt.Errorf("membership lock: %w", classify(err))
}

// unlockMembership releases the membership lock key held by the session
// of conn, a connection of its own, and gives conn back.
func unlockMembership(conn *pgxpool.Conn, key string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_unlock($1, hashtext($2))`, membershipLockSpace, key); err != nil {
		dropLockConn(ctx, conn)
		return
	}
	conn.Release()
}

// lockCancelGrace is how long a lock call whose context ended waits for the
// server to confirm the cancelled wait before it closes the connection.
const lockCancelGrace = 5 * time.Second

// lockConnConfig sets up the pool of lock connections so that a lock wait
// whose context ends is cancelled on the server, not merely abandoned.
//
// pgx's default answer to an ended context is to close the socket. A
// backend waiting in pg_advisory_lock does not read its socket, so it would
// go on waiting for a client that is gone, be granted the lock when the
// holder releases it, and hold it until it notices the dead client: a try
// from another replica in that moment fails, and a removal there waits.
// Instead a cancel request is sent at once; the server aborts the wait and
// answers with an error, which the call reads (the backend has then left
// the wait queue). Only if that answer does not come within lockCancelGrace
// (the server is unreachable) is the socket closed; for that case
// client_connection_check_interval makes the server notice the vanished
// client while waiting, on PostgreSQL 14 and later.
func lockConnConfig(cfg *pgxpool.Config) {
	cfg.ConnConfig.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: c, DeadlineDelay: lockCancelGrace}
	}
	after := cfg.AfterConnect
	cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		if after != nil {
			if err := after(ctx, c); err != nil {
				return err
			}
		}
		_, err := c.Exec(ctx, `SET client_connection_check_interval = '1s'`)
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "42704" { // undefined_object: before PostgreSQL 14
			return nil
		}
		return err
	}
}

// releaseLockConn gives back a lock connection whose call failed, with no
// lock held: it releases every advisory lock of the session, which holds
// only the one the call was about, and returns the connection to the pool.
// When the session cannot be reached, it is dropped instead.
func releaseLockConn(ctx context.Context, conn *pgxpool.Conn) {
	if conn.Conn().IsClosed() {
		dropLockConn(ctx, conn)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, lockCancelGrace)
	defer cancel()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_unlock_all()`); err != nil {
		dropLockConn(ctx, conn)
		return
	}
	conn.Release()
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
