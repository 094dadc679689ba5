package main

// The start of `symbot run` before the daemon runs: the health and metrics
// listener serves from the first moment, and a PostgreSQL database that
// cannot be reached is waited for (not ready, saying why) instead of being
// a reason to exit.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/cmd/symbot/internal/admin"
	"github.com/symbot/symbot/cmd/symbot/internal/config"
	"github.com/symbot/symbot/store/postgres"
)

// webServer is the health and metrics listener of `symbot run`. It serves
// from before the store is open until symbot stops; its readiness says
// "starting" (or why the database cannot be reached) until the daemon
// runs and puts its own in place.
type webServer struct {
	ready    atomic.Pointer[Readiness]
	cancel   context.CancelFunc
	done     chan error
	stopOnce sync.Once
	stopErr  error
}

// startWeb serves /healthz, /readyz and /metrics on ln until stop.
func startWeb(ln net.Listener, m *Metrics, log *slog.Logger) *webServer {
	w := &webServer{done: make(chan error, 1)}
	w.setReady(func(context.Context) error { return NotReady("starting", nil) })
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	h := NewHTTPHandler(func(ctx context.Context) error { return (*w.ready.Load())(ctx) }, m, log)
	go func() { w.done <- admin.ServeUntil(ctx, ln, h) }()
	return w
}

// setReady puts r in place as the listener's readiness.
func (w *webServer) setReady(r Readiness) { w.ready.Store(&r) }

// stop shuts the listener down, letting requests in flight finish within
// admin.ShutdownGrace. Later calls return the first call's result.
func (w *webServer) stop() error {
	w.stopOnce.Do(func() {
		w.cancel()
		w.stopErr = <-w.done
	})
	return w.stopErr
}

// The waits between attempts to open a database that cannot be reached:
// the first, doubled after each failure up to the last.
var (
	storeRetryFirst = time.Second
	storeRetryMax   = 30 * time.Second
)

// waitForStore opens the store the config selects. A PostgreSQL database
// that cannot be reached (refused or lost connections, timeouts, a server
// starting up or shutting down) is tried again with capped backoff until
// it answers or ctx ends, each failure logged and passed to waiting (for
// /readyz); any other failure (a password or user the server refuses, an
// unknown database, a failed TLS set-up, a newer schema, a bbolt file
// that cannot be opened) returns at once with what to fix.
func waitForStore(ctx context.Context, cfg *config.Config, log *slog.Logger, waiting func(attempt int, err error)) (symbot.Store, error) {
	wait := storeRetryFirst
	for attempt := 1; ; attempt++ {
		st, err := openStore(ctx, cfg, log)
		if err == nil {
			if attempt > 1 {
				log.Info("database reachable again: store opened", "attempts", attempt)
			}
			return st, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if cfg.Store.URL == "" || !errors.Is(err, symbot.ErrStoreUnavailable) {
			return nil, storeOpenError(cfg, err)
		}
		log.Error("can't reach the database: symbot is not ready and tries again; nothing is lost meanwhile (deadlines and jobs are stored)",
			"database", redactDatabaseURL(cfg.Store.URL), "setting", cfg.StoreURLSetting(), "attempt", attempt, "retry_in", wait, "err", err)
		if waiting != nil {
			waiting(attempt, err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, storeRetryMax)
	}
}

// storeOpenError adds to a store error that retrying cannot fix which
// setting to change.
func storeOpenError(cfg *config.Config, err error) error {
	if cfg.Store.URL == "" {
		return err
	}
	setting := cfg.StoreURLSetting()
	var pe *pgconn.PgError
	switch {
	case errors.As(err, &pe) && strings.HasPrefix(pe.Code, "28"): // invalid_authorization_specification, invalid_password
		return fmt.Errorf("%w: the database refused symbot's user or password: fix them in %s", err, setting)
	case errors.As(err, &pe) && pe.Code == "3D000": // invalid_catalog_name
		return fmt.Errorf("%w: create the database (createdb) or fix the database name in %s", err, setting)
	case errors.As(err, &pe) && pe.Code == "42501": // insufficient_privilege
		return fmt.Errorf("%w: give the user of %s the right to create tables in the database (symbot owns its schema)", err, setting)
	case errors.Is(err, postgres.ErrTLS) && strings.Contains(err.Error(), "server refused TLS"):
		return fmt.Errorf("%w: the database server does not accept TLS but sslmode in %s requires it: turn on ssl in the server, or set sslmode=prefer (or disable) there", err, setting)
	case errors.Is(err, postgres.ErrTLS):
		return fmt.Errorf("%w: TLS with the database failed: with sslmode=verify-full or verify-ca in %s, set sslrootcert there to the CA file that signed the server's certificate and use the host name the certificate names; or fix the server's certificate", err, setting)
	case errors.Is(err, symbot.ErrSchemaTooNew):
		return err
	}
	return fmt.Errorf("%w (check %s)", err, setting)
}

// redactDatabaseURL describes a database connection string for the log:
// user, host, port and database, never the password or other parameters (a
// URL's query may hold password=...).
func redactDatabaseURL(s string) string {
	c, err := pgconn.ParseConfig(s)
	if err != nil {
		return "(an invalid database URL, not repeated here)"
	}
	user := c.User
	if user != "" {
		user += "@"
	}
	return withoutPassword(fmt.Sprintf("postgres://%s%s/%s", user, net.JoinHostPort(c.Host, fmt.Sprint(c.Port)), c.Database), c.Password)
}

// publicDatabaseName describes a database connection string for /readyz,
// which anyone who reaches the listener may read: host, port and database
// (enough to tell which server to fix), never the user or the password.
func publicDatabaseName(s string) string {
	c, err := pgconn.ParseConfig(s)
	if err != nil {
		return "(an invalid database URL, not repeated here)"
	}
	return withoutPassword(net.JoinHostPort(c.Host, fmt.Sprint(c.Port))+"/"+c.Database, c.Password)
}

// withoutPassword masks password wherever it appears in s, so that a
// password that also sits in another field (a mistyped URL, a database
// named like it) is never shown.
func withoutPassword(s, password string) string {
	if password == "" {
		return s
	}
	return strings.ReplaceAll(s, password, "(password)")
}

// unreachableReason is the public reason /readyz gives while the database
// cannot be reached: where it is (host, port and database; no user, no
// password) and a short cause.
func unreachableReason(cfg *config.Config, attempt int, err error) string {
	cause := "no connection (the error is in symbot's log)"
	var (
		pe  *pgconn.PgError
		dns *net.DNSError
	)
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		cause = "connection refused"
	case errors.As(err, &dns):
		cause = "host not found"
	case errors.As(err, &pe) && pe.Code == "57P03":
		cause = "the database is starting up"
	case errors.As(err, &pe) && (pe.Code == "57P01" || pe.Code == "57P02"):
		cause = "the database is shutting down"
	case errors.Is(err, context.DeadlineExceeded), pgconn.Timeout(err):
		cause = "timed out"
	}
	return fmt.Sprintf("can't reach the database %s: %s (%d attempts so far; symbot keeps trying)", publicDatabaseName(cfg.Store.URL), cause, attempt)
}
