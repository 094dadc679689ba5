package celrules_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/celrules"
)

// fakeOnCall answers from a set of (email, schedule) pairs; schedule ""
// is the configured set. err fails every look-up.
type fakeOnCall struct {
	on    map[string]bool
	err   error
	calls int
}

func (f *fakeOnCall) OnCall(ctx context.Context, email string) (bool, error) {
	f.calls++
	return f.on[email+"/"], f.err
}

func (f *fakeOnCall) OnCallIn(ctx context.Context, email, sched string) (bool, error) {
	f.calls++
	return f.on[email+"/"+sched], f.err
}

func flowWith(rules ...symbot.Rule) []symbot.Flow {
	return []symbot.Flow{{
		Name: "prod", Channel: "C1", Approvers: symbot.Approvers{Anyone: true}, Durations: []time.Duration{time.Hour},
		Rules:   rules,
		Targets: []symbot.Target{{Name: "admin", GroupID: "00gadmin"}},
	}}
}

func mustCompile(t testing.TB, flows []symbot.Flow) *celrules.RuleSet {
	t.Helper()
	rs, probs := celrules.Compile(flows, celrules.Options{OnCall: true, OnCallDefault: true})
	if len(probs) > 0 {
		t.Fatalf("Compile: %v", probs)
	}
	return rs
}

// monday10 is Monday 2026-11-30 10:00 in Berlin (09:00 UTC).
var monday10 = time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)

func input() symbot.RuleInput {
	return symbot.RuleInput{
		Flow: "prod", Target: "admin", GroupID: "00gadmin", Duration: time.Hour, Reason: "OPS-12 deploy",
		Requester: symbot.Actor{Person: symbot.Person{SlackID: "UALICE", Email: "alice@example.com", Name: "alice"}, TimeZone: "Europe/Berlin"},
		Now:       monday10,
		Groups:    func(context.Context) ([]string, error) { return []string{"00gsre"}, nil },
	}
}

func TestExpressions(t *testing.T) {
	tests := []struct {
		when string
		want bool
	}{
		{`request.duration <= duration("1h") && request.target == "admin"`, true},
		{`request.reason.matches("[A-Z]+-[0-9]+")`, true},
		{`local.hour == 10 && utc.hour == 9 && local.weekday == "Mon" && local.time_zone == "Europe/Berlin"`, true},
		{`local.weekday in ["Sat", "Sun"]`, false},
		{`now.getHours("Europe/Berlin") == 10`, true},
		{`"00gsre" in requester.groups`, true},
		{`requester.email.endsWith("@example.com") && !requester.guest`, true},
		{`requester.on_call`, true},
		{`on_call("PSCHED1")`, false},
		{`on_call("PSCHED2")`, true},
		{`request.start == now && !request.scheduled`, true},
	}
	oc := &fakeOnCall{on: map[string]bool{"alice@example.com/": true, "alice@example.com/PSCHED2": true}}
	for _, tc := range tests {
		t.Run(tc.when, func(t *testing.T) {
			rules := []symbot.Rule{{Name: "r", When: tc.when, Action: symbot.RuleApprove}}
			rs := mustCompile(t, flowWith(rules...))
			rs.OnCall = oc
			steps, err := rs.Decide(t.Context(), input(), rules)
			if err != nil {
				t.Fatalf("Decide: %v", err)
			}
			if got := steps[0].Matched; got != tc.want {
				t.Fatalf("matched = %v, want %v (why: %s)", got, tc.want, steps[0].Why)
			}
		})
	}
}

func TestCompileErrorsAllAtOnce(t *testing.T) {
	flows := flowWith(
		symbot.Rule{Name: "typo", When: `request.duraton < duration("1h")`, Action: symbot.RuleApprove},
		symbot.Rule{Name: "not-bool", When: `request.reason`, Action: symbot.RuleApprove},
		symbot.Rule{Name: "types", When: "request.duration > 3", Action: symbot.RuleApprove},
		symbot.Rule{Name: "sched", When: `on_call(request.reason)`, Action: symbot.RuleApprove},
	)
	flows[0].Targets[0].Rules = []symbot.Rule{{Name: "syntax", When: "request.target ==", Action: symbot.RuleApprove}}
	_, probs := celrules.Compile(flows, celrules.Options{OnCall: true, OnCallDefault: true})
	var got []string
	for _, p := range probs {
		got = append(got, p.Error())
	}
	all := strings.Join(got, "\n")
	for _, want := range []string{
		"flows[0].rules[0].when: undefined field 'duraton'",
		"flows[0].rules[1].when: gives string, not a bool",
		"flows[0].rules[2].when: found no matching overload for '_>_'",
		"flows[0].rules[3].when: on_call takes a PagerDuty schedule id in quotes",
		"flows[0].targets[0].rules[0].when: Syntax error",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("problems:\n%s\nwant %q", all, want)
		}
	}
}

func TestOnCallNeedsPagerDuty(t *testing.T) {
	_, probs := celrules.Compile(flowWith(symbot.Rule{Name: "oc", When: "requester.on_call", Action: symbot.RuleApprove}), celrules.Options{})
	if len(probs) != 1 || !strings.Contains(probs[0].Message, "PagerDuty is not set up") {
		t.Fatalf("problems = %v", probs)
	}
}

func TestRuntimeErrorStopsAtTheRule(t *testing.T) {
	rules := []symbot.Rule{
		{Name: "bad", When: `int(request.reason) > 0`, Action: symbot.RuleRefuse, Message: "no"},
		{Name: "all", When: "true", Action: symbot.RuleApprove},
	}
	rs := mustCompile(t, flowWith(rules...))
	steps, err := rs.Decide(t.Context(), input(), rules)
	if err == nil || !strings.Contains(err.Error(), "rule bad") {
		t.Fatalf("err = %v, want rule bad's evaluation error", err)
	}
	if len(steps) != 1 || steps[0].Matched {
		t.Fatalf("steps = %+v: a later rule must not decide after an error", steps)
	}
}

func TestLookupsOnlyWhenReached(t *testing.T) {
	rules := []symbot.Rule{
		{Name: "short", When: `request.duration <= duration("1h")`, Action: symbot.RuleApprove},
		{Name: "oc", When: "requester.on_call", Action: symbot.RuleApprove},
	}
	oc := &fakeOnCall{err: errors.New("down")}
	rs := mustCompile(t, flowWith(rules...))
	rs.OnCall = oc
	in := input()
	in.Groups = nil
	steps, err := rs.Decide(t.Context(), in, rules)
	if err != nil || !steps[0].Matched || oc.calls != 0 {
		t.Fatalf("steps %+v err %v calls %d: the first rule decides without PagerDuty", steps, err, oc.calls)
	}
	in.Duration = 4 * time.Hour
	_, err = rs.Decide(t.Context(), in, rules)
	if !errors.Is(err, celrules.ErrOnCall) || !strings.Contains(err.Error(), "down") {
		t.Fatalf("err = %v, want the on-call failure", err)
	}
}

func TestWhySaysWhatTheRuleSaw(t *testing.T) {
	rules := []symbot.Rule{{Name: "hours", When: `local.hour >= 9 && local.hour < 17 && request.duration <= duration("4h")`, Action: symbot.RuleApprove}}
	rs := mustCompile(t, flowWith(rules...))
	steps, err := rs.Decide(t.Context(), input(), rules)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := steps[0].Why, "local.hour=10 request.duration=1h"; got != want {
		t.Fatalf("why = %q, want %q", got, want)
	}
}

// BenchmarkDecide20Rules: a typical rule set of 20 rules, none of which
// matches until the last, with the look-ups answered from memory.
func BenchmarkDecide20Rules(b *testing.B) {
	var rules []symbot.Rule
	for i := range 19 {
		rules = append(rules, symbot.Rule{Name: fmt.Sprintf("r%d", i), Action: symbot.RuleApprove, When: []string{
			`request.target == "db" && request.duration <= duration("1h")`,
			`local.weekday in ["Sat", "Sun"] && request.duration > duration("1h")`,
			`request.reason.matches("^INC-[0-9]+$") && requester.on_call`,
			`"00gdba" in requester.groups && local.hour >= 9 && local.hour < 18`,
		}[i%4] + fmt.Sprintf(" && request.flow != \"f%d\"", i)})
	}
	rules = append(rules, symbol("last", `requester.email.endsWith("@example.com")`))
	rs := mustCompile(b, flowWith(rules...))
	rs.OnCall = &fakeOnCall{on: map[string]bool{}}
	in := input()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		steps, err := rs.Decide(ctx, in, rules)
		if err != nil || len(steps) != 20 || !steps[19].Matched {
			b.Fatalf("steps %d err %v", len(steps), err)
		}
	}
}

func symbol(name, when string) symbot.Rule {
	return symbot.Rule{Name: name, When: when, Action: symbot.RuleApprove}
}

// TestRulesOfReplacedFlows: a RuleSet built from other flows (the flows
// were reloaded) compiles a new expression when first asked, and a new
// expression that does not compile is an error, never a match.
func TestRulesOfReplacedFlows(t *testing.T) {
	rs := mustCompile(t, nil)
	good := []symbot.Rule{{Name: "new", When: `request.target == "admin"`, Action: symbot.RuleApprove}}
	if steps, err := rs.Decide(t.Context(), input(), good); err != nil || !steps[0].Matched {
		t.Fatalf("steps %+v err %v", steps, err)
	}
	bad := []symbot.Rule{{Name: "broken", When: `request.target ==`, Action: symbot.RuleApprove}}
	if steps, err := rs.Decide(t.Context(), input(), bad); err == nil || steps[0].Matched {
		t.Fatalf("steps %+v err %v, want an error", steps, err)
	}
}

func TestScheduledStart(t *testing.T) {
	rules := []symbot.Rule{{Name: "night", When: `request.scheduled && request.start.getHours("Europe/Berlin") >= 22`, Action: symbot.RuleRefuse, Message: "no"}}
	rs := mustCompile(t, flowWith(rules...))
	in := input()
	in.StartAt = time.Date(2026, 11, 30, 21, 30, 0, 0, time.UTC) // 22:30 in Berlin
	steps, err := rs.Decide(t.Context(), in, rules)
	if err != nil || !steps[0].Matched {
		t.Fatalf("steps %+v err %v", steps, err)
	}
}

// TestBreakGlassVariable: request.break_glass tells a break-glass request
// from a normal one, so that a refuse rule can target either, and Why
// shows it.
func TestBreakGlassVariable(t *testing.T) {
	rules := []symbot.Rule{{Name: "no-bg-at-night", When: `request.break_glass && local.hour >= 22`, Action: symbot.RuleRefuse, Message: "no"},
		{Name: "bg", When: `request.break_glass`, Action: symbot.RuleRefuse, Message: "no"}}
	rs := mustCompile(t, flowWith(rules...))
	rs.Explain = true
	for _, bg := range []bool{false, true} {
		in := input()
		in.BreakGlass = bg
		steps, err := rs.Decide(t.Context(), in, rules)
		if err != nil {
			t.Fatal(err)
		}
		if got := steps[len(steps)-1].Matched; got != bg {
			t.Errorf("break_glass %v: rule bg matched %v", bg, got)
		}
		if got, want := steps[1].Why, fmt.Sprintf("request.break_glass=%v", bg); got != want {
			t.Errorf("why = %q, want %q", got, want)
		}
	}
}

// TestRequestIndependent: a rule that reads only who asks for what can be
// decided before the request (whoami); one that reads the reason, the
// duration, the time or on-call status, or uses a variable whole, cannot.
func TestRequestIndependent(t *testing.T) {
	tests := []struct {
		when string
		want bool
	}{
		{`request.target == "admin" && "00gsre" in requester.groups`, true},
		{`!requester.email.endsWith("@example.com") || requester.guest`, true},
		{`request.break_glass`, true},
		{`request.reason.contains("x")`, false},
		{`request.duration > duration("1h")`, false},
		{`local.hour < 8`, false},
		{`now > timestamp("2026-01-01T00:00:00Z")`, false},
		{`requester.on_call`, false},
		{`on_call("PSCHED1")`, false},
		{`request.scheduled`, false},
		{`[request].exists(r, r.reason == "x")`, false},
	}
	for _, tc := range tests {
		t.Run(tc.when, func(t *testing.T) {
			r := symbot.Rule{Name: "r", When: tc.when, Action: symbot.RuleApprove}
			rs := mustCompile(t, flowWith(r))
			if got := rs.RequestIndependent(&r); got != tc.want {
				t.Errorf("RequestIndependent(%s) = %v, want %v", tc.when, got, tc.want)
			}
		})
	}
}
