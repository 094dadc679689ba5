// Request rules: the port through which a flow's rules (expressions the
// celrules adapter compiles) decide a request when it is made, and what
// the engine does with their outcome: approve it at once, require other
// approvals, refuse it, or leave it to the approvers.

package symbot

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// RuleAction is what a rule does when its condition holds.
type RuleAction string

// The rule actions.
const (
	RuleApprove RuleAction = "approve" // approve at once; the rule is the approver
	RuleRequire RuleAction = "require" // require other approvals and/or approvers
	RuleRefuse  RuleAction = "refuse"  // refuse the request with the rule's message
)

// Rule is one rule of a flow or target. Rules are evaluated in order when
// a request is made; the first whose condition holds decides it.
type Rule struct {
	Name string // unique within its list; recorded as the approver of what it approves
	// When is the condition, an expression the RuleSet compiles (CEL).
	When   string
	Action RuleAction
	// Require: approvals needed (0 keeps the flow's) and who may approve
	// (nil keeps the flow's approvers).
	Approvals int
	Approvers *Approvers
	// Refuse: shown to the requester.
	Message string
}

// RuleInput is what a request's rules see.
type RuleInput struct {
	Flow, Target, GroupID string
	Duration              time.Duration
	Reason                string
	Requester             Actor     // Slack id, email, name, guest, time zone
	Now                   time.Time // when the request is made
	StartAt               time.Time // a scheduled start; zero for access now
	// BreakGlass marks a break-glass request: only its refuse rules are
	// evaluated (BreakGlassRules), and they can tell it apart.
	BreakGlass bool
	// Groups lists the requester's directory (Okta) group ids; nil when
	// not known. A RuleSet calls it only for rules that read the groups.
	Groups func(ctx context.Context) ([]string, error)
}

// RuleSet evaluates the rules of a flow's target (the adapter compiles
// them from the configuration).
type RuleSet interface {
	// Decide evaluates rules (those of in's flow and target, as the
	// configuration it compiled has them) in order until one matches. It
	// returns the steps it took, the last of which decided when Matched;
	// an error means a rule could not be evaluated (a lookup failed, an
	// expression failed at run time, a rule it did not compile), and the
	// steps up to that rule.
	Decide(ctx context.Context, in RuleInput, rules []Rule) ([]RuleStep, error)
}

// RuleStep is one rule evaluated: whether its condition held, and why,
// for `symbot explain`.
type RuleStep struct {
	Rule    *Rule
	Matched bool
	// Why says what the condition saw (the values of the variables it
	// read), for people.
	Why string
}

// RuleOutcome is what a request's rules decided.
type RuleOutcome struct {
	// Rule is the rule that decided; nil when no rule matched (or the
	// rules failed: see Note). Its Action says what happens.
	Rule  *Rule
	Steps []RuleStep
	// Note says why the rules fell back to manual approval: a rule could
	// not be evaluated. Empty when they were evaluated.
	Note string
	// Err is the evaluation error behind Note, for the log.
	Err error
}

// RuleActorPrefix starts the actor id recorded for a rule's approval
// ("rule:on-call"). Slack user ids never contain ':', so a rule cannot be
// confused with a person.
const RuleActorPrefix = "rule:"

// RuleActor is the actor id of the rule named name.
func RuleActor(name string) string { return RuleActorPrefix + name }

// RuleName returns the rule name of a rule actor id, and whether by is one.
func RuleName(by string) (string, bool) {
	return strings.CutPrefix(by, RuleActorPrefix)
}

// applyRule returns f with the approvals r's rule required in place of
// the flow's: a copy when they differ.
func (r *Request) applyRule(f *Flow) *Flow {
	if r.RuleApprovals == 0 && r.RuleApprovers == nil {
		return f
	}
	c := *f
	if r.RuleApprovers != nil {
		c.Approvers = *r.RuleApprovers
	}
	if r.RuleApprovals > 0 {
		c.ApprovalsRequired = r.RuleApprovals
	}
	return &c
}

// decideByRules evaluates the rules of f (a flow as it applies to its
// target t, Flow.ForTarget) for actor's request.
func (e *Engine) decideByRules(ctx context.Context, f *Flow, t Target, actor Actor, d time.Duration, reason string, start, now time.Time) RuleOutcome {
	out := EvaluateRules(ctx, e.ruleSet(), f.Rules, RuleInput{
		Flow: f.Name, Target: t.Name, GroupID: t.GroupID,
		Duration: d, Reason: reason, Requester: actor, Now: now, StartAt: start,
		Groups: func(ctx context.Context) ([]string, error) { return e.groupsOf(ctx, actor.Person) },
	})
	if out.Err != nil {
		e.log().Warn("rules could not be evaluated: manual approval", "flow", f.Name, "target", t.Name, "requester", actor.SlackID, "error", out.Err)
	}
	return out
}

// UserGroupLister is a Directory that can list the groups of a user, for
// rules that read the requester's groups.
type UserGroupLister interface {
	UserGroups(ctx context.Context, userID string) ([]string, error)
}

// groupsOf lists p's directory group ids.
func (e *Engine) groupsOf(ctx context.Context, p Person) ([]string, error) {
	gl, ok := e.dir.(UserGroupLister)
	if !ok {
		return nil, errors.New("the directory cannot list a user's groups")
	}
	u, err := e.dir.ResolveUser(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("find the requester in the directory: %w", err)
	}
	gs, err := gl.UserGroups(ctx, u.ID)
	if err != nil {
		return nil, fmt.Errorf("list the requester's groups: %w", err)
	}
	return gs, nil
}

// ruleRefusal is the error for a request a rule refused.
func ruleRefusal(r *Rule) error {
	return &PolicyError{Reason: fmt.Sprintf("refused by rule %s: %s", r.Name, r.Message)}
}

// applyOutcome records on r, pending and not yet stored, what its rules
// decided, and returns the approval to apply when a rule approved it.
func applyOutcome(r *Request, out RuleOutcome, now time.Time) *change {
	r.RuleNote = out.Note
	if out.Rule == nil {
		return nil
	}
	r.Rule = out.Rule.Name
	switch out.Rule.Action {
	case RuleRequire:
		r.RuleApprovals = out.Rule.Approvals
		if out.Rule.Approvers != nil {
			a := *out.Rule.Approvers
			a.Users = append([]string(nil), a.Users...)
			r.RuleApprovers = &a
		}
	case RuleApprove:
		by := RuleActor(out.Rule.Name)
		r.Approvals = append(r.Approvals, Decision{By: by, Name: "rule " + out.Rule.Name, At: now})
		note := "approved by rule " + out.Rule.Name
		return &change{to: StateApproved, by: by, note: note, detail: note}
	}
	return nil
}

// EvaluateRules decides a request by its rules: the outcome of the first
// rule that matches, or none. A RuleSet error never approves: the outcome
// then carries no rule and a Note saying why the request needs manual
// approval. rules is what applies to the target (Flow.RulesOf); with none,
// rs is not asked.
func EvaluateRules(ctx context.Context, rs RuleSet, rules []Rule, in RuleInput) RuleOutcome {
	if len(rules) == 0 {
		return RuleOutcome{}
	}
	if rs == nil {
		err := fmt.Errorf("flow %s has rules but symbot has no rule evaluator", in.Flow)
		return RuleOutcome{Note: "the rules could not be evaluated (no rule evaluator is configured): manual approval needed", Err: err}
	}
	steps, err := rs.Decide(ctx, in, rules)
	out := RuleOutcome{Steps: steps}
	if err != nil {
		name := "?"
		if n := len(steps); n > 0 && !steps[n-1].Matched {
			name = steps[n-1].Rule.Name
		}
		out.Note = fmt.Sprintf("rule %s could not be evaluated (%s): manual approval needed", name, OneLine(Redact(err.Error())))
		out.Err = err
		return out
	}
	if n := len(steps); n > 0 && steps[n-1].Matched {
		out.Rule = steps[n-1].Rule
	}
	return out
}

// checkRules validates a list of rules (path like flows[0].rules); the
// expressions are the RuleSet's to check.
func checkRules(v *ValidationError, p string, rules []Rule, f *Flow) {
	names := map[string]string{}
	for i := range rules {
		r := &rules[i]
		rp := fmt.Sprintf("%s[%d]", p, i)
		checkName(v, rp, "rule", r.Name, "missing: name the rule (it is recorded as the approver of what it approves)", names)
		if strings.TrimSpace(r.When) == "" {
			v.add(rp+".when", "missing: the condition, like requester.on_call or request.duration <= duration(\"1h\")")
		}
		switch r.Action {
		case RuleApprove:
		case RuleRefuse:
			if strings.TrimSpace(r.Message) == "" {
				v.add(rp+".refuse", "empty: give the message shown to the requester")
			}
		case RuleRequire:
			if r.Approvals < 0 {
				v.add(rp+".require.approvals", "must be at least 1")
			}
			if r.Approvals == 0 && r.Approvers == nil {
				v.add(rp+".require", "empty: give approvals (a number), approvers, or both")
			}
			a := f.Approvers
			if r.Approvers != nil {
				a = *r.Approvers
			}
			need := f.ApprovalsRequired
			if r.Approvals > 0 {
				need = r.Approvals
			}
			checkApprovers(v, rp+".require", a, need)
		case "":
			v.add(rp, "no outcome: give one of approve: true, require: {...} or refuse: \"message\"")
		default:
			v.add(rp, "unknown outcome %q: use approve, require or refuse", r.Action)
		}
	}
}

func cloneRules(rs []Rule) []Rule {
	if rs == nil {
		return nil
	}
	out := make([]Rule, len(rs))
	for i, r := range rs {
		if r.Approvers != nil {
			a := *r.Approvers
			a.Users = append([]string(nil), a.Users...)
			r.Approvers = &a
		}
		out[i] = r
	}
	return out
}

// rulesDetail says in an audit detail what the rules decided about r.
func rulesDetail(r *Request) string {
	var b strings.Builder
	if r.Rule != "" {
		fmt.Fprintf(&b, " rule=%s", r.Rule)
		if r.RuleApprovals > 0 {
			fmt.Fprintf(&b, " approvals_required=%d", r.RuleApprovals)
		}
		if a := r.RuleApprovers; a != nil {
			fmt.Fprintf(&b, " approvers=%q", describeApprovers(*a))
		}
	}
	if r.RuleNote != "" {
		fmt.Fprintf(&b, " rules_note=%q", r.RuleNote)
	}
	return b.String()
}
