package bot_test

import (
	"strings"
	"testing"
	"time"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/bot"
	"github.com/symbot/symbot/bot/slacktest"
)

// ticketFlows requires a ticket id in prod's reasons, and limits
// prod/readonly to 1h with a minimum reason length instead.
func ticketFlows() []symbot.Flow {
	fs := testFlows()
	fs[0].Reason = &symbot.ReasonRule{Pattern: `[A-Z]+-\d+`, Message: "name the ticket, like OPS-123 <here>"}
	fs[0].Targets[1].MaxDuration = time.Hour
	fs[0].Targets[1].Reason = &symbot.ReasonRule{MinLength: 12}
	return fs
}

func TestReasonRuleSlashCommand(t *testing.T) {
	h := MustHarness(t, withFlows(ticketFlows()))
	// The engine refuses it once the worker submits it: the refusal rides
	// in the ack, as the ephemeral Slack shows.
	if got := ackText(t, h.slash(alice, "req prod/admin 1h fix the outage")); !strings.Contains(got, "name the ticket, like OPS-123") {
		t.Fatalf("ack = %q, want the refusal", got)
	}
	e := h.waitEphemeral(alice, "name the ticket, like OPS-123")
	if s := render(e); !strings.Contains(s, "&lt;here&gt;") {
		t.Errorf("refusal %q does not escape the rule's message", s)
	}
	h.slash(alice, "req prod/readonly 4h read the quarterly logs")
	h.waitEphemeral(alice, "4h is not offered")
	h.slash(alice, "req prod/readonly 1h logs")
	h.waitEphemeral(alice, "too short (4 characters; at least 12)")
	if rs := h.requests(alice); len(rs) != 0 {
		t.Fatalf("refused requests were stored: %d", len(rs))
	}
	r, _ := h.request(alice, "prod/admin 1h fix OPS-42")
	if r.Reason != "fix OPS-42" {
		t.Errorf("reason = %q", r.Reason)
	}
}

func TestReasonRuleModal(t *testing.T) {
	h := MustHarness(t, withFlows(ticketFlows()))
	h.slash(alice, "")
	v := h.openView(alice, bot.CallbackRequest)
	tests := []struct {
		name   string
		values map[string]map[string]slacktest.ViewValue
		want   map[string]string
	}{
		{"no ticket", map[string]map[string]slacktest.ViewValue{
			bot.BlockTarget:   {bot.BlockTarget: slacktest.Option("prod/admin")},
			bot.BlockDuration: {bot.BlockDuration: slacktest.Option("1h")},
			bot.BlockReason:   {bot.BlockReason: slacktest.Text("fix the outage")},
		}, map[string]string{bot.BlockReason: "Name the ticket, like OPS-123 <here>."}},
		{"target maximum and minimum length", map[string]map[string]slacktest.ViewValue{
			bot.BlockTarget:   {bot.BlockTarget: slacktest.Option("prod/readonly")},
			bot.BlockDuration: {bot.BlockDuration: slacktest.Option("4h")},
			bot.BlockReason:   {bot.BlockReason: slacktest.Text("logs")},
		}, map[string]string{bot.BlockDuration: "4h is not offered", bot.BlockReason: "Too short"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.wantFormErrors(t, alice, v.ID, tt.values, tt.want)
		})
	}
	ack, err := h.s.SubmitView(alice, v.ID, map[string]map[string]slacktest.ViewValue{
		bot.BlockTarget:   {bot.BlockTarget: slacktest.Option("prod/admin")},
		bot.BlockDuration: {bot.BlockDuration: slacktest.Option("1h")},
		bot.BlockReason:   {bot.BlockReason: slacktest.Text("fix OPS-42")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(ack.Payload) > 0 {
		t.Fatalf("ack = %s, want the modal closed", ack.Payload)
	}
	h.waitEphemeral(alice, "waiting for approval")
}

func TestReasonRuleExtendModal(t *testing.T) {
	flows := testFlows()
	flows[0].ExpiryWarning = flows[0].Durations[0] - 300_000_000 // warn 0.3s after the grant
	flows[0].Targets[0].MaxDuration = time.Hour
	flows[0].Targets[0].Reason = &symbot.ReasonRule{Pattern: `[A-Z]+-\d+`, Message: "name the ticket"}
	h := MustHarness(t, withFlows(flows))
	r, ref := h.request(alice, "admin 1h OPS-1 work")
	h.click(bob, ref, bot.ActionApprove)
	h.waitState(r.ID, symbot.StateActive)
	h.waitDM(alice, "Need more time?")
	if _, err := h.s.ClickButtonInDM(alice, bot.ActionExtend); err != nil {
		t.Fatalf("click extend: %v", err)
	}
	v := h.openView(alice, bot.CallbackExtend)
	ack, err := h.s.SubmitView(alice, v.ID, map[string]map[string]slacktest.ViewValue{
		bot.BlockDuration: {bot.BlockDuration: slacktest.Option("4h")},
		bot.BlockReason:   {bot.BlockReason: slacktest.Text("more time")},
	})
	if err != nil {
		t.Fatal(err)
	}
	errs := ackErrors(t, ack)
	if !strings.Contains(errs[bot.BlockDuration], "4h is not offered") || !strings.Contains(errs[bot.BlockReason], "Name the ticket") {
		t.Fatalf("errors = %v, want the target's maximum and its reason rule next to the fields", errs)
	}
}
