// Break-glass access: granted at once without approval, capped, alerted
// loudly, and reviewed after the fact by an approver of the flow; until
// someone reviews it, it alerts again.

package symbot

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// DefaultBreakGlassReview is how long approvers have to acknowledge a
// break-glass grant when the flow does not say (BreakGlass.ReviewWithin).
const DefaultBreakGlassReview = time.Hour

// BreakGlass is a flow's opt-in to emergency access.
type BreakGlass struct {
	// MaxDuration caps a break-glass grant; required.
	MaxDuration time.Duration
	// Channel is where the alert, with its Acknowledge button, is posted;
	// empty means the flow's channel. The errors channel is told too.
	Channel string
	// ReviewWithin is how long approvers have to acknowledge the grant;
	// unacknowledged, it alerts again every ReviewWithin. 0 means
	// DefaultBreakGlassReview.
	ReviewWithin time.Duration
}

func (b *BreakGlass) reviewWithin() time.Duration {
	if b == nil || b.ReviewWithin <= 0 {
		return DefaultBreakGlassReview
	}
	return b.ReviewWithin
}

func (b *BreakGlass) clone() *BreakGlass {
	if b == nil {
		return nil
	}
	c := *b
	return &c
}

func checkBreakGlass(v *ValidationError, p string, b *BreakGlass) {
	switch {
	case b.MaxDuration <= 0:
		v.add(p+".max_duration", "missing: the longest break-glass grant, like 1h")
	case b.MaxDuration > MaxDuration:
		v.add(p+".max_duration", "%s is over the 30 day maximum", FormatDuration(b.MaxDuration))
	}
	if b.ReviewWithin < 0 {
		v.add(p+".review_within", "must not be negative (unset means %s)", FormatDuration(DefaultBreakGlassReview))
	}
}

// breakGlass grants actor the target of in at once, without approval, on
// a flow that allows break-glass access: the grant, the alert message in
// the break-glass channel and the errors-channel alert are queued in one
// transaction with the request.
func (e *Engine) breakGlass(ctx context.Context, actor Actor, in RequestInput) (*Request, error) {
	f, t, err := e.ResolveTarget(in.Flow, in.Target)
	if err != nil {
		return nil, err
	}
	if f.BreakGlass == nil {
		return nil, &PolicyError{Reason: fmt.Sprintf("flow %s has no break-glass access; ask for approval with a normal request", f.Name)}
	}
	if err := checkRequester(f, actor); err != nil {
		return nil, err
	}
	if err := f.BreakGlass.CheckDuration(f.Name, in.Duration); err != nil {
		return nil, err
	}
	if !in.StartAt.IsZero() {
		return nil, &InputError{Field: "start", Problem: "break-glass access starts at once; for later access make a normal request with a start time"}
	}
	reason, err := checkReason(f, in.Reason, "required: say what the emergency is")
	if err != nil {
		return nil, err
	}
	now := e.now()
	out := EvaluateRules(ctx, e.ruleSet(), BreakGlassRules(f.Rules), RuleInput{
		Flow: f.Name, Target: t.Name, GroupID: t.GroupID,
		Duration: in.Duration, Reason: reason, Requester: actor, Now: now, BreakGlass: true,
		Groups: func(ctx context.Context) ([]string, error) { return e.groupsOf(ctx, actor.Person) },
	})
	if err := BreakGlassRefusal(out); err != nil {
		if out.Err != nil {
			e.log().Warn("break-glass refused: a refuse rule could not be evaluated", "flow", f.Name, "target", t.Name, "requester", actor.SlackID, "error", out.Err)
		}
		return nil, err
	}
	review := f.BreakGlass.reviewWithin()
	var req *Request
	err = e.store.Update(ctx, func(tx Tx) error {
		r, err := newRequest(tx, f, t, actor, in.Duration, reason, now)
		if err != nil {
			return err
		}
		r.BreakGlass = true
		r.ReviewDue = now.Add(review)
		detail := fmt.Sprintf("break-glass flow=%s target=%s group=%s duration=%s review_within=%s", f.Name, t.Name, t.GroupID, FormatDuration(in.Duration), FormatDuration(review))
		if err := tx.PutRequest(r); err != nil {
			return err
		}
		if err := e.audit(tx, now, r.ID, actor.SlackID, "request", detail); err != nil {
			return err
		}
		req = r
		note := "break-glass: granted without approval"
		return e.apply(tx, now, r, change{to: StateApproved, by: actor.SlackID, note: note, detail: note, action: "state:approved (break-glass)", jobs: []*Job{
			{Kind: JobGrant, RequestID: r.ID},
			{Kind: JobPost, RequestID: r.ID, Event: EventBreakGlass},
			{Kind: JobAlert, RequestID: r.ID, Event: EventBreakGlass, Text: breakGlassAlert(f, t, r, 0)},
		}})
	})
	if err != nil {
		return nil, fmt.Errorf("break-glass request: %w", err)
	}
	e.observe(f.Name, StateApproved)
	e.kick()
	e.log().Warn("break-glass access granted without approval", "request_id", req.ID, "flow", f.Name, "target", t.Name, "requester", actor.SlackID, "duration", FormatDuration(in.Duration))
	return req.Clone(), nil
}

// BreakGlassRules returns the rules that apply to a break-glass request,
// in order: the refuse rules. Break-glass grants without approval and is
// reviewed after the fact, so approve and require rules have nothing to
// decide; a refuse rule holds whatever precedes it (an approve rule that
// would match a normal request does not shield the break-glass request
// from a later refuse rule). The rules see request.break_glass true, so a
// refuse rule meant for normal requests only says !request.break_glass.
func BreakGlassRules(rules []Rule) []Rule {
	var out []Rule
	for _, r := range rules {
		if r.Action == RuleRefuse {
			out = append(out, r)
		}
	}
	return out
}

// BreakGlassRefusal is the error refusing a break-glass request whose
// refuse rules (BreakGlassRules) decided out: a rule that refused it, or
// one that could not be evaluated. Doubt never grants: where a normal
// request would wait for the approvers, a break-glass request is refused
// and the person is told to ask the approvers. nil means granted.
func BreakGlassRefusal(out RuleOutcome) error {
	switch {
	case out.Note != "":
		return &PolicyError{Reason: "break-glass refused: " + strings.TrimSuffix(out.Note, ": manual approval needed") + "; make a normal request for the approvers to decide"}
	case out.Rule != nil && out.Rule.Action == RuleRefuse:
		return ruleRefusal(out.Rule)
	}
	return nil
}

// CheckDuration checks a break-glass duration against the cap.
func (b *BreakGlass) CheckDuration(flow string, d time.Duration) error {
	if d <= 0 || d > b.MaxDuration {
		return &InputError{Field: "duration", Problem: fmt.Sprintf("break-glass access in flow %s lasts at most %s; ask for %s or less", flow, FormatDuration(b.MaxDuration), FormatDuration(b.MaxDuration))}
	}
	return nil
}

// breakGlassAlert is the errors-channel text about break-glass access r;
// again > 0 for the reminders of a missing review.
func breakGlassAlert(f *Flow, t Target, r *Request, again int) string {
	who := r.Requester.Name
	if who == "" {
		who = r.Requester.SlackID
	}
	where := f.Channel
	if f.BreakGlass != nil && f.BreakGlass.Channel != "" {
		where = f.BreakGlass.Channel
	}
	if again > 0 {
		return fmt.Sprintf("BREAK-GLASS NOT REVIEWED (reminder %d): %s (%s) took %s/%s for %s without approval at %s, and no approver has acknowledged it. Review it in %s.",
			again, who, r.Requester.SlackID, f.Name, t.Name, FormatDuration(r.Duration), r.CreatedAt.UTC().Format("2006-01-02 15:04 UTC"), where)
	}
	return fmt.Sprintf("BREAK-GLASS: %s (%s) took %s/%s (Okta group %s) for %s without approval. Reason: %s. An approver of flow %s must acknowledge it in %s.",
		who, r.Requester.SlackID, f.Name, t.Name, r.GroupID, FormatDuration(r.Duration), TruncateRunes(OneLine(r.Reason), 300), f.Name, where)
}

// reviewOverdue alerts again about break-glass access r whose review is
// due at now, and sets the next reminder, in tx.
func (e *Engine) reviewOverdue(tx Tx, now time.Time, r *Request, later *[]*Job) error {
	f := e.flowFor(r)
	t, _ := f.Target(r.Target)
	if t.Name == "" {
		t = Target{Name: r.Target, GroupID: r.GroupID}
	}
	r.ReviewAlerts++
	r.ReviewDue = now.Add(f.BreakGlass.reviewWithin())
	if err := tx.PutRequest(r); err != nil {
		return err
	}
	if err := e.audit(tx, now, r.ID, System, "breakglass:review_overdue", fmt.Sprintf("reminder %d; next %s", r.ReviewAlerts, r.ReviewDue.UTC().Format(time.RFC3339))); err != nil {
		return err
	}
	*later = append(*later,
		&Job{Kind: JobAlert, RequestID: r.ID, Event: EventReviewOverdue, Text: breakGlassAlert(f, t, r, r.ReviewAlerts)},
		&Job{Kind: JobUpdate, RequestID: r.ID, Event: EventReviewOverdue},
	)
	return nil
}

// acknowledge records the after-the-fact review of break-glass access by
// an approver of its flow who is not its requester.
func (e *Engine) acknowledge(ctx context.Context, id string, actor Actor, note string) (*Request, error) {
	r, err := e.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if !r.BreakGlass {
		return nil, &PolicyError{Reason: fmt.Sprintf("request %s is not break-glass access; there is nothing to acknowledge", r.ID)}
	}
	f, err := e.flowOf(r)
	if err != nil {
		return nil, err
	}
	if actor.SlackID == r.Requester.SlackID || (actor.Email != "" && strings.EqualFold(actor.Email, r.Requester.Email)) {
		return nil, &PolicyError{Reason: fmt.Sprintf("you cannot review your own break-glass access: another approver of flow %s must", f.Name)}
	}
	if err := e.checkActor(ctx, actor.SlackID); err != nil {
		return nil, err
	}
	// The review is someone else's whatever the flow says about
	// self-approval: not the requester from another Slack account either
	// (mayDecide compares the accounts' bound Okta users).
	other := *f
	other.AllowSelfApproval = false
	if _, err := e.mayDecide(ctx, &other, &r.Requester, actor, VerbApprove); err != nil {
		return nil, err
	}
	note = strings.TrimSpace(note)
	now := e.now()
	var out *Request
	err = e.store.Update(ctx, func(tx Tx) error {
		out = nil // the store may run this more than once
		cur, err := tx.Request(r.ID)
		if err != nil {
			return err
		}
		if cur.ReviewedBy != "" {
			return &PolicyError{Reason: fmt.Sprintf("break-glass access %s was already acknowledged by <@%s> at %s", cur.ID, cur.ReviewedBy, cur.ReviewedAt.UTC().Format("2006-01-02 15:04 UTC"))}
		}
		cur.ReviewedBy, cur.ReviewedAt, cur.ReviewNote = actor.SlackID, now, note
		cur.ReviewDue = time.Time{}
		cur.UpdatedAt = now
		if err := tx.PutRequest(cur); err != nil {
			return err
		}
		if err := e.audit(tx, now, cur.ID, actor.SlackID, "breakglass:acknowledged", note); err != nil {
			return err
		}
		out = cur
		return e.addJob(tx, now, &Job{Kind: JobUpdate, RequestID: cur.ID, Event: EventReviewed})
	})
	if err != nil {
		return nil, e.wrapDecision("acknowledge", err)
	}
	e.kick()
	e.log().Info("break-glass access acknowledged", "request_id", out.ID, "by", actor.SlackID)
	return out.Clone(), nil
}
