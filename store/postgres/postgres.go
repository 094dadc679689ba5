// Package postgres is the PostgreSQL implementation of symbot.Store, for
// running several symbot replicas on one database.
//
// Concurrency model. Every Update runs in a READ COMMITTED transaction that
// first takes one transaction-scoped advisory lock (the writer lock), so
// read-write transactions of all replicas run one at a time, as they do in
// bbolt. That is a deliberate choice over SERIALIZABLE: nearly every write
// appends to the audit chain, whose head is a single row, so writers would
// serialise on it anyway, and under SERIALIZABLE they would do so by
// failing and re-running; with the lock taken first, each statement of fn
// sees every committed write, no write skew is possible, and fn runs again
// only after a deadlock or a serialisation failure reported by the server.
// Since every writer waits for the one before it to commit, a replica
// makes each turn of the lock count: its concurrent Updates share one
// transaction and one commit (group commit, group.go), and a transaction
// holds back the writes whose result nobody waits for and sends them in
// one pipeline with its next read or its COMMIT (pipe.go), so it pays a
// round trip per read, not per statement.
// Reads (View) run in REPEATABLE READ READ ONLY snapshots and take no lock.
// ClaimJobs does not take the writer lock: it leases due jobs with
// SELECT ... FOR UPDATE SKIP LOCKED, so replicas claiming at once get
// different jobs, and read-write transactions lock the job rows they read
// (SELECT ... FOR UPDATE), so a claim never interleaves with a change of
// the same job. Every claim bumps the job's lease token (a fencing token).
package postgres

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/symbot/symbot"
	"github.com/symbot/symbot/internal/groupcommit"
)

// ErrClosed is returned by every method after Close.
var ErrClosed = errors.New("store is closed")

var errReadOnly = errors.New("write in a read-only transaction")

// writerLock is the advisory lock key every read-write transaction takes
// ("symbot:writer").
const writerLock int64 = 0x73796d626f747772

// maxRetries bounds how often Update re-runs fn after a serialisation
// failure or deadlock reported by the server.
const maxRetries = 20

// Config configures Open; its zero value is fine (defaults apply).
type Config struct {
	// Logger receives operational messages; default discards them.
	Logger *slog.Logger
	// MaxConns caps the connection pool; default 10. Membership lock waits
	// have a pool of their own, of up to twice as many.
	MaxConns int32
	// MinConns is how many connections of the pool stay open while idle,
	// so that a burst of work after a quiet minute (a second in which many
	// grants expire) does not begin by opening them: each new session
	// costs the server a process and a cold catalog cache. Default
	// MaxConns/2; negative for none; none when ReadOnly. Each Store also
	// keeps 2 sessions for membership locks (memlocks.go). So 3 replicas
	// with the defaults keep 21 sessions open and open at most 90, under
	// PostgreSQL's default max_connections of 100.
	MinConns int32
	// NoMigrate refuses a database whose schema is not current instead of
	// migrating it.
	NoMigrate bool
	// ReadOnly opens the database for reading only (the offline admin
	// commands, safe beside running replicas): it implies NoMigrate, and
	// every session is read-only (default_transaction_read_only), so the
	// server refuses any write.
	ReadOnly bool
}

// Store is a symbot.Store on a PostgreSQL database.
type Store struct {
	pool  *pgxpool.Pool
	locks *pgxpool.Pool // membership locks: the holder sessions, and a connection per contended wait

	memLocks *memLocks // membership locks held (shared.go, memlocks.go)
	log      *slog.Logger
	marks    atomic.Int64 // dedup marks, to sweep expired ones now and then

	writes  *groupcommit.Queue[symbot.Tx] // group commit (group.go)
	commits atomic.Uint64
	opens   openReads // batches of ReadOpenRequests (read.go)
}

var _ symbot.Store = (*Store)(nil)

// Open connects to the database at url (a postgres:// URL or a key=value
// connection string) and brings its schema up to date, under an advisory
// lock so that replicas starting together migrate once. It fails with an
// error wrapping symbot.ErrSchemaTooNew (a *SchemaError) when the database
// was migrated by a newer symbot, and with one wrapping
// symbot.ErrStoreUnavailable when the server cannot be reached (worth
// trying again); a server that refuses the user or password, or has no
// such database, is neither, and a failed TLS set-up (sslmode requires
// TLS the server does not offer, or a certificate that fails
// verification) wraps ErrTLS instead.
func Open(ctx context.Context, url string, conf Config) (*Store, error) {
	o := conf
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.MaxConns <= 0 {
		o.MaxConns = 10
	}
	if url == "" {
		return nil, errors.New("open store: empty database URL: set store.url or SYMBOT_DATABASE_URL")
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", redact(err))
	}
	cfg.MaxConns = o.MaxConns
	switch {
	case o.ReadOnly || o.MinConns < 0:
		o.MinConns = 0
	case o.MinConns == 0:
		o.MinConns = o.MaxConns / 2
	}
	cfg.MinConns = min(o.MinConns, o.MaxConns)
	if o.ReadOnly {
		o.NoMigrate = true
		cfg.ConnConfig.RuntimeParams["default_transaction_read_only"] = "on"
	}
	if cfg.ConnConfig.ConnectTimeout == 0 || cfg.ConnConfig.ConnectTimeout > 5*time.Second {
		cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	}
	// A pool that grew for a burst gives the sessions back to the server
	// after a quiet minute (down to MinConns). A connection that died with
	// the server is not handed out again: pgxpool pings one idle for more
	// than a second before it hands it out.
	cfg.MaxConnIdleTime = time.Minute
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", redact(err))
	}
	lcfg := cfg.Copy()
	lcfg.MaxConns = 2 * o.MaxConns
	lcfg.MinConns = lockHolders // the holders' sessions (memlocks.go), opened now
	if o.ReadOnly {
		lcfg.MinConns = 0
	}
	lockConnConfig(lcfg)
	locks, err := pgxpool.NewWithConfig(ctx, lcfg)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("open store: %w", redact(err))
	}
	s := &Store{pool: pool, locks: locks, log: o.Logger, memLocks: newMemLocks(locks, o.Logger)}
	s.writes = groupcommit.New(maxGroup, s.attempt)
	s.writes.MaxRetries = maxRetries
	s.writes.Logger = o.Logger
	if o.NoMigrate {
		st, err := CheckSchema(ctx, url)
		if err == nil && !st.UpToDate() {
			err = fmt.Errorf("database schema is at version %d, this symbot needs %d: run symbot migrate", st.Current, st.Latest)
		}
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("open store: %w", classifyOpen(err))
		}
		return s, nil
	}
	st, ran, err := migrate(ctx, pool)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("open store: %w", classifyOpen(err))
	}
	if len(ran) > 0 {
		s.log.Info("migrated database schema", "versions", ran, "schema", st.Current)
	}
	return s, nil
}

// Close closes every connection. Later calls fail.
func (s *Store) Close() error {
	s.pool.Close()
	s.memLocks.close()
	s.locks.Close()
	return nil
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping database: %w", classify(err))
	}
	return nil
}

// Pool returns the connection pool (for tools such as migrate --from).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// unavailableError marks a failure to reach the database: it wraps both
// the driver's error and symbot.ErrStoreUnavailable.
type unavailableError struct{ err error }

func (e *unavailableError) Error() string   { return e.err.Error() }
func (e *unavailableError) Unwrap() []error { return []error{e.err, symbot.ErrStoreUnavailable} }

// classify maps the driver's errors to the store's: a closed pool to
// ErrClosed, and every failure to reach the server (connection refused or
// lost, timeouts while connecting, the server shutting down) to an error
// that wraps symbot.ErrStoreUnavailable, so callers can tell people to try
// again later. Errors the server answered with, and the caller's own
// cancellation, stay as they are.
func classify(err error) error {
	if err == nil || errors.Is(err, ErrClosed) || errors.Is(err, symbot.ErrStoreUnavailable) || errors.Is(err, context.Canceled) {
		return err
	}
	if err.Error() == "closed pool" {
		return ErrClosed
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case strings.HasPrefix(pe.Code, "08"), // connection_exception
			pe.Code == "57P01", pe.Code == "57P02", pe.Code == "57P03": // admin_shutdown, crash_shutdown, cannot_connect_now
			return &unavailableError{err}
		}
		return err
	}
	var (
		ce *pgconn.ConnectError
		ne net.Error
	)
	if errors.As(err, &ce) || errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		pgconn.Timeout(err) || pgconn.SafeToRetry(err) || errors.Is(err, context.DeadlineExceeded) {
		return &unavailableError{err}
	}
	return err
}

// retryable reports whether a failed transaction may be run again.
func retryable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "40001" || pe.Code == "40P01" // serialization_failure, deadlock_detected
	}
	return false
}

// View runs fn in a read-only snapshot; writes in it fail.
func (s *Store) View(ctx context.Context, fn func(symbot.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store view: %w", err)
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("store view: begin: %w", classify(err))
	}
	// BEGIN goes with the first read, in one round trip; the ROLLBACK
	// that ends the snapshot is not waited for (the connection returns
	// to the pool once it is done).
	p := &pipe{conn: conn.Conn()}
	p.hold("store view: begin", -1, `BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY`)
	t := &tx{ctx: ctx, q: p}
	defer func() {
		t.done = true
		if len(p.pending) > 0 {
			conn.Release() // nothing was sent
			return
		}
		go func() { // Close waits for it: the pool's Close waits for every connection
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, _ = conn.Exec(ctx, `ROLLBACK`)
			conn.Release() // the pool closes it if the ROLLBACK failed
		}()
	}()
	return fn(t)
}

// jobCols are the columns scanJob reads, in order.
const jobCols = `id, kind, request_id, event, to_user, text, lane, attempts, not_before, last_error, alerted, created_at, lease_owner, lease_until, lease_token`

// headOfLane is true for a job that no lower job of its lane blocks.
// The subquery repeats the predicate of the partial index jobs_lane
// (h.lane is not empty), without which the planner cannot use that index and
// scans the whole jobs table for each due job of a lane.
const headOfLane = `(j.lane = '' OR NOT EXISTS (SELECT 1 FROM jobs h WHERE h.lane <> '' AND h.lane = j.lane AND h.id < j.id))`

// ClaimJobs atomically leases up to max jobs that are due at now,
// honouring lanes, in symbot.ClaimRank order of their kinds (claimRank,
// the same ranks in SQL) and ID order within a rank. Rows another replica is claiming at the same
// moment are skipped (FOR UPDATE SKIP LOCKED); each claim increments the
// job's lease token.
func (s *Store) ClaimJobs(ctx context.Context, owner string, now time.Time, lease time.Duration, max int) ([]symbot.Job, error) {
	js, _, err := s.claim(ctx, owner, now, lease, max, nil)
	return js, err
}

var _ symbot.RequestClaimer = (*Store)(nil)

// ClaimJobsWithRequests is ClaimJobs that also returns the documents of
// the requests of the claimed jobs of kinds (symbot.RequestClaimer), read
// by the claim's own statement: no round trip or statement of their own.
func (s *Store) ClaimJobsWithRequests(ctx context.Context, owner string, now time.Time, lease time.Duration, max int, kinds []symbot.JobKind) ([]symbot.Job, []*symbot.Request, error) {
	ks := make([]string, len(kinds))
	for i, k := range kinds {
		ks[i] = string(k)
	}
	return s.claim(ctx, owner, now, lease, max, ks)
}

// claimSQL leases the jobs: $1 owner, $2 lease end, $3 now, $4 max.
const claimSQL = `UPDATE jobs SET lease_owner = $1, lease_until = $2, lease_token = lease_token + 1
		WHERE id IN (SELECT id FROM jobs j WHERE j.due <= $3 AND ` + headOfLane + ` ORDER BY ` + claimRank + `, j.id LIMIT $4 FOR UPDATE SKIP LOCKED)
		RETURNING ` + jobCols

// claimRequestsSQL is claimSQL that also returns, for the jobs of kinds
// $5, their requests' documents (NULL for other jobs). The request is
// read in the statement's snapshot, which holds the transaction that
// queued the job.
const claimRequestsSQL = `WITH c AS (` + claimSQL + `)
	SELECT c.*, CASE WHEN c.kind = ANY($5) THEN (SELECT r.doc FROM requests r WHERE r.id = c.request_id) END FROM c`

// claim leases jobs (ClaimJobs) and, unless kinds is nil, reads the
// requests of those of kinds along; reqs is nil when kinds is, and
// reqs[i] is nil when jobs[i]'s request is not read, not found or does
// not decode.
func (s *Store) claim(ctx context.Context, owner string, now time.Time, lease time.Duration, max int, kinds []string) ([]symbot.Job, []*symbot.Request, error) {
	if none, err := symbot.CheckClaim(ctx, owner, lease, max); none || err != nil {
		return nil, nil, err
	}
	args := []any{owner, nanos(now.Add(lease)), clampNanos(now), max}
	sql := claimSQL
	if kinds != nil {
		sql = claimRequestsSQL
		args = append(args, kinds)
	}
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, nil, fmt.Errorf("claim jobs: %w", classify(err))
	}
	type claimed struct {
		j   symbot.Job
		doc []byte
	}
	cs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (claimed, error) {
		var c claimed
		var err error
		if kinds == nil {
			c.j, err = scanJob(row)
		} else {
			c.j, err = scanJobInto(row, &c.doc)
		}
		return c, err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("claim jobs: %w", classify(err))
	}
	slices.SortFunc(cs, func(a, b claimed) int {
		return cmp.Or(cmp.Compare(symbot.ClaimRank(a.j.Kind), symbot.ClaimRank(b.j.Kind)), cmp.Compare(a.j.ID, b.j.ID))
	})
	js := make([]symbot.Job, len(cs))
	var reqs []*symbot.Request
	if kinds != nil {
		reqs = make([]*symbot.Request, len(cs))
	}
	for i, c := range cs {
		js[i] = c.j
		if c.doc != nil {
			// A document that does not decode is left unread: the job
			// reads it on its own and fails alone, not every claim.
			reqs[i], _ = decodeRequest(c.j.RequestID, c.doc)
		}
	}
	return js, reqs, nil
}

// claimRank is symbot.ClaimRank of a job row j in SQL: revocations first,
// then grants, then the rest (the storetest contract's ClaimJobsRank
// holds both to the same order).
// The due jobs are few (the backlog), so sorting them needs no index.
const claimRank = `(CASE j.kind WHEN 'revoke' THEN 0 WHEN 'grant' THEN 1 ELSE 2 END)`

// NextJobTime returns when the earliest claimable job becomes due; jobs
// blocked behind a lower job of their lane are skipped. It walks the due
// index from its start to the first lane head.
func (s *Store) NextJobTime(ctx context.Context) (time.Time, bool, error) {
	if err := ctx.Err(); err != nil {
		return time.Time{}, false, fmt.Errorf("next job time: %w", err)
	}
	var due int64
	err := s.pool.QueryRow(ctx, `SELECT j.due FROM jobs j WHERE `+headOfLane+` ORDER BY j.due, j.id LIMIT 1`).Scan(&due)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("next job time: %w", classify(err))
	}
	return fromNanos(&due), true, nil
}

// Dump is the JSON form Backup writes: every record, in key order.
type Dump struct {
	SchemaVersion int
	Seqs          map[string]uint64
	Requests      []*symbot.Request
	Jobs          []symbot.Job
	LastJobID     uint64
	Audit         []symbot.AuditEntry
	Identities    []symbot.Identity
	SinkCursors   map[string]uint64 // audit sink name -> the seq it has
	Records       map[string][]byte // named records (symbot.RecordTx)
}

// Backup writes a JSON dump of the whole database, read from one snapshot,
// to w. (pg_dump is the tool for the database itself; this copy is for
// symbot's own backup command.)
func (s *Store) Backup(ctx context.Context, w io.Writer) (int64, error) {
	var d Dump
	err := s.View(ctx, func(stx symbot.Tx) error {
		t := stx.(*tx)
		var err error
		d, err = t.dump()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store backup: %w", err)
	}
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return 0, fmt.Errorf("store backup: %w", err)
	}
	n, err := w.Write(b)
	if err != nil {
		return int64(n), fmt.Errorf("store backup: %w", err)
	}
	return int64(n), nil
}

// Time encoding: int8 nanoseconds since the epoch, NULL for the zero time.
// Times outside int64 nanoseconds (before 1678 or after 2262) are clamped
// to the ends of that range.

var (
	minTime = time.Unix(0, math.MinInt64+1)
	maxTime = time.Unix(0, math.MaxInt64)
)

func clampNanos(t time.Time) int64 {
	switch {
	case t.Before(minTime):
		return math.MinInt64 + 1
	case t.After(maxTime):
		return math.MaxInt64
	}
	return t.UnixNano()
}

func nanos(t time.Time) *int64 {
	if t.IsZero() {
		return nil
	}
	n := clampNanos(t)
	return &n
}

func fromNanos(n *int64) time.Time {
	if n == nil || *n == math.MinInt64 {
		return time.Time{}
	}
	return time.Unix(0, *n).UTC()
}
