package bot_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/symbot/symbot"
	"github.com/symbot/symbot/bot"
	"github.com/symbot/symbot/bot/slacktest"
)

// TestRequestAcknowledgedOnlyOnceStored: the ack of "/sym req" comes
// after the request is stored, so a process that dies in between leaves
// the envelope unacknowledged (Slack delivers it again or shows an error)
// instead of acknowledging a request that is then lost. A slow users.info
// makes the submission take a while. The ack carries the confirmation.
func TestRequestAcknowledgedOnlyOnceStored(t *testing.T) {
	h := MustHarness(t)
	h.s.DelayNext("users.info", 300*time.Millisecond, 1)
	if got := ackText(t, h.slash(alice, "req admin 1h deploy the fix")); !strings.Contains(got, "sent; it is waiting for approval") {
		t.Fatalf("ack = %q, want the confirmation", got)
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

// TestClickRedeliveredAfterReplicaDied: a replica takes Bob's click (and
// marks it for the others), then dies before the approval is stored. Slack
// delivers the click again to another replica, which must approve, not
// take its own earlier delivery for a double click and acknowledge it
// unhandled.
func TestClickRedeliveredAfterReplicaDied(t *testing.T) {
	d := &sharedDedup{marked: map[string]bool{}}
	h := MustHarness(t,
		withBotConfig(func(c *bot.Config) { c.Dedup = d; c.ShutdownTimeout = 50 * time.Millisecond }),
		withServer(func(s *slacktest.Server) { s.AckTimeout = 500 * time.Millisecond }))
	r, ref := h.request(alice, "admin 1h deploy the fix")
	h.s.DelayNext("users.info", 10*time.Second, 1) // replica A is still reading Bob's profile when it dies
	clicked := make(chan error, 1)
	go func() { _, err := h.s.ClickButton(bob, ref, bot.ActionApprove); clicked <- err }()
	h.waitFor("replica A to take the click", func() bool { return d.count("click|"+bob+"|") == 1 })
	eng := h.eng
	h.stop() // replica A dies: its connection closes, its work is cancelled

	api := slack.New(h.s.BotToken, slack.OptionAPIURL(h.s.APIURL()), slack.OptionAppLevelToken(h.s.AppToken))
	b := bot.New(api, bot.Config{ErrorsChannel: chErr, Logger: testLogger(t), Dedup: d})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx, eng) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case err := <-clicked:
		if err != nil {
			t.Fatalf("the click was never acknowledged: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the click was neither acknowledged nor given up within 30s")
	}
	if got := h.get(r.ID).State; got == symbot.StatePending {
		t.Errorf("the redelivered click was acknowledged with the request still %s", got)
	}
}

// TestRequestFormAcknowledgedOnlyOnceStored: submitting the request form
// closes it (the ack) only after the request is stored, so a process that
// dies in between leaves the form open with Slack's error instead of
// closing it on a request that is then lost. A slow users.info makes the
// submission take a while.
func TestRequestFormAcknowledgedOnlyOnceStored(t *testing.T) {
	h := MustHarness(t)
	h.slash(alice, "")
	v := h.openView(alice, bot.CallbackRequest)
	h.s.DelayNext("users.info", 300*time.Millisecond, 1)
	ack, err := h.s.SubmitView(alice, v.ID, map[string]map[string]slacktest.ViewValue{
		bot.BlockTarget:   {bot.BlockTarget: slacktest.Option("prod/admin")},
		bot.BlockDuration: {bot.BlockDuration: slacktest.Option("1h")},
		bot.BlockReason:   {bot.BlockReason: slacktest.Text("deploy the fix")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(ack.Payload) > 0 {
		t.Fatalf("ack = %s, want the form closed", ack.Payload)
	}
	if rs := h.requests(alice); len(rs) != 1 {
		t.Fatalf("the form was acknowledged with %d requests stored, want 1", len(rs))
	}
}
