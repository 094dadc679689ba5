// Escalation and reminders: while a request waits for approval, steps
// ping backup approvers (who may then approve it) or re-post it in another
// channel, and reminders nudge the approvers and tell the requester; all
// from durable deadlines, stopped when the request is decided.

package symbot

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Escalation is what a flow does while a request waits for approval.
type Escalation struct {
	// Remind, when positive, reminds the approvers (in the approval
	// message's thread) and tells the requester, every Remind while the
	// request waits.
	Remind time.Duration
	// Steps fire once each, in order, After their time since the request
	// was made.
	Steps []EscalationStep
}

// EscalationStep is one step of an escalation.
type EscalationStep struct {
	After time.Duration // since the request was made
	// Approvers are backup approvers (Slack user ids): pinged, and allowed
	// to approve or deny the request from this step on.
	Approvers []string
	// Channel, when set, gets a copy of the approval message (with its
	// buttons), kept up to date with the original.
	Channel string
}

func (x *Escalation) clone() *Escalation {
	if x == nil {
		return nil
	}
	c := *x
	c.Steps = slices.Clone(x.Steps)
	for i := range c.Steps {
		c.Steps[i].Approvers = slices.Clone(c.Steps[i].Approvers)
	}
	return &c
}

func checkEscalation(v *ValidationError, p string, x *Escalation, timeout time.Duration) {
	if x.Remind < 0 {
		v.add(p+".remind", "must not be negative (leave it out for no reminders)")
	} else if x.Remind > 0 && x.Remind < time.Minute {
		v.add(p+".remind", "%s is too often: at least 1m", FormatDuration(x.Remind))
	}
	var prev time.Duration
	for i, st := range x.Steps {
		sp := fmt.Sprintf("%s.steps[%d]", p, i)
		switch {
		case st.After <= 0:
			v.add(sp+".after", "missing: how long after the request the step fires, like 30m")
		case st.After <= prev:
			v.add(sp+".after", "%s is not later than the step before (%s): list the steps in order", FormatDuration(st.After), FormatDuration(prev))
		case timeout > 0 && st.After >= timeout:
			v.add(sp+".after", "%s never fires: requests time out after %s (approval_timeout)", FormatDuration(st.After), FormatDuration(timeout))
		}
		prev = max(prev, st.After)
		if len(st.Approvers) == 0 && st.Channel == "" {
			v.add(sp, "does nothing: list backup approvers (approvers: [U...]) or a channel to re-post the request in, or both")
		}
		for j, u := range st.Approvers {
			if !validSlackUserID(u) {
				v.add(fmt.Sprintf("%s.approvers[%d]", sp, j), "%q is not a Slack user id (like U012AB3CD)", u)
			}
		}
	}
}

// nextNudge is when the next escalation step or reminder of pending
// request r is due under x, or zero when none is due before it times out.
func nextNudge(x *Escalation, r *Request) time.Time {
	if x == nil {
		return time.Time{}
	}
	var next time.Time
	if r.Escalated < len(x.Steps) {
		next = r.CreatedAt.Add(x.Steps[r.Escalated].After)
	}
	if x.Remind > 0 {
		if t := r.CreatedAt.Add(time.Duration(r.Reminders+1) * x.Remind); next.IsZero() || t.Before(next) {
			next = t
		}
	}
	if !r.TimeoutAt.IsZero() && !next.Before(r.TimeoutAt) {
		return time.Time{} // it times out first
	}
	return next
}

// withBackups returns f with r's backup approvers (added by escalation
// steps) among its approvers: a copy when there are any.
func (r *Request) withBackups(f *Flow) *Flow {
	if len(r.BackupApprovers) == 0 || f.Approvers.Anyone {
		return f
	}
	c := *f
	c.Approvers.Users = slices.Clone(f.Approvers.Users)
	for _, u := range r.BackupApprovers {
		if !slices.Contains(c.Approvers.Users, u) {
			c.Approvers.Users = append(c.Approvers.Users, u)
		}
	}
	return &c
}

// nudge fires, in tx, the escalation steps and the reminder of pending
// request r that are due at now, and sets the next one.
func (e *Engine) nudge(tx Tx, now time.Time, r *Request, later *[]*Job) error {
	var x *Escalation
	if f, err := e.flowOf(r); err == nil {
		x = f.Escalation
	}
	if x != nil {
		for r.Escalated < len(x.Steps) && !now.Before(r.CreatedAt.Add(x.Steps[r.Escalated].After)) {
			st := x.Steps[r.Escalated]
			r.Escalated++
			var added []string
			for _, u := range st.Approvers {
				if u != r.Requester.SlackID && !slices.Contains(r.BackupApprovers, u) {
					r.BackupApprovers = append(r.BackupApprovers, u)
					added = append(added, u)
				}
			}
			detail := fmt.Sprintf("step %d after %s", r.Escalated, FormatDuration(st.After))
			if len(added) > 0 {
				detail += " approvers=" + strings.Join(added, ",")
				*later = append(*later, &Job{Kind: JobUpdate, RequestID: r.ID, Event: EventEscalated})
				for _, u := range added {
					*later = append(*later, &Job{Kind: JobNotify, RequestID: r.ID, Event: EventEscalated, To: u})
				}
				// and the requester hears whom it went to
				*later = append(*later, &Job{Kind: JobNotify, RequestID: r.ID, Event: EventEscalated, To: r.Requester.SlackID})
			}
			if st.Channel != "" {
				detail += " channel=" + st.Channel
				*later = append(*later, &Job{Kind: JobRepost, RequestID: r.ID, Event: EventEscalated, To: st.Channel})
			}
			if err := e.audit(tx, now, r.ID, System, "escalate", detail); err != nil {
				return err
			}
		}
		if x.Remind > 0 {
			if due := int(now.Sub(r.CreatedAt) / x.Remind); due > r.Reminders {
				r.Reminders = due // reminders missed while symbot was down are not sent late
				if err := e.audit(tx, now, r.ID, System, "remind", fmt.Sprintf("reminder %d", due)); err != nil {
					return err
				}
				*later = append(*later,
					&Job{Kind: JobUpdate, RequestID: r.ID, Event: EventReminder},
					&Job{Kind: JobNotify, RequestID: r.ID, Event: EventReminder, To: r.Requester.SlackID},
				)
			}
		}
	}
	r.NudgeAt = nextNudge(x, r)
	return tx.PutRequest(r)
}

// nudgeEvent reports whether ev is sent only while a request waits
// (escalation, reminders): once the request is decided, such a job that
// is still queued is dropped.
func nudgeEvent(ev Event) bool { return ev == EventEscalated || ev == EventReminder }
