// Package config loads symbot's configuration: the YAML file and the Slack
// tokens from the environment. It reports every problem at once, each with
// its file:line, and leaves the AWS and Okta rules to the awsauth and okta
// packages, mapping their findings back to the file.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/symbot/symbot"
)

// Config defaults.
const (
	DefaultPath            = "symbot.yml"
	DefaultSlashCommand    = "/sym"
	DefaultSessionDuration = time.Hour
	DefaultSessionName     = "symbot"
	DefaultTokenCacheTTL   = 5 * time.Minute
	DefaultStorePath       = "symbot.db"
	DefaultAdminSocket     = "symbot.sock"
	// DefaultReconcileInterval is how often Okta is compared with the grants.
	DefaultReconcileInterval = 10 * time.Minute
	// MinReconcileInterval keeps the reconciler within Okta's rate limits.
	MinReconcileInterval = time.Minute
	// DefaultCredentialCheckInterval is how often a running symbot asks
	// Slack and Okta whether they still accept its tokens (for /readyz).
	DefaultCredentialCheckInterval = time.Minute
	// MinCredentialCheckInterval and MaxCredentialCheckInterval bound it:
	// one call to each every 10 s is far below their rate limits, and a
	// revoked token should not go unnoticed for more than an hour.
	MinCredentialCheckInterval = 10 * time.Second
	MaxCredentialCheckInterval = time.Hour
	// DefaultGrantCheckTTL is how long the Okta look-ups made while a
	// request waits for approval stand for the grant's own (the engine's
	// default); MaxGrantCheckTTL bounds how stale they may be.
	DefaultGrantCheckTTL = 5 * time.Minute
	MaxGrantCheckTTL     = time.Hour
	// DefaultJobWorkers is how many durable jobs (Okta changes, Slack
	// posts) run at once (the engine's default); MaxJobWorkers bounds it.
	DefaultJobWorkers = 16
	MaxJobWorkers     = 256
	// MaxChainedSession is the longest session AWS grants to a role assumed
	// with credentials of another role (role chaining).
	MaxChainedSession = time.Hour
)

// Config is symbot's configuration: the YAML file plus the Slack tokens from
// the environment. Relative paths are resolved against the directory of the
// config file.
type Config struct {
	File string // the file it was loaded from, for messages

	storePathSet    bool // store.path was in the file
	storeURLFromEnv bool // Store.URL came from SYMBOT_DATABASE_URL
	pagerDutySet    bool // the file has a pagerduty section

	Slack  Slack
	AWS    AWS
	Okta   Okta
	Store  Store
	HTTP   HTTP
	Admin  Admin
	Log    Log
	Limits Limits
	// Reconcile configures the reconciler that compares Okta with the grants.
	Reconcile Reconcile
	// Runtime holds the daemon's tunables: credential checks, early
	// look-ups, job workers.
	Runtime Runtime
	// Audit configures the audit trail's key, checkpoints and sinks.
	Audit Audit
	// PagerDuty is where rules find who is on call.
	PagerDuty PagerDuty
	Flows     []symbot.Flow
}

// Reconcile configures the reconciler.
type Reconcile struct {
	Interval time.Duration // default DefaultReconcileInterval
}

// Runtime holds the daemon's tunables; Load fills in the defaults.
type Runtime struct {
	// CredentialCheckInterval is how often the Slack bot token and the
	// Okta token are checked while symbot runs (a token Slack refuses to
	// Socket Mode is tried again every minute whatever this interval).
	CredentialCheckInterval time.Duration
	// GrantCheckTTL is how long the early Okta look-ups of a waiting
	// request stand for the grant's own (symbot.Engine.GrantCheckTTL);
	// 0 with GrantCheckOff: the early look-ups are off.
	GrantCheckTTL time.Duration
	GrantCheckOff bool
	// JobWorkers is how many durable jobs run at once
	// (symbot.RuntimeOptions.Workers).
	JobWorkers int
}

// EngineGrantCheckTTL is GrantCheckTTL as symbot.Engine.GrantCheckTTL
// takes it: negative when the early look-ups are off.
func (r Runtime) EngineGrantCheckTTL() time.Duration {
	if r.GrantCheckOff {
		return -1
	}
	return r.GrantCheckTTL
}

// Limits are the per-person limits of the Slack bot (bot.Limits). Zero
// means the bot's default.
type Limits struct {
	RequestsPerMinute int           // requests one person may make in a minute
	PendingRequests   int           // requests one person may have waiting for approval
	CommandsPerMinute int           // slash commands, clicks and form submissions per person per minute
	ApproverCacheTTL  time.Duration // how long whoami trusts an approver answer
	ApproverCacheOff  bool          // approver_cache_ttl: 0 turns the cache off
}

// Slack is the slack section plus the tokens from the environment.
type Slack struct {
	ErrorsChannel string // channel for operator alerts (stuck revocations, failures)
	Command       string // slash command, default /sym

	BotToken string // SLACK_BOT_TOKEN (xoxb-...)
	AppToken string // SLACK_APP_TOKEN (xapp-..., Socket Mode)
	APIURL   string // SLACK_API_URL, with a trailing slash; "" = slack.com
}

// AWS says how symbot reaches the secret holding the Okta token.
type AWS struct {
	Region          string
	RoleARN         string // the runtime connector role, assumed with ExternalID
	ExternalID      string
	HopRoles        []string // roles assumed in order after RoleARN
	SessionDuration time.Duration
	SessionName     string
}

// Okta says where Okta is and where its API token lives.
type Okta struct {
	OrgURL        string
	TokenSecret   string // Secrets Manager secret name or ARN
	TokenJSONKey  string // key inside a JSON secret; "" = the whole secret string
	TokenCacheTTL time.Duration
	// UserOverrides maps a Slack user id or email to an Okta login, for
	// people whose Slack email is not their Okta login.
	UserOverrides map[string]string
}

// Store says where symbot keeps its state: a bbolt file (Path, the
// default) or a PostgreSQL database (URL) that several replicas share.
type Store struct {
	Path string // bbolt file; "" when URL is set
	// URL is the PostgreSQL connection string, from store.url or the
	// SYMBOT_DATABASE_URL environment variable (which wins, so that the
	// password can stay out of the file). Never logged: it may hold a password.
	URL string
}

// EnvDatabaseURL names the environment variable that selects PostgreSQL.
const EnvDatabaseURL = "SYMBOT_DATABASE_URL"

// StoreURLSetting names where Store.URL came from, for messages that say
// what to fix: the SYMBOT_DATABASE_URL environment variable or store.url
// in the file.
func (c *Config) StoreURLSetting() string {
	if c.storeURLFromEnv {
		return EnvDatabaseURL
	}
	return "store.url in " + c.File
}

// HTTP is the health and metrics listener; Listen "" turns it off.
type HTTP struct{ Listen string }

// Admin locates the admin unix socket.
type Admin struct{ Socket string }

// Log selects the log format and level.
type Log struct {
	Format string // text or json
	Level  string // debug, info, warn, error
}

// Problem is one problem with the configuration.
type Problem struct {
	Line    int    // 1-based line in the file; 0 when not tied to a line
	Path    string // key path, like flows[1].targets[0].group_id
	Problem string
}

// Error lists every problem found in a configuration at once.
type Error struct {
	File     string
	Problems []Problem
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s", e.File, CountProblems(len(e.Problems)))
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(e.Format(p))
	}
	return b.String()
}

// CountProblems says "1 problem" or "n problems".
func CountProblems(n int) string {
	if n == 1 {
		return "1 problem"
	}
	return fmt.Sprintf("%d problems", n)
}

// Format renders one problem as "file:line: path: problem".
func (e *Error) Format(p Problem) string {
	var b strings.Builder
	switch {
	case p.Line > 0:
		fmt.Fprintf(&b, "%s:%d: ", e.File, p.Line)
	case strings.HasPrefix(p.Path, "env "):
		b.WriteString("environment: ")
	default:
		fmt.Fprintf(&b, "%s: ", e.File)
	}
	if p.Path != "" {
		b.WriteString(strings.TrimPrefix(p.Path, "env "))
		b.WriteString(": ")
	}
	b.WriteString(p.Problem)
	return b.String()
}

// Load reads and validates the config file at path. getenv supplies the
// Slack tokens (os.Getenv in production). Errors are a *Error holding
// every problem, or a plain error when the file cannot be read.
func Load(path string, getenv func(string) string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("config file %s does not exist: copy symbot.example.yml to it and edit it, or pass --config", path)
		}
		return nil, fmt.Errorf("read config: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("config path: %w", err)
	}
	return Parse(path, data, filepath.Dir(abs), getenv)
}

// Parse parses and validates config data. name is used in messages;
// relative paths are resolved against dir.
func Parse(name string, data []byte, dir string, getenv func(string) string) (*Config, error) {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	d := &decoder{lines: map[string]int{}, exprs: map[string]exprPos{}}
	cfg := &Config{File: name}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			d.add(0, "", "the file is empty: start from symbot.example.yml")
		} else {
			line, msg := yamlErrorLine(err)
			if at := mistakeLine(data, line); at > line {
				d.add(at, "", "not valid YAML: %s (in the block that starts on line %d): check the indentation of this line", msg, line)
			} else {
				d.add(line, "", "not valid YAML: %s", msg)
			}
		}
		return nil, d.err(name)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	d.config(root, cfg)
	cfg.env(d, getenv)
	// Validate even when decoding found problems, so that every problem is
	// reported at once, but say nothing more about keys already reported.
	d.bad = map[string]bool{}
	for _, p := range d.problems {
		d.bad[p.Path] = true
	}
	cfg.applyDefaults(dir)
	cfg.auditDefaults(dir, getenv)
	cfg.pagerDutyDefaults()
	cfg.validate(d)
	cfg.validateRules(d)
	if len(d.problems) > 0 {
		return nil, d.err(name)
	}
	return cfg, nil
}

// RequireTokens reports whether the Slack tokens that `symbot run` needs are
// present in the environment.
func (c *Config) RequireTokens() error {
	var missing []string
	if c.Slack.BotToken == "" {
		missing = append(missing, "SLACK_BOT_TOKEN (the bot token, xoxb-..., from OAuth & Permissions after installing the app)")
	}
	if c.Slack.AppToken == "" {
		missing = append(missing, "SLACK_APP_TOKEN (an app-level token, xapp-..., with the connections:write scope, from Basic Information > App-Level Tokens)")
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing Slack tokens in the environment: %s", strings.Join(missing, "; "))
	}
	return nil
}
