package main

// Wiring: one daemon built from a config (store, AWS chain, Okta
// directory, Slack bot, engine, metrics), its run loop with the admin and
// HTTP servers, the admin service over the engine, and the AWS call counter.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"
	"github.com/aws/smithy-go/middleware"
	"github.com/slack-go/slack"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/awsauth"
	"github.com/symbot/symbot/bot"
	"github.com/symbot/symbot/celrules"
	"github.com/symbot/symbot/okta"
	"github.com/symbot/symbot/store"
	"github.com/symbot/symbot/store/postgres"

	"github.com/symbot/symbot/cmd/symbot/internal/admin"
	"github.com/symbot/symbot/cmd/symbot/internal/config"
)

// daemon is one running symbot: the store, the adapters and the engine,
// wired from a Config.
type daemon struct {
	cfg     *config.Config
	log     *slog.Logger
	store   symbot.Store
	aws     *awsauth.Source
	dir     *okta.Directory
	bot     *bot.Bot
	engine  *symbot.Engine
	metrics *Metrics
	shipper *symbot.AuditShipper // ships the audit trail to its sinks; set by run

	// Tunables the demo and the tests shorten; zero means the engine default.
	retryBase time.Duration
	// credentialEvery is how often the bot and Okta tokens are checked
	// while running (runtime.credential_check_interval; nanoseconds, zero
	// means DefaultCredentialCheckEvery); a reload changes it and wakes
	// the watcher with credentialWake. See credentialInterval.
	credentialEvery atomic.Int64
	credentialWake  chan struct{}
	// slackRetry is how long Socket Mode waits after Slack refused a
	// token before trying again; zero means slackTokenRetry.
	slackRetry time.Duration

	creds credentials // the last check of each credential, for ready

	// web is the health and metrics listener `symbot run` started before
	// the store opened; run hands it the daemon's readiness and stops it.
	// nil: run opens http.listen itself (the demo, tests).
	web *webServer

	// hup delivers SIGHUP to run, which calls reload for each; nil when the
	// daemon runs in-process (demo, tests).
	hup <-chan os.Signal
	// logLevel is the level of log, which a reload sets; nil: not
	// reloadable (the demo, tests).
	logLevel *slog.LevelVar
	// live is the configuration in effect: cfg until a reload applies
	// another (with cfg's values for what needs a restart).
	live atomic.Pointer[config.Config]
	// onCall is the PagerDuty client rules ask, nil without one; a reload
	// gives it to the rules it compiles.
	onCall celrules.OnCall
	// reloadMu makes reloads one at a time.
	reloadMu sync.Mutex
}

// newLogger builds the slog logger the config asks for, writing to w.
func newLogger(lc config.Log, w io.Writer) *slog.Logger {
	log, _ := newLevelLogger(lc, w)
	return log
}

// newLevelLogger is newLogger with the level held in a LevelVar, which a
// config reload sets.
func newLevelLogger(lc config.Log, w io.Writer) (*slog.Logger, *slog.LevelVar) {
	level := new(slog.LevelVar)
	level.Set(logLevel(lc.Level))
	opts := &slog.HandlerOptions{Level: level}
	if strings.EqualFold(lc.Format, "json") {
		return slog.New(newRedactHandler(slog.NewJSONHandler(w, opts))), level
	}
	return slog.New(newRedactHandler(slog.NewTextHandler(w, opts))), level
}

// logLevel turns log.level into a slog level (info when unknown: the
// config refuses unknown levels).
func logLevel(s string) slog.Level {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug
	case "warn", "warning":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// slackClient builds the slack-go client from the tokens and API URL.
func slackClient(cfg *config.Config) *slack.Client {
	// slack-go's default client keeps 2 idle connections per host: with the
	// bot's and the executor's workers calling at once, every other call
	// would pay for a new connection (and, against Slack, a TLS handshake).
	// bot.Transport spares slack-go decoding the message each
	// chat.postMessage answer echoes back.
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 64
	opts := []slack.Option{slack.OptionHTTPClient(&http.Client{Transport: bot.Transport(t)}), slack.OptionAppLevelToken(cfg.Slack.AppToken)}
	if cfg.Slack.APIURL != "" {
		opts = append(opts, slack.OptionAPIURL(cfg.Slack.APIURL))
	}
	return slack.New(cfg.Slack.BotToken, opts...)
}

// newDirectory builds the AWS chain that reads the Okta token and the Okta
// directory that uses it. It makes no network calls.
func newDirectory(ctx context.Context, cfg *config.Config, log *slog.Logger, loadOpts ...func(*awsconfig.LoadOptions) error) (*awsauth.Source, *okta.Directory, error) {
	ac := cfg.AWSAuth()
	ac.Logger = log.With("component", "aws")
	// The SDK's own warnings (like "falling back to IMDSv1") go to our log,
	// not straight to stderr.
	ac.LoadOptions = append(append(ac.LoadOptions, awsconfig.WithLogger(sdkLogger(ac.Logger))), loadOpts...)
	src, err := awsauth.New(ctx, ac)
	if err != nil {
		return nil, nil, fmt.Errorf("aws: %w", err)
	}
	dir, err := okta.New(okta.Config{
		OrgURL:    cfg.Okta.OrgURL,
		Overrides: cfg.Okta.UserOverrides,
		Logger:    log.With("component", "okta"),
	}, src)
	if err != nil {
		return nil, nil, fmt.Errorf("okta: %w", err)
	}
	return src, dir, nil
}

// openDaemon opens the store and builds every adapter and the engine. It
// makes no network calls.
func openDaemon(ctx context.Context, cfg *config.Config, log *slog.Logger) (*daemon, error) {
	return openDaemonWith(ctx, cfg, log, NewMetrics(), func(ctx context.Context) (symbot.Store, error) {
		return openStore(ctx, cfg, log.With("component", "store"))
	})
}

// openDaemonWith is openDaemon with the metrics (served before the daemon
// runs) and the function that opens the store (which may wait for the
// database) given.
func openDaemonWith(ctx context.Context, cfg *config.Config, log *slog.Logger, m *Metrics, open func(context.Context) (symbot.Store, error)) (*daemon, error) {
	d := &daemon{cfg: cfg, log: log, credentialWake: make(chan struct{}, 1)}
	d.live.Store(cfg)
	awsCalls := &callCounter{}
	src, dir, err := newDirectory(ctx, cfg, log,
		awsconfig.WithAPIOptions([]func(*middleware.Stack) error{awsCalls.middleware}))
	if err != nil {
		return nil, err
	}
	d.aws = src
	d.dir = dir
	d.metrics = m
	st, err := open(ctx)
	if err != nil {
		return nil, err
	}
	d.store = st
	// A store shared by several replicas remembers envelopes and clicks
	// for all of them.
	dedup, _ := st.(symbot.Deduper)
	d.bot = bot.New(slackClient(cfg), bot.Config{
		Command:       cfg.Slack.Command,
		ErrorsChannel: cfg.Slack.ErrorsChannel,
		Logger:        log.With("component", "slack"),
		Limits:        botLimits(cfg.Limits),
		Dedup:         dedup,
	})
	if cfg.Store.URL != "" {
		log.Info("store opened", "kind", "postgresql") // never the URL: it may hold a password
	} else {
		log.Info("store opened", "kind", "bbolt", "path", cfg.Store.Path)
	}
	eng, err := symbot.NewEngine(st, dir, d.bot, cfg.Flows)
	if err != nil {
		st.Close()
		return nil, err
	}
	rules, probs := cfg.CompileRules()
	if len(probs) > 0 { // config.Load compiled them; this cannot fail
		st.Close()
		return nil, fmt.Errorf("rules: %w", probs[0])
	}
	if pd := newPagerDuty(cfg, src, log); pd != nil {
		rules.OnCall = pd
		d.onCall = pd
	}
	eng.Rules = rules
	eng.Logger = log.With("component", "engine")
	eng.Metrics = d.metrics
	eng.ReconcileInterval = cfg.Reconcile.Interval
	eng.GrantCheckTTL = cfg.Runtime.EngineGrantCheckTTL()
	eng.Runtime.Workers = cfg.Runtime.JobWorkers
	d.setCredentialInterval(cfg.Runtime.CredentialCheckInterval)
	d.engine = eng

	d.metrics.SetStats(func() (symbot.Stats, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return eng.Stats(ctx)
	})
	d.metrics.SetSocketReconnects(func() int64 { return d.bot.Stats().Reconnects })
	d.metrics.SetSocketConnected(d.bot.Connected)
	d.metrics.SetStoreUp(func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), storeUpTimeout)
		defer cancel()
		return d.storeAnswers(ctx) == nil
	})
	d.metrics.SetExternalCalls("okta", func() ExternalCalls { return splitOktaStats(dir.Stats()) })
	d.metrics.SetExternalCalls("slack", func() ExternalCalls {
		out := ExternalCalls{Outcomes: map[string]int64{}}
		for k, v := range d.bot.Stats().SlackCalls {
			out.Outcomes[k.Result] += v // one per Web API request
		}
		return out
	})
	d.metrics.SetExternalCalls("aws", awsCalls.snapshot)
	return d, nil
}

// storeAnswers makes the smallest read of the store: whether it answers,
// for /readyz and symbot_store_up.
func (d *daemon) storeAnswers(ctx context.Context) error {
	return d.store.View(ctx, func(tx symbot.Tx) error { _, _, err := tx.AuditHead(); return err })
}

// storeUpTimeout bounds the read symbot_store_up makes at each scrape: an
// unanswered database must not hold the scrape up to its own timeout.
const storeUpTimeout = 2 * time.Second

// openStore opens the store the config selects: PostgreSQL when a
// database URL is set (migrating its schema), else the bbolt file.
func openStore(ctx context.Context, cfg *config.Config, log *slog.Logger) (symbot.Store, error) {
	if cfg.Store.URL != "" {
		return postgres.Open(ctx, cfg.Store.URL, postgres.Config{Logger: log})
	}
	return store.Open(cfg.Store.Path, store.Config{Logger: log})
}

// storeName describes the store for logs, never with the database URL
// (it may hold a password).
func storeName(cfg *config.Config) string {
	if cfg.Store.URL != "" {
		return "postgresql"
	}
	return cfg.Store.Path
}

// run serves until ctx ends, then shuts down gracefully: it stops taking
// new work, lets in-flight jobs finish within the engine's grace period and
// closes the store.
func (d *daemon) run(ctx context.Context) error {
	defer d.store.Close()
	defer d.aws.Close()
	if d.retryBase > 0 {
		d.engine.Runtime.RetryBase = d.retryBase
	}
	// Nothing is served with a token Slack refuses.
	if err := d.checkSlackTokens(ctx); err != nil {
		return err
	}
	// Requests whose flow or target left the config cannot be decided:
	// say which, once, at start.
	d.warnUnconfigured(ctx)
	// A store restored from a backup is reconciled with Okta before
	// anything is served (symbot restore marked it).
	if rep, done, err := d.engine.AfterRestore(ctx); err != nil {
		d.log.Error("reconcile after restore failed; the next start tries again", "err", err)
	} else if done {
		d.log.Warn("store was restored from a backup: reconciled before serving", "unmanaged", rep.Count(symbot.DriftUnmanaged), "vanished", rep.Count(symbot.DriftVanished), "survived", rep.Count(symbot.DriftSurvived))
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var servers []func() error
	runAudit, err := d.startAudit(ctx)
	if err != nil {
		return err
	}
	servers = append(servers, runAudit)
	adminLn, err := admin.Listen(d.cfg.Admin.Socket)
	if err != nil {
		return fmt.Errorf("admin socket: %w", err)
	}
	servers = append(servers, func() error {
		return admin.ServeUntil(ctx, adminLn, admin.NewServer(&adminService{d: d}, d.log.With("component", "admin")))
	})
	if d.web != nil {
		d.web.setReady(d.ready)
		servers = append(servers, func() error { <-ctx.Done(); return d.web.stop() })
	} else if d.cfg.HTTP.Listen != "" {
		ln, err := net.Listen("tcp", d.cfg.HTTP.Listen)
		if err != nil {
			adminLn.Close()
			return fmt.Errorf("http listen %s: %w", d.cfg.HTTP.Listen, err)
		}
		d.log.Info("http listening", "addr", ln.Addr().String())
		h := NewHTTPHandler(d.ready, d.metrics, d.log.With("component", "http"))
		servers = append(servers, func() error { return admin.ServeUntil(ctx, ln, h) })
	}

	var wg sync.WaitGroup
	errs := make([]error, 2+len(servers))
	wg.Go(func() { errs[0] = d.engine.Run(ctx) })
	wg.Go(func() { errs[1] = d.runBot(ctx, cancel) })
	for i, s := range servers {
		wg.Go(func() { errs[2+i] = s() })
	}
	wg.Go(func() { d.watchCredentials(ctx) })
	if d.hup != nil {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case <-d.hup:
					d.reload(ctx)
				}
			}
		})
	}
	d.log.Info("symbot running", "flows", len(d.cfg.Flows), "store", storeName(d.cfg), "admin_socket", d.cfg.Admin.Socket)
	wg.Wait()
	d.log.Info("symbot stopped")
	var out []error
	for _, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, http.ErrServerClosed) {
			out = append(out, err)
		}
	}
	return errors.Join(out...)
}

// runBot runs the Slack bot until ctx ends. Slack refusing a token after
// start-up (an app-level token revoked while running: Socket Mode cannot
// reconnect) does not stop symbot: expiring access must still be removed
// from Okta, which needs no Slack. It stays not ready and tries again every
// credential check interval. Any other failure stops symbot.
// slackTokenRetry is how long Socket Mode waits before trying again after
// Slack refused a token while symbot runs: a fixed minute, not
// runtime.credential_check_interval, so a token put right is back within a
// minute whatever that interval (up to an hour); one apps.connections.open
// a minute stays within that method's rate limit (Tier 1).
const slackTokenRetry = time.Minute

func (d *daemon) runBot(ctx context.Context, cancel context.CancelFunc) error {
	for {
		err := d.bot.Run(ctx, d.engine)
		if err == nil || ctx.Err() != nil {
			return err
		}
		var te *bot.TokenError
		if !errors.As(err, &te) {
			d.log.Error("slack bot stopped", "err", err)
			cancel()
			return err
		}
		every := d.slackRetry
		if every <= 0 {
			every = slackTokenRetry
		}
		d.log.Error("Slack refused a token while symbot runs: slack commands and clicks go unanswered until it works again; expiring access is still removed from Okta", "err", err, "retry_in", every)
		t := time.NewTimer(every)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// ready reports whether symbot can serve: Socket Mode connected, the
// store answering, and neither the Slack bot token nor the Okta token
// refused at its last check.
func (d *daemon) ready(ctx context.Context) error {
	if !d.bot.Connected() {
		return NotReady("slack socket mode is not connected", nil)
	}
	if err := d.storeAnswers(ctx); err != nil {
		return NotReady("the store is not answering", err)
	}
	return d.creds.notReady(CredentialNames)
}

var _ admin.Inspector = (*adminService)(nil)

// adminService implements admin.Service (and admin.Inspector) with the
// engine and the store. With readOnly (the offline commands, over a store
// opened read-only) it refuses what would write, and records nothing in
// the audit trail.
type adminService struct {
	d        *daemon
	readOnly bool
}

// record puts an admin action (a backup, an export) in the audit trail;
// a read-only service cannot, and reads without.
func (a *adminService) record(ctx context.Context, action, detail string) error {
	if a.readOnly {
		return nil
	}
	return a.d.engine.AuditAdmin(ctx, action, detail)
}

func (a *adminService) Requests(ctx context.Context) ([]*symbot.Request, error) {
	return a.d.engine.ListByState(ctx, symbot.StatePending, symbot.StateScheduled, symbot.StateApproved)
}

func (a *adminService) Grants(ctx context.Context) ([]*symbot.Request, error) {
	return a.d.engine.ListByState(ctx, symbot.StateActive)
}

func (a *adminService) Revoke(ctx context.Context, id, reason string) (*symbot.Request, error) {
	if a.readOnly {
		return nil, errOffline
	}
	if reason == "" {
		reason = "revoked by an operator"
	}
	return a.d.engine.AdminRevoke(ctx, id, reason)
}

func (a *adminService) Audit(ctx context.Context, since time.Time) ([]symbot.AuditEntry, error) {
	return a.d.engine.AuditSince(ctx, since)
}

func (a *adminService) VerifyAudit(ctx context.Context) (int, error) {
	return a.d.engine.VerifyAuditLog(ctx)
}

func (a *adminService) Reconcile(ctx context.Context, dryRun bool) (*symbot.ReconcileReport, error) {
	if a.readOnly {
		return nil, errOffline
	}
	return a.d.engine.Reconcile(ctx, dryRun)
}

func (a *adminService) Standing(ctx context.Context) ([]symbot.StandingMember, error) {
	return a.d.engine.Standing(ctx)
}

func (a *adminService) PendingRemovals(ctx context.Context) ([]symbot.PendingRemoval, error) {
	return a.d.engine.PendingRemovals(ctx)
}

func (a *adminService) Failures(ctx context.Context, since time.Time) ([]*symbot.Request, error) {
	return a.d.engine.RecentFailures(ctx, since)
}

func (a *adminService) Story(ctx context.Context, id string) (*symbot.Story, error) {
	return a.d.engine.Story(ctx, id)
}

var _ admin.IdentityService = (*adminService)(nil)

func (a *adminService) Identities(ctx context.Context) ([]symbot.Identity, error) {
	return a.d.engine.Identities(ctx)
}

func (a *adminService) ResetIdentity(ctx context.Context, slackID string) (symbot.Identity, error) {
	if a.readOnly {
		return symbot.Identity{}, errOffline
	}
	return a.d.engine.ResetIdentity(ctx, slackID)
}

func (a *adminService) Backup(ctx context.Context, w io.Writer) (int64, error) {
	if err := a.record(ctx, "backup", "a copy of the whole store"); err != nil {
		return 0, err
	}
	return a.d.store.Backup(ctx, w)
}

// callCounter counts AWS API calls by how they ended, and their HTTP
// attempts, for the metrics.
type callCounter struct {
	mu       sync.Mutex
	calls    map[string]int64 // by result, one per call
	attempts int64
}

// middleware counts each call outside the SDK's retry loop (one outcome
// per call) and each attempt inside it.
func (c *callCounter) middleware(s *middleware.Stack) error {
	err := s.Initialize.Add(middleware.InitializeMiddlewareFunc("symbotCallCounter",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			out, md, err := next.HandleInitialize(ctx, in)
			c.add(awsResult(err))
			return out, md, err
		}), middleware.Before)
	if err != nil {
		return err
	}
	return s.Finalize.Add(middleware.FinalizeMiddlewareFunc("symbotAttemptCounter",
		func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
			c.mu.Lock()
			c.attempts++
			c.mu.Unlock()
			return next.HandleFinalize(ctx, in)
		}), middleware.After)
}

func awsResult(err error) string {
	if err == nil {
		return "ok"
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return "canceled"
	}
	var api smithy.APIError
	if errors.As(err, &api) && strings.Contains(strings.ToLower(api.ErrorCode()), "throttl") {
		return "throttled"
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		if re.HTTPStatusCode() >= 500 {
			return "server_error"
		}
		return "client_error"
	}
	return "network_error"
}

func (c *callCounter) add(result string) {
	c.mu.Lock()
	if c.calls == nil {
		c.calls = map[string]int64{}
	}
	c.calls[result]++
	c.mu.Unlock()
}

func (c *callCounter) snapshot() ExternalCalls {
	c.mu.Lock()
	defer c.mu.Unlock()
	return ExternalCalls{Outcomes: maps.Clone(c.calls), Events: map[string]int64{"attempts": c.attempts}}
}

// botLimits turns the limits: section into the bot's limits.
func botLimits(l config.Limits) bot.Limits {
	out := bot.Limits{
		RequestsPerMinute: l.RequestsPerMinute,
		PendingPerUser:    l.PendingRequests,
		CommandsPerMinute: l.CommandsPerMinute,
		ApproverCacheTTL:  l.ApproverCacheTTL,
	}
	if l.ApproverCacheOff {
		out.ApproverCacheTTL = -1
	}
	return out
}

// sdkLogger sends the AWS SDK's log lines to log: warnings as warnings,
// everything else at debug level.
func sdkLogger(log *slog.Logger) logging.Logger {
	return logging.LoggerFunc(func(c logging.Classification, format string, v ...any) {
		level := slog.LevelDebug
		if c == logging.Warn {
			level = slog.LevelWarn
		}
		log.Log(context.Background(), level, "aws sdk: "+fmt.Sprintf(format, v...))
	})
}
