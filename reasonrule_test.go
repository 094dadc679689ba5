package symbot_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/symbot/symbot"
)

// reasonFlow has a flow-wide ticket rule; target "ro" overrides it with a
// minimum length, and target "admin" has its own durations, approver and
// guest setting.
func reasonFlow() symbot.Flow {
	f := testFlow()
	yes := true
	f.Reason = &symbot.ReasonRule{Pattern: `[A-Z]+-\d+`, Message: "name the ticket, like OPS-123"}
	f.Targets[0].Durations = []time.Duration{15 * time.Minute, time.Hour}
	f.Targets[0].Approvers = &symbot.Approvers{Users: []string{"UCAROL"}}
	f.Targets[0].AllowGuests = &yes
	f.Targets[1].Reason = &symbot.ReasonRule{MinLength: 12}
	f.Targets[1].MaxDuration = time.Hour
	return f
}

func TestReasonRulesAndTargetLimits(t *testing.T) {
	tests := []struct {
		name     string
		actor    symbot.Actor
		target   string
		d        time.Duration
		reason   string
		wantText string // the refusal; empty means accepted
		policy   bool   // refused as a *PolicyError rather than an *InputError
	}{
		{name: "ticket matches", actor: alice, target: "admin", d: time.Hour, reason: "fix OPS-123 outage"},
		{name: "no ticket: the rule's message", actor: alice, target: "admin", d: time.Hour, reason: "fix the outage", wantText: "name the ticket, like OPS-123"},
		{name: "lowercase ticket does not match", actor: alice, target: "admin", d: time.Hour, reason: "ops-123", wantText: "name the ticket"},
		{name: "target override: no ticket needed", actor: alice, target: "ro", d: time.Hour, reason: "read the logs please"},
		{name: "target override: too short", actor: alice, target: "ro", d: time.Hour, reason: "OPS-1 logs", wantText: "too short (10 characters; at least 12)"},
		{name: "target durations: 4h not offered", actor: alice, target: "admin", d: 4 * time.Hour, reason: "OPS-1", wantText: "choose one of: 15m, 1h"},
		{name: "target maximum cuts the flow's 4h", actor: alice, target: "ro", d: 4 * time.Hour, reason: "read the logs please", wantText: "choose one of: 15m, 1h"},
		{name: "guest allowed on target", actor: guest, target: "admin", d: time.Hour, reason: "OPS-9 vendor fix"},
		{name: "guest refused on flow default", actor: guest, target: "ro", d: time.Hour, reason: "read the logs please", wantText: "guests cannot request", policy: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil, reasonFlow())
			r, err := h.eng.Submit(t.Context(), tc.actor, symbot.RequestInput{Target: tc.target, Duration: tc.d, Reason: tc.reason})
			if tc.wantText == "" {
				if err != nil {
					t.Fatalf("Submit: %v", err)
				}
				if r.State != symbot.StatePending {
					t.Fatalf("state = %s", r.State)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantText) {
				t.Fatalf("Submit err = %v, want one saying %q", err, tc.wantText)
			}
			var ie *symbot.InputError
			var pe *symbot.PolicyError
			if tc.policy && !errors.As(err, &pe) || !tc.policy && !errors.As(err, &ie) {
				t.Fatalf("Submit err = %T %v, want policy=%t", err, err, tc.policy)
			}
			if rs, err := h.eng.ListByState(t.Context(), symbot.StatePending); err != nil || len(rs) != 0 {
				t.Fatalf("pending after refusal = %d (%v), want none stored", len(rs), err)
			}
		})
	}
}

func TestTargetApproversOverride(t *testing.T) {
	h := newHarness(t, nil, reasonFlow())
	r, err := h.eng.Submit(t.Context(), alice, symbot.RequestInput{Target: "admin", Duration: time.Hour, Reason: "OPS-7 deploy"})
	if err != nil {
		t.Fatal(err)
	}
	// bob approves the flow, but only carol approves the admin target.
	var pe *symbot.PolicyError
	if _, err := h.eng.Approve(t.Context(), r.ID, bob, ""); !errors.As(err, &pe) {
		t.Fatalf("bob approving admin: err = %v, want a policy refusal", err)
	}
	if _, err := h.eng.Approve(t.Context(), r.ID, carol, ""); err != nil {
		t.Fatalf("carol approving admin: %v", err)
	}
	ro, err := h.eng.Submit(t.Context(), alice, symbot.RequestInput{Target: "ro", Duration: time.Hour, Reason: "read the logs please"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.eng.Approve(t.Context(), ro.ID, bob, ""); err != nil {
		t.Fatalf("bob approving ro (the flow's approvers): %v", err)
	}
}

func TestValidateReasonRulesAndLimits(t *testing.T) {
	tests := []struct {
		name string
		edit func(f *symbot.Flow)
		want string
	}{
		{"bad pattern", func(f *symbot.Flow) { f.Reason = &symbot.ReasonRule{Pattern: `[A-Z+`} }, "flows[0].reason.pattern: not a valid Go regular expression"},
		{"bad target pattern", func(f *symbot.Flow) { f.Targets[1].Reason = &symbot.ReasonRule{Pattern: `(`} }, "flows[0].targets[1].reason.pattern"},
		{"negative min_length", func(f *symbot.Flow) { f.Reason = &symbot.ReasonRule{MinLength: -1} }, "flows[0].reason.min_length: must not be negative"},
		{"message without pattern", func(f *symbot.Flow) { f.Reason = &symbot.ReasonRule{Message: "x"} }, "flows[0].reason.message"},
		{"max below every duration", func(f *symbot.Flow) { f.Targets[0].MaxDuration = time.Minute }, "flows[0].targets[0].max_duration"},
		{"empty target durations", func(f *symbot.Flow) { f.Targets[0].Durations = []time.Duration{} }, "flows[0].targets[0].durations: empty"},
		{"target duration over 30d", func(f *symbot.Flow) { f.Targets[0].Durations = []time.Duration{31 * 24 * time.Hour} }, "flows[0].targets[0].durations[0]"},
		{"bad target approver", func(f *symbot.Flow) { f.Targets[0].Approvers = &symbot.Approvers{Users: []string{"bob"}} }, "flows[0].targets[0].approvers.users[0]"},
		{"target grants its own approver group", func(f *symbot.Flow) { f.Targets[1].Approvers = &symbot.Approvers{OktaGroup: "GADMIN"} }, "flows[0].targets[0].group_id: \"GADMIN\" is also flows[0].targets[1].approvers.okta_group"},
		{"empty target approvers", func(f *symbot.Flow) { f.Targets[0].Approvers = &symbot.Approvers{} }, "flows[0].targets[0].approvers: empty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := testFlow()
			tc.edit(&f)
			f.ApplyDefaults()
			err := symbot.ValidateFlows([]symbot.Flow{f})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ValidateFlows = %v, want %q", err, tc.want)
			}
		})
	}
}
