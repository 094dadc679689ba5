// Reason rules and per-target limits: what a request's reason must look
// like, and the flow settings a target may override (durations, maximum,
// approvers, guests, reason rule).

package symbot

import (
	"fmt"
	"regexp"
	"slices"
	"time"
	"unicode/utf8"
)

// ReasonRule says what a request's reason must look like.
type ReasonRule struct {
	// Pattern is a Go regular expression the reason must match somewhere
	// (anchor it with ^ and $ to match the whole reason), for example a
	// ticket id: [A-Z]+-\d+. Empty means any reason.
	Pattern string
	// Message is shown to the requester when the reason does not match
	// Pattern, like "name the ticket, like OPS-123".
	Message string
	// MinLength is the fewest characters a reason may have; 0 means any.
	MinLength int

	re *regexp.Regexp // Pattern, compiled by Compile
}

// Compile compiles the rule's pattern; ValidateFlows calls it, and Check
// uses the result.
func (r *ReasonRule) Compile() error {
	if r.Pattern == "" {
		r.re = nil
		return nil
	}
	re, err := regexp.Compile(r.Pattern)
	if err != nil {
		return fmt.Errorf("pattern %q: %w", r.Pattern, err)
	}
	r.re = re
	return nil
}

// Check returns nil when reason (already trimmed) satisfies the rule, or an
// *InputError for the reason field saying what is wrong: the rule's message
// when the pattern does not match. A nil rule accepts any reason.
func (r *ReasonRule) Check(reason string) error {
	if r == nil {
		return nil
	}
	if n := utf8.RuneCountInString(reason); n < r.MinLength {
		return &InputError{Field: "reason", Problem: fmt.Sprintf("too short (%d characters; at least %d): say why you need this access", n, r.MinLength)}
	}
	if r.Pattern == "" {
		return nil
	}
	re := r.re
	if re == nil {
		var err error
		if re, err = regexp.Compile(r.Pattern); err != nil {
			return &InputError{Field: "reason", Problem: "the flow's reason pattern is invalid; ask the symbot operators to fix it"}
		}
	}
	if re.MatchString(reason) {
		return nil
	}
	msg := r.Message
	if msg == "" {
		msg = fmt.Sprintf("does not match the required form %s", r.Pattern)
	}
	return &InputError{Field: "reason", Problem: msg}
}

func (r *ReasonRule) clone() *ReasonRule {
	if r == nil {
		return nil
	}
	c := *r
	return &c
}

// ForTarget returns the flow as it applies to its target name: a copy with
// the target's overrides in place of the flow's settings (durations cut to
// the target's maximum, approvers, allow_guests, reason rule), and the
// target. ok is false when the flow has no such target.
func (f *Flow) ForTarget(name string) (eff *Flow, t Target, ok bool) {
	t, ok = f.Target(name)
	if !ok {
		return nil, Target{}, false
	}
	c := *f
	if t.Durations != nil {
		c.Durations = slices.Clone(t.Durations)
	}
	if t.MaxDuration > 0 {
		c.Durations = slices.DeleteFunc(slices.Clone(c.Durations), func(d time.Duration) bool { return d > t.MaxDuration })
	}
	if t.Approvers != nil {
		c.Approvers = *t.Approvers
	}
	if t.ApprovalsRequired > 0 {
		c.ApprovalsRequired = t.ApprovalsRequired
	}
	if t.AllowGuests != nil {
		c.AllowGuests = *t.AllowGuests
	}
	if t.Reason != nil {
		c.Reason = t.Reason
	}
	if t.Rules != nil {
		c.Rules = t.Rules // a target's rules replace the flow's
	}
	return &c, t, true
}

// validateTargetLimits checks a target's overrides against its flow f.
func validateTargetLimits(v *ValidationError, tp string, f *Flow, t *Target) {
	if t.Durations != nil && len(t.Durations) == 0 {
		v.add(tp+".durations", "empty: list the durations people may pick, or leave it out to use the flow's")
	}
	checkDurations(v, tp+".durations", t.Durations)
	if t.MaxDuration < 0 {
		v.add(tp+".max_duration", "must not be negative")
	} else if t.MaxDuration > 0 {
		if eff, _, ok := f.ForTarget(t.Name); ok && len(eff.Durations) == 0 {
			v.add(tp+".max_duration", "%s is below every duration offered (%s): raise it or offer a shorter duration", FormatDuration(t.MaxDuration), durationList(f))
		}
	}
	if t.Approvers != nil {
		need := f.ApprovalsRequired
		if t.ApprovalsRequired > 0 {
			need = t.ApprovalsRequired
		}
		checkApprovers(v, tp, *t.Approvers, need)
	}
	if t.ApprovalsRequired < 0 {
		v.add(tp+".approvals_required", "must be at least 1 (leave it out to use the flow's)")
	}
	if t.Reason != nil {
		checkReasonRule(v, tp+".reason", t.Reason)
	}
}

func checkReasonRule(v *ValidationError, p string, r *ReasonRule) {
	if r.MinLength < 0 {
		v.add(p+".min_length", "must not be negative (0 means any length)")
	} else if r.MinLength > MaxReasonLength {
		v.add(p+".min_length", "%d is over the longest reason allowed (%d)", r.MinLength, MaxReasonLength)
	}
	if err := r.Compile(); err != nil {
		v.add(p+".pattern", "not a valid Go regular expression: %v", err)
	}
	if r.Message != "" && r.Pattern == "" {
		v.add(p+".message", "set without a pattern: the message is shown when the reason does not match the pattern")
	}
}
