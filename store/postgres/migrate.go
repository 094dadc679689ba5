package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/symbot/symbot"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migration is one embedded schema step. Steps are forward-only: each runs
// once, in version order, in its own transaction, and is never edited
// after it ships (a change is a new step).
type Migration struct {
	Version int
	Name    string // file name, e.g. 0001_init.sql
	SQL     string
}

// Migrations returns the embedded steps in version order.
func Migrations() []Migration {
	ents, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		panic(err) // embedded: cannot fail
	}
	var out []Migration
	for _, e := range ents {
		v, _, ok := strings.Cut(e.Name(), "_")
		n, err := strconv.Atoi(v)
		if !ok || err != nil {
			panic("migration file without a version prefix: " + e.Name())
		}
		b, err := migrationFiles.ReadFile(path.Join("migrations", e.Name()))
		if err != nil {
			panic(err)
		}
		out = append(out, Migration{Version: n, Name: e.Name(), SQL: string(b)})
	}
	slices.SortFunc(out, func(a, b Migration) int { return a.Version - b.Version })
	return out
}

// SchemaVersion is the newest schema version this code knows.
func SchemaVersion() int {
	ms := Migrations()
	return ms[len(ms)-1].Version
}

// migrationLock is the advisory lock key that serialises migrations of
// several replicas starting at once ("symbot:migrate").
const migrationLock int64 = 0x73796d626f746d67

const createMigrationsTable = `CREATE TABLE IF NOT EXISTS symbot_migrations (
	version    int4 PRIMARY KEY,
	name       text NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now()
)`

// SchemaStatus says where a database's schema stands.
type SchemaStatus struct {
	Current int   // highest applied version; 0 for an empty database
	Latest  int   // newest version this symbot knows
	Pending []int // known versions not applied yet
}

// UpToDate reports whether nothing is pending.
func (s SchemaStatus) UpToDate() bool { return len(s.Pending) == 0 && s.Current == s.Latest }

// SchemaError is returned when a database's schema is newer than this
// symbot. It wraps symbot.ErrSchemaTooNew.
type SchemaError struct {
	Found, Supported int
}

func (e *SchemaError) Error() string {
	return fmt.Sprintf("database schema version %d is newer than this symbot supports (%d): upgrade symbot", e.Found, e.Supported)
}

func (e *SchemaError) Unwrap() error { return symbot.ErrSchemaTooNew }

// applied reads the applied versions (creating the bookkeeping table).
func applied(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}) ([]int, error) {
	rows, err := q.Query(ctx, `SELECT version FROM symbot_migrations ORDER BY version`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[int])
}

func status(done []int) (SchemaStatus, error) {
	st := SchemaStatus{Latest: SchemaVersion()}
	if len(done) > 0 {
		st.Current = done[len(done)-1]
	}
	if st.Current > st.Latest {
		return st, &SchemaError{Found: st.Current, Supported: st.Latest}
	}
	for _, m := range Migrations() {
		if !slices.Contains(done, m.Version) {
			st.Pending = append(st.Pending, m.Version)
		}
	}
	return st, nil
}

// CheckSchema reports the schema status of the database at url without
// changing anything.
func CheckSchema(ctx context.Context, url string) (SchemaStatus, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return SchemaStatus{}, fmt.Errorf("connect to database: %w", redact(err))
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass('symbot_migrations') IS NOT NULL`).Scan(&exists); err != nil {
		return SchemaStatus{}, fmt.Errorf("read schema version: %w", err)
	}
	var done []int
	if exists {
		if done, err = applied(ctx, conn); err != nil {
			return SchemaStatus{}, fmt.Errorf("read schema version: %w", err)
		}
	}
	return status(done)
}

// migrate applies the pending steps under a session advisory lock, so
// replicas starting together apply each step once.
func migrate(ctx context.Context, pool *pgxpool.Pool) (SchemaStatus, []int, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return SchemaStatus{}, nil, fmt.Errorf("connect to database: %w", redact(err))
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrationLock); err != nil {
		return SchemaStatus{}, nil, fmt.Errorf("take the migration lock: %w", err)
	}
	defer func() {
		// A failed unlock (connection gone) releases the lock anyway.
		_, _ = conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, migrationLock)
	}()
	if _, err := conn.Exec(ctx, createMigrationsTable); err != nil {
		return SchemaStatus{}, nil, fmt.Errorf("create migrations table: %w", err)
	}
	done, err := applied(ctx, conn)
	if err != nil {
		return SchemaStatus{}, nil, fmt.Errorf("read schema version: %w", err)
	}
	st, err := status(done)
	if err != nil {
		return st, nil, err
	}
	var ran []int
	for _, m := range Migrations() {
		if !slices.Contains(st.Pending, m.Version) {
			continue
		}
		if err := applyMigration(ctx, conn, m); err != nil {
			return st, ran, fmt.Errorf("apply migration %s: %w", m.Name, err)
		}
		ran = append(ran, m.Version)
	}
	st.Current, st.Pending = st.Latest, nil
	return st, ran, nil
}

// applyMigration runs one step and records it in symbot_migrations, in
// one transaction.
func applyMigration(ctx context.Context, db interface {
	Begin(context.Context) (pgx.Tx, error)
}, m Migration) error {
	return pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, m.SQL); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO symbot_migrations (version, name) VALUES ($1, $2)`, m.Version, m.Name)
		return err
	})
}

// redact replaces a connection-string parse error, whose text and wrapped
// errors may quote the string with its password, by a fixed message.
func redact(err error) error {
	var ce *pgconn.ParseConfigError
	if errors.As(err, &ce) {
		return errors.New("invalid database URL: want postgres://user:password@host:port/database?sslmode=... (the URL is not repeated here because it may hold a password)")
	}
	return err
}
