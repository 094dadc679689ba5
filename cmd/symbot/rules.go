package main

// The rules' wiring (PagerDuty for on-call, with its token read through the
// AWS chain) and `symbot explain`, which shows how the rules decide a
// request without making one.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/awsauth"
	"github.com/symbot/symbot/celrules"
	"github.com/symbot/symbot/cmd/symbot/internal/config"
	"github.com/symbot/symbot/okta"
	"github.com/symbot/symbot/pagerduty"
)

// newPagerDuty returns the PagerDuty client the config describes, with its
// API token read from Secrets Manager through src; nil when the config has
// no pagerduty section. It makes no network calls.
func newPagerDuty(cfg *config.Config, src *awsauth.Source, log *slog.Logger) *pagerduty.Client {
	pd := cfg.PagerDuty
	if !pd.Enabled() {
		return nil
	}
	ttl := pd.CacheTTL
	if pd.CacheOff {
		ttl = -1 // cache_ttl: 0
	}
	return pagerduty.New(pagerduty.Config{
		BaseURL:            pd.APIURL,
		Schedules:          pd.Schedules,
		EscalationPolicies: pd.EscalationPolicies,
		CacheTTL:           ttl,
		TokenTTL:           cfg.Okta.TokenCacheTTL,
		Logger:             log.With("component", "pagerduty"),
	}, func(ctx context.Context) (string, error) {
		return src.SecretString(ctx, pd.TokenSecret, pd.TokenJSONKey, "pagerduty.token_secret", "pagerduty.token_json_key")
	})
}

// pagerDutyChecks are check --live's PagerDuty checks: the API key's
// secret is readable through the AWS chain and PagerDuty accepts it, and
// every schedule and escalation policy the config and the rules name
// exists. needs is the AWS check the secret read depends on.
func pagerDutyChecks(cfg *config.Config, src *awsauth.Source, needs string) []Check {
	pdc := cfg.PagerDuty
	if !pdc.Enabled() {
		return nil
	}
	pd := newPagerDuty(cfg, src, slog.New(slog.DiscardHandler))
	keyCheck := "pagerduty: read the API key secret " + pdc.TokenSecret
	checks := []Check{{
		Name:  keyCheck,
		Needs: needs,
		Run: func(ctx context.Context) error {
			_, err := src.SecretString(ctx, pdc.TokenSecret, pdc.TokenJSONKey, "pagerduty.token_secret", "pagerduty.token_json_key")
			return err
		},
		Fix: "check the secret exists in the region, the role may secretsmanager:GetSecretValue on it, and pagerduty.token_json_key names a key in it",
	}}
	scheds := slices.Clone(pdc.Schedules)
	if rs, probs := cfg.CompileRules(); len(probs) == 0 {
		for _, s := range rs.OnCallSchedules() {
			if !slices.Contains(scheds, s) {
				scheds = append(scheds, s)
			}
		}
	}
	for _, id := range scheds {
		checks = append(checks, Check{
			Name:  "pagerduty: schedule " + id + " exists",
			Needs: keyCheck,
			Run: func(ctx context.Context) error {
				_, err := pd.Schedule(ctx, id)
				return err
			},
			Fix: "check the schedule id (in the schedule's URL in PagerDuty) in pagerduty.schedules or the rules' on_call(\"...\"), and that the API key may read it",
		})
	}
	for _, id := range pdc.EscalationPolicies {
		checks = append(checks, Check{
			Name:  "pagerduty: escalation policy " + id + " exists",
			Needs: keyCheck,
			Run: func(ctx context.Context) error {
				_, err := pd.EscalationPolicy(ctx, id)
				return err
			},
			Fix: "check the escalation policy id (in its URL in PagerDuty) in pagerduty.escalation_policies, and that the API key may read it",
		})
	}
	return checks
}

const explainArgs = "FLOW/TARGET --as EMAIL --duration D --reason TEXT [--break-glass] [--at TIME] [--start TIME] [--tz ZONE] [--slack-id ID] [--groups IDS] [--on-call all|none|IDS] [--config FILE]"

// explainCmd prints how the rules of FLOW/TARGET decide a request: each
// rule in order, what its condition saw, whether it matched, and the
// outcome (of a break-glass request with --break-glass: only the refuse
// rules apply). It reads the config; the requester's Okta groups and on-call
// status come from --groups and --on-call when given, else from Okta and
// PagerDuty (only when a rule reached needs them).
func explainCmd(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("explain", "", stderr)
	cfgPath := configFlag(fs)
	as := fs.String("as", "", "the requester's email (as in Slack and Okta)")
	slackID := fs.String("slack-id", "", "the requester's Slack user id, for rules that read requester.slack_id")
	durS := fs.String("duration", "", "the duration asked for, like 1h")
	reason := fs.String("reason", "", "the reason given")
	at := fs.String("at", "", "when the request is made: RFC 3339 (2026-12-02T09:30:00Z) or \"2026-12-02 09:30\" in --tz; default now")
	startS := fs.String("start", "", "a scheduled start (as /sym req ... at TIME), in the forms of --at; default none: access now")
	tz := fs.String("tz", "UTC", "the requester's Slack time zone, like Europe/Berlin")
	groups := fs.String("groups", "", "the requester's Okta group ids, comma-separated, instead of asking Okta")
	breakGlass := fs.Bool("break-glass", false, "explain a break-glass request (/sym breakglass): only the refuse rules apply, with request.break_glass true")
	onCall := fs.String("on-call", "", "instead of asking PagerDuty: all (on call everywhere), none, or the schedule and escalation policy ids the requester is on call in, comma-separated")
	target, code, ok := parseOneArg(fs, args, stderr, "FLOW/TARGET")
	if !ok {
		return code
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "symbot explain: "+format+"\n", a...)
		return exitUsage
	}
	if *as == "" {
		return fail("--as EMAIL is required: the requester's email")
	}
	d, err := symbot.ParseDuration(*durS)
	if err != nil {
		return fail("--duration: %v", err)
	}
	loc, err := time.LoadLocation(*tz)
	if err != nil {
		return fail("--tz %q is not a time zone: use an IANA name like Europe/Berlin", *tz)
	}
	now := time.Now()
	if *at != "" {
		if now, err = parseAt(*at, loc); err != nil {
			return fail("--at: %v", err)
		}
	}
	var start time.Time
	if *startS != "" && *breakGlass {
		return fail("--start: break-glass access starts at once; leave out --start or --break-glass")
	}
	if *startS != "" {
		if start, err = parseAt(*startS, loc); err != nil {
			return fail("--start: %v", err)
		}
	}
	cfg, ok := loadConfig("explain", *cfgPath, stderr)
	if !ok {
		return exitFail
	}
	f, t, err := findTarget(cfg.Flows, target)
	if err != nil {
		return fail("%v", err)
	}
	rs, probs := cfg.CompileRules()
	if len(probs) > 0 {
		fmt.Fprintf(stderr, "symbot explain: %v\n", probs[0])
		return exitFail
	}
	rs.Explain = true
	log := newLogger(config.Log{Level: "error"}, stderr)
	// The AWS chain and Okta, built when a rule first needs them.
	var src *awsauth.Source
	var dir *okta.Directory
	chain := func() (*awsauth.Source, *okta.Directory, error) {
		if src == nil {
			s, d, err := newDirectory(ctx, cfg, log)
			if err != nil {
				return nil, nil, err
			}
			src, dir = s, d
		}
		return src, dir, nil
	}
	defer func() {
		if src != nil {
			src.Close()
		}
	}()
	var asked []string // the live look-ups made
	switch {
	case *onCall != "":
		rs.OnCall = fixedOnCall(*onCall, cfg.PagerDuty)
	case cfg.PagerDuty.Enabled():
		rs.OnCall = &lazyOnCall{get: func() (celrules.OnCall, error) {
			s, _, err := chain()
			if err != nil {
				return nil, err
			}
			asked = append(asked, "PagerDuty")
			return newPagerDuty(cfg, s, log), nil
		}}
	}
	in := symbot.RuleInput{
		Flow: f.Name, Target: t.Name, GroupID: t.GroupID, Duration: d, Reason: strings.TrimSpace(*reason),
		Requester:  symbot.Actor{Person: symbot.Person{SlackID: *slackID, Email: *as}, TimeZone: loc.String()},
		Now:        now,
		StartAt:    start,
		BreakGlass: *breakGlass,
	}
	if *groups != "" {
		gs := splitList(*groups)
		in.Groups = func(context.Context) ([]string, error) { return gs, nil }
	} else {
		in.Groups = func(ctx context.Context) ([]string, error) {
			_, dir, err := chain()
			if err != nil {
				return nil, err
			}
			asked = append(asked, "Okta")
			u, err := dir.ResolveUser(ctx, in.Requester.Person)
			if err != nil {
				return nil, err
			}
			return dir.UserGroups(ctx, u.ID)
		}
	}

	kind := "request"
	if *breakGlass {
		kind = "break-glass request"
	}
	fmt.Fprintf(stdout, "%s: %s/%s (Okta group %s) for %s, %s, reason %q, at %s (%s)\n",
		kind, f.Name, t.Name, t.GroupID, *as, symbot.FormatDuration(d), in.Reason, now.In(loc).Format("Mon 2006-01-02 15:04 MST"), now.UTC().Format(time.RFC3339))
	if *breakGlass {
		if f.BreakGlass == nil {
			fmt.Fprintf(stdout, "refused before the rules: flow %s has no break-glass access\n", f.Name)
			return exitOK
		}
		if err := f.BreakGlass.CheckDuration(f.Name, d); err != nil {
			fmt.Fprintf(stdout, "refused before the rules: %v\n", err)
			return exitOK
		}
	} else if !f.AllowsDuration(d) {
		fmt.Fprintf(stdout, "refused before the rules: %s is not offered; choose one of: %s\n", symbot.FormatDuration(d), durationsOf(f))
		return exitOK
	}
	if err := f.Reason.Check(in.Reason); err != nil || in.Reason == "" {
		if err == nil {
			err = errors.New("a reason is required")
		}
		fmt.Fprintf(stdout, "refused before the rules: reason: %v\n", err)
		return exitOK
	}
	from := "flow " + f.Name
	if t.Rules != nil {
		from = "target " + t.Name + ", replacing the flow's"
	}
	// rules are the rules evaluated, at the positions pos in f.Rules.
	rules, pos := f.Rules, make([]int, 0, len(f.Rules))
	if *breakGlass {
		rules = symbot.BreakGlassRules(f.Rules)
		fmt.Fprintf(stdout, "rules (%s): %d, of which %d apply to break-glass (its refuse rules)\n", from, len(f.Rules), len(rules))
	} else {
		fmt.Fprintf(stdout, "rules (%s): %d\n", from, len(f.Rules))
	}
	for i, r := range f.Rules {
		if !*breakGlass || r.Action == symbot.RuleRefuse {
			pos = append(pos, i)
		}
	}
	out := symbot.EvaluateRules(ctx, rs, rules, in)
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	for i, st := range out.Steps {
		verdict := "no"
		switch {
		case st.Matched:
			verdict = "MATCH"
		case i == len(out.Steps)-1 && out.Err != nil:
			verdict = "ERROR"
		}
		fmt.Fprintf(tw, "  %d.\t%s\t%s\t%s\t%s\n", pos[i]+1, st.Rule.Name, verdict, st.Rule.When, st.Why)
	}
	tw.Flush()
	evaluated := map[int]bool{}
	for _, p := range pos[:len(out.Steps)] {
		evaluated[p] = true
	}
	for i, r := range f.Rules {
		switch {
		case evaluated[i]:
		case *breakGlass && r.Action != symbot.RuleRefuse:
			fmt.Fprintf(stdout, "  -   %s: does not apply to break-glass (%s)\n", r.Name, r.Action)
		default:
			fmt.Fprintf(stdout, "  -   %s: not reached\n", r.Name)
		}
	}
	if len(asked) > 0 {
		fmt.Fprintf(stdout, "asked live: %s\n", strings.Join(slices.Compact(asked), ", "))
	}
	if *breakGlass {
		fmt.Fprintf(stdout, "decision: %s\n", breakGlassWords(f, out))
		return exitOK
	}
	fmt.Fprintf(stdout, "decision: %s\n", decisionWords(f, out))
	return exitOK
}

// breakGlassWords says what the refuse rules decided about a break-glass
// request, as the engine applies it.
func breakGlassWords(f *symbot.Flow, out symbot.RuleOutcome) string {
	var pe *symbot.PolicyError
	if err := symbot.BreakGlassRefusal(out); errors.As(err, &pe) {
		return pe.Reason
	} else if err != nil {
		return err.Error()
	}
	where := f.Channel
	if f.BreakGlass.Channel != "" {
		where = f.BreakGlass.Channel
	}
	return fmt.Sprintf("break-glass: granted at once without approval (alert in %s; an approver of flow %s must acknowledge it)", where, f.Name)
}

// decisionWords says what EvaluateRules decided, as the engine applies it.
func decisionWords(f *symbot.Flow, out symbot.RuleOutcome) string {
	manual := fmt.Sprintf("%d approval(s) from %s", f.ApprovalsRequired, approverWords(f.Approvers))
	switch {
	case out.Note != "":
		return "manual approval (" + manual + "): " + out.Note
	case out.Rule == nil:
		return "no rule matched: manual approval (" + manual + ")"
	}
	r := out.Rule
	switch r.Action {
	case symbot.RuleApprove:
		return fmt.Sprintf("approved at once by rule %s (recorded as the approver %q)", r.Name, symbot.RuleActor(r.Name))
	case symbot.RuleRefuse:
		return fmt.Sprintf("refused by rule %s: %s", r.Name, r.Message)
	case symbot.RuleRequire:
		need, a := f.ApprovalsRequired, f.Approvers
		if r.Approvals > 0 {
			need = r.Approvals
		}
		if r.Approvers != nil {
			a = *r.Approvers
		}
		return fmt.Sprintf("rule %s requires %d approval(s) from %s", r.Name, need, approverWords(a))
	}
	return string(r.Action)
}

func approverWords(a symbot.Approvers) string {
	var parts []string
	if a.Anyone {
		parts = append(parts, "anyone")
	}
	if len(a.Users) > 0 {
		parts = append(parts, strings.Join(a.Users, ", "))
	}
	if a.OktaGroup != "" {
		parts = append(parts, "members of Okta group "+a.OktaGroup)
	}
	return strings.Join(parts, "; ")
}

func durationsOf(f *symbot.Flow) string {
	var ds []string
	for _, d := range f.Durations {
		ds = append(ds, symbot.FormatDuration(d))
	}
	return strings.Join(ds, ", ")
}

// findTarget finds FLOW/TARGET (or a target name unique across flows) and
// returns the flow as it applies to the target.
func findTarget(flows []symbot.Flow, name string) (*symbot.Flow, symbot.Target, error) {
	fn, tn, ok := strings.Cut(name, "/")
	var found []*symbot.Flow
	for i := range flows {
		f := &flows[i]
		if ok && !strings.EqualFold(f.Name, fn) {
			continue
		}
		if !ok {
			tn = name
		}
		if _, has := f.Target(tn); has {
			found = append(found, f)
		}
	}
	switch len(found) {
	case 0:
		var all []string
		for _, f := range flows {
			for _, t := range f.Targets {
				all = append(all, f.Name+"/"+t.Name)
			}
		}
		return nil, symbot.Target{}, fmt.Errorf("no target %q; the targets are: %s", name, strings.Join(all, ", "))
	case 1:
		eff, t, _ := found[0].ForTarget(tn)
		return eff, t, nil
	}
	return nil, symbot.Target{}, fmt.Errorf("target %q is in several flows: write FLOW/TARGET", name)
}

// parseAt reads --at: RFC 3339, or "2006-01-02 15:04" in loc.
func parseAt(s string, loc *time.Location) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02 15:04", "2006-01-02T15:04"} {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a time: use 2026-12-02T09:30:00Z or \"2026-12-02 09:30\" (in --tz)", s)
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// fixedOnCall answers on-call questions from --on-call: all, none, or ids.
func fixedOnCall(spec string, pd config.PagerDuty) celrules.OnCall {
	switch strings.ToLower(strings.TrimSpace(spec)) {
	case "all":
		return staticOnCall{all: true}
	case "none":
		return staticOnCall{}
	}
	return staticOnCall{ids: splitList(spec), pd: pd}
}

type staticOnCall struct {
	all bool
	ids []string
	pd  config.PagerDuty
}

func (s staticOnCall) OnCall(context.Context, string) (bool, error) {
	if s.all {
		return true, nil
	}
	for _, id := range s.ids {
		if slices.Contains(s.pd.Schedules, id) || slices.Contains(s.pd.EscalationPolicies, id) {
			return true, nil
		}
	}
	return false, nil
}

func (s staticOnCall) OnCallIn(_ context.Context, _, sched string) (bool, error) {
	return s.all || slices.Contains(s.ids, sched), nil
}

// lazyOnCall builds the PagerDuty client when a rule first asks.
type lazyOnCall struct {
	get func() (celrules.OnCall, error)
	oc  celrules.OnCall
}

func (l *lazyOnCall) client() (celrules.OnCall, error) {
	if l.oc == nil {
		oc, err := l.get()
		if err != nil {
			return nil, err
		}
		l.oc = oc
	}
	return l.oc, nil
}

func (l *lazyOnCall) OnCall(ctx context.Context, email string) (bool, error) {
	c, err := l.client()
	if err != nil {
		return false, err
	}
	return c.OnCall(ctx, email)
}

func (l *lazyOnCall) OnCallIn(ctx context.Context, email, sched string) (bool, error) {
	c, err := l.client()
	if err != nil {
		return false, err
	}
	return c.OnCallIn(ctx, email, sched)
}
