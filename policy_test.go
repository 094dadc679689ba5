package symbot_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/symbot/symbot"
)

// TestMayDecideAgreesWithTheCommand: for every verb, actor and state,
// MayDecide allows exactly what the command then does, and refuses (with a
// *PolicyError or a *DecidedError) exactly what the command refuses.
func TestMayDecideAgreesWithTheCommand(t *testing.T) {
	states := []struct {
		name  string
		setup func(t *testing.T, h *harness) string
	}{
		{"pending", func(t *testing.T, h *harness) string {
			return h.mustSubmit(t, alice, "admin", time.Hour).ID
		}},
		{"approved", func(t *testing.T, h *harness) string {
			r := h.mustSubmit(t, alice, "admin", time.Hour)
			h.mustApprove(t, r.ID, bob)
			return r.ID
		}},
		{"active", func(t *testing.T, h *harness) string {
			r := h.mustSubmit(t, alice, "admin", time.Hour)
			h.mustApprove(t, r.ID, bob)
			if _, err := h.eng.RunDueJobs(t.Context()); err != nil {
				t.Fatal(err)
			}
			return h.wantState(t, r.ID, symbot.StateActive).ID
		}},
		{"revoked", func(t *testing.T, h *harness) string {
			r := h.mustSubmit(t, alice, "admin", time.Hour)
			h.mustApprove(t, r.ID, bob)
			if _, err := h.eng.RunDueJobs(t.Context()); err != nil {
				t.Fatal(err)
			}
			if _, err := h.eng.Revoke(t.Context(), r.ID, alice, ""); err != nil {
				t.Fatal(err)
			}
			return r.ID
		}},
		{"denied", func(t *testing.T, h *harness) string {
			r := h.mustSubmit(t, alice, "admin", time.Hour)
			if _, err := h.eng.Deny(t.Context(), r.ID, bob, ""); err != nil {
				t.Fatal(err)
			}
			return r.ID
		}},
	}
	do := map[symbot.Verb]func(h *harness, id string, a symbot.Actor) error{
		symbot.VerbApprove: func(h *harness, id string, a symbot.Actor) error {
			_, err := h.eng.Approve(t.Context(), id, a, "")
			return err
		},
		symbot.VerbDeny: func(h *harness, id string, a symbot.Actor) error {
			_, err := h.eng.Deny(t.Context(), id, a, "")
			return err
		},
		symbot.VerbRevoke: func(h *harness, id string, a symbot.Actor) error {
			_, err := h.eng.Revoke(t.Context(), id, a, "")
			return err
		},
		symbot.VerbExtend: func(h *harness, id string, a symbot.Actor) error {
			_, err := h.eng.Extend(t.Context(), id, a, 0, "more time")
			return err
		},
	}
	// What MayDecide must say, by state, verb and actor: "" allowed,
	// "policy" or "decided" refused.
	want := map[string]string{
		"pending/approve/bob": "", "pending/approve/alice": "policy", "pending/approve/dave": "policy",
		"pending/deny/bob": "", "pending/deny/alice": "policy", "pending/deny/dave": "policy",
		"pending/extend/alice": "policy", "pending/extend/bob": "policy",
		"approved/revoke/alice": "", "approved/revoke/bob": "", "approved/revoke/dave": "policy",
		"active/revoke/alice": "", "active/revoke/bob": "", "active/revoke/dave": "policy",
		"active/extend/alice": "", "active/extend/bob": "policy",
		"revoked/extend/alice": "decided", "revoked/extend/bob": "policy",
		"denied/extend/bob": "policy",
	}
	classify := func(err error) string {
		var pe *symbot.PolicyError
		var de *symbot.DecidedError
		switch {
		case err == nil:
			return ""
		case errors.As(err, &pe):
			return "policy"
		case errors.As(err, &de):
			return "decided"
		}
		return fmt.Sprintf("error %v", err)
	}
	for _, st := range states {
		for _, verb := range []symbot.Verb{symbot.VerbApprove, symbot.VerbDeny, symbot.VerbRevoke, symbot.VerbExtend} {
			for _, a := range []symbot.Actor{alice, bob, dave} {
				name := st.name + "/" + string(verb) + "/" + a.Name
				t.Run(name, func(t *testing.T) {
					h := newHarness(t, nil)
					id := st.setup(t, h)
					got := classify(h.eng.MayDecide(t.Context(), id, a, verb))
					w, ok := want[name]
					if !ok {
						// Not listed: the request has moved on for this verb,
						// or the actor is refused; either way not allowed.
						if got == "" {
							t.Fatalf("MayDecide = allowed, want refused")
						}
					} else if got != w {
						t.Fatalf("MayDecide = %q, want %q", got, w)
					}
					cmd := classify(do[verb](h, id, a))
					if (got == "") != (cmd == "") || (cmd != "" && cmd != "policy" && cmd != "decided") {
						t.Errorf("MayDecide = %q but the command = %q: they must agree", got, cmd)
					}
				})
			}
		}
	}
}

func TestRevocable(t *testing.T) {
	for _, s := range []symbot.State{symbot.StatePending, symbot.StateApproved, symbot.StateActive, symbot.StateExpired,
		symbot.StateRevoked, symbot.StateDenied, symbot.StateCancelled, symbot.StateTimedOut, symbot.StateFailed, symbot.StateExtended} {
		r := &symbot.Request{State: s}
		if got, want := r.Revocable(), s == symbot.StateActive || s == symbot.StateApproved; got != want {
			t.Errorf("Revocable() in state %s = %t, want %t", s, got, want)
		}
	}
}
