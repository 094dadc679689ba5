package main

// The commands that make revocation provable: reconcile, standing and show.

import (
	"context"
	"fmt"
	"io"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/cmd/symbot/internal/admin"
)

func reconcileCmd(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	cmd := newAdminCmd("reconcile", "", stderr)
	dry := cmd.fs.Bool("dry-run", false, "report what the pass finds without changing anything")
	asJSON := cmd.jsonFlag()
	c, _, code, ok := cmd.dial(ctx, args, "")
	if !ok {
		return code
	}
	defer c.Close()
	rep, err := c.Reconcile(ctx, *dry)
	if err != nil {
		return cmd.fail(err)
	}
	if *asJSON {
		printJSON(stdout, rep)
	} else {
		mode := "reconciled"
		if rep.DryRun {
			mode = "dry run (nothing changed):"
		}
		fmt.Fprintf(stdout, "%s %d group(s), %d member(s) checked in %.1fs; standing %d, unmanaged %d, vanished %d, survived %d\n",
			mode, rep.Groups, rep.MembersChecked, rep.DurationSeconds,
			rep.Counts[string(symbot.DriftStanding)], rep.Counts[string(symbot.DriftUnmanaged)], rep.Counts[string(symbot.DriftVanished)], rep.Counts[string(symbot.DriftSurvived)])
		if len(rep.Drift) > 0 {
			tw := newTable(stdout)
			fmt.Fprintln(tw, "KIND\tGROUP\tFLOW/TARGET\tOKTA USER\tLOGIN\tREQUEST\tACTION")
			for _, d := range rep.Drift {
				fmt.Fprintf(tw, "%s\t%s\t%s/%s\t%s\t%s\t%s\t%s\n", d.Kind, d.GroupID, d.Flow, d.Target, d.UserID, dash(oneLine(d.Login)), dash(d.RequestID), d.Action)
			}
			tw.Flush()
		}
		for _, e := range rep.Errors {
			fmt.Fprintf(stdout, "error: %s\n", oneLine(e))
		}
	}
	if len(rep.Errors) > 0 {
		return exitFail
	}
	return exitOK
}

func standingCmd(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	cmd := newAdminCmd("standing", "", stderr)
	cmd.readOffline()
	asJSON := cmd.jsonFlag()
	c, _, code, ok := cmd.dial(ctx, args, "")
	if !ok {
		return code
	}
	defer c.Close()
	ms, err := c.Standing(ctx)
	return listEnd(cmd, stdout, *asJSON, ms, err, "no standing members (or no reconcile has run yet)", "GROUP\tFLOW/TARGET\tOKTA USER\tLOGIN\tRECORDED", func(m admin.StandingJSON) string {
		since := m.Since
		return fmt.Sprintf("%s\t%s/%s\t%s\t%s\t%s", m.GroupID, m.Flow, m.Target, m.UserID, dash(oneLine(m.Login)), fmtTime(&since))
	})
}

func showCmd(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	cmd := newAdminCmd("show", "", stderr)
	cmd.readOffline()
	asJSON := cmd.jsonFlag()
	c, id, code, ok := cmd.dial(ctx, args, "request id (see `symbot grants` or `symbot audit`)")
	if !ok {
		return code
	}
	defer c.Close()
	s, err := c.Show(ctx, id)
	if err != nil {
		return cmd.fail(err)
	}
	if *asJSON {
		printJSON(stdout, s)
		return exitOK
	}
	printStory(stdout, s)
	return exitOK
}

func printStory(w io.Writer, s admin.StoryJSON) {
	r := s.Request
	fmt.Fprintf(w, "%s  %s/%s (Okta group %s) for %s, %s\n", r.ID, r.Flow, r.Target, r.GroupID, person(r.Requester), r.Duration)
	fmt.Fprintf(w, "state:    %s\n", r.State)
	fmt.Fprintf(w, "reason:   %s\n", oneLine(truncate(r.Reason, 200)))
	if r.OktaLogin != "" {
		fmt.Fprintf(w, "okta:     %s\n", oneLine(r.OktaLogin))
	}
	if r.GrantedAt != nil || r.ExpiresAt != nil {
		fmt.Fprintf(w, "granted:  %s  expires: %s\n", fmtTime(r.GrantedAt), fmtTime(r.ExpiresAt))
	}
	switch {
	case r.FailReason != "":
		fmt.Fprintf(w, "failed:   %s\n", oneLine(r.FailReason))
	}
	if r.State != string(symbot.StatePending) && r.State != string(symbot.StateApproved) && r.State != string(symbot.StateScheduled) && r.State != string(symbot.StateActive) {
		removal := "not needed"
		switch {
		case r.Removed && r.RemovalNote != "":
			removal = "done: " + oneLine(r.RemovalNote)
		case !r.Removed && r.OktaLogin != "":
			removal = "PENDING"
		}
		fmt.Fprintf(w, "removal:  %s\n", removal)
	}
	fmt.Fprintln(w, "\ntransitions:")
	tw := newTable(w)
	for _, t := range s.Transitions {
		at := t.At
		fmt.Fprintf(tw, "  %s\t%s -> %s\tby %s\t%s\n", fmtTime(&at), t.From, t.To, t.By, oneLine(truncate(t.Note, 100)))
	}
	tw.Flush()
	fmt.Fprintln(w, "\nqueued jobs:")
	if len(s.Jobs) == 0 {
		fmt.Fprintln(w, "  none")
	}
	tw = newTable(w)
	for _, j := range s.Jobs {
		created, next := j.CreatedAt, j.NotBefore
		fmt.Fprintf(tw, "  #%d\t%s %s\tqueued %s\tattempts %d\tnext %s\t%s\n", j.ID, j.Kind, j.Event, fmtTime(&created), j.Attempts, fmtTime(&next), dash(oneLine(truncate(j.LastError, 120))))
	}
	tw.Flush()
	fmt.Fprintln(w, "\naudit:")
	tw = newTable(w)
	for _, e := range s.Audit {
		at := e.At
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\n", e.Seq, fmtTime(&at), e.Actor, e.Action, oneLine(truncate(e.Detail, 120)))
	}
	tw.Flush()
}
