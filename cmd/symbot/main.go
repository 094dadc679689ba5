// Command symbot is a self-hosted Slack bot that grants temporary Okta group
// membership after approval in Slack.
package main

// main.go holds the command table, dispatch, usage and the flag helpers
// every command shares. Each command lives in its own file (run.go, check.go,
// demo.go, admincmds.go, ...); config loading is in internal/config and the
// admin protocol in internal/admin.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"
	// The zone database, built in: the container image (scratch) has no
	// /usr/share/zoneinfo, and a scheduled start is read in the
	// requester's Slack time zone, daylight saving time included.
	_ "time/tzdata"

	"github.com/symbot/symbot/cmd/symbot/internal/config"
)

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1 // the command ran and failed
	exitUsage = 2 // the command line was wrong
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// command is one subcommand.
type command struct {
	name    string
	args    string // usage after the name
	summary string
	run     func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"run", "[--config FILE]", "run the bot (Socket Mode, scheduler, executor)", func(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
			return runCmd(ctx, args, stdout, stderr)
		}},
		{"demo", "[--duration D] [--warning D] [--verbose]", "run the whole flow against built-in simulators, no accounts needed", func(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
			return demoCmd(ctx, args, stdout, stderr)
		}},
		{"check", "[--config FILE] [--live]", "validate the config; --live also tests Slack, AWS and Okta", checkCmd},
		{"explain", explainArgs, "show how the rules decide a request for FLOW/TARGET, rule by rule, without making one", explainCmd},
		{"iam-policy", "[--config FILE] [--principal ARN] [--tag KEY=VALUE]", "print the IAM trust and permission policies to paste into AWS", iamPolicyCmd},
		{"requests", "[--config FILE] [--json] [--socket PATH | --db FILE | --offline]", "list pending and approved requests, and grants that failed in the last 7 days with their errors (asks the running daemon; --db or --offline reads the store read-only with the daemon stopped)", requestsCmd},
		{"grants", "[--config FILE] [--json] [--socket PATH | --db FILE | --offline]", "list active grants, and ended grants whose Okta removal is still pending (asks the running daemon; --db or --offline reads the store read-only with the daemon stopped)", grantsCmd},
		{"show", "ID [--json] [--config FILE] [--socket PATH | --db FILE | --offline]", "print one request's whole story: transitions, queued jobs with attempts and errors, audit entries", showCmd},
		{"reconcile", "[--dry-run] [--json] [--config FILE] [--socket PATH]", "compare every target group's Okta members with the grants now and print what was found", reconcileCmd},
		{"standing", "[--json] [--config FILE] [--socket PATH | --db FILE | --offline]", "list the standing members recorded at each group's first reconcile (never removed)", standingCmd},
		{"identities", "[--json] [--config FILE] [--socket PATH | --db FILE | --offline]", "list the bindings of Slack accounts to Okta users (Slack id, Okta user, login, how, when, status: mismatch when a profile now finds another Okta user)", identitiesCmd},
		{"identity", "reset SLACK_ID [--json] [--config FILE] [--socket PATH]", "remove a Slack account's binding after checking a mismatch (audited); its next action binds it anew", identityCmd},
		{"revoke", "ID [--reason TEXT] [--json] [--config FILE] [--socket PATH]", "end a grant now and remove the membership (a pending request is denied)", revokeCmd},
		{"audit", "[--since DURATION|RFC3339|all] [--json] [--config FILE] [--socket PATH | --db FILE | --offline]", "print the audit trail; `audit verify [--against FILE|DIR]` checks its chain (and against exported checkpoints); `audit export [--since] [--until] [--format jsonl|csv]`; `audit keygen [FILE]` makes the key that seals it", auditCmd},
		{"report", "[--since DURATION|RFC3339|all] [--until DURATION|RFC3339] [--format md|csv] [--config FILE] [--socket PATH | --db FILE | --offline]", "access review: who had which access, for how long, approved by whom, for what reason; and the standing members of each group", reportCmd},
		{"backup", "FILE [--config FILE] [--socket PATH | --db FILE | --offline]", "write a consistent copy of the store to FILE (from the running daemon; with --db or --offline, from the store itself with the daemon stopped)", backupCmd},
		{"restore", "FILE [--config FILE]", "replace the store from a backup (daemon stopped): checks its audit chain; the next start reconciles Okta before serving", restoreCmd},
		{"healthcheck", healthcheckArgs, "ask the running daemon's /healthz (or /readyz); exit 0 when it answers 200 (for container health checks)", healthcheckCmd},
		{"migrate", "[--check | --from FILE] [--config FILE]", "bring the PostgreSQL schema up to date; --check only reports; --from copies a bbolt store into an empty database", migrateCmd},
		{"version", "", "print the version, commit, build date and Go version", versionCmd},
		{"help", "[COMMAND]", "show help", nil},
	}
}

// run executes the symbot command line args (without the program name) and
// returns the exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	name, rest := args[0], args[1:]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(rest) > 0 {
			if c, ok := findCommand(rest[0]); ok && c.run != nil {
				return c.run(ctx, []string{"-h"}, stdin, stdout, stdout)
			}
			if rest[0] == "help" {
				fmt.Fprintln(stdout, "Usage: symbot help [COMMAND]\n\nWithout a command: list the commands. With one: show its usage and flags.")
				return exitOK
			}
			fmt.Fprintf(stderr, "symbot: unknown command %q\n", rest[0])
			usage(stderr)
			return exitUsage
		}
		usage(stdout)
		return exitOK
	case "-version", "--version":
		name = "version"
	}
	c, ok := findCommand(name)
	if !ok {
		fmt.Fprintf(stderr, "symbot: unknown command %q\n\n", name)
		usage(stderr)
		return exitUsage
	}
	return c.run(ctx, rest, stdin, stdout, stderr)
}

func findCommand(name string) (command, bool) {
	for _, c := range commands() {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "symbot grants temporary Okta group membership after approval in Slack.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage: symbot COMMAND [flags]")
	fmt.Fprintln(w)
	tw := newTable(w)
	for _, c := range commands() {
		fmt.Fprintf(tw, "  %s %s\t%s\n", c.name, c.args, c.summary)
	}
	tw.Flush()
	fmt.Fprintln(w)
	fmt.Fprintln(w, "The config file defaults to $SYMBOT_CONFIG, else symbot.yml. Slack tokens come from")
	fmt.Fprintln(w, "SLACK_BOT_TOKEN and SLACK_APP_TOKEN (and optionally SLACK_API_URL) in the environment.")
	fmt.Fprintln(w, "Run `symbot help COMMAND` for a command's flags.")
}

// newFlagSet returns a FlagSet for a subcommand that writes its usage to w.
// A command of the table (commands) prints the args and summary written
// there, so its usage is written once; args is the usage after the name of
// a subcommand that is not in the table ("audit verify"), "" for the others.
func newFlagSet(name, args string, w io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(w)
	fs.Usage = func() {
		c, inTable := findCommand(name)
		if inTable {
			args = c.args
		}
		fmt.Fprintf(w, "Usage: symbot %s %s\n", name, args)
		if inTable {
			fmt.Fprintf(w, "\n%s\n", c.summary)
		}
		var any bool
		fs.VisitAll(func(*flag.Flag) { any = true })
		if any {
			fmt.Fprintln(w, "\nFlags:")
			fs.PrintDefaults()
		}
	}
	return fs
}

// configFlag adds the --config flag.
func configFlag(fs *flag.FlagSet) *string {
	def := os.Getenv("SYMBOT_CONFIG")
	if def == "" {
		def = config.DefaultPath
	}
	return fs.String("config", def, "config file")
}

// parseFlags parses args allowing flags after positional arguments
// (`revoke ID --reason x`), and returns the positional arguments. It
// returns the exit code to use when parsing stops the command.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, int, bool) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, exitOK, false
			}
			return nil, exitUsage, false
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, 0, true
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), 0, true
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// parseNoArgs parses the flags of a command that takes no positional
// arguments. When ok is false the command stops with code.
func parseNoArgs(fs *flag.FlagSet, args []string, stderr io.Writer) (code int, ok bool) {
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code, false
	}
	if len(pos) > 0 {
		fmt.Fprintf(stderr, "symbot %s: unexpected argument %q: it takes only flags (see `symbot help %s`)\n", fs.Name(), pos[0], fs.Name())
		return exitUsage, false
	}
	return 0, true
}

// parseOneArg parses the flags of a command that takes exactly one
// positional argument, which what describes for the message when there is
// not exactly one. When ok is false the command stops with code.
func parseOneArg(fs *flag.FlagSet, args []string, stderr io.Writer, what string) (arg string, code int, ok bool) {
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return "", code, false
	}
	if len(pos) != 1 {
		fmt.Fprintf(stderr, "symbot %s: give exactly one %s\n", fs.Name(), what)
		return "", exitUsage, false
	}
	return pos[0], 0, true
}

// newTable returns the writer the commands print their tables with; Flush
// it when done.
func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0) }

// loadConfig loads the config for the command cmd and prints its problems
// on failure.
func loadConfig(cmd, path string, stderr io.Writer) (*config.Config, bool) {
	cfg, err := config.Load(path, os.Getenv)
	if err != nil {
		fmt.Fprintf(stderr, "symbot %s: %v\n", cmd, err)
		return nil, false
	}
	return cfg, true
}
