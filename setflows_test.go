package symbot_test

import (
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/symbot/symbot"
)

// TestSetFlowsAppliesToNewRequestsAndDecisions: flows swapped while the
// engine runs are what new requests and every later decision use: a flow
// added takes requests at once; an approver removed can no longer approve a
// request made before the swap; an invalid set is refused whole, leaving the
// flows in effect unchanged.
func TestSetFlowsAppliesToNewRequestsAndDecisions(t *testing.T) {
	h := newHarness(t, nil)
	before := h.mustSubmit(t, alice, "admin", time.Hour)

	next := testFlow()
	next.Approvers.Users = []string{"UCAROL"} // bob is no longer an approver
	ops := testFlow()
	ops.Name, ops.Label = "ops", "Operations"
	ops.Targets = []symbot.Target{{Name: "pager", GroupID: "GPAGER"}}
	if err := h.eng.SetFlows([]symbot.Flow{next, ops}, nil); err != nil {
		t.Fatalf("SetFlows: %v", err)
	}
	r := h.mustSubmit(t, alice, "ops/pager", time.Hour)
	if r.GroupID != "GPAGER" {
		t.Errorf("request of the added flow: group %s, want GPAGER", r.GroupID)
	}
	var pe *symbot.PolicyError
	if _, err := h.eng.Approve(t.Context(), before.ID, bob, ""); !errors.As(err, &pe) {
		t.Fatalf("approval by an approver removed by SetFlows = %v, want a PolicyError", err)
	}
	h.mustApprove(t, before.ID, carol)

	broken := testFlow()
	broken.Targets = nil
	if err := h.eng.SetFlows([]symbot.Flow{broken}, nil); err == nil {
		t.Fatal("SetFlows accepted a flow without targets")
	}
	if _, ok := h.eng.Flow("ops"); !ok || len(h.eng.Flows()) != 2 {
		t.Errorf("a refused SetFlows changed the flows: %+v", h.eng.Flows())
	}
}

// TestApprovalRefusedWhenTheTargetChangedUnderTheRequest: a pending request
// keeps the group and duration it asked for; when its target now grants
// another group, or allows nothing that long, approving it is refused
// (saying why) and changes nothing, while denying it still works.
func TestApprovalRefusedWhenTheTargetChangedUnderTheRequest(t *testing.T) {
	tests := []struct {
		name   string
		change func(f *symbot.Flow)
		want   string
	}{
		{"group changed", func(f *symbot.Flow) { f.Targets[0].GroupID = "GADMIN2" }, "now grants group GADMIN2"},
		{"duration no longer allowed", func(f *symbot.Flow) { f.Durations = []time.Duration{15 * time.Minute, time.Hour} }, "now allows at most 1h"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil)
			r := h.mustSubmit(t, alice, "admin", 4*time.Hour)
			next := testFlow()
			tt.change(&next)
			if err := h.eng.SetFlows([]symbot.Flow{next}, nil); err != nil {
				t.Fatal(err)
			}
			_, err := h.eng.Approve(t.Context(), r.ID, bob, "")
			var pe *symbot.PolicyError
			if !errors.As(err, &pe) || !strings.Contains(pe.Reason, tt.want) {
				t.Fatalf("Approve = %v, want a PolicyError saying %q", err, tt.want)
			}
			got := h.wantState(t, r.ID, symbot.StatePending)
			if got.GroupID != "GADMIN" || got.Duration != 4*time.Hour {
				t.Errorf("stored request changed: group %s, duration %s", got.GroupID, got.Duration)
			}
			if _, err := h.eng.Deny(t.Context(), r.ID, bob, "ask again"); err != nil {
				t.Fatalf("Deny: %v", err)
			}
		})
	}
}

// TestSetFlowsReconcilesNewGroupsAtOnce: a running engine reconciles as
// soon as the flows change, so a target group added by a reload gets its
// standing members recorded before the next interval.
func TestSetFlowsReconcilesNewGroupsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, nil)
		h.eng.ReconcileInterval = time.Hour
		h.dir.setMember("00udave", "GPAGER", true)
		h.start(t)
		synctest.Wait()
		ops := testFlow()
		ops.Name = "ops"
		ops.Targets = []symbot.Target{{Name: "pager", GroupID: "GPAGER"}}
		if err := h.eng.SetFlows([]symbot.Flow{testFlow(), ops}, nil); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		st, err := h.eng.Standing(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if len(st) != 1 || st[0].GroupID != "GPAGER" {
			t.Errorf("standing after SetFlows = %+v, want dave in GPAGER (without waiting an interval)", st)
		}
	})
}

// TestSetReconcileIntervalTakesEffectWhileRunning: a shorter interval set
// on a running engine brings the next pass that much sooner, not after the
// interval it started with.
func TestSetReconcileIntervalTakesEffectWhileRunning(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, nil)
		h.eng.ReconcileInterval = 24 * time.Hour
		h.start(t)
		synctest.Wait() // the first pass: GADMIN has no standing members
		h.eng.SetReconcileInterval(time.Minute)
		h.dir.setMember("00udave", "GADMIN", true)
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		if len(h.notes.find("alert", "", "")) == 0 {
			t.Error("no reconcile pass (no unmanaged-member alert) within 2m of setting a 1m interval")
		}
	})
}

// TestSetFlowsReplacesTheRulesWithTheFlows: the RuleSet passed with the
// flows judges the next request, not the one the engine started with.
func TestSetFlowsReplacesTheRulesWithTheFlows(t *testing.T) {
	h := newHarness(t, nil)
	f := testFlow()
	f.Rules = []symbot.Rule{{Name: "refuse-all", When: "true", Action: symbot.RuleRefuse, Message: "frozen for the audit"}}
	if err := h.eng.SetFlows([]symbot.Flow{f}, ruleFunc{"refuse-all": func(symbot.RuleInput) (bool, error) { return true, nil }}); err != nil {
		t.Fatal(err)
	}
	_, err := h.eng.Submit(t.Context(), alice, symbot.RequestInput{Target: "admin", Duration: time.Hour, Reason: "deploy"})
	if err == nil || !strings.Contains(err.Error(), "frozen for the audit") {
		t.Fatalf("Submit after SetFlows with a refusing rule = %v, want the rule's refusal", err)
	}
}

// TestSetFlowsWhileRequestsAreMade: swapping the flows while requests are
// made and decided is safe under the race detector, and every request is
// made under one configuration or the other, never a mix: its group is the
// one its target had in the flows it resolved.
func TestSetFlowsWhileRequestsAreMade(t *testing.T) {
	h := newHarness(t, nil)
	a, b := testFlow(), testFlow()
	b.Targets[0].GroupID = "GADMIN-B"
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 200 {
			next := a
			if i%2 == 1 {
				next = b
			}
			if err := h.eng.SetFlows([]symbot.Flow{next}, nil); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	users := []symbot.Actor{alice, carol, dave}
	for i := range 30 {
		u := users[i%len(users)]
		r, err := h.eng.Submit(t.Context(), u, symbot.RequestInput{Target: "admin", Duration: time.Hour, Reason: "deploy"})
		if err != nil {
			var dup *symbot.DuplicateError
			if errors.As(err, &dup) {
				continue
			}
			t.Fatal(err)
		}
		if r.GroupID != "GADMIN" && r.GroupID != "GADMIN-B" {
			t.Errorf("request made during swaps has group %q", r.GroupID)
		}
		if _, err := h.eng.Cancel(t.Context(), r.ID, u); err != nil {
			t.Fatal(err)
		}
	}
	<-done
}
