package bot_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/bot"
)

// approvalMessagesBy counts the approval messages in the access channel
// for requests by user.
func (h *harness) approvalMessagesBy(user string) int {
	n := 0
	for _, m := range h.s.Messages(chAcc) {
		if m.ThreadTS == "" && strings.Contains(m.Text, "<@"+user+"> requests") {
			n++
		}
	}
	return n
}

// frozenClock stops the bot's clock, so that rate limits do not refill
// while a slow machine runs the test.
func frozenClock(c *bot.Config) {
	at := time.Now()
	c.Now = func() time.Time { return at }
}

func TestOneUserCannotPost40ApprovalMessagesInASecond(t *testing.T) {
	h := MustHarness(t, withBotConfig(frozenClock))
	limits := bot.DefaultLimits()
	refused := 0
	for i := range 40 {
		got := ackText(t, h.slash(alice, "req admin 1h flood"))
		if strings.Contains(got, "requests in the last minute") || strings.Contains(got, "faster than it takes") {
			refused++
			continue
		}
		if !strings.Contains(got, "waiting for approval") {
			t.Fatalf("request %d: ack %q", i, got)
		}
		// Cancel it at once, so that the next is not a duplicate.
		var r *symbot.Request
		h.waitFor("request recorded", func() bool {
			for _, x := range h.requests(alice) {
				if x.State == symbot.StatePending {
					r = x
					return true
				}
			}
			return false
		})
		if _, err := h.eng.Cancel(context.Background(), r.ID, symbot.Actor{Person: symbot.Person{SlackID: alice}}); err != nil {
			t.Fatalf("cancel: %v", err)
		}
	}
	if want := 40 - limits.RequestsPerMinute; refused != want {
		t.Errorf("refused %d of 40 requests, want %d (RequestsPerMinute %d)", refused, want, limits.RequestsPerMinute)
	}
	// Others are not limited by alice's flood.
	h.request(dave, "admin 1h mine")
	if n := h.approvalMessagesBy(alice); n > limits.RequestsPerMinute {
		t.Errorf("alice posted %d approval messages, want at most %d", n, limits.RequestsPerMinute)
	}
}

func TestCommandFloodAnsweredTooFast(t *testing.T) {
	h := MustHarness(t, withBotConfig(func(c *bot.Config) { frozenClock(c); c.Limits.CommandsPerMinute = 10 }))
	for i := range 10 {
		if got := ackText(t, h.slash(dave, "help")); !strings.Contains(got, "/sym whoami") {
			t.Fatalf("help %d answered %q", i, got)
		}
	}
	if got := ackText(t, h.slash(dave, "help")); !strings.Contains(got, "faster than it takes them (10 a minute)") {
		t.Errorf("11th command answered %q, want the limit", got)
	}
	if got := ackText(t, h.slash(bob, "help")); !strings.Contains(got, "/sym whoami") {
		t.Errorf("bob's help answered %q: one person's flood limited another", got)
	}
}

func TestPendingRequestsPerPersonLimited(t *testing.T) {
	h := MustHarness(t, withBotConfig(func(c *bot.Config) { c.Limits.PendingPerUser = 2 }))
	h.request(alice, "prod/admin 1h one")
	h.request(alice, "prod/readonly 1h two")
	h.slash(alice, "req db/pg 30m three")
	h.waitEphemeral(alice, "you have 2 requests waiting for approval")
	if n := len(h.requests(alice)); n != 2 {
		t.Errorf("alice has %d requests, want 2", n)
	}
	h.request(dave, "db/pg 30m mine")
}

func TestWhoamiFloodAgainstSlowOktaDoesNotDelayApproval(t *testing.T) {
	h := mustAdmissionHarness(t, withBotConfig(func(c *bot.Config) {
		c.Limits.ApproverCacheTTL = -1 // every whoami asks Okta
		c.ShutdownTimeout = 200 * time.Millisecond
	}))
	r, ref := h.request(alice, "prod/admin 1h deploy")
	h.dir.slow(250 * time.Millisecond)
	const flood = 24
	for range flood {
		h.slash(dave, "whoami")
	}
	h.click(bob, ref, bot.ActionApprove)
	var answered int
	h.waitFor("approval recorded", func() bool {
		got, err := h.eng.Get(context.Background(), r.ID)
		if err == nil && got.State != symbot.StatePending {
			answered = len(h.ephemeralsWith(dave, "May approve"))
			return true
		}
		return false
	})
	// dave's whoamis run one at a time on one worker, after decisions: bob's
	// approval waits for at most the one whoami already running, not for
	// the flood (with one queue for all, it waited for 8 or more).
	if answered > 2 {
		t.Errorf("bob's approval was recorded after %d of dave's %d whoamis; want it ahead of the flood", answered, flood)
	}
}

func TestApproverGroupLookupsCachedForWhoami(t *testing.T) {
	h := mustAdmissionHarness(t)
	for i := range 5 {
		h.slash(dave, "whoami")
		h.waitFor("whoami answer", func() bool { return len(h.ephemeralsWith(dave, "May approve")) > i })
	}
	if n := h.dir.callCount("IsMember"); n > 1 {
		t.Errorf("5 whoamis made %d approver group look-ups, want 1 (cached)", n)
	}

	// Decisions always ask afresh (the approvers' group, not the look-ups
	// of the requester's membership made for the grant).
	before := h.dir.callCount("IsMember G-APPROVERS")
	r, ref := h.request(alice, "ops/console 1h deploy")
	h.click(bob, ref, bot.ActionApprove)
	h.waitState(r.ID, symbot.StateActive)
	if h.dir.callCount("IsMember G-APPROVERS") == before {
		t.Errorf("bob's approval did not check the approver group")
	}
}

// A failed approver check for one flow does not make whoami report the
// cached answers of the flows after it as failed too.
func TestWhoamiCachedApproverAnswerAfterAFailedCheck(t *testing.T) {
	other := opsFlow()
	other.Name, other.Approvers.OktaGroup = "ops2", "G-APPROVERS2"
	other.Targets = []symbot.Target{{Name: "console2", GroupID: "G-CONSOLE2"}}
	h := MustHarness(t, withFlows(append(testFlows(), opsFlow(), other)))
	h.dir.mu.Lock()
	h.dir.down = map[string]bool{"G-APPROVERS": true}
	h.dir.mu.Unlock()
	for i := range 2 {
		h.slash(dave, "whoami")
		h.waitFor("whoami answer", func() bool { return len(h.ephemeralsWith(dave, "May approve")) > i })
	}
	ans := h.ephemeralsWith(dave, "May approve")
	for i, m := range ans {
		got := render(m)
		if !strings.Contains(got, "`ops` (could not check") {
			t.Errorf("whoami %d does not say the ops check failed:\n%s", i, got)
		}
		if strings.Contains(got, "`ops2` (could not check") {
			t.Errorf("whoami %d says the ops2 check failed, which it did not (its answer was cached):\n%s", i, got)
		}
	}
}

// TestSetLimitsWhileRunning: limits replaced on a running bot (a config
// reload) apply to the next command, and what a person used this minute
// carries over.
func TestSetLimitsWhileRunning(t *testing.T) {
	h := MustHarness(t, withBotConfig(func(c *bot.Config) { frozenClock(c); c.Limits.CommandsPerMinute = 10 }))
	for i := range 3 {
		if got := ackText(t, h.slash(dave, "help")); !strings.Contains(got, "/sym whoami") {
			t.Fatalf("help %d answered %q", i, got)
		}
	}
	h.bot.SetLimits(bot.Limits{CommandsPerMinute: 3})
	if got := ackText(t, h.slash(dave, "help")); !strings.Contains(got, "faster than it takes them (3 a minute)") {
		t.Errorf("4th command after lowering the limit to 3 answered %q, want the limit", got)
	}
	h.bot.SetLimits(bot.Limits{CommandsPerMinute: -1})
	if got := ackText(t, h.slash(dave, "help")); !strings.Contains(got, "/sym whoami") {
		t.Errorf("command after turning the limit off answered %q", got)
	}
}
