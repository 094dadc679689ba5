package symbot

// The access report behind `symbot report`: for an access review, who had
// which access in a period, for how long, approved by whom, for what
// reason, and which members of the target groups stand outside symbot.

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// AccessRow is one request that was active, decided or asked for in the
// report's period.
type AccessRow struct {
	RequestID   string
	Requester   Person
	OktaLogin   string
	Flow        string
	Target      string
	GroupID     string
	Reason      string
	State       State
	RequestedAt time.Time
	Approvers   []Decision // who approved, with their notes
	DecidedBy   string     // who denied, cancelled or revoked (Slack id, admin:<user>, symbot)
	GrantedAt   time.Time  // zero: never granted
	EndedAt     time.Time  // zero: still active at the report's end
	Held        time.Duration
}

// AccessReport is the report for [Since, Until).
type AccessReport struct {
	Since, Until time.Time
	Rows         []AccessRow
	// Standing are members of the target groups that the reconciler found
	// outside any grant at its first pass; nil when the store keeps no
	// reconciler records (StandingKnown false).
	Standing      []StandingMember
	StandingKnown bool
}

// AccessReport builds the report for [since, until) (zero until: up to
// now): every request with an audit entry in the period or access held in
// it, in the order of their first entry, and the standing members.
func (e *Engine) AccessReport(ctx context.Context, since, until time.Time) (*AccessReport, error) {
	rep := &AccessReport{Since: since, Until: until}
	if rep.Until.IsZero() {
		rep.Until = e.now()
	}
	err := e.store.View(ctx, func(tx Tx) error {
		// Read the log from the start, a page at a time, keeping only the
		// request ids: a grant made before the period and still held in it
		// may have no entry inside it.
		var ids []string
		seen := map[string]bool{}
		inPeriod := map[string]bool{}
		err := auditPages(tx, func(page []AuditEntry) error {
			for _, a := range page {
				if a.RequestID == "" || (!until.IsZero() && !a.At.Before(until)) {
					continue
				}
				if !a.At.Before(since) {
					inPeriod[a.RequestID] = true
				}
				if !seen[a.RequestID] {
					seen[a.RequestID] = true
					ids = append(ids, a.RequestID)
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("read audit log: %w", err)
		}
		rep.Rows = rep.Rows[:0]
		for _, id := range ids {
			r, err := tx.Request(id)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			row := accessRow(r, rep.Until)
			heldInPeriod := !row.GrantedAt.IsZero() && row.GrantedAt.Before(rep.Until) && (row.EndedAt.IsZero() || !row.EndedAt.Before(since))
			if !inPeriod[id] && !heldInPeriod {
				continue
			}
			rep.Rows = append(rep.Rows, row)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("access report: %w", err)
	}
	standing, err := e.Standing(ctx)
	switch {
	case errors.Is(err, ErrNoRecords):
	case err != nil:
		return nil, fmt.Errorf("access report: %w", err)
	default:
		rep.Standing, rep.StandingKnown = standing, true
	}
	return rep, nil
}

func accessRow(r *Request, until time.Time) AccessRow {
	row := AccessRow{RequestID: r.ID, Requester: r.Requester, OktaLogin: r.OktaLogin, Flow: r.Flow, Target: r.Target, GroupID: r.GroupID,
		Reason: r.Reason, State: r.State, RequestedAt: r.CreatedAt, Approvers: slices.Clone(r.Approvals), GrantedAt: r.GrantedAt}
	if r.BreakGlass {
		// Nobody approved it; the review afterwards stands in the column.
		d := Decision{By: System, Name: "break-glass, no approval, not reviewed"}
		if r.ReviewedBy != "" {
			d = Decision{By: r.ReviewedBy, Name: "break-glass, no approval, reviewed by " + r.ReviewedBy, At: r.ReviewedAt, Note: r.ReviewNote}
		}
		row.Approvers = append(row.Approvers, d)
	}
	for _, t := range r.Transitions {
		switch t.To {
		case StateDenied, StateCancelled, StateRevoked:
			row.DecidedBy = t.By
		}
		if !r.GrantedAt.IsZero() && t.From == StateActive && row.EndedAt.IsZero() {
			row.EndedAt = t.At
		}
	}
	if !row.GrantedAt.IsZero() {
		end := row.EndedAt
		if end.IsZero() || end.After(until) {
			end = until
		}
		if end.After(row.GrantedAt) {
			row.Held = end.Sub(row.GrantedAt)
		}
	}
	return row
}

// AccessReportCSVHeader is the header row of WriteCSV.
var AccessReportCSVHeader = []string{"request_id", "requester_slack_id", "requester", "requester_email", "okta_login", "flow", "target", "group_id",
	"reason", "state", "requested_at", "approved_by", "approval_notes", "decided_by", "granted_at", "ended_at", "held_seconds"}

func stampOr(t time.Time, none string) string {
	if t.IsZero() {
		return none
	}
	return t.UTC().Format(time.RFC3339)
}

func approvers(ds []Decision) (names, notes string) {
	var n, o []string
	for _, d := range ds {
		n = append(n, orID(d.Name, d.By))
		if d.Note != "" {
			o = append(o, orID(d.Name, d.By)+": "+d.Note)
		}
	}
	return strings.Join(n, "; "), strings.Join(o, "; ")
}

// WriteCSV writes the grants as CSV, then the standing members as rows of
// state "standing" (cells a spreadsheet would evaluate are defused).
func (r *AccessReport) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	cw.Write(AccessReportCSVHeader)
	for _, x := range r.Rows {
		names, notes := approvers(x.Approvers)
		held := ""
		if x.Held > 0 {
			held = fmt.Sprint(int64(x.Held.Seconds()))
		}
		cw.Write([]string{x.RequestID, x.Requester.SlackID, CSVCell(x.Requester.Name), CSVCell(x.Requester.Email), CSVCell(x.OktaLogin),
			CSVCell(x.Flow), CSVCell(x.Target), x.GroupID, CSVCell(x.Reason), string(x.State), stampOr(x.RequestedAt, ""),
			CSVCell(names), CSVCell(notes), CSVCell(x.DecidedBy), stampOr(x.GrantedAt, ""), stampOr(x.EndedAt, ""), held})
	}
	for _, s := range r.Standing {
		cw.Write([]string{"", "", "", "", CSVCell(orID(s.Login, s.UserID)), CSVCell(s.Flow), CSVCell(s.Target), s.GroupID,
			"", "standing", "", "", "", "", stampOr(s.Since, ""), "", ""})
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("write report csv: %w", err)
	}
	return nil
}

// mdCell makes text safe inside a Markdown table cell.
func mdCell(s string) string {
	s = OneLine(s)
	r := strings.NewReplacer("|", `\|`, "<", "&lt;", ">", "&gt;", "`", "'", "*", `\*`, "_", `\_`, "[", `\[`, "]", `\]`)
	return r.Replace(s)
}

// WriteMarkdown writes the report as Markdown tables.
func (r *AccessReport) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# Access report %s to %s\n\n", stampOr(r.Since, "the start"), stampOr(r.Until, "now"))
	granted := 0
	for _, x := range r.Rows {
		if !x.GrantedAt.IsZero() {
			granted++
		}
	}
	fmt.Fprintf(&b, "%d requests in the period, %d of them granted.\n\n", len(r.Rows), granted)
	b.WriteString("## Temporary access\n\n")
	b.WriteString("| request | who | access | reason | approved by | granted | ended | held | state |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|\n")
	for _, x := range r.Rows {
		names, notes := approvers(x.Approvers)
		if notes != "" {
			names += " (" + notes + ")"
		}
		who := orID(x.Requester.Name, x.Requester.SlackID)
		if x.Requester.Email != "" {
			who += " (" + x.Requester.Email + ")"
		}
		held := "-"
		if x.Held > 0 {
			held = x.Held.Round(time.Second).String()
		}
		state := string(x.State)
		if x.DecidedBy != "" {
			state += " by " + x.DecidedBy
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", mdCell(x.RequestID), mdCell(who),
			mdCell(x.Flow+"/"+x.Target+" ("+x.GroupID+")"), mdCell(x.Reason), mdCell(orDash(names)),
			stampOr(x.GrantedAt, "-"), stampOr(x.EndedAt, "-"), held, mdCell(state))
	}
	b.WriteString("\n## Standing members (outside symbot)\n\n")
	switch {
	case !r.StandingKnown:
		b.WriteString("Not known: this store keeps no reconciler records.\n")
	case len(r.Standing) == 0:
		b.WriteString("None recorded: every member of the target groups got access through symbot, or the reconciler has not run yet.\n")
	default:
		b.WriteString("| group | flow/target | member | recorded since |\n|---|---|---|---|\n")
		for _, s := range r.Standing {
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", mdCell(s.GroupID), mdCell(s.Flow+"/"+s.Target), mdCell(orID(s.Login, s.UserID)), stampOr(s.Since, "-"))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
