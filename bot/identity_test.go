package bot_test

import (
	"strings"
	"testing"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/bot"
	"github.com/symbot/symbot/bot/slacktest"
)

// errorsWith returns the errors-channel messages containing sub.
func (h *harness) errorsWith(sub string) []slacktest.Message {
	var out []slacktest.Message
	for _, m := range h.s.Messages(chErr) {
		if strings.Contains(render(m), sub) {
			out = append(out, m)
		}
	}
	return out
}

// An approver account whose email comes to find another Okta user (re-used
// or taken over) is refused in Slack, told why and whom to ask; the
// operators are alerted once however often it clicks.
func TestReusedEmailApproverIsRefusedInSlackAndAlertedOnce(t *testing.T) {
	h := mustAdmissionHarness(t)
	bobsEmailTakenOver(t, h)
	r2, ref2 := h.request(carol, "ops/console 1h deploy")
	const why = "symbot identity reset " + bob
	for i, action := range []string{bot.ActionApprove, bot.ActionDeny} {
		h.click(bob, ref2, action)
		h.waitFor(action+" refused naming the way out", func() bool { return len(h.ephemeralsWith(bob, why)) > i })
	}
	if msg := render(h.ephemeralsWith(bob, why)[0]); !strings.Contains(msg, "bound to the Okta account bob@example.com") || strings.Contains(msg, "00umallory") {
		t.Errorf("refusal = %q; want it to name bob's bound account and not the one the email finds now", msg)
	}
	h.waitFor("alert in the errors channel", func() bool { return len(h.errorsWith("Identity conflict")) > 0 })
	if got := h.get(r2.ID); got.State != symbot.StatePending || len(got.Approvals) != 0 {
		t.Fatalf("after the refused approvals: state %s, approvals %+v", got.State, got.Approvals)
	}
	if n := len(h.errorsWith("Identity conflict")); n != 1 {
		t.Errorf("identity conflict alerts = %d, want 1", n)
	}
	if a := render(h.errorsWith("Identity conflict")[0]); !strings.Contains(a, why) || !strings.Contains(a, "00umallory") {
		t.Errorf("alert = %q; want it to name the Okta user found and the reset command", a)
	}
	h.click(dave, ref2, bot.ActionApprove) // not an approver: nothing changes
	h.waitEphemeral(dave, "not an approver")
}

// A second Slack account with the requester's (confirmed) email is the
// requester: it cannot approve their request, even from the approvers'
// Okta group.
func TestTwoSlackAccountsOfOnePersonCannotSelfApproveInSlack(t *testing.T) {
	const alice2 = "U0ALICE2"
	h := mustAdmissionHarness(t, withUsers(slacktest.User{ID: alice2, Name: "alice", Email: "alice@example.com"}))
	if err := h.dir.AddMember(t.Context(), "00ualice", "G-APPROVERS"); err != nil {
		t.Fatal(err)
	}
	r, ref := h.request(alice, "ops/console 1h deploy")
	h.click(alice2, ref, bot.ActionApprove)
	h.waitEphemeral(alice2, "your own request")
	if got := h.get(r.ID); got.State != symbot.StatePending || len(got.Approvals) != 0 {
		t.Fatalf("state %s, approvals %+v after the requester's second account approved", got.State, got.Approvals)
	}
	h.click(bob, ref, bot.ActionApprove)
	h.waitState(r.ID, symbot.StateActive)
}

// TestWhoamiExplainsAnIdentityConflictOnce: whoami of an account in
// identity conflict says why, and the way out, once at the top, not once
// per flow.
func TestWhoamiExplainsAnIdentityConflictOnce(t *testing.T) {
	h := mustAdmissionHarness(t)
	bobsEmailTakenOver(t, h)
	_, ref2 := h.request(carol, "ops/console 1h deploy")
	const why = "symbot identity reset " + bob
	h.click(bob, ref2, bot.ActionApprove) // found out: the conflict is recorded
	h.waitFor("the refusal", func() bool { return len(h.ephemeralsWith(bob, why)) > 0 })

	h.slash(bob, "whoami")
	e := h.waitEphemeral(bob, "May approve").Text // the blocks repeat it
	if n := strings.Count(e, why); n != 1 {
		t.Errorf("whoami explains the identity conflict %d times, want once:\n%s", n, e)
	}
	for _, w := range []string{"*May request:* nothing until the operators have checked your account", "*May approve:* nothing"} {
		if !strings.Contains(e, w) {
			t.Errorf("whoami lacks %q:\n%s", w, e)
		}
	}
	if strings.Index(e, why) > strings.Index(e, "May request") {
		t.Errorf("the explanation is not at the top:\n%s", e)
	}
}

// bobsEmailTakenOver binds bob to 00ubob (he approves a request of alice's,
// which becomes active), then makes his address find another Okta user,
// an approver too.
func bobsEmailTakenOver(t *testing.T, h *harness) {
	t.Helper()
	r1, ref1 := h.request(alice, "ops/console 1h deploy")
	h.click(bob, ref1, bot.ActionApprove) // binds bob to 00ubob
	h.waitState(r1.ID, symbot.StateActive)
	h.dir.addUser("00umallory", "bob@example.com") // the address now finds someone else
	if err := h.dir.AddMember(t.Context(), "00umallory", "G-APPROVERS"); err != nil {
		t.Fatal(err)
	}
}
