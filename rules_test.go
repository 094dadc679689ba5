package symbot_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/symbot/symbot"
)

// ruleFunc is a RuleSet whose rules are Go functions of the input, in
// place of compiled expressions: the engine's side of the port.
type ruleFunc map[string]func(symbot.RuleInput) (bool, error)

func (rf ruleFunc) Decide(ctx context.Context, in symbot.RuleInput, rules []symbot.Rule) ([]symbot.RuleStep, error) {
	var steps []symbot.RuleStep
	for i := range rules {
		r := &rules[i]
		ok, err := rf[r.Name](in)
		if err != nil {
			return append(steps, symbot.RuleStep{Rule: r}), err
		}
		steps = append(steps, symbot.RuleStep{Rule: r, Matched: ok})
		if ok {
			return steps, nil
		}
	}
	return steps, nil
}

// rulesFlow: on-call people get short access at once, 4h needs two
// approvals from carol and dave, "weekend" is refused, "boom" fails.
func rulesFlow() symbot.Flow {
	f := testFlow()
	f.Approvers.Users = []string{"UBOB", "UCAROL", "UDAVE"}
	f.Rules = []symbot.Rule{
		{Name: "boom", When: "x", Action: symbot.RuleApprove},
		{Name: "weekend", When: "x", Action: symbot.RuleRefuse, Message: "no access at weekends"},
		{Name: "long", When: "x", Action: symbot.RuleRequire, Approvals: 2, Approvers: &symbot.Approvers{Users: []string{"UCAROL", "UDAVE"}}},
		{Name: "on-call", When: "x", Action: symbot.RuleApprove},
	}
	return f
}

func rulesHarness(t *testing.T) *harness {
	h := newHarness(t, nil, rulesFlow())
	h.eng.Rules = rulesFuncs()
	return h
}

// rulesFuncs are the conditions of rulesFlow's rules.
func rulesFuncs() ruleFunc {
	return ruleFunc{
		"boom": func(in symbot.RuleInput) (bool, error) {
			if strings.Contains(in.Reason, "boom") {
				return false, errors.New("pagerduty: service unavailable")
			}
			return false, nil
		},
		"weekend": func(in symbot.RuleInput) (bool, error) { return strings.Contains(in.Reason, "weekend"), nil },
		"long":    func(in symbot.RuleInput) (bool, error) { return in.Duration > time.Hour, nil },
		"on-call": func(in symbot.RuleInput) (bool, error) { return in.Requester.SlackID == "UALICE", nil },
	}
}

func submitReason(t *testing.T, h *harness, a symbot.Actor, d time.Duration, reason string) (*symbot.Request, error) {
	t.Helper()
	return h.eng.Submit(t.Context(), a, symbot.RequestInput{Target: "admin", Duration: d, Reason: reason})
}

func TestRuleAutoApprovesWithTheRuleAsApprover(t *testing.T) {
	h := rulesHarness(t)
	r, err := submitReason(t, h, alice, time.Hour, "deploy")
	if err != nil {
		t.Fatal(err)
	}
	if r.State != symbot.StateApproved || r.Rule != "on-call" {
		t.Fatalf("state %s rule %q, want approved by on-call", r.State, r.Rule)
	}
	if len(r.Approvals) != 1 || r.Approvals[0].By != "rule:on-call" {
		t.Fatalf("approvals = %+v, want one by rule:on-call", r.Approvals)
	}
	if name, ok := symbot.RuleName(r.Approvals[0].By); !ok || name != "on-call" {
		t.Fatalf("RuleName(%q) = %q, %v", r.Approvals[0].By, name, ok)
	}
	last, _ := r.LastTransition()
	if last.By != "rule:on-call" {
		t.Fatalf("approved by %q", last.By)
	}
	var approved bool
	for _, e := range verifyAudit(t, h.st) {
		if e.Action == "approve" && e.Actor == "rule:on-call" {
			approved = true
		}
	}
	if !approved {
		t.Fatal("no approve audit entry by rule:on-call")
	}
	// The grant job, the message post and the DM are queued.
	kinds := map[symbot.JobKind]int{}
	for _, j := range h.pendingJobs(t) {
		kinds[j.Kind]++
	}
	if kinds[symbot.JobGrant] != 1 || kinds[symbot.JobPost] != 1 || kinds[symbot.JobNotify] != 1 {
		t.Fatalf("jobs = %v", kinds)
	}
}

func TestRuleRefusalShowsTheRulesMessage(t *testing.T) {
	h := rulesHarness(t)
	_, err := submitReason(t, h, bob, time.Hour, "weekend fix")
	var pe *symbot.PolicyError
	if !errors.As(err, &pe) || !strings.Contains(pe.Reason, "no access at weekends") || !strings.Contains(pe.Reason, "weekend") {
		t.Fatalf("err = %v, want the weekend rule's refusal", err)
	}
}

func TestRuleRequiresTwoApprovalsFromItsApprovers(t *testing.T) {
	h := rulesHarness(t)
	r, err := submitReason(t, h, bob, 4*time.Hour, "migration")
	if err != nil {
		t.Fatal(err)
	}
	if r.State != symbot.StatePending || r.RuleApprovals != 2 {
		t.Fatalf("state %s approvals %d", r.State, r.RuleApprovals)
	}
	if err := h.eng.MayDecide(t.Context(), r.ID, alice, symbot.VerbApprove); err == nil {
		t.Fatal("alice is not among the rule's approvers, yet may approve")
	}
	h.mustApprove(t, r.ID, carol)
	h.wantState(t, r.ID, symbot.StatePending)
	h.mustApprove(t, r.ID, dave)
	h.wantState(t, r.ID, symbot.StateApproved)
}

func TestRuleErrorFallsBackToManualApproval(t *testing.T) {
	h := rulesHarness(t)
	// alice would match on-call after boom; boom failing must not let her through.
	r, err := submitReason(t, h, alice, time.Hour, "boom")
	if err != nil {
		t.Fatal(err)
	}
	if r.State != symbot.StatePending || r.Rule != "" || len(r.Approvals) != 0 {
		t.Fatalf("state %s rule %q approvals %v, want pending for manual approval", r.State, r.Rule, r.Approvals)
	}
	if !strings.Contains(r.RuleNote, "rule boom could not be evaluated") || !strings.Contains(r.RuleNote, "pagerduty: service unavailable") || !strings.Contains(r.RuleNote, "manual approval") {
		t.Fatalf("note = %q", r.RuleNote)
	}
}

func TestRulesWithoutEvaluatorNeverApprove(t *testing.T) {
	h := newHarness(t, nil, rulesFlow())
	r, err := submitReason(t, h, alice, time.Hour, "deploy")
	if err != nil {
		t.Fatal(err)
	}
	if r.State != symbot.StatePending || r.RuleNote == "" {
		t.Fatalf("state %s note %q", r.State, r.RuleNote)
	}
}

func TestTargetRulesReplaceTheFlows(t *testing.T) {
	f := rulesFlow()
	f.Targets[0].Rules = []symbot.Rule{} // admin: no rules
	h := newHarness(t, nil, f)
	h.eng.Rules = ruleFunc{"on-call": func(symbot.RuleInput) (bool, error) { return true, nil }}
	r, err := submitReason(t, h, alice, time.Hour, "deploy")
	if err != nil {
		t.Fatal(err)
	}
	if r.State != symbot.StatePending || r.RuleNote != "" {
		t.Fatalf("state %s note %q: the target's empty rules should lift the flow's", r.State, r.RuleNote)
	}
}

func TestValidateRules(t *testing.T) {
	f := testFlow()
	f.Rules = []symbot.Rule{
		{Name: "", When: "true", Action: symbot.RuleApprove},
		{Name: "a", When: "", Action: symbot.RuleApprove},
		{Name: "a", When: "true", Action: symbot.RuleRefuse},
		{Name: "b", When: "true"},
		{Name: "c", When: "true", Action: symbot.RuleRequire, Approvals: 3},
	}
	err := symbot.ValidateFlows([]symbot.Flow{f})
	for _, want := range []string{
		"flows[0].rules[0].name: missing",
		"flows[0].rules[1].when: missing",
		`flows[0].rules[2].name: duplicate rule name "a"`,
		"flows[0].rules[2].refuse: empty",
		"flows[0].rules[3]: no outcome",
		"flows[0].rules[4].require.approvals_required: 3 approvals required but only 2 approvers listed",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ValidateFlows: %v\nwant %q", err, want)
		}
	}
}

// breakGlassRulesHarness is rulesHarness with break-glass allowed, and a
// "contractors" refuse rule that fails on a reason containing "pdown" and
// records whether the requests it saw were break-glass.
func breakGlassRulesHarness(t *testing.T, seen *[]bool) *harness {
	f := rulesFlow()
	f.BreakGlass = &symbot.BreakGlass{MaxDuration: 4 * time.Hour}
	f.Rules = append(f.Rules, symbot.Rule{Name: "contractors", When: "x", Action: symbot.RuleRefuse, Message: "contractors may never take <admin>"})
	h := newHarness(t, nil, f)
	rs := rulesFuncs()
	rs["contractors"] = func(in symbot.RuleInput) (bool, error) {
		*seen = append(*seen, in.BreakGlass)
		if strings.Contains(in.Reason, "pdown") {
			return false, errors.New("pagerduty: service unavailable")
		}
		return strings.Contains(in.Reason, "contractor"), nil
	}
	h.eng.Rules = rs
	return h
}

func breakGlassReason(t *testing.T, h *harness, a symbot.Actor, d time.Duration, reason string) (*symbot.Request, error) {
	t.Helper()
	return h.eng.BreakGlass(t.Context(), a, symbot.RequestInput{Target: "admin", Duration: d, Reason: reason})
}

func TestBreakGlassHoldsRefuseRules(t *testing.T) {
	var seen []bool
	h := breakGlassRulesHarness(t, &seen)
	// alice matches the on-call approve rule, which comes first: a normal
	// request of hers would be approved before "weekend" is reached. For
	// break-glass only the refuse rules apply, so "weekend" refuses.
	_, err := breakGlassReason(t, h, alice, time.Hour, "weekend outage")
	var pe *symbot.PolicyError
	if !errors.As(err, &pe) || !strings.Contains(pe.Reason, "rule weekend") || !strings.Contains(pe.Reason, "no access at weekends") {
		t.Fatalf("err = %v, want the weekend rule's refusal", err)
	}
	_, err = breakGlassReason(t, h, bob, time.Hour, "contractor fixing prod")
	if !errors.As(err, &pe) || !strings.Contains(pe.Reason, "refused by rule contractors: contractors may never take <admin>") {
		t.Fatalf("err = %v, want the contractors rule's refusal", err)
	}
	if len(seen) != 1 || !seen[0] {
		t.Fatalf("contractors rule saw break_glass %v, want one evaluation with true", seen)
	}
	// Each refusal is audited with the rule that refused.
	refusals := h.auditActions(t, "refused:breakglass")
	if len(refusals) != 2 || !strings.Contains(refusals[0].Detail, "refused by rule weekend") || !strings.Contains(refusals[1].Detail, "refused by rule contractors") {
		t.Fatalf("audited refusals = %+v", refusals)
	}
	if jobs := h.pendingJobs(t); len(jobs) != 0 {
		t.Fatalf("a refused break-glass queued jobs: %+v", jobs)
	}
	// A normal request sees break_glass false.
	seen = nil
	if _, err := submitReason(t, h, bob, time.Hour, "deploy"); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 1 || seen[0] {
		t.Fatalf("a normal request's rules saw break_glass %v, want false", seen)
	}
}

func TestBreakGlassSkipsApproveAndRequireRules(t *testing.T) {
	var seen []bool
	h := breakGlassRulesHarness(t, &seen)
	// 4h matches "long" (require two approvals) and "boom" fails the
	// approve rule: neither applies to break-glass, which grants at once.
	r, err := breakGlassReason(t, h, bob, 4*time.Hour, "boom: prod is down")
	if err != nil {
		t.Fatal(err)
	}
	if r.State != symbot.StateApproved || !r.BreakGlass || r.Rule != "" || r.RuleApprovals != 0 || r.RuleNote != "" {
		t.Fatalf("state %s break-glass %v rule %q approvals %d note %q, want approved by break-glass with no rule", r.State, r.BreakGlass, r.Rule, r.RuleApprovals, r.RuleNote)
	}
}

func TestBreakGlassRefusedWhenARefuseRuleCannotBeEvaluated(t *testing.T) {
	var seen []bool
	h := breakGlassRulesHarness(t, &seen)
	_, err := breakGlassReason(t, h, bob, time.Hour, "pdown outage")
	var pe *symbot.PolicyError
	if !errors.As(err, &pe) || !strings.Contains(pe.Reason, "rule contractors could not be evaluated") || !strings.Contains(pe.Reason, "make a normal request") {
		t.Fatalf("err = %v, want a refusal naming the rule that could not be evaluated", err)
	}
	if strings.Contains(pe.Reason, "manual approval needed") {
		t.Fatalf("reason %q promises manual approval for a break-glass request", pe.Reason)
	}
	// Without an evaluator, rules refuse break-glass too.
	h.eng.Rules = nil
	if _, err := breakGlassReason(t, h, bob, time.Hour, "outage"); !errors.As(err, &pe) || !strings.Contains(pe.Reason, "no rule evaluator") {
		t.Fatalf("err = %v, want a refusal: no rule evaluator", err)
	}
}

func TestBreakGlassRules(t *testing.T) {
	got := symbot.BreakGlassRules(rulesFlow().Rules)
	if len(got) != 1 || got[0].Name != "weekend" {
		t.Fatalf("BreakGlassRules = %+v, want the refuse rule weekend only", got)
	}
}

// classified is a ruleFunc that can tell which rules are decidable before
// a request.
type classified struct {
	ruleFunc
	static map[string]bool
}

func (c classified) RequestIndependent(r *symbot.Rule) bool { return c.static[r.Name] }

func TestOutlook(t *testing.T) {
	f := testFlow()
	f.Approvers.Users = []string{"UBOB", "UCAROL", "UDAVE"}
	f.Rules = []symbot.Rule{
		{Name: "by-reason", When: "x", Action: symbot.RuleRefuse, Message: "no"},
		{Name: "carol-never", When: "x", Action: symbot.RuleRefuse, Message: "no"},
		{Name: "bob-needs-two", When: "x", Action: symbot.RuleRequire, Approvals: 2, Approvers: &symbot.Approvers{Users: []string{"UCAROL", "UDAVE"}}},
	}
	f.Targets[1].Rules = []symbot.Rule{} // ro: no rules
	h := newHarness(t, nil, f)
	asked := 0
	h.eng.Rules = classified{
		ruleFunc: ruleFunc{
			"by-reason":     func(in symbot.RuleInput) (bool, error) { asked++; return in.Reason == "", nil },
			"carol-never":   func(in symbot.RuleInput) (bool, error) { return in.Requester.SlackID == "UCAROL", nil },
			"bob-needs-two": func(in symbot.RuleInput) (bool, error) { return in.Requester.SlackID == "UBOB", nil },
		},
		static: map[string]bool{"carol-never": true, "bob-needs-two": true},
	}
	fl := h.eng.Flows()
	for _, tc := range []struct {
		who     symbot.Actor
		rule    string
		need    int
		by      []string
		targets int
	}{
		{bob, "bob-needs-two", 2, []string{"UCAROL", "UDAVE"}, 2},
		{carol, "carol-never", 1, []string{"UBOB", "UCAROL", "UDAVE"}, 2},
		{alice, "", 1, []string{"UBOB", "UCAROL", "UDAVE"}, 2},
	} {
		outs := h.eng.Outlook(t.Context(), fl, tc.who)
		if len(outs) != tc.targets {
			t.Fatalf("%s: %d outlooks, want one per target", tc.who.SlackID, len(outs))
		}
		admin, ro := outs[0], outs[1]
		rule := ""
		if admin.Rule != nil {
			rule = admin.Rule.Name
		}
		if rule != tc.rule || admin.Approvals != tc.need || !slices.Equal(admin.Approvers.Users, tc.by) || !slices.Equal(admin.Depends, []string{"by-reason"}) {
			t.Errorf("%s admin: rule %q approvals %d by %v depends %v; want %q %d %v [by-reason]", tc.who.SlackID, rule, admin.Approvals, admin.Approvers.Users, admin.Depends, tc.rule, tc.need, tc.by)
		}
		if ro.Rule != nil || len(ro.Depends) != 0 || ro.Approvals != 1 {
			t.Errorf("%s ro (no rules): %+v, want the flow's approvers", tc.who.SlackID, ro)
		}
	}
	if asked != 0 {
		t.Errorf("a rule that depends on the request was evaluated %d times", asked)
	}
	// Without a classifier no rule is decided ahead.
	h.eng.Rules = ruleFunc{}
	if outs := h.eng.Outlook(t.Context(), fl, bob); len(outs[0].Depends) != 3 || outs[0].Rule != nil {
		t.Errorf("without a classifier: %+v, want every rule in Depends", outs[0])
	}
}
