// What a person's requests would need, before they make one: the rules of
// each target that can be decided from who asks for what alone, for
// /sym whoami.

package symbot

import "context"

// RuleClassifier is a RuleSet that can tell which rules depend only on who
// asks for what (the flow, target and group, and the requester: identity,
// guest, time zone, directory groups), not on the request itself (reason,
// duration, start, the time, on-call status), so that they can be decided
// before a request is made.
type RuleClassifier interface {
	RequestIndependent(r *Rule) bool
}

// Outlook is what a request of one target by one person would need, as
// far as it can be told before the request.
type Outlook struct {
	Flow, Target string
	// Depends names, in order, the rules that come before the outcome
	// below and depend on the request itself (or could not be decided
	// now): any of them may decide the request instead.
	Depends []string
	// Rule is the first rule that decides the request whatever its
	// reason, duration and time; nil when none does, and then the flow's
	// approvers (as they apply to the target) decide.
	Rule *Rule
	// Approvals and Approvers are who must approve the request when the
	// outcome is not a rule's approval or refusal.
	Approvals int
	Approvers Approvers
}

// Outlook says, for each target of flows in order, what a request by
// actor would need: the outcome of the first rule that can be decided now
// and matches, after the rules that cannot be (Outlook.Depends). Rules
// that read the requester's directory groups ask the directory (once).
// Nothing is recorded.
func (e *Engine) Outlook(ctx context.Context, flows []Flow, actor Actor) []Outlook {
	rs := e.ruleSet()
	cl, _ := rs.(RuleClassifier)
	now := e.now()
	var groups []string
	var groupsErr error
	groupsDone := false
	lookup := func(ctx context.Context) ([]string, error) {
		if !groupsDone {
			groups, groupsErr = e.groupsOf(ctx, actor.Person)
			groupsDone = true
		}
		return groups, groupsErr
	}
	var out []Outlook
	for fi := range flows {
		for _, tg := range flows[fi].Targets {
			eff, t, ok := flows[fi].ForTarget(tg.Name)
			if !ok {
				continue
			}
			o, ok := targetOutlook(ctx, rs, cl, eff, t, RuleInput{Flow: eff.Name, Target: t.Name, GroupID: t.GroupID, Requester: actor, Now: now, Groups: lookup})
			if !ok {
				return out // ctx ended
			}
			out = append(out, o)
		}
	}
	return out
}

// targetOutlook is Outlook for target t of eff, the flow as it applies to it.
func targetOutlook(ctx context.Context, rs RuleSet, cl RuleClassifier, eff *Flow, t Target, in RuleInput) (Outlook, bool) {
	o := Outlook{Flow: eff.Name, Target: t.Name, Approvals: eff.ApprovalsRequired, Approvers: eff.Approvers}
	for i := range eff.Rules {
		r := &eff.Rules[i]
		if cl == nil || !cl.RequestIndependent(r) {
			o.Depends = append(o.Depends, r.Name)
			continue
		}
		steps, err := rs.Decide(ctx, in, eff.Rules[i:i+1])
		if err != nil || len(steps) != 1 {
			if ctx.Err() != nil {
				return o, false
			}
			o.Depends = append(o.Depends, r.Name) // cannot be decided now
			continue
		}
		if steps[0].Matched {
			o.Rule = r
			if r.Action == RuleRequire {
				if r.Approvals > 0 {
					o.Approvals = r.Approvals
				}
				if r.Approvers != nil {
					o.Approvers = *r.Approvers
				}
			}
			break
		}
	}
	return o, true
}
