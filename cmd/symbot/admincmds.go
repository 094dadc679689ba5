package main

// The admin commands (requests, grants, revoke, audit, audit verify,
// backup): they ask the running daemon over its admin socket; the ones
// that only read can instead open the store themselves, read-only (--db,
// --offline; see offline.go), and print the same.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/cmd/symbot/internal/admin"
)

// adminCmd is what every command that asks the running daemon shares: its
// flag set with --config and --socket, the parse of its arguments, the
// client from --socket or the config, and how it reports a failure.
type adminCmd struct {
	name   string
	fs     *flag.FlagSet
	stderr io.Writer
	config *string
	socket *string
	// db and offline are --db and --offline, for the commands that only
	// read (readOffline); nil for the others.
	db      *string
	offline *bool
	// auditKey: offline, the command needs the audit key the config names
	// (it verifies the chain).
	auditKey bool
}

func newAdminCmd(name, usage string, stderr io.Writer) *adminCmd {
	fs := newFlagSet(name, usage, stderr)
	return &adminCmd{name: name, fs: fs, stderr: stderr,
		config: configFlag(fs),
		socket: fs.String("socket", "", "admin socket (default: admin.socket from the config)"),
	}
}

// readOffline adds --db and --offline: the command only reads, so it can
// open the store itself, read-only, when the daemon is stopped.
func (a *adminCmd) readOffline() {
	a.db = a.fs.String("db", "", "read this bbolt store file directly, read-only, instead of asking the daemon (which must be stopped); the config still gives the flows and the audit key")
	a.offline = a.fs.Bool("offline", false, "read the store the config names directly, read-only, instead of asking the daemon: store.path (the daemon stopped), or store.url / SYMBOT_DATABASE_URL (PostgreSQL, also while replicas run)")
}

// jsonFlag adds --json.
func (a *adminCmd) jsonFlag() *bool { return a.fs.Bool("json", false, "print JSON") }

// parse parses args: with one == "" the command takes no positional
// argument, else exactly one, which one describes ("request id (see
// `symbot grants`)"). When ok is false the command stops with code.
func (a *adminCmd) parse(args []string, one string) (arg string, code int, ok bool) {
	if one == "" {
		code, ok := parseNoArgs(a.fs, args, a.stderr)
		return "", code, ok
	}
	return parseOneArg(a.fs, args, a.stderr, one)
}

// client returns the admin client, from --socket or the config, or with
// --db or --offline one that reads the store in this process; close it
// when done. When ok is false the problem has been printed and code is
// the exit code.
func (a *adminCmd) client(ctx context.Context) (c *admin.Client, code int, ok bool) {
	offline := a.db != nil && (*a.db != "" || *a.offline)
	if offline && *a.socket != "" {
		return nil, a.usageError(errors.New("--socket asks the daemon, --db and --offline read the store without it: give one")), false
	}
	if *a.socket != "" {
		return admin.NewClient(*a.socket), 0, true
	}
	cfg, ok := loadConfig(a.name, *a.config, a.stderr)
	if !ok {
		return nil, exitFail, false
	}
	if !offline {
		return admin.NewClient(cfg.Admin.Socket), 0, true
	}
	c, err := openOffline(ctx, cfg, *a.db, a.auditKey)
	if err != nil {
		return nil, a.fail(err), false
	}
	return c, 0, true
}

// dial is parse then client, for the commands that check nothing else
// before they ask the daemon.
func (a *adminCmd) dial(ctx context.Context, args []string, one string) (c *admin.Client, arg string, code int, ok bool) {
	if arg, code, ok = a.parse(args, one); !ok {
		return nil, "", code, false
	}
	if c, code, ok = a.client(ctx); !ok {
		return nil, "", code, false
	}
	return c, arg, 0, true
}

// fail prints err as the command's failure and returns exitFail.
func (a *adminCmd) fail(err error) int {
	fmt.Fprintf(a.stderr, "symbot %s: %v\n", a.name, err)
	if a.db != nil && errors.Is(err, admin.ErrNoDaemon) {
		fmt.Fprintf(a.stderr, "symbot %s: with the daemon stopped, add --offline to read the store the config names (or --db FILE)\n", a.name)
	}
	return exitFail
}

// usageError prints err as a mistake on the command line and returns
// exitUsage.
func (a *adminCmd) usageError(err error) int {
	fmt.Fprintf(a.stderr, "symbot %s: %v\n", a.name, err)
	return exitUsage
}

func printJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// printJSONList prints a list as JSON: [] when it is empty.
func printJSONList[T any](w io.Writer, v []T) {
	if v == nil {
		v = []T{}
	}
	printJSON(w, v)
}

// listEnd is how a list command ends once it has fetched items: it reports
// err, or prints the items as JSON, or the line empty when there are none,
// or a table of header and one row per item.
func listEnd[T any](cmd *adminCmd, stdout io.Writer, asJSON bool, items []T, err error, empty, header string, row func(T) string) int {
	if err != nil {
		return cmd.fail(err)
	}
	if asJSON {
		printJSONList(stdout, items)
		return exitOK
	}
	if len(items) == 0 {
		fmt.Fprintln(stdout, empty)
		return exitOK
	}
	printTable(stdout, header, items, row)
	return exitOK
}

// printTable prints header and one row per item (cells separated by tabs)
// as an aligned table.
func printTable[T any](w io.Writer, header string, items []T, row func(T) string) {
	tw := newTable(w)
	fmt.Fprintln(tw, header)
	for _, it := range items {
		fmt.Fprintln(tw, row(it))
	}
	tw.Flush()
}

func fmtTime(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

func person(p admin.PersonJSON) string {
	if p.Name != "" {
		return oneLine(p.Name) + " (" + oneLine(p.SlackID) + ")"
	}
	return oneLine(p.SlackID)
}

// olderDaemon forgives a 404: a daemon older than this command lacks the
// endpoint of its second list, and the first list is still worth printing.
func olderDaemon(err error) error {
	var ae *admin.Error
	if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
		return nil
	}
	return err
}

// failuresShown is how far back `symbot requests` lists failed grants.
const failuresShown = 7 * 24 * time.Hour

func requestsCmd(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	cmd := newAdminCmd("requests", "", stderr)
	cmd.readOffline()
	asJSON := cmd.jsonFlag()
	c, _, code, ok := cmd.dial(ctx, args, "")
	if !ok {
		return code
	}
	defer c.Close()
	reqs, err := c.Requests(ctx)
	var failed []admin.RequestJSON
	if err == nil {
		failed, err = c.Failures(ctx, time.Now().Add(-failuresShown))
	}
	if err := olderDaemon(err); err != nil {
		return cmd.fail(err)
	}
	if *asJSON {
		printJSONList(stdout, append(reqs, failed...))
		return exitOK
	}
	if len(reqs) == 0 {
		fmt.Fprintln(stdout, "no pending or approved requests")
	} else {
		printTable(stdout, "ID\tSTATE\tFLOW\tTARGET\tREQUESTER\tDURATION\tAPPROVALS\tCREATED\tREASON", reqs, func(r admin.RequestJSON) string {
			created := r.CreatedAt
			return fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s", r.ID, r.State, r.Flow, r.Target, person(r.Requester), r.Duration, len(r.Approvals), fmtTime(&created), oneLine(truncate(r.Reason, 60)))
		})
	}
	if len(failed) > 0 {
		fmt.Fprintf(stdout, "\nFAILED GRANTS (last %s):\n", symbot.FormatDuration(failuresShown))
		printTable(stdout, "ID\tFLOW\tTARGET\tREQUESTER\tFAILED\tERROR", failed, func(r admin.RequestJSON) string {
			at := r.UpdatedAt
			return fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s", r.ID, r.Flow, r.Target, person(r.Requester), fmtTime(&at), oneLine(truncate(r.FailReason, 200)))
		})
	}
	return exitOK
}

func grantsCmd(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	cmd := newAdminCmd("grants", "", stderr)
	cmd.readOffline()
	asJSON := cmd.jsonFlag()
	c, _, code, ok := cmd.dial(ctx, args, "")
	if !ok {
		return code
	}
	defer c.Close()
	reqs, err := c.Grants(ctx)
	// Ended grants whose removal is not done are listed too: the person
	// may still be in the Okta group.
	var ended []admin.RequestJSON
	if err == nil {
		var rs []admin.RemovalJSON
		rs, err = c.Removals(ctx)
		for _, r := range rs {
			q := r.Request
			q.RemovalAttempts, q.RemovalError, q.RemovalSince = r.Attempts, r.LastError, &r.Since
			ended = append(ended, q)
		}
	}
	if err := olderDaemon(err); err != nil {
		return cmd.fail(err)
	}
	if *asJSON {
		printJSONList(stdout, append(reqs, ended...))
		return exitOK
	}
	if len(reqs) == 0 {
		fmt.Fprintln(stdout, "no active grants")
	} else {
		printTable(stdout, "ID\tFLOW\tTARGET\tUSER\tOKTA LOGIN\tGRANTED\tEXPIRES\tLEFT", reqs, func(r admin.RequestJSON) string {
			left := "-"
			if r.ExpiresAt != nil {
				left = timeLeft(time.Until(*r.ExpiresAt))
			}
			return fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s", r.ID, r.Flow, r.Target, person(r.Requester), dash(r.OktaLogin), fmtTime(r.GrantedAt), fmtTime(r.ExpiresAt), left)
		})
	}
	if len(ended) > 0 {
		fmt.Fprintln(stdout, "\nENDED, OKTA REMOVAL PENDING (the person may still be in the group):")
		printTable(stdout, "ID\tSTATE\tFLOW\tTARGET\tUSER\tOKTA LOGIN\tPENDING SINCE\tATTEMPTS\tLAST ERROR", ended, func(r admin.RequestJSON) string {
			return fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s", r.ID, r.State, r.Flow, r.Target, person(r.Requester), dash(r.OktaLogin), fmtTime(r.RemovalSince), r.RemovalAttempts, dash(oneLine(truncate(r.RemovalError, 100))))
		})
	}
	return exitOK
}

// timeLeft says how long a grant still runs: rounded up, so that a grant
// with time left never shows 0, in seconds under a minute and in whole
// minutes above.
func timeLeft(d time.Duration) string {
	switch {
	case d <= 0:
		return "ending"
	case d < time.Minute:
		return symbot.FormatDuration((d + time.Second - 1).Truncate(time.Second))
	}
	return symbot.FormatDuration((d + time.Minute - 1).Truncate(time.Minute))
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func revokeCmd(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	cmd := newAdminCmd("revoke", "", stderr)
	reason := cmd.fs.String("reason", "", "why (recorded in the audit trail and told to the user)")
	asJSON := cmd.jsonFlag()
	c, id, code, ok := cmd.dial(ctx, args, "request id (see `symbot grants`)")
	if !ok {
		return code
	}
	defer c.Close()
	r, err := c.Revoke(ctx, id, *reason)
	var ae *admin.Error
	if errors.As(err, &ae) {
		switch ae.Status {
		case http.StatusNotFound:
			err = fmt.Errorf("%w: check the id with `symbot grants`", err)
		case http.StatusConflict:
			err = fmt.Errorf("%w: it has already ended or been decided; `symbot grants` and `symbot requests` list what can still be revoked", err)
		}
	}
	if err != nil {
		return cmd.fail(err)
	}
	if *asJSON {
		printJSON(stdout, r)
		return exitOK
	}
	if r.State == string(symbot.StateDenied) {
		fmt.Fprintf(stdout, "denied %s: the pending request of %s for %s/%s; nothing was granted\n", r.ID, person(r.Requester), r.Flow, r.Target)
		return exitOK
	}
	fmt.Fprintf(stdout, "revoked %s: %s/%s of %s is now %s; the Okta membership removal is queued\n", r.ID, r.Flow, r.Target, person(r.Requester), r.State)
	return exitOK
}

// parseSince reads --since: a duration back from now (24h, 7d) or an
// RFC 3339 time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" || s == "all" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	d, err := symbot.ParseDuration(s)
	if err != nil || d < 0 {
		return time.Time{}, fmt.Errorf("--since %q: use a duration back from now (24h, 7d) or an RFC 3339 time (2026-01-02T15:04:05Z), or all", s)
	}
	return now.Add(-d), nil
}

func auditCmd(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "verify":
			return auditVerifyCmd(ctx, args[1:], stdout, stderr)
		case "keygen":
			return auditKeygenCmd(ctx, args[1:], stdout, stderr)
		case "export":
			return auditExportCmd(ctx, args[1:], stdout, stderr)
		}
	}
	cmd := newAdminCmd("audit", "", stderr)
	cmd.readOffline()
	sinceFlag := cmd.fs.String("since", "24h", "entries since this long ago (24h, 7d), since an RFC 3339 time, or all")
	asJSON := cmd.jsonFlag()
	pos, code, ok := parseFlags(cmd.fs, args)
	if !ok {
		return code
	}
	if len(pos) == 1 && pos[0] == "verify" {
		return auditVerifyCmd(ctx, nil, stdout, stderr)
	}
	if len(pos) > 0 {
		fmt.Fprintf(stderr, "symbot audit: unexpected argument %q (did you mean `symbot audit verify`?)\n", pos[0])
		return exitUsage
	}
	since, err := parseSince(*sinceFlag, time.Now())
	if err != nil {
		return cmd.usageError(err)
	}
	c, code, ok := cmd.client(ctx)
	if !ok {
		return code
	}
	defer c.Close()
	entries, err := c.Audit(ctx, since)
	return listEnd(cmd, stdout, *asJSON, entries, err, "no audit entries in that period", "SEQ\tTIME\tREQUEST\tACTOR\tACTION\tDETAIL", func(e admin.AuditJSON) string {
		at := e.At
		return fmt.Sprintf("%d\t%s\t%s\t%s\t%s\t%s", e.Seq, fmtTime(&at), dash(e.RequestID), e.Actor, e.Action, oneLine(truncate(e.Detail, 80)))
	})
}

func auditVerifyCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := newAdminCmd("audit verify", "[--against FILE|DIR] [--json] [--config FILE] [--socket PATH | --db FILE | --offline]", stderr)
	cmd.readOffline()
	cmd.auditKey = true
	asJSON := cmd.jsonFlag()
	against := cmd.fs.String("against", "", "also check the chain against checkpoints exported earlier: a file sink's output, S3 objects (a file or a directory) or symbot's log")
	if _, code, ok := cmd.parse(args, ""); !ok {
		return code
	}
	var cps []symbot.AuditCheckpoint
	if *against != "" {
		var err error
		if cps, err = readAnchors(*against); err != nil {
			return cmd.usageError(err)
		}
	}
	c, code, ok := cmd.client(ctx)
	if !ok {
		return code
	}
	defer c.Close()
	var v admin.VerifyJSON
	var err error
	if *against != "" {
		v, err = c.VerifyAuditAgainst(ctx, cps)
	} else {
		v, err = c.VerifyAudit(ctx)
	}
	if err != nil {
		return cmd.fail(err)
	}
	if *asJSON {
		printJSON(stdout, v)
	} else if v.OK && *against != "" {
		fmt.Fprintf(stdout, "audit chain ok: %d entries, and it matches %d anchors from %s\n", v.Entries, len(cps), *against)
	} else if v.OK {
		fmt.Fprintf(stdout, "audit chain ok: %d entries\n", v.Entries)
	} else {
		fmt.Fprintf(stdout, "audit chain BROKEN at entry %d (position %d): %s\n", v.Broken.Seq, v.Broken.Index, v.Broken.Problem)
	}
	if !v.OK {
		return exitFail
	}
	return exitOK
}

func backupCmd(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	cmd := newAdminCmd("backup", "", stderr)
	cmd.readOffline()
	c, file, code, ok := cmd.dial(ctx, args, "file to write the backup to")
	if !ok {
		return code
	}
	defer c.Close()
	n, err := c.BackupToFile(ctx, file)
	if err != nil {
		return cmd.fail(err)
	}
	fmt.Fprintf(stdout, "wrote %s (%d bytes)\n", file, n)
	return exitOK
}
