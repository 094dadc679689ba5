package bot_test

import (
	"strings"
	"testing"
	"time"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/bot"
	"github.com/symbot/symbot/bot/slacktest"
)

const chLead = "C0LEADS" // where the second escalation step re-posts

// escalationFlows: prod escalates to dave (a backup approver) after 30m,
// re-posts in #leads after 2h, and reminds every hour.
func escalationFlows() []symbot.Flow {
	fs := testFlows()
	fs[0].Escalation = &symbot.Escalation{Remind: time.Hour, Steps: []symbot.EscalationStep{
		{After: 30 * time.Minute, Approvers: []string{dave}},
		{After: 2 * time.Hour, Channel: chLead},
	}}
	return fs
}

func mustEscalationHarness(t *testing.T) *harness {
	t.Helper()
	return MustHarness(t, withClock(newTestClock(schedT0)), withFlows(escalationFlows()), withServer(func(s *slacktest.Server) {
		s.AddChannel(slacktest.Channel{ID: chLead, Name: "leads", BotIsMember: true})
	}))
}

// threadWith counts the replies in ref's thread that contain sub.
func (h *harness) threadWith(ref slacktest.MessageRef, sub string) int {
	n := 0
	for _, m := range h.s.Thread(ref.Channel, ref.TS) {
		if m.TS != ref.TS && strings.Contains(render(m), sub) {
			n++
		}
	}
	return n
}

func TestEscalationPingsBackupThenStopsWhenDecided(t *testing.T) {
	h := mustEscalationHarness(t)
	r, ref := h.request(alice, "admin 1h fix incident 42")

	// Before the step dave is no approver.
	h.click(dave, ref, bot.ActionApprove)
	h.waitEphemeral(dave, "not an approver of flow prod")
	h.advanceTo(schedT0.Add(29 * time.Minute))
	if n := h.threadWith(ref, "escalated"); n != 0 {
		t.Fatalf("escalated before its time (%d replies)", n)
	}

	h.advanceTo(schedT0.Add(30 * time.Minute))
	h.waitThread(ref, "escalated to <@"+dave+">, who may now approve")
	h.waitDM(dave, "you are a backup approver")
	h.waitDM(alice, "so it was escalated to <@"+dave+">")
	h.waitFor("message shows the escalation", func() bool {
		return strings.Contains(render(h.message(ref)), "escalated to <@"+dave+">")
	})
	// Firing again (another replica) escalates nothing more.
	h.advanceTo(schedT0.Add(31 * time.Minute))
	if n := len(h.dmsWith(dave, "backup approver")); n != 1 {
		t.Errorf("DMs to the backup approver = %d, want 1", n)
	}

	if _, err := h.s.ClickButtonInDM(dave, bot.ActionApprove); err != nil {
		t.Fatalf("dave clicks Approve in his DM: %v", err)
	}
	got := h.waitState(r.ID, symbot.StateActive)
	if len(got.Approvals) != 1 || got.Approvals[0].By != dave {
		t.Errorf("approvals = %+v, want dave's", got.Approvals)
	}

	// Decided: no reminder, no re-post, no notice, ever.
	for _, at := range []time.Duration{time.Hour, 2 * time.Hour, 3 * time.Hour} {
		h.advanceTo(schedT0.Add(at))
	}
	if n := h.threadWith(ref, "Reminder"); n != 0 {
		t.Errorf("%d reminders after the decision", n)
	}
	if n := len(h.dmsWith(alice, "still waiting")); n != 0 {
		t.Errorf("%d waiting notices to the requester after the decision", n)
	}
	if n := len(h.s.Messages(chLead)); n != 0 {
		t.Errorf("%d messages re-posted in %s after the decision", n, chLead)
	}
}

func TestEscalationRemindsAndReposts(t *testing.T) {
	h := mustEscalationHarness(t)
	r, ref := h.request(alice, "admin 1h fix incident 42")

	h.advanceTo(schedT0.Add(time.Hour))
	h.waitThread(ref, "Reminder: still waiting for approval")
	h.waitThread(ref, "<@"+bob+">") // the approvers are pinged
	h.waitDM(alice, "is still waiting for approval")

	h.advanceTo(schedT0.Add(2 * time.Hour))
	h.waitFor("re-posted in #leads with its buttons", func() bool {
		ms := containing(h.s.Messages(chLead), bot.ActionApprove)
		return len(ms) == 1 && strings.Contains(render(ms[0]), "fix incident 42") && strings.Contains(render(ms[0]), "Escalated here")
	})
	h.waitFor("second reminder", func() bool { return h.threadWith(ref, "Reminder") == 2 })

	// Approved from the copy: the original and the copy both show it.
	lead, ok := h.s.FindButton(chLead, bot.ActionApprove)
	if !ok {
		t.Fatal("no Approve button in #leads")
	}
	h.click(bob, lead, bot.ActionApprove)
	h.waitState(r.ID, symbot.StateActive)
	h.waitFor("both messages updated", func() bool {
		return strings.Contains(render(h.message(ref)), "Active") && strings.Contains(render(h.message(lead)), "Active")
	})
	h.advanceTo(schedT0.Add(5 * time.Hour))
	if n := h.threadWith(ref, "Reminder"); n != 2 {
		t.Errorf("reminders = %d, want 2 (none after the decision)", n)
	}
}
