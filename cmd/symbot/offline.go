package main

// Offline administration: the read-only admin commands (--db, --offline)
// open the store themselves, read-only, and ask the same admin service the
// daemon serves, in this process. Nothing is written: not the store, not
// the audit trail.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/store"
	"github.com/symbot/symbot/store/postgres"

	"github.com/symbot/symbot/cmd/symbot/internal/admin"
	"github.com/symbot/symbot/cmd/symbot/internal/config"
)

// errOffline refuses what an offline command cannot do.
var errOffline = fmt.Errorf("the store is open read-only (--db/--offline): %w", symbot.ErrNotAllowed)

// openOffline opens, read-only, the bbolt file db (when not "") or else the
// store cfg names, and returns a client answered in this process by the
// daemon's admin service over it. withKey loads the audit key the config
// names (audit verify needs it for a keyed chain). Close the client when
// done: it closes the store.
func openOffline(ctx context.Context, cfg *config.Config, db string, withKey bool) (*admin.Client, error) {
	log := slog.New(slog.DiscardHandler)
	var (
		st   symbot.Store
		name string
		err  error
	)
	switch {
	case db != "" || cfg.Store.URL == "":
		path := db
		if path == "" {
			path = cfg.Store.Path
		}
		name = "--db " + path
		st, err = store.Open(path, store.Config{ReadOnly: true, Timeout: offlineLockWait})
		var le *store.LockedError
		if errors.As(err, &le) {
			return nil, fmt.Errorf("the daemon holds the database %s; use the admin socket (leave out --db and --offline) or stop it", path)
		}
	default:
		name = "the PostgreSQL store (store.url)"
		st, err = postgres.Open(ctx, cfg.Store.URL, postgres.Config{ReadOnly: true, MaxConns: 2, Logger: log})
	}
	if err != nil {
		return nil, err
	}
	eng, err := symbot.NewEngine(st, nil, nil, cfg.Flows)
	if err != nil {
		st.Close()
		return nil, err
	}
	if withKey {
		if eng.AuditKey, err = offlineAuditKey(ctx, cfg, log); err != nil {
			st.Close()
			return nil, err
		}
	}
	d := &daemon{cfg: cfg, log: log, store: st, engine: eng}
	return admin.NewLocalClient(name, admin.NewServer(&adminService{d: d, readOnly: true}, log), st), nil
}

// offlineLockWait is how long an offline command waits for a daemon that
// holds the bbolt file before saying so.
const offlineLockWait = 500 * time.Millisecond

// offlineAuditKey loads the audit key the config names (from its file, or
// from Secrets Manager through the aws chain).
func offlineAuditKey(ctx context.Context, cfg *config.Config, log *slog.Logger) (*symbot.AuditKey, error) {
	if cfg.Audit.KeySecret == "" {
		return loadAuditKey(ctx, cfg, nil)
	}
	src, _, err := newDirectory(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	return loadAuditKey(ctx, cfg, src)
}
