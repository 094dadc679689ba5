package main

// The admin commands (requests, grants, revoke, audit, audit verify,
// backup): they ask the running daemon over its admin socket.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"text/tabwriter"
	"time"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/cmd/symbot/internal/admin"
)

// adminFlags are the flags every admin subcommand has.
type adminFlags struct {
	config *string
	socket *string
}

func addAdminFlags(fs *flag.FlagSet) adminFlags {
	return adminFlags{
		config: configFlag(fs),
		socket: fs.String("socket", "", "admin socket (default: admin.socket from the config)"),
	}
}

// client returns the admin client of the command cmd, from --socket or the
// config.
func (f adminFlags) client(cmd string, stderr io.Writer) (*admin.Client, bool) {
	if *f.socket != "" {
		return admin.NewClient(*f.socket), true
	}
	cfg, ok := loadConfig(cmd, *f.config, stderr)
	if !ok {
		return nil, false
	}
	return admin.NewClient(cfg.Admin.Socket), true
}

func adminFail(stderr io.Writer, cmd string, err error) int {
	fmt.Fprintf(stderr, "symbot %s: %v\n", cmd, err)
	return exitFail
}

func printJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
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

func requestsCmd(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	return listCmd(ctx, "requests", args, stdout, stderr)
}

func grantsCmd(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	return listCmd(ctx, "grants", args, stdout, stderr)
}

func listCmd(ctx context.Context, name string, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet(name, "[--config FILE] [--json]", stderr)
	af := addAdminFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	if code, ok := parseNoArgs(fs, args, stderr); !ok {
		return code
	}
	c, ok := af.client(name, stderr)
	if !ok {
		return exitFail
	}
	var reqs, extra []admin.RequestJSON
	var err error
	if name == "grants" {
		reqs, err = c.Grants(ctx)
		if err == nil {
			// Ended grants whose removal is not done are listed too: the
			// person may still be in the Okta group.
			var rs []admin.RemovalJSON
			rs, err = c.Removals(ctx)
			for _, r := range rs {
				q := r.Request
				q.RemovalAttempts, q.RemovalError, q.RemovalSince = r.Attempts, r.LastError, &r.Since
				extra = append(extra, q)
			}
		}
	} else {
		reqs, err = c.Requests(ctx)
		if err == nil {
			extra, err = c.Failures(ctx, time.Now().Add(-failuresShown))
		}
	}
	var ae *admin.Error
	if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
		err = nil // an older daemon without these endpoints
	}
	if err != nil {
		return adminFail(stderr, name, err)
	}
	if *asJSON {
		out := append(append([]admin.RequestJSON{}, reqs...), extra...)
		printJSON(stdout, out)
		return exitOK
	}
	if len(reqs) == 0 {
		if name == "grants" {
			fmt.Fprintln(stdout, "no active grants")
		} else {
			fmt.Fprintln(stdout, "no pending or approved requests")
		}
	} else {
		printList(stdout, name, reqs)
	}
	if len(extra) > 0 {
		fmt.Fprintln(stdout)
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		if name == "grants" {
			fmt.Fprintln(stdout, "ENDED, OKTA REMOVAL PENDING (the person may still be in the group):")
			fmt.Fprintln(tw, "ID\tSTATE\tFLOW\tTARGET\tUSER\tOKTA LOGIN\tPENDING SINCE\tATTEMPTS\tLAST ERROR")
			for _, r := range extra {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", r.ID, r.State, r.Flow, r.Target, person(r.Requester), dash(r.OktaLogin), fmtTime(r.RemovalSince), r.RemovalAttempts, dash(oneLine(truncate(r.RemovalError, 100))))
			}
		} else {
			fmt.Fprintf(stdout, "FAILED GRANTS (last %s):\n", symbot.FormatDuration(failuresShown))
			fmt.Fprintln(tw, "ID\tFLOW\tTARGET\tREQUESTER\tFAILED\tERROR")
			for _, r := range extra {
				at := r.UpdatedAt
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Flow, r.Target, person(r.Requester), fmtTime(&at), oneLine(truncate(r.FailReason, 200)))
			}
		}
		tw.Flush()
	}
	return exitOK
}

// failuresShown is how far back `symbot requests` lists failed grants.
const failuresShown = 7 * 24 * time.Hour

func printList(stdout io.Writer, name string, reqs []admin.RequestJSON) {
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	if name == "grants" {
		fmt.Fprintln(tw, "ID\tFLOW\tTARGET\tUSER\tOKTA LOGIN\tGRANTED\tEXPIRES\tLEFT")
		for _, r := range reqs {
			left := "-"
			if r.ExpiresAt != nil {
				left = timeLeft(time.Until(*r.ExpiresAt))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Flow, r.Target, person(r.Requester), dash(r.OktaLogin), fmtTime(r.GrantedAt), fmtTime(r.ExpiresAt), left)
		}
	} else {
		fmt.Fprintln(tw, "ID\tSTATE\tFLOW\tTARGET\tREQUESTER\tDURATION\tAPPROVALS\tCREATED\tREASON")
		for _, r := range reqs {
			created := r.CreatedAt
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", r.ID, r.State, r.Flow, r.Target, person(r.Requester), r.Duration, len(r.Approvals), fmtTime(&created), oneLine(truncate(r.Reason, 60)))
		}
	}
	tw.Flush()
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
	fs := newFlagSet("revoke", "ID [--reason TEXT] [--config FILE]", stderr)
	af := addAdminFlags(fs)
	reason := fs.String("reason", "", "why (recorded in the audit trail and told to the user)")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		fmt.Fprintln(stderr, "symbot revoke: give exactly one request id (see `symbot grants`)")
		return exitUsage
	}
	c, ok := af.client("revoke", stderr)
	if !ok {
		return exitFail
	}
	r, err := c.Revoke(ctx, pos[0], *reason)
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
		return adminFail(stderr, "revoke", err)
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
	fs := newFlagSet("audit", "[verify|export|keygen] [--since DURATION|RFC3339|all] [--json] [--config FILE]", stderr)
	af := addAdminFlags(fs)
	sinceFlag := fs.String("since", "24h", "entries since this long ago (24h, 7d), since an RFC 3339 time, or all")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, code, ok := parseFlags(fs, args)
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
		fmt.Fprintf(stderr, "symbot audit: %v\n", err)
		return exitUsage
	}
	c, ok := af.client("audit", stderr)
	if !ok {
		return exitFail
	}
	entries, err := c.Audit(ctx, since)
	if err != nil {
		return adminFail(stderr, "audit", err)
	}
	if *asJSON {
		if entries == nil {
			entries = []admin.AuditJSON{}
		}
		printJSON(stdout, entries)
		return exitOK
	}
	if len(entries) == 0 {
		fmt.Fprintln(stdout, "no audit entries in that period")
		return exitOK
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tTIME\tREQUEST\tACTOR\tACTION\tDETAIL")
	for _, e := range entries {
		at := e.At
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", e.Seq, fmtTime(&at), dash(e.RequestID), e.Actor, e.Action, oneLine(truncate(e.Detail, 80)))
	}
	tw.Flush()
	return exitOK
}

func auditVerifyCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("audit verify", "[--against FILE|DIR] [--json] [--config FILE]", stderr)
	af := addAdminFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	against := fs.String("against", "", "also check the chain against checkpoints exported earlier: a file sink's output, S3 objects (a file or a directory) or symbot's log")
	if code, ok := parseNoArgs(fs, args, stderr); !ok {
		return code
	}
	var cps []symbot.AuditCheckpoint
	if *against != "" {
		var err error
		if cps, err = readAnchors(*against); err != nil {
			fmt.Fprintf(stderr, "symbot audit verify: %v\n", err)
			return exitUsage
		}
	}
	c, ok := af.client("audit verify", stderr)
	if !ok {
		return exitFail
	}
	var v admin.VerifyJSON
	var err error
	if *against != "" {
		v, err = c.VerifyAuditAgainst(ctx, cps)
	} else {
		v, err = c.VerifyAudit(ctx)
	}
	if err != nil {
		return adminFail(stderr, "audit verify", err)
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
	fs := newFlagSet("backup", "FILE [--config FILE]", stderr)
	af := addAdminFlags(fs)
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		fmt.Fprintln(stderr, "symbot backup: give exactly one file to write the backup to")
		return exitUsage
	}
	c, ok := af.client("backup", stderr)
	if !ok {
		return exitFail
	}
	n, err := c.BackupToFile(ctx, pos[0])
	if err != nil {
		return adminFail(stderr, "backup", err)
	}
	fmt.Fprintf(stdout, "wrote %s (%d bytes)\n", pos[0], n)
	return exitOK
}
