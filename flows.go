// Flows and targets: what can be requested, for how long and approved by
// whom; their validation; duration syntax; and the engine's flow lookup.

package symbot

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Defaults applied by Flow.ApplyDefaults.
const (
	DefaultApprovalsRequired = 1
	DefaultApprovalTimeout   = 24 * time.Hour
	DefaultExpiryWarning     = 10 * time.Minute
	// MaxDuration is the longest access a flow may ever grant in one request.
	MaxDuration = 30 * 24 * time.Hour
)

// Flow is one kind of access that people may request: a set of Okta groups
// (targets), who approves them, and for how long they may be held.
type Flow struct {
	Name    string // short name used in commands and config
	Label   string // human label
	Channel string // Slack channel id (or name) where approval messages go

	Approvers         Approvers
	ApprovalsRequired int  // distinct approvals needed; 0 means DefaultApprovalsRequired
	AllowSelfApproval bool // may the requester approve their own request
	AllowRevoke       bool // may approvers revoke active access
	AllowGuests       bool // may Slack guests request and approve

	Durations       []time.Duration // allowed durations; the largest is the maximum
	ApprovalTimeout time.Duration   // pending requests time out after this; 0 means default
	// ExpiryWarning is how long before expiry the requester is warned; 0 turns
	// the warning off. Config loaders apply DefaultExpiryWarning when unset.
	ExpiryWarning time.Duration
	// ScheduleHorizon is how far ahead a request may ask to start
	// (RequestInput.StartAt); 0 means DefaultScheduleHorizon.
	ScheduleHorizon time.Duration

	// BreakGlass, when set, lets people take the flow's targets at once
	// without approval (/sym breakglass), reviewed afterwards.
	BreakGlass *BreakGlass
	// Escalation, when set, pings backup approvers, re-posts and reminds
	// while a request waits for approval.
	Escalation *Escalation

	Targets []Target

	// Reason is what a request's reason must look like; nil means any
	// reason. A target may override it.
	Reason *ReasonRule

	// UnmanagedMembers is what the reconciler does about a member of one
	// of the flow's groups that no grant explains; a target may override
	// it. Empty means UnmanagedAlert.
	UnmanagedMembers UnmanagedPolicy

	// Rules decide a request when it is made, in order (see RuleSet); a
	// target's rules replace them.
	Rules []Rule
}

// UnmanagedPolicy says what the reconciler does about an unmanaged member:
// someone in a target group with no grant who was not there when symbot
// first looked at the group.
type UnmanagedPolicy string

// The unmanaged-member policies.
const (
	UnmanagedAlert  UnmanagedPolicy = "alert"  // tell the operators once, audit it
	UnmanagedRemove UnmanagedPolicy = "remove" // alert, take the membership away, tell the person
	UnmanagedIgnore UnmanagedPolicy = "ignore" // leave it alone
)

func (p UnmanagedPolicy) valid() bool {
	switch p {
	case "", UnmanagedAlert, UnmanagedRemove, UnmanagedIgnore:
		return true
	}
	return false
}

// Approvers says who may approve requests of a flow. Anyone must be spelled
// out explicitly; an empty Approvers is invalid.
type Approvers struct {
	Users     []string // Slack user ids
	OktaGroup string   // Okta group id whose members may approve
	Anyone    bool     // anyone in the workspace (still never the requester, bots, or guests unless allowed)
}

// Target is one Okta group that a flow grants.
type Target struct {
	Name    string // short name used in commands
	Label   string // human label
	GroupID string // Okta group id
	// UnmanagedMembers overrides the flow's policy for this group.
	UnmanagedMembers UnmanagedPolicy

	// Per-target limits, overriding the flow's (Flow.ForTarget applies
	// them); nil or 0 means the flow's setting.
	Durations         []time.Duration // offered durations instead of the flow's
	MaxDuration       time.Duration   // drop the offered durations above this
	Approvers         *Approvers      // who approves this target instead of the flow's approvers
	ApprovalsRequired int             // distinct approvals needed for this target
	AllowGuests       *bool           // may Slack guests request and approve this target
	Reason            *ReasonRule     // reason rule instead of the flow's
	Rules             []Rule          // rules instead of the flow's; non-nil and empty lifts them
}

// ApplyDefaults fills zero ApprovalsRequired and ApprovalTimeout, and labels.
func (f *Flow) ApplyDefaults() {
	if f.ApprovalsRequired == 0 {
		f.ApprovalsRequired = DefaultApprovalsRequired
	}
	if f.ApprovalTimeout == 0 {
		f.ApprovalTimeout = DefaultApprovalTimeout
	}
	if f.Label == "" {
		f.Label = f.Name
	}
	for i := range f.Targets {
		if f.Targets[i].Label == "" {
			f.Targets[i].Label = f.Targets[i].Name
		}
	}
}

// scheduleHorizon is how far ahead a request of f may start.
func (f *Flow) scheduleHorizon() time.Duration {
	if f.ScheduleHorizon > 0 {
		return f.ScheduleHorizon
	}
	return DefaultScheduleHorizon
}

// MaxDuration returns the largest allowed duration of the flow.
func (f *Flow) MaxDuration() time.Duration {
	if len(f.Durations) == 0 {
		return 0
	}
	return slices.Max(f.Durations)
}

// AllowsDuration reports whether d is one of the flow's durations.
func (f *Flow) AllowsDuration(d time.Duration) bool {
	return slices.Contains(f.Durations, d)
}

// Target returns the flow's target with the given name.
func (f *Flow) Target(name string) (Target, bool) {
	for _, t := range f.Targets {
		if strings.EqualFold(t.Name, name) {
			return t, true
		}
	}
	return Target{}, false
}

// FieldError is one problem found by validation, with the path of the field.
type FieldError struct {
	Path    string // e.g. flows[1].targets[0].group_id
	Problem string // e.g. missing
}

func (e FieldError) Error() string { return e.Path + ": " + e.Problem }

// ValidationError holds every problem found at once.
type ValidationError struct {
	Problems []FieldError
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d problem", len(e.Problems))
	if len(e.Problems) != 1 {
		b.WriteString("s")
	}
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.Error())
	}
	return b.String()
}

func (e *ValidationError) add(path, format string, args ...any) {
	e.Problems = append(e.Problems, FieldError{Path: path, Problem: fmt.Sprintf(format, args...)})
}

// ValidateFlows checks a set of flows (after ApplyDefaults) and reports
// every problem at once as a *ValidationError, or nil.
func ValidateFlows(flows []Flow) error {
	v := &ValidationError{}
	if len(flows) == 0 {
		v.add("flows", "missing: define at least one flow")
	}
	names := map[string]string{}
	for i := range flows {
		f := &flows[i]
		p := fmt.Sprintf("flows[%d]", i)
		checkName(v, p, "flow", f.Name, "missing", names)
		if f.Channel == "" {
			v.add(p+".channel", "missing: the Slack channel where approval messages are posted")
		}
		checkApprovers(v, p, f.Approvers, f.ApprovalsRequired)
		if f.ApprovalTimeout < 0 {
			v.add(p+".approval_timeout", "must not be negative")
		}
		switch {
		case f.ScheduleHorizon < 0:
			v.add(p+".schedule_horizon", "must not be negative (unset means %s)", FormatDuration(DefaultScheduleHorizon))
		case f.ScheduleHorizon > MaxScheduleHorizon:
			v.add(p+".schedule_horizon", "%s is over the %s maximum", FormatDuration(f.ScheduleHorizon), FormatDuration(MaxScheduleHorizon))
		}
		if f.ExpiryWarning < 0 {
			v.add(p+".expiry_warning", "must not be negative (0 turns the warning off)")
		}
		if len(f.Durations) == 0 {
			v.add(p+".durations", "missing: list the durations people may pick, like [15m, 1h, 4h]")
		}
		checkDurations(v, p+".durations", f.Durations)
		if f.Reason != nil {
			checkReasonRule(v, p+".reason", f.Reason)
		}
		if f.BreakGlass != nil {
			checkBreakGlass(v, p+".break_glass", f.BreakGlass)
		}
		if f.Escalation != nil {
			checkEscalation(v, p+".escalation", f.Escalation, f.ApprovalTimeout)
		}
		checkRules(v, p+".rules", f.Rules, f)
		if !f.UnmanagedMembers.valid() {
			v.add(p+".unmanaged_members", "%q is not a policy: use alert, remove or ignore", f.UnmanagedMembers)
		}
		if len(f.Targets) == 0 {
			v.add(p+".targets", "missing: list at least one target (name and Okta group_id)")
		}
		tnames := map[string]string{}
		groups := map[string]int{}
		for j := range f.Targets {
			t := &f.Targets[j]
			tp := fmt.Sprintf("%s.targets[%d]", p, j)
			validateTargetLimits(v, tp, f, t)
			if eff, _, ok := f.ForTarget(t.Name); ok && t.Name != "" {
				checkRules(v, tp+".rules", t.Rules, eff)
			}
			checkName(v, tp, "target", t.Name, "missing", tnames)
			if !t.UnmanagedMembers.valid() {
				v.add(tp+".unmanaged_members", "%q is not a policy: use alert, remove or ignore", t.UnmanagedMembers)
			}
			if t.GroupID == "" {
				v.add(tp+".group_id", "missing")
			} else if k, dup := groups[t.GroupID]; dup {
				v.add(tp+".group_id", "duplicate group id %q (also %s.targets[%d])", t.GroupID, p, k)
			} else {
				groups[t.GroupID] = j
			}
			if t.GroupID != "" && strings.EqualFold(t.GroupID, f.Approvers.OktaGroup) {
				// Whoever is granted the target would become an approver of
				// the flow, and could approve the next person's request
				// (or their own, through a second account).
				v.add(tp+".group_id", "%q is also this flow's approvers.okta_group: granting it would make the requester an approver; use a different group for approvers", t.GroupID)
			}
			for k, o := range f.Targets {
				// The same holds for a target's own approver group.
				if o.Approvers != nil && t.GroupID != "" && strings.EqualFold(t.GroupID, o.Approvers.OktaGroup) {
					v.add(tp+".group_id", "%q is also %s.targets[%d].approvers.okta_group: granting it would make the requester an approver; use a different group for approvers", t.GroupID, p, k)
				}
			}
		}
	}
	if len(v.Problems) > 0 {
		return v
	}
	return nil
}

func checkApprovers(v *ValidationError, p string, a Approvers, need int) {
	if !a.Anyone && len(a.Users) == 0 && a.OktaGroup == "" {
		v.add(p+".approvers", "empty: list users, an okta_group, or set anyone: true explicitly")
	}
	if a.Anyone && (len(a.Users) > 0 || a.OktaGroup != "") {
		v.add(p+".approvers", "anyone: true cannot be combined with users or okta_group")
	}
	seenUsers := map[string]bool{}
	for j, u := range a.Users {
		up := fmt.Sprintf("%s.approvers.users[%d]", p, j)
		switch {
		case u == "":
			v.add(up, "empty")
		case !validSlackUserID(u):
			v.add(up, "%q is not a Slack user id (like U012AB3CD)", u)
		case seenUsers[u]:
			v.add(up, "duplicate user %q", u)
		}
		seenUsers[u] = true
	}
	if need < 1 {
		v.add(p+".approvals_required", "must be at least 1")
	} else if len(a.Users) > 0 && a.OktaGroup == "" && !a.Anyone {
		avail := len(a.Users)
		if need > avail {
			v.add(p+".approvals_required", "%d approvals required but only %d approvers listed", need, avail)
		}
	}
}

func checkDurations(v *ValidationError, p string, ds []time.Duration) {
	seenD := map[time.Duration]bool{}
	for j, d := range ds {
		dp := fmt.Sprintf("%s[%d]", p, j)
		switch {
		case d <= 0:
			v.add(dp, "must be more than 0")
		case d > MaxDuration:
			v.add(dp, "%s is over the 30 day maximum", FormatDuration(d))
		case seenD[d]:
			v.add(dp, "duplicate duration %s", FormatDuration(d))
		}
		seenD[d] = true
	}
}

// checkName checks the name of a kind of thing ("flow", "target", "rule")
// at path p: present (missing says what to do when it is not), valid, and
// not the name of an earlier one, ignoring case. seen maps the lower-cased
// names met so far to their paths.
func checkName(v *ValidationError, p, kind, name, missing string, seen map[string]string) {
	switch {
	case name == "":
		v.add(p+".name", "%s", missing)
		return
	case !validName(name):
		v.add(p+".name", "%q is not a valid name: use at most 64 letters, digits, '-', '_' and '.'", name)
	}
	key := strings.ToLower(name)
	if first, dup := seen[key]; dup {
		v.add(p+".name", "duplicate %s name %q (also %s)", kind, name, first)
	} else {
		seen[key] = p
	}
}

func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

func validSlackUserID(s string) bool {
	if len(s) < 3 || (s[0] != 'U' && s[0] != 'W') {
		return false
	}
	for _, r := range s[1:] {
		if !(r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// ParseDuration parses durations as people write them: Go durations (90m,
// 1h30m) plus days (1d, 2d12h) and weeks (1w).
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(strings.ToLower(s))
	if s == "" {
		return 0, fmt.Errorf("empty duration: use a form like 15m, 1h or 1d")
	}
	var total time.Duration
	rest := s
	for _, unit := range []struct {
		suffix string
		d      time.Duration
	}{{"w", 7 * 24 * time.Hour}, {"d", 24 * time.Hour}} {
		if i := strings.Index(rest, unit.suffix); i >= 0 {
			var n int
			if _, err := fmt.Sscanf(rest[:i], "%d", &n); err != nil || fmt.Sprint(n) != rest[:i] || n < 0 {
				return 0, fmt.Errorf("invalid duration %q: use a form like 15m, 1h or 1d", s)
			}
			total += time.Duration(n) * unit.d
			rest = rest[i+1:]
		}
	}
	if rest != "" {
		d, err := time.ParseDuration(rest)
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q: use a form like 15m, 1h or 1d", s)
		}
		total += d
	}
	return total, nil
}

// FormatDuration renders d compactly: 15m, 1h, 1h30m, 1d, 2d4h.
func FormatDuration(d time.Duration) string {
	if d <= 0 {
		return "0s"
	}
	var b strings.Builder
	if days := d / (24 * time.Hour); days > 0 {
		fmt.Fprintf(&b, "%dd", days)
		d -= days * 24 * time.Hour
	}
	if h := d / time.Hour; h > 0 {
		fmt.Fprintf(&b, "%dh", h)
		d -= h * time.Hour
	}
	if m := d / time.Minute; m > 0 {
		fmt.Fprintf(&b, "%dm", m)
		d -= m * time.Minute
	}
	if s := d / time.Second; s > 0 {
		fmt.Fprintf(&b, "%ds", s)
		d -= s * time.Second
	}
	if d > 0 && b.Len() == 0 {
		return d.String()
	}
	return b.String()
}

// Flows returns the configured flows (after defaults).
func (e *Engine) Flows() []Flow { return slices.Clone(e.flowSet().flows) }

// Flow returns the flow with the given name.
func (e *Engine) Flow(name string) (*Flow, bool) {
	f, ok := e.flowSet().byName[strings.ToLower(name)]
	if !ok {
		return nil, false
	}
	c := *f
	return &c, true
}

// ResolveTarget finds the flow and target for the input's names. The flow
// returned is a copy with the target's limits applied (Flow.ForTarget).
func (e *Engine) ResolveTarget(flowName, targetName string) (*Flow, Target, error) {
	if flowName == "" {
		if f, t, ok := strings.Cut(targetName, "/"); ok {
			flowName, targetName = f, t
		}
	}
	targetName = strings.TrimSpace(targetName)
	set := e.flowSet()
	if flowName != "" {
		f, ok := set.byName[strings.ToLower(flowName)]
		if !ok {
			return nil, Target{}, &InputError{Field: "flow", Problem: fmt.Sprintf("no flow named %q; choose one of: %s", flowName, set.names())}
		}
		if targetName == "" {
			return nil, Target{}, &InputError{Field: "target", Problem: "missing: choose one of: " + targetNames(f)}
		}
		t, ok := f.Target(targetName)
		if !ok {
			return nil, Target{}, &InputError{Field: "target", Problem: fmt.Sprintf("flow %s has no target %q; choose one of: %s", f.Name, targetName, targetNames(f))}
		}
		eff, _, _ := f.ForTarget(t.Name)
		return eff, t, nil
	}
	if targetName == "" {
		return nil, Target{}, &InputError{Field: "target", Problem: "missing: name the target you need"}
	}
	var found []*Flow
	var tgt Target
	for i := range set.flows {
		if t, ok := set.flows[i].Target(targetName); ok {
			found = append(found, &set.flows[i])
			tgt = t
		}
	}
	switch len(found) {
	case 0:
		var all []Target
		for i := range set.flows {
			all = append(all, set.flows[i].Targets...)
		}
		return nil, Target{}, &InputError{Field: "target", Problem: fmt.Sprintf("no target named %q; choose one of: %s", targetName, list(all, func(t Target) string { return t.Name }))}
	case 1:
		eff, _, _ := found[0].ForTarget(tgt.Name)
		return eff, tgt, nil
	}
	opts := list(found, func(f *Flow) string { return f.Name + "/" + targetName })
	return nil, Target{}, &InputError{Field: "target", Problem: fmt.Sprintf("target %q is in several flows; write one of: %s", targetName, opts)}
}

// list joins the names of xs for a message: "a, b, c".
func list[T any](xs []T, name func(T) string) string {
	n := make([]string, len(xs))
	for i, x := range xs {
		n[i] = name(x)
	}
	return strings.Join(n, ", ")
}

func (s *flowSet) names() string { return list(s.flows, func(f Flow) string { return f.Name }) }

func targetNames(f *Flow) string { return list(f.Targets, func(t Target) string { return t.Name }) }

func durationList(f *Flow) string { return list(f.Durations, FormatDuration) }

func (e *Engine) flowOf(r *Request) (*Flow, error) {
	f, ok := e.flowSet().byName[strings.ToLower(r.Flow)]
	if !ok {
		return nil, &NotConfiguredError{ID: r.ID, Flow: r.Flow, Target: r.Target}
	}
	if eff, _, ok := f.ForTarget(r.Target); ok {
		return r.withBackups(r.applyRule(eff)), nil // the target's limits apply to its requests
	}
	return r.withBackups(r.applyRule(f)), nil
}

// flowFor returns r's flow, or a minimal stand-in when the flow was removed
// from the configuration (its messages must still be sent).
func (e *Engine) flowFor(r *Request) *Flow {
	if f, err := e.flowOf(r); err == nil {
		return f
	}
	return &Flow{Name: r.Flow, Label: r.Flow, Targets: []Target{{Name: r.Target, Label: r.Target, GroupID: r.GroupID}}}
}

// Unconfigured returns the pending, approved and active requests whose flow
// or target is no longer in the configuration: they cannot be decided, and
// the operators should know (the daemon lists them at start).
func (e *Engine) Unconfigured(ctx context.Context) ([]*Request, error) {
	rs, err := e.ListByState(ctx, StatePending, StateApproved, StateScheduled, StateActive)
	if err != nil {
		return nil, err
	}
	var out []*Request
	for _, r := range rs {
		if f, err := e.flowOf(r); err != nil {
			out = append(out, r)
		} else if _, ok := f.Target(r.Target); !ok {
			out = append(out, r)
		}
	}
	return out, nil
}
