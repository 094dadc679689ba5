// Package celrules compiles and evaluates symbot's request rules, written
// in CEL (cel.dev/cel-go): it implements symbot.RuleSet.
//
// An expression sees:
//
//	request    flow, target, group, duration (a duration), reason, start
//	           (a timestamp: the scheduled start, or now), scheduled,
//	           break_glass (a /sym breakglass request: only refuse rules
//	           are evaluated for it)
//	requester  slack_id, email, name, guest, time_zone, groups (Okta group
//	           ids), on_call (on call now in PagerDuty's configured
//	           schedules or escalation policies)
//	now        the time of the request (a timestamp, UTC)
//	local      now in the requester's Slack time zone: hour, minute,
//	           weekday ("Mon" .. "Sun"), date ("2026-12-02"), time_zone
//	utc        the same fields in UTC
//	on_call("PSCHED1")  whether the requester is on call now in that
//	           PagerDuty schedule
//
// plus CEL's standard functions and the strings extension. Every
// expression is type-checked and must give a bool. Groups and on-call
// are looked up only for the rules that read them, when they are reached.
package celrules

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"cel.dev/cel-go/cel"
	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/ext"

	"github.com/symbot/symbot"
)

// Request is the `request` variable.
type Request struct {
	Flow     string        `cel:"flow"`
	Target   string        `cel:"target"`
	Group    string        `cel:"group"`
	Duration time.Duration `cel:"duration"`
	Reason   string        `cel:"reason"`
	// Start is when the access would begin: the scheduled start, or the
	// time of the request; Scheduled says which.
	Start     time.Time `cel:"start"`
	Scheduled bool      `cel:"scheduled"`
	// BreakGlass is true for a break-glass request (only its refuse
	// rules are evaluated: symbot.BreakGlassRules).
	BreakGlass bool `cel:"break_glass"`
}

// Requester is the `requester` variable.
type Requester struct {
	SlackID  string   `cel:"slack_id"`
	Email    string   `cel:"email"`
	Name     string   `cel:"name"`
	Guest    bool     `cel:"guest"`
	TimeZone string   `cel:"time_zone"`
	Groups   []string `cel:"groups"`
	OnCall   bool     `cel:"on_call"`
}

// Clock is the `local` and `utc` variables: a time in one zone.
type Clock struct {
	Hour     int    `cel:"hour"`
	Minute   int    `cel:"minute"`
	Weekday  string `cel:"weekday"` // Mon, Tue, ...
	Date     string `cel:"date"`    // 2006-01-02
	TimeZone string `cel:"time_zone"`
}

// OnCall answers whether a person (by email) is on call now: PagerDuty.
type OnCall interface {
	// OnCall: in any of the configured schedules and escalation policies.
	OnCall(ctx context.Context, email string) (bool, error)
	// OnCallIn: in the schedule with this id.
	OnCallIn(ctx context.Context, email, scheduleID string) (bool, error)
}

// ErrOnCall wraps the errors of on-call look-ups.
var ErrOnCall = errors.New("on-call look-up failed")

// Options configure compilation.
type Options struct {
	// OnCall enables on_call(); without it an expression that reads
	// on-call status is an error (PagerDuty is not set up).
	OnCall bool
	// OnCallDefault enables requester.on_call: PagerDuty has schedules or
	// escalation policies configured for it.
	OnCallDefault bool
}

// Problem is an expression that does not compile.
type Problem struct {
	Path    string // flows[0].rules[1].when, or ...targets[0].rules[1].when
	Line    int    // 1-based line within the expression
	Column  int    // 1-based column within the expression
	Message string
}

func (p Problem) Error() string {
	return fmt.Sprintf("%s: %s", p.Path, p.Message)
}

// RuleSet holds the compiled expressions of a configuration, by their
// text. It implements symbot.RuleSet and is safe for concurrent use.
type RuleSet struct {
	// OnCall answers the on-call questions; nil fails the rules that ask.
	OnCall OnCall
	// Explain fills RuleStep.Why for every rule evaluated, not only for
	// the one that decided or failed (symbot explain).
	Explain bool

	opts  Options
	mu    sync.RWMutex
	progs map[string]*program // by expression text
}

type program struct {
	prg    cel.Program
	whole  bool     // uses a variable (request, requester, local, utc) other than by a field
	groups bool     // reads requester.groups
	onCall bool     // reads requester.on_call
	scheds []string // on_call("...") arguments
	reads  []string // the variables' fields it reads, for Why
}

var (
	envOnce sync.Once
	baseEnv *cel.Env
	envErr  error
)

func env() (*cel.Env, error) {
	envOnce.Do(func() {
		baseEnv, envErr = cel.NewEnv(
			ext.NativeTypes(reflect.TypeFor[Request](), reflect.TypeFor[Requester](), reflect.TypeFor[Clock](), ext.ParseStructTags(true)),
			ext.Strings(),
			cel.Variable("request", cel.ObjectType("celrules.Request")),
			cel.Variable("requester", cel.ObjectType("celrules.Requester")),
			cel.Variable("now", cel.TimestampType),
			cel.Variable("local", cel.ObjectType("celrules.Clock")),
			cel.Variable("utc", cel.ObjectType("celrules.Clock")),
			cel.Function("on_call",
				cel.Overload("on_call_string", []*cel.Type{cel.StringType}, cel.BoolType, cel.LateFunctionBinding())),
		)
	})
	return baseEnv, envErr
}

// Compile compiles every rule expression of flows (and of their targets),
// reporting every problem at once. The RuleSet is nil when there are
// problems.
func Compile(flows []symbot.Flow, opts Options) (*RuleSet, []Problem) {
	rs := &RuleSet{opts: opts, progs: map[string]*program{}}
	var probs []Problem
	add := func(path string, rules []symbot.Rule) {
		for i, r := range rules {
			p := fmt.Sprintf("%s[%d].when", path, i)
			if strings.TrimSpace(r.When) == "" {
				continue // reported by symbot.ValidateFlows
			}
			if _, ok := rs.progs[r.When]; ok {
				continue
			}
			prog, ps := compile(p, r.When, opts)
			if len(ps) > 0 {
				probs = append(probs, ps...)
				continue
			}
			rs.progs[r.When] = prog
		}
	}
	for i, f := range flows {
		add(fmt.Sprintf("flows[%d].rules", i), f.Rules)
		for j, t := range f.Targets {
			add(fmt.Sprintf("flows[%d].targets[%d].rules", i, j), t.Rules)
		}
	}
	if len(probs) > 0 {
		return nil, probs
	}
	return rs, nil
}

func compile(path, src string, opts Options) (*program, []Problem) {
	e, err := env()
	if err != nil {
		return nil, []Problem{{Path: path, Message: fmt.Sprintf("rule environment: %v", err)}}
	}
	ast, iss := e.Compile(src)
	if iss.Err() != nil {
		var ps []Problem
		for _, ce := range iss.Errors() {
			ps = append(ps, Problem{Path: path, Line: ce.Location.Line(), Column: ce.Location.Column() + 1,
				Message: fmt.Sprintf("%s (line %d, column %d of the expression)", ce.Message, ce.Location.Line(), ce.Location.Column()+1)})
		}
		return nil, ps
	}
	if !ast.OutputType().IsExactType(cel.BoolType) {
		return nil, []Problem{{Path: path, Line: 1, Column: 1, Message: fmt.Sprintf("gives %s, not a bool: a condition must be true or false", ast.OutputType())}}
	}
	p := &program{}
	var bad []Problem
	nav := celast.NavigateAST(ast.NativeRep())
	for _, x := range celast.MatchDescendants(nav, celast.AllMatcher()) {
		switch x.Kind() {
		case celast.SelectKind:
			sel := x.AsSelect()
			if sel.Operand().Kind() != celast.IdentKind {
				continue
			}
			v := sel.Operand().AsIdent()
			if !slices.Contains([]string{"request", "requester", "local", "utc"}, v) {
				continue
			}
			name := v + "." + sel.FieldName()
			if !slices.Contains(p.reads, name) {
				p.reads = append(p.reads, name)
			}
			switch name {
			case "requester.groups":
				p.groups = true
			case "requester.on_call":
				p.onCall = true
			}
		case celast.CallKind:
			c := x.AsCall()
			if c.FunctionName() != "on_call" || len(c.Args()) != 1 {
				continue
			}
			arg := c.Args()[0]
			if arg.Kind() != celast.LiteralKind {
				bad = append(bad, problemAt(ast, path, x.ID(), `on_call takes a PagerDuty schedule id in quotes, like on_call("PABC123")`))
				continue
			}
			s, _ := arg.AsLiteral().Value().(string)
			if !validScheduleID(s) {
				bad = append(bad, problemAt(ast, path, x.ID(), fmt.Sprintf(`%q is not a PagerDuty schedule id (like PABC123: letters and digits)`, s)))
				continue
			}
			if !slices.Contains(p.scheds, s) {
				p.scheds = append(p.scheds, s)
			}
		case celast.IdentKind:
			if x.AsIdent() == "now" && !slices.Contains(p.reads, "now") {
				p.reads = append(p.reads, "now")
			}
			if slices.Contains([]string{"request", "requester", "local", "utc"}, x.AsIdent()) {
				if parent, ok := x.Parent(); !ok || parent.Kind() != celast.SelectKind {
					p.whole = true
				}
			}
		}
	}
	switch {
	case (p.onCall || len(p.scheds) > 0) && !opts.OnCall:
		bad = append(bad, Problem{Path: path, Line: 1, Column: 1, Message: "reads on-call status, but PagerDuty is not set up: configure pagerduty (token_secret, and schedules or escalation_policies)"})
	case p.onCall && !opts.OnCallDefault:
		bad = append(bad, Problem{Path: path, Line: 1, Column: 1, Message: "reads requester.on_call, but pagerduty lists no schedules or escalation_policies to be on call in: list them, or use on_call(\"SCHEDULE_ID\")"})
	}
	if len(bad) > 0 {
		return nil, bad
	}
	sort.Strings(p.reads)
	prg, err := e.Program(ast, cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return nil, []Problem{{Path: path, Message: err.Error()}}
	}
	p.prg = prg
	return p, nil
}

func problemAt(ast *cel.Ast, path string, id int64, msg string) Problem {
	loc := ast.NativeRep().SourceInfo().GetStartLocation(id)
	return Problem{Path: path, Line: loc.Line(), Column: loc.Column() + 1,
		Message: fmt.Sprintf("%s (line %d, column %d of the expression)", msg, loc.Line(), loc.Column()+1)}
}

func validScheduleID(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for _, r := range s {
		if !(r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z') {
			return false
		}
	}
	return true
}

// Decide implements symbot.RuleSet.
func (rs *RuleSet) Decide(ctx context.Context, in symbot.RuleInput, rules []symbot.Rule) ([]symbot.RuleStep, error) {
	ev := rs.newEval(in)
	steps := make([]symbot.RuleStep, 0, len(rules))
	for i := range rules {
		r := &rules[i]
		ok, p, err := ev.eval(ctx, r)
		step := symbot.RuleStep{Rule: r, Matched: ok}
		if p != nil && (rs.Explain || ok || err != nil) {
			step.Why = ev.why(p)
		}
		steps = append(steps, step)
		if err != nil || ok {
			return steps, err
		}
	}
	return steps, nil
}

// eval is one request's evaluation: its variables, and the look-ups made
// so far (each at most once).
type eval struct {
	rs        *RuleSet
	in        symbot.RuleInput
	request   *Request
	requester *Requester
	local     *Clock
	utc       *Clock

	vars                   map[string]any // the activation, made once
	groupsDone, onCallDone bool
	scheds                 map[string]bool
}

func (rs *RuleSet) newEval(in symbot.RuleInput) *eval {
	now := in.Now.UTC()
	start := now
	if !in.StartAt.IsZero() {
		start = in.StartAt.UTC()
	}
	loc := time.UTC
	zone := in.Requester.TimeZone
	if zone != "" {
		if l, ok := location(zone); ok {
			loc = l
		} else {
			zone = ""
		}
	}
	if zone == "" {
		zone = "UTC"
	}
	return &eval{
		rs: rs, in: in,
		request: &Request{Flow: in.Flow, Target: in.Target, Group: in.GroupID, Duration: in.Duration, Reason: in.Reason,
			Start: start, Scheduled: !in.StartAt.IsZero(), BreakGlass: in.BreakGlass},
		requester: &Requester{
			SlackID: in.Requester.SlackID, Email: in.Requester.Email, Name: in.Requester.Name,
			Guest: in.Requester.IsGuest, TimeZone: zone, Groups: []string{},
		},
		local:  clock(now.In(loc), zone),
		utc:    clock(now, "UTC"),
		scheds: map[string]bool{},
	}
}

// zones caches time.LoadLocation, which reads the zone database.
var zones sync.Map // string -> *time.Location, or nil for a bad name

func location(name string) (*time.Location, bool) {
	if l, ok := zones.Load(name); ok {
		loc, _ := l.(*time.Location)
		return loc, loc != nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		zones.Store(name, (*time.Location)(nil))
		return nil, false
	}
	zones.Store(name, loc)
	return loc, true
}

func clock(t time.Time, zone string) *Clock {
	return &Clock{Hour: t.Hour(), Minute: t.Minute(), Weekday: t.Weekday().String()[:3], Date: t.Format(time.DateOnly), TimeZone: zone}
}

func (ev *eval) eval(ctx context.Context, r *symbot.Rule) (bool, *program, error) {
	p, err := ev.rs.program(r.When)
	if err != nil {
		return false, nil, fmt.Errorf("rule %s: %w", r.Name, err)
	}
	if err := ev.lookups(ctx, p); err != nil {
		return false, p, fmt.Errorf("rule %s: %w", r.Name, err)
	}
	if ev.vars == nil {
		ev.vars = map[string]any{
			"request": ev.request, "requester": ev.requester,
			"now": ev.in.Now.UTC(), "local": ev.local, "utc": ev.utc,
		}
	}
	var act any = ev.vars
	if len(p.scheds) > 0 {
		fa, err := cel.FunctionVars(ev.vars, map[string]cel.LateBoundFunction{
			"on_call": func(_ string, args ...ref.Val) ref.Val {
				s, _ := args[0].Value().(string)
				on, ok := ev.scheds[s]
				if !ok {
					return types.NewErr("on_call(%q) was not looked up", s)
				}
				return types.Bool(on)
			},
		})
		if err != nil {
			return false, p, fmt.Errorf("rule %s: %w", r.Name, err)
		}
		act = fa
	}
	out, _, err := p.prg.Eval(act)
	if err != nil {
		return false, p, fmt.Errorf("rule %s: %w", r.Name, err)
	}
	b, ok := out.Value().(bool)
	if !ok {
		return false, p, fmt.Errorf("rule %s: gave %v, not a bool", r.Name, out)
	}
	return b, p, nil
}

// program returns the compiled expression src, compiling it now if the
// RuleSet was built from other flows (flows replaced by a reload).
func (rs *RuleSet) program(src string) (*program, error) {
	rs.mu.RLock()
	p, ok := rs.progs[src]
	rs.mu.RUnlock()
	if ok {
		return p, nil
	}
	p, probs := compile("when", src, rs.opts)
	if len(probs) > 0 {
		return nil, fmt.Errorf("does not compile: %s", probs[0].Message)
	}
	rs.mu.Lock()
	rs.progs[src] = p
	rs.mu.Unlock()
	return p, nil
}

// lookups fetches what p reads that the request does not carry: the
// requester's groups and on-call status.
func (ev *eval) lookups(ctx context.Context, p *program) error {
	if p.groups && !ev.groupsDone {
		if ev.in.Groups == nil {
			return errors.New("the requester's groups are not known")
		}
		gs, err := ev.in.Groups(ctx)
		if err != nil {
			return fmt.Errorf("requester.groups: %w", err)
		}
		ev.requester.Groups = slices.Clone(gs)
		ev.groupsDone = true
	}
	if (p.onCall || len(p.scheds) > 0) && ev.rs.OnCall == nil {
		return fmt.Errorf("%w: PagerDuty is not set up", ErrOnCall)
	}
	email := ev.in.Requester.Email
	if (p.onCall && !ev.onCallDone || len(p.scheds) > 0) && email == "" {
		return fmt.Errorf("%w: the requester has no confirmed Slack email to find them in PagerDuty", ErrOnCall)
	}
	if p.onCall && !ev.onCallDone {
		on, err := ev.rs.OnCall.OnCall(ctx, email)
		if err != nil {
			return fmt.Errorf("%w: requester.on_call: %w", ErrOnCall, err)
		}
		ev.requester.OnCall, ev.onCallDone = on, true
	}
	for _, s := range p.scheds {
		if _, done := ev.scheds[s]; done {
			continue
		}
		on, err := ev.rs.OnCall.OnCallIn(ctx, email, s)
		if err != nil {
			return fmt.Errorf("%w: on_call(%q): %w", ErrOnCall, s, err)
		}
		ev.scheds[s] = on
	}
	return nil
}

// why lists the values p read, for people: request.duration=1h, ...
func (ev *eval) why(p *program) string {
	var parts []string
	for _, name := range p.reads {
		if v, ok := ev.value(name); ok {
			parts = append(parts, name+"="+v)
		}
	}
	for _, s := range p.scheds {
		if on, ok := ev.scheds[s]; ok {
			parts = append(parts, fmt.Sprintf("on_call(%q)=%v", s, on))
		}
	}
	return strings.Join(parts, " ")
}

func (ev *eval) value(name string) (string, bool) {
	q := func(s string) (string, bool) { return fmt.Sprintf("%q", s), true }
	switch name {
	case "now":
		return ev.in.Now.UTC().Format(time.RFC3339), true
	case "request.flow":
		return q(ev.request.Flow)
	case "request.target":
		return q(ev.request.Target)
	case "request.group":
		return q(ev.request.Group)
	case "request.duration":
		return symbot.FormatDuration(ev.request.Duration), true
	case "request.start":
		return ev.request.Start.Format(time.RFC3339), true
	case "request.scheduled":
		return fmt.Sprint(ev.request.Scheduled), true
	case "request.break_glass":
		return fmt.Sprint(ev.request.BreakGlass), true
	case "request.reason":
		return q(symbot.TruncateRunes(ev.request.Reason, 80))
	case "requester.slack_id":
		return q(ev.requester.SlackID)
	case "requester.email":
		return q(ev.requester.Email)
	case "requester.name":
		return q(ev.requester.Name)
	case "requester.guest":
		return fmt.Sprint(ev.requester.Guest), true
	case "requester.time_zone":
		return q(ev.requester.TimeZone)
	case "requester.groups":
		if !ev.groupsDone {
			return "", false
		}
		return fmt.Sprintf("%q", ev.requester.Groups), true
	case "requester.on_call":
		if !ev.onCallDone {
			return "", false
		}
		return fmt.Sprint(ev.requester.OnCall), true
	}
	if c, field, ok := strings.Cut(name, "."); ok && (c == "local" || c == "utc") {
		k := ev.local
		if c == "utc" {
			k = ev.utc
		}
		switch field {
		case "hour":
			return fmt.Sprint(k.Hour), true
		case "minute":
			return fmt.Sprint(k.Minute), true
		case "weekday":
			return q(k.Weekday)
		case "date":
			return q(k.Date)
		case "time_zone":
			return q(k.TimeZone)
		}
	}
	return "", false
}

// Reads lists the fields of the variables (request.reason, local.hour,
// ...) and the other variables ("now") the compiled expression when reads,
// sorted; false when when is not compiled in rs.
func (rs *RuleSet) Reads(when string) ([]string, bool) {
	rs.mu.RLock()
	defer rs.mu.RUnlock()
	p, ok := rs.progs[when]
	if !ok {
		return nil, false
	}
	return slices.Clone(p.reads), true
}

// beforeRequest are the fields known of a request before it is made:
// who asks for what, not why, for how long or when.
var beforeRequest = []string{
	"request.flow", "request.target", "request.group", "request.break_glass",
	"requester.slack_id", "requester.email", "requester.name", "requester.guest", "requester.time_zone", "requester.groups",
}

// RequestIndependent implements symbot.RuleClassifier: whether r's
// condition reads only the flow, target and group, whether the request is
// break-glass, and who the requester is (Slack id, email, name, guest,
// time zone, Okta groups), so that it can be decided before a request is
// made. A condition that reads the reason, duration, start, the time, or
// on-call status is not; nor one that does not compile.
func (rs *RuleSet) RequestIndependent(r *symbot.Rule) bool {
	p, err := rs.program(r.When)
	if err != nil || p.whole || p.onCall || len(p.scheds) > 0 {
		return false
	}
	for _, name := range p.reads {
		if !slices.Contains(beforeRequest, name) {
			return false
		}
	}
	return true
}

// OnCallSchedules lists the schedule ids the compiled rules pass to
// on_call(), sorted, for `symbot check --live` to look up.
func (rs *RuleSet) OnCallSchedules() []string {
	rs.mu.RLock()
	defer rs.mu.RUnlock()
	var out []string
	for _, p := range rs.progs {
		for _, s := range p.scheds {
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	sort.Strings(out)
	return out
}
