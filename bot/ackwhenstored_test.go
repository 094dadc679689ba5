package bot_test

import (
	"testing"
	"time"

	"github.com/symbot/symbot"
)

// TestRequestAcknowledgedOnlyOnceStored: the ack of "/sym req" comes
// after the request is stored, so a process that dies in between leaves
// the envelope unacknowledged (Slack delivers it again or shows an error)
// instead of acknowledging a request that is then lost. A slow users.info
// makes the submission take a while.
func TestRequestAcknowledgedOnlyOnceStored(t *testing.T) {
	h := MustHarness(t)
	h.s.DelayNext("users.info", 300*time.Millisecond, 1)
	if ack := h.slash(alice, "req admin 1h deploy the fix"); len(ack.Payload) > 0 {
		t.Fatalf("ack payload %s, want none", ack.Payload)
	}
	if rs := h.requests(alice); len(rs) != 1 {
		t.Fatalf("the slash command was acknowledged with %d requests stored, want 1", len(rs))
	}
}

// TestApproveAcknowledgedOnlyOnceRecorded: the ack of an Approve click
// comes after the approval is stored.
func TestApproveAcknowledgedOnlyOnceRecorded(t *testing.T) {
	h := MustHarness(t)
	r, ref := h.request(alice, "admin 1h deploy the fix")
	h.s.DelayNext("users.info", 300*time.Millisecond, 1) // bob's profile is read for the first time
	h.click(bob, ref, "sym_approve")
	if got := h.get(r.ID).State; got == symbot.StatePending {
		t.Fatalf("the Approve click was acknowledged with the request still %s", got)
	}
}
