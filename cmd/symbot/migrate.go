package main

// `symbot migrate`: the PostgreSQL schema (--check, apply) and the copy of a
// bbolt store into an empty database (--from).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/awsauth"
	"github.com/symbot/symbot/store"
	"github.com/symbot/symbot/store/postgres"
)

// migrateCmd is `symbot migrate`: bring the PostgreSQL schema up to date,
// report whether it is (--check), or copy a bbolt store into an empty
// database (--from FILE).
func migrateCmd(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("migrate", "", stderr)
	cfgPath := configFlag(fs)
	check := fs.Bool("check", false, "only report whether the database schema is current (exit 1 when not)")
	from := fs.String("from", "", "copy this bbolt store (requests, identities, jobs, counters, audit chain and sink cursors, reconciler records) into the empty database")
	if code, ok := parseNoArgs(fs, args, stderr); !ok {
		return code
	}
	if *check && *from != "" {
		fmt.Fprintln(stderr, "symbot migrate: --check and --from do not go together")
		return exitUsage
	}
	cfg, ok := loadConfig("migrate", *cfgPath, stderr)
	if !ok {
		return exitFail
	}
	if cfg.Store.URL == "" {
		fmt.Fprintln(stderr, "symbot migrate: no PostgreSQL database is configured: set store.url in the config or SYMBOT_DATABASE_URL (and remove store.path)")
		return exitFail
	}
	if *check {
		st, err := postgres.CheckSchema(ctx, cfg.Store.URL)
		if err != nil {
			fmt.Fprintf(stderr, "symbot migrate: %v\n", err)
			return exitFail
		}
		if !st.UpToDate() {
			fmt.Fprintf(stdout, "schema version %d, this symbot needs %d: %d migration(s) pending (%v); run symbot migrate, or start symbot, to apply them\n", st.Current, st.Latest, len(st.Pending), st.Pending)
			return exitFail
		}
		fmt.Fprintf(stdout, "schema version %d is current\n", st.Current)
		return exitOK
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	pg, err := postgres.Open(ctx, cfg.Store.URL, postgres.Config{Logger: log})
	if err != nil {
		fmt.Fprintf(stderr, "symbot migrate: %v\n", err)
		return exitFail
	}
	defer pg.Close()
	if *from == "" {
		fmt.Fprintf(stdout, "schema version %d is current\n", postgres.SchemaVersion())
		return exitOK
	}
	// A chain sealed with the audit key verifies only with that key.
	var src *awsauth.Source
	if cfg.Audit.KeySecret != "" {
		if src, _, err = newDirectory(ctx, cfg, log); err != nil {
			fmt.Fprintf(stderr, "symbot migrate: %v\n", err)
			return exitFail
		}
		defer src.Close()
	}
	key, err := loadAuditKey(ctx, cfg, src)
	if err != nil {
		fmt.Fprintf(stderr, "symbot migrate: %v\n", err)
		return exitFail
	}
	n, err := copyFromBolt(ctx, *from, pg, key, log)
	if err != nil {
		fmt.Fprintf(stderr, "symbot migrate: %v\n", err)
		return exitFail
	}
	fmt.Fprintf(stdout, "copied %s: %d requests, %d jobs, %d audit entries (chain verified), %d identities, %d counters, %d audit sink cursors, %d records\n",
		*from, n.Requests, n.Jobs, n.Audit, n.Identities, n.Seqs, n.SinkCursors, n.Records)
	return exitOK
}

// copyFromBolt copies the bbolt store at path into pg, which must be empty.
// The bbolt file is opened read-only (and so locked, shared) for the copy:
// a symbot still running on it makes this fail rather than copy a moving
// target, and the file is left as it was (an older symbot can still open
// it if the move is abandoned; the copy drops job leases anyway).
func copyFromBolt(ctx context.Context, path string, pg *postgres.Store, key *symbot.AuditKey, log *slog.Logger) (postgres.ImportStats, error) {
	src, err := store.Open(path, store.Config{Logger: log, ReadOnly: true})
	if err != nil {
		if errors.Is(err, symbot.ErrStoreLocked) {
			return postgres.ImportStats{}, fmt.Errorf("%w: stop symbot before copying its store", err)
		}
		return postgres.ImportStats{}, err
	}
	defer src.Close()
	x, err := src.Export(ctx)
	if err != nil {
		return postgres.ImportStats{}, err
	}
	recs := &postgres.Records{
		Seqs: x.Seqs, Requests: x.Requests, Jobs: x.Jobs, LastJobID: x.LastJobID,
		Audit: x.Audit, AuditHead: x.AuditHead, AuditHash: x.AuditHash, Identities: x.Identities,
		SinkCursors: x.SinkCursors, Records: x.Records,
	}
	if key != nil {
		recs.AuditKeys = []*symbot.AuditKey{key}
	}
	n, err := pg.Import(ctx, recs)
	if errors.Is(err, postgres.ErrNotEmpty) {
		return n, fmt.Errorf("%w: the target database already holds symbot data; copy into a new, empty database", err)
	}
	return n, err
}
