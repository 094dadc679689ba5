package bot_test

import (
	"strings"
	"testing"
	"time"

	"github.com/symbot/symbot/bot"
	"github.com/symbot/symbot/bot/slacktest"
)

// answersOutsideAcks returns the calls since before that answered a person
// by a Web API call rather than in an ack.
func answersOutsideAcks(s *slacktest.Server, before int) []string {
	var out []string
	for _, c := range s.Calls()[before:] {
		if c.Method == "response_url" || c.Method == "chat.postEphemeral" {
			out = append(out, c.Method)
		}
	}
	return out
}

// TestRequestAnsweredInAck: "/sym req" is acknowledged once the request is
// stored, and that ack carries the confirmation, which Slack shows the
// requester as an ephemeral message: no response_url call follows. A
// refusal found by the worker (here: a duplicate) rides in the ack too.
func TestRequestAnsweredInAck(t *testing.T) {
	h := MustHarness(t)
	before := len(h.s.Calls())
	got := ackText(t, h.slash(alice, "req admin 1h deploy the fix"))
	rs := h.requests(alice)
	if len(rs) != 1 {
		t.Fatalf("requests stored when acknowledged = %d, want 1", len(rs))
	}
	want := "Request `" + rs[0].ID + "` for *Prod admin* (1h) sent; it is waiting for approval in <#" + chAcc + ">. `/sym list` shows it."
	if got != want {
		t.Fatalf("ack text = %q, want %q", got, want)
	}
	h.waitFor("approval message posted", func() bool { return h.get(rs[0].ID).Message.TS != "" })
	if calls := answersOutsideAcks(h.s, before); len(calls) > 0 {
		t.Errorf("the requester was also answered by %v", calls)
	}
	es := h.ephemeralsWith(alice, "waiting for approval")
	if len(es) != 1 || es[0].Text != want || es[0].Channel != chAcc {
		t.Fatalf("ephemerals to alice = %+v, want the one confirmation in %s", es, chAcc)
	}

	before = len(h.s.Calls())
	got = ackText(t, h.slash(alice, "req admin 1h deploy the fix"))
	if !strings.Contains(got, "You already have a pending request (`"+rs[0].ID+"`)") {
		t.Fatalf("ack of the duplicate = %q, want the refusal", got)
	}
	if calls := answersOutsideAcks(h.s, before); len(calls) > 0 {
		t.Errorf("the refusal also went by %v", calls)
	}
}

// TestRequestAnsweredByResponseURLAfterAckWindow: when the request is
// stored too late for its ack to carry an answer Slack would still show,
// the envelope is acknowledged without one and the confirmation goes by
// the response_url, as before.
func TestRequestAnsweredByResponseURLAfterAckWindow(t *testing.T) {
	h := MustHarness(t, withBot(func(b *bot.Bot) { bot.SetAckReplyWindow(b, 20*time.Millisecond) }))
	h.s.DelayNext("users.info", 200*time.Millisecond, 1)
	before := len(h.s.Calls())
	if ack := h.slash(alice, "req admin 1h deploy the fix"); len(ack.Payload) > 0 {
		t.Fatalf("ack payload %s, want none", ack.Payload)
	}
	e := h.waitEphemeral(alice, "sent; it is waiting for approval")
	if e.Channel != chAcc {
		t.Errorf("confirmation in %s, want %s", e.Channel, chAcc)
	}
	if calls := answersOutsideAcks(h.s, before); len(calls) != 1 || calls[0] != "response_url" {
		t.Errorf("answered by %v, want one response_url call", calls)
	}
}
