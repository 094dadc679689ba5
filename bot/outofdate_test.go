package bot_test

import (
	"context"
	"strings"
	"testing"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/bot"
)

// TestOutOfDateButtonChangesNothing: after a restore, the request a message
// was posted for may be another request now (same id, another nonce), or
// gone. Its buttons are refused as out of date and decide nothing.
func TestOutOfDateButtonChangesNothing(t *testing.T) {
	tests := []struct {
		name   string
		action string
		change func(tx symbot.Tx, r *symbot.Request) error
	}{
		{"approve, request replaced", bot.ActionApprove, func(tx symbot.Tx, r *symbot.Request) error {
			r.Nonce = "0123456789abcdef0123456789abcdef"
			return tx.PutRequest(r)
		}},
		{"deny, request replaced", bot.ActionDeny, func(tx symbot.Tx, r *symbot.Request) error {
			r.Nonce = "0123456789abcdef0123456789abcdef"
			return tx.PutRequest(r)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := MustHarness(t)
			r, ref := h.request(alice, "admin 1h fix")
			if err := h.st.Update(context.Background(), func(tx symbot.Tx) error {
				cur, err := tx.Request(r.ID)
				if err != nil {
					return err
				}
				return tt.change(tx, cur)
			}); err != nil {
				t.Fatal(err)
			}
			before := h.message(ref)
			h.click(bob, ref, tt.action)
			h.waitEphemeral(bob, "This message is out of date")
			if got := h.get(r.ID); got.State != symbot.StatePending || len(got.Approvals) != 0 {
				t.Fatalf("after the stale click: state %s, approvals %d; want pending, 0", got.State, len(got.Approvals))
			}
			if views := h.s.Views(bob); len(views) != 0 {
				t.Errorf("a stale click opened %d views", len(views))
			}
			if after := h.message(ref); after.Updates != before.Updates {
				t.Errorf("approval message updated %d times by a stale click", after.Updates-before.Updates)
			}
		})
	}
	t.Run("own button still works", func(t *testing.T) {
		h := MustHarness(t)
		r, ref := h.request(alice, "admin 1h fix")
		h.click(bob, ref, bot.ActionApprove)
		h.waitState(r.ID, symbot.StateActive)
	})
}

// TestRemovedOutsideIsToldEverywhere: when the reconciler finds an active
// grant's membership gone, the requester gets a DM and the approval
// message and its thread say so.
func TestRemovedOutsideIsToldEverywhere(t *testing.T) {
	h := MustHarness(t)
	r, ref := h.request(alice, "admin 1h fix")
	h.click(bob, ref, bot.ActionApprove)
	got := h.waitState(r.ID, symbot.StateActive)
	h.dir.mu.Lock()
	delete(h.dir.members["G-ADMIN"], got.OktaUserID)
	h.dir.mu.Unlock()
	if _, err := h.eng.Reconcile(t.Context(), false); err != nil {
		t.Fatalf("Reconcile: %v", err)
	}
	h.waitState(r.ID, symbot.StateRemovedOutside)
	h.waitDM(alice, "removed outside symbot")
	h.waitThread(ref, "removed outside symbot")
	h.waitFor("approval message shows the end", func() bool {
		return strings.Contains(render(h.message(ref)), "Removed outside symbot")
	})
	if strings.Contains(render(h.message(ref)), "Revoke") {
		t.Error("the approval message still offers Revoke")
	}
}
