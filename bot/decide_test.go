package bot_test

import (
	"strings"
	"testing"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/bot"
	"github.com/symbot/symbot/bot/slacktest"
)

// noteValues is a note modal submission.
func noteValues(note string) map[string]map[string]slacktest.ViewValue {
	return map[string]map[string]slacktest.ViewValue{bot.BlockNote: {bot.BlockNote: slacktest.Text(note)}}
}

// noLiveMarkup fails when s contains any of the raw control sequences.
func noLiveMarkup(t *testing.T, where, s string, raw ...string) {
	t.Helper()
	for _, bad := range raw {
		if strings.Contains(s, bad) {
			t.Errorf("%s contains live %q:\n%s", where, bad, s)
		}
	}
}

func TestApproveWithNote(t *testing.T) {
	h := MustHarness(t)
	r, ref := h.request(alice, "admin 1h deploy")
	if got := render(h.message(ref)); !strings.Contains(got, bot.ActionApproveNote) || !strings.Contains(got, "Approve with note") {
		t.Fatalf("approval message lacks the Approve with note button:\n%s", got)
	}

	h.click(bob, ref, bot.ActionApproveNote)
	v := h.openView(bob, bot.CallbackNote)
	if s := string(v.Blocks); !strings.Contains(s, "Approve") || !strings.Contains(s, r.ID) {
		t.Errorf("note modal does not say what it approves: %s", v.Blocks)
	}
	if got := h.get(r.ID); got.State != symbot.StatePending {
		t.Fatalf("state after opening the form = %s, want pending", got.State)
	}
	note := "ship it <!channel> & <@U0DAVE>"
	ack, err := h.s.SubmitView(bob, v.ID, noteValues(note))
	if err != nil {
		t.Fatalf("submit note: %v", err)
	}
	if len(ack.Payload) > 0 {
		t.Fatalf("approve note ack = %s, want empty", ack.Payload)
	}
	got := h.waitState(r.ID, symbot.StateActive)
	if len(got.Approvals) != 1 || got.Approvals[0].By != bob || got.Approvals[0].Note != note {
		t.Fatalf("approvals = %+v, want bob's with note %q", got.Approvals, note)
	}
	if !h.dir.isMember("00ualice", "G-ADMIN") {
		t.Errorf("alice not in G-ADMIN after approval with a note")
	}

	escaped := "ship it &lt;!channel&gt; &amp; &lt;@U0DAVE&gt;"
	live := []string{"<!channel>", "<@U0DAVE>"}
	h.waitThread(ref, "Approved by <@"+bob+"> (`"+escaped+"`)")
	for _, m := range h.s.Thread(ref.Channel, ref.TS) {
		noLiveMarkup(t, "thread", render(m), live...)
	}
	dm := render(h.waitDM(alice, "was approved by <@"+bob+"> (`"+escaped+"`)"))
	noLiveMarkup(t, "approved DM", dm, live...)
	h.waitFor("message shows active", func() bool { return strings.Contains(render(h.message(ref)), "Active") })
	msg := render(h.message(ref))
	if !strings.Contains(msg, "approved by <@"+bob+"> (`"+escaped+"`)") {
		t.Errorf("active message lacks the escaped note:\n%s", msg)
	}
	noLiveMarkup(t, "approval message", msg, live...)
	if strings.Contains(msg, bot.ActionApprove) || strings.Contains(msg, bot.ActionDeny) {
		t.Errorf("active message still has decision buttons:\n%s", msg)
	}
}

func TestApproveWithNoteQuorum(t *testing.T) {
	h := MustHarness(t)
	r, ref := h.request(alice, "pg 30m migrate")
	h.click(bob, ref, bot.ActionApproveNote)
	v := h.openView(bob, bot.CallbackNote)
	if _, err := h.s.SubmitView(bob, v.ID, noteValues("first look <ok>")); err != nil {
		t.Fatalf("submit note: %v", err)
	}
	h.waitThread(ref, "Approved by <@"+bob+"> (1 of 2). — `first look &lt;ok&gt;`")
	h.waitFor("message shows bob's note", func() bool {
		return strings.Contains(render(h.message(ref)), "approved by <@"+bob+"> (`first look &lt;ok&gt;`)")
	})
	if got := h.get(r.ID); got.State != symbot.StatePending {
		t.Fatalf("state after one of two approvals = %s, want pending", got.State)
	}
	// A one-click approval needs no note; both approvers are named.
	h.click(carol, ref, bot.ActionApprove)
	h.waitState(r.ID, symbot.StateActive)
	h.waitDM(alice, "was approved by <@"+bob+"> (`first look &lt;ok&gt;`), <@"+carol+">.")
}

func TestNoteFormsRefusedBeforeOpening(t *testing.T) {
	h := MustHarness(t)
	r, ref := h.request(alice, "admin 1h fix")
	tests := []struct {
		name, user, action string
		want               []string
	}{
		{"non-approver approves with a note", dave, bot.ActionApproveNote, []string{"You can't do that", "not an approver of flow prod"}},
		{"requester denies own request", alice, bot.ActionDeny, []string{"You can't do that", "cannot deny your own request", "Cancel", "`/sym list`"}},
		{"requester approves own request with a note", alice, bot.ActionApproveNote, []string{"You can't do that", "cannot approve your own request"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.click(tt.user, ref, tt.action)
			e := render(h.waitEphemeral(tt.user, tt.want[1]))
			for _, w := range tt.want {
				if !strings.Contains(e, w) {
					t.Errorf("refusal = %q, want it to contain %q", e, w)
				}
			}
			if n := len(h.s.Views(tt.user)); n != 0 {
				t.Errorf("%s got %d views, want none", tt.user, n)
			}
		})
	}
	if got := h.get(r.ID); got.State != symbot.StatePending || len(got.Approvals) != 0 {
		t.Errorf("after refusals: state %s, approvals %d; want pending, 0", got.State, len(got.Approvals))
	}
}

func TestSelfDecisionFormWhenFlowAllowsIt(t *testing.T) {
	flows := testFlows()
	flows[0].AllowSelfApproval = true
	h := MustHarness(t, withFlows(flows))
	// bob is an approver of prod, which allows self-approval: his own
	// request's note form opens, and the engine accepts the decision.
	r, ref := h.request(bob, "admin 1h self-service")
	h.click(bob, ref, bot.ActionApproveNote)
	v := h.openView(bob, bot.CallbackNote)
	if _, err := h.s.SubmitView(bob, v.ID, noteValues("on call")); err != nil {
		t.Fatalf("submit note: %v", err)
	}
	got := h.waitState(r.ID, symbot.StateActive)
	if len(got.Approvals) != 1 || got.Approvals[0].By != bob || got.Approvals[0].Note != "on call" {
		t.Errorf("approvals = %+v, want bob's own with note", got.Approvals)
	}
}

func TestCustomCommandName(t *testing.T) {
	h := MustHarness(t, withBotConfig(func(c *bot.Config) { c.Command = "/access" }))
	run := func(command, text string) string {
		t.Helper()
		ack, err := h.s.SlashCommand(alice, command, text, chAcc)
		if err != nil {
			t.Fatalf("%s %s: %v", command, text, err)
		}
		return ackText(t, ack)
	}
	tests := []struct {
		name, command, text string
		want                []string
	}{
		{"help", "/access", "help", []string{"`/access req <target> <duration> <reason…>`", "`/access list`", "`/access whoami`", "`/access help`", "`/access` or `/access req [flow]`"}},
		{"usage error", "/access", "list all", []string{"`/access list` takes nothing", "`/access req [flow]`"}},
		{"missing reason", "/access", "req admin 1h", []string{"Expected `/access req <target> <duration> <reason…>`"}},
		{"other command", "/sym", "help", []string{"I only answer `/access`", "Type `/access help`"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := run(tt.command, tt.text)
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("%s %s answered %q, want it to contain %q", tt.command, tt.text, got, w)
				}
			}
			if strings.Contains(got, "`/sym") {
				t.Errorf("%s %s answered %q, which names /sym", tt.command, tt.text, got)
			}
		})
	}
	if got := run("/access", "req admin 1h fix"); !strings.Contains(got, "waiting for approval") {
		t.Fatalf("request ack = %q, want the confirmation", got)
	}
	e := render(h.waitEphemeral(alice, "waiting for approval"))
	if !strings.Contains(e, "`/access list` shows it") {
		t.Errorf("confirmation = %q, want it to point to `/access list`", e)
	}
}
