package main

// `symbot check`: the offline preflight (config, tokens present, store and
// socket paths) and the runner that prints one ok/FAIL line per check; the
// live checks are built in run.go.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/celrules"
	"github.com/symbot/symbot/cmd/symbot/internal/admin"
	"github.com/symbot/symbot/cmd/symbot/internal/config"
	"github.com/symbot/symbot/store"
)

// Check is one named preflight check. Fix says, for people, what to do
// when it fails.
type Check struct {
	Name string
	Run  func(ctx context.Context) error
	Fix  string
	// Needs names an earlier check this one depends on: when that one
	// fails, this one is skipped, so one root cause is one failure.
	Needs string
}

// checkWarning, returned by a check, is printed as a "warn" line with its
// own fix; it does not count as a failure, so `symbot check` still exits 0.
type checkWarning struct{ msg, fix string }

func (w *checkWarning) Error() string { return w.msg }

// fixError is a failure that carries its own fix, replacing the check's.
type fixError struct {
	err error
	fix string
}

func (e *fixError) Error() string { return e.err.Error() }
func (e *fixError) Unwrap() error { return e.err }

// CheckTimeout bounds each check.
const CheckTimeout = 20 * time.Second

// RunChecks runs checks in order, printing one line per check ("ok" or
// "FAIL", and for a failure the error and the fix), and returns the number
// that failed. A check that panics counts as failed; one that returns a
// *checkWarning prints "warn" and does not.
func RunChecks(ctx context.Context, w io.Writer, checks []Check) int {
	failed := 0
	bad := map[string]bool{} // checks that failed or were skipped
	for _, c := range checks {
		if c.Needs != "" && bad[c.Needs] {
			bad[c.Name] = true
			fmt.Fprintf(w, "skip  %s: not checked, it needs %q\n", c.Name, c.Needs)
			continue
		}
		err := runCheck(ctx, c)
		if err == nil {
			fmt.Fprintf(w, "ok    %s\n", c.Name)
			continue
		}
		fix := c.Fix
		var fe *fixError
		if errors.As(err, &fe) {
			fix = fe.fix
		}
		var warn *checkWarning
		if errors.As(err, &warn) {
			// Worth a look, but nothing is broken: not a failure, and
			// what depends on the check still runs.
			fmt.Fprintf(w, "warn  %s: %s\n", c.Name, oneLine(warn.msg))
			if warn.fix != "" {
				fmt.Fprintf(w, "      fix: %s\n", warn.fix)
			}
			continue
		}
		failed++
		bad[c.Name] = true
		fmt.Fprintf(w, "FAIL  %s: %s\n", c.Name, oneLine(err.Error()))
		if nf, ok := networkFix(err); ok {
			fix = nf // the network, not the settings, is at fault
		}
		if fix != "" {
			fmt.Fprintf(w, "      fix: %s\n", fix)
		}
	}
	return failed
}

// networkFix says what to do when a check failed because the service could
// not be reached at all, whatever its own fix says about tokens or settings.
func networkFix(err error) (string, bool) {
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return fmt.Sprintf("cannot resolve %s: check DNS and this host's network access (the check's own settings were not tried)", dns.Name), true
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return "cannot connect: check this host's network access, firewall and proxy (HTTPS_PROXY) (the check's own settings were not tried)", true
	}
	return "", false
}
func runCheck(ctx context.Context, c Check) (err error) {
	if c.Run == nil {
		return errors.New("check has nothing to run")
	}
	ctx, cancel := context.WithTimeout(ctx, CheckTimeout)
	defer cancel()
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("check crashed: %v", p)
		}
	}()
	return c.Run(ctx)
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(printable(s)), " ")
}

// printable drops control and bidi characters (ANSI escapes, U+202E and
// the like) from text that people control, before it reaches an
// operator's terminal.
func printable(s string) string { return symbot.CleanText(s) }

// OfflineChecks are the checks that need no network, for a config that
// loaded.
func OfflineChecks(cfg *config.Config) []Check {
	nTargets := 0
	for _, f := range cfg.Flows {
		nTargets += len(f.Targets)
	}
	checks := []Check{
		{
			Name: fmt.Sprintf("config %s: %d flows, %d targets", cfg.File, len(cfg.Flows), nTargets),
			Run:  func(context.Context) error { return nil },
		},
		rulesCheck(cfg),
		{
			Name: runtimeSummary(cfg.Runtime),
			Run:  func(context.Context) error { return nil },
		},
		{
			Name: "SLACK_BOT_TOKEN is set",
			Run: func(context.Context) error {
				if cfg.Slack.BotToken == "" {
					return errors.New("not set")
				}
				return nil
			},
			Fix: "export SLACK_BOT_TOKEN=xoxb-... (the Bot User OAuth Token from OAuth & Permissions after installing the app)",
		},
		{
			Name: "SLACK_APP_TOKEN is set",
			Run: func(context.Context) error {
				if cfg.Slack.AppToken == "" {
					return errors.New("not set")
				}
				return nil
			},
			Fix: "export SLACK_APP_TOKEN=xapp-... (Basic Information > App-Level Tokens, with the connections:write scope)",
		},
		{
			Name: "admin socket directory " + filepath.Dir(cfg.Admin.Socket) + " is writable",
			Run:  func(context.Context) error { return writableDir(filepath.Dir(cfg.Admin.Socket)) },
			Fix:  "create the directory and give the user that runs symbot write access, or change admin.socket",
		},
		{
			Name: "admin socket directory " + filepath.Dir(cfg.Admin.Socket) + " is not writable by other users",
			Run:  func(context.Context) error { return admin.CheckSocketDir(filepath.Dir(cfg.Admin.Socket)) },
			Fix:  "chmod o-w " + filepath.Dir(cfg.Admin.Socket) + ", or set admin.socket to a path in a directory only symbot's user can write",
		},
	}
	if cfg.Store.URL != "" {
		// PostgreSQL: nothing local to check; symbot migrate --check asks
		// the database whether its schema is current.
		return checks
	}
	storeFile := Check{
		Name: "store file " + cfg.Store.Path + " is private",
		Run:  func(context.Context) error { return privateFile(cfg.Store.Path) },
		Fix:  "chmod 600 " + cfg.Store.Path + ", and make store.path the file itself, not a symbolic link",
	}
	if _, err := os.Lstat(cfg.Store.Path); errors.Is(err, os.ErrNotExist) {
		storeFile.Name = "store file " + cfg.Store.Path + " does not exist yet: symbot run creates it with mode 0600"
	}
	return append(checks, []Check{
		{
			Name: "store directory " + filepath.Dir(cfg.Store.Path) + " is writable",
			Run:  func(context.Context) error { return writableDir(filepath.Dir(cfg.Store.Path)) },
			Fix:  "create the directory and give the user that runs symbot write access, or change store.path",
		},
		storeFile,
	}...)
}

// runtimeSummary says the runtime settings in effect (defaults filled
// in), for `symbot check`.
func runtimeSummary(r config.Runtime) string {
	early := "early Okta look-ups stand for " + symbot.FormatDuration(r.GrantCheckTTL)
	if r.GrantCheckOff {
		early = "early Okta look-ups off"
	}
	return fmt.Sprintf("runtime: credentials re-checked every %s, %s, %d job workers",
		symbot.FormatDuration(r.CredentialCheckInterval), early, r.JobWorkers)
}

func writableDir(dir string) error {
	f, err := os.CreateTemp(dir, ".symbot-check-*")
	if err != nil {
		return fmt.Errorf("cannot create a file in %s: %w", dir, errors.Unwrap(err))
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}

// privateFile checks that an existing store file is neither reached
// through a symbolic link nor readable by others, as store.Open does; a
// missing file is fine (symbot creates it with mode 0600).
func privateFile(path string) error {
	return store.CheckPath(path)
}

func checkCmd(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("check", "", stderr)
	cfgPath := configFlag(fs)
	live := fs.Bool("live", false, "also check Slack, AWS and Okta with the real credentials")
	if code, ok := parseNoArgs(fs, args, stderr); !ok {
		return code
	}
	cfg, err := config.Load(*cfgPath, os.Getenv)
	if err != nil {
		var ce *config.Error
		if errors.As(err, &ce) {
			fmt.Fprintf(stdout, "FAIL  config %s: %s\n", *cfgPath, config.CountProblems(len(ce.Problems)))
			for _, p := range ce.Problems {
				fmt.Fprintf(stdout, "      %s\n", ce.Format(p))
			}
		} else {
			fmt.Fprintf(stdout, "FAIL  config: %v\n", err)
		}
		return exitFail
	}
	failed := RunChecks(ctx, stdout, OfflineChecks(cfg))
	if *live {
		checks, err := liveChecks(ctx, cfg, stderr)
		if err != nil {
			fmt.Fprintf(stdout, "FAIL  live checks: %v\n", err)
			return exitFail
		}
		failed += RunChecks(ctx, stdout, checks)
	}
	if failed > 0 {
		fmt.Fprintf(stdout, "%d check(s) failed\n", failed)
		return exitFail
	}
	fmt.Fprintln(stdout, "all checks passed")
	return exitOK
}

// rulesCheck says how many rules compiled (config.Load has compiled and
// type-checked them already; a problem there fails the config line).
func rulesCheck(cfg *config.Config) Check {
	n := 0
	for _, f := range cfg.Flows {
		n += len(f.Rules)
		for _, t := range f.Targets {
			n += len(t.Rules)
		}
	}
	return Check{
		Name: fmt.Sprintf("rules: %d compiled and type-checked", n),
		Run: func(context.Context) error {
			rs, probs := cfg.CompileRules()
			if len(probs) > 0 {
				return probs[0]
			}
			if bg := breakGlassRefusers(cfg.Flows, rs); len(bg) > 0 {
				return &checkWarning{
					msg: fmt.Sprintf("refuse rules apply to break-glass requests too, and these do not read request.break_glass: %s", strings.Join(bg, ", ")),
					fix: "if that is meant, nothing to do (symbot explain FLOW/TARGET --break-glass shows it); for a rule meant for normal requests only (\"outside business hours: use /sym breakglass\"), add `!request.break_glass &&` to its condition",
				}
			}
			return nil
		},
		Fix: "fix the rule's expression; symbot explain FLOW/TARGET shows how the rules decide a request",
	}
}

// breakGlassRefusers lists the refuse rules of flows that allow
// break-glass ("flow/rule", "flow/target/rule") whose conditions do not
// read request.break_glass: they hold for break-glass requests as for
// normal ones, which a config written before they did may not mean.
func breakGlassRefusers(flows []symbot.Flow, rs *celrules.RuleSet) []string {
	var out []string
	add := func(where string, rules []symbot.Rule) {
		for _, r := range rules {
			if r.Action != symbot.RuleRefuse {
				continue
			}
			if reads, ok := rs.Reads(r.When); ok && !slices.Contains(reads, "request.break_glass") {
				out = append(out, where+"/"+r.Name)
			}
		}
	}
	for _, f := range flows {
		if f.BreakGlass == nil {
			continue
		}
		add(f.Name, f.Rules)
		for _, t := range f.Targets {
			add(f.Name+"/"+t.Name, t.Rules)
		}
	}
	return out
}
