package bot_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/bot"
	"github.com/symbot/symbot/bot/slacktest"
)

// schedT0 is the harness time of the scheduling tests: Wednesday 2 Dec
// 2026, 10:00 UTC, 11:00 in Berlin.
var schedT0 = time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)

// berlinAlice is alice with her Slack time zone set to Europe/Berlin.
var berlinAlice = slacktest.User{ID: alice, Name: "alice", Email: "alice@example.com", TZ: "Europe/Berlin"}

func mustScheduleHarness(t *testing.T) *harness {
	t.Helper()
	return MustHarness(t, withClock(newTestClock(schedT0)), withUsers(berlinAlice))
}

func TestScheduledRequestGrantsAtStartNotBefore(t *testing.T) {
	h := mustScheduleHarness(t)
	r, ref := h.request(alice, "admin 1h at 18:30 deploy window OPS-7")
	start := time.Date(2026, 12, 2, 17, 30, 0, 0, time.UTC) // 18:30 in Berlin
	if !r.StartAt.Equal(start) {
		t.Fatalf("StartAt = %v, want %v (18:30 in alice's Slack time zone)", r.StartAt, start)
	}
	if r.Reason != "deploy window OPS-7" {
		t.Errorf("reason = %q, want the words after the time", r.Reason)
	}
	date := fmt.Sprintf("<!date^%d^", start.Unix())
	h.waitEphemeral(alice, "starting "+date)
	if got := render(h.message(ref)); !strings.Contains(got, "starting "+date) {
		t.Errorf("approval message does not show the start:\n%s", got)
	}

	h.click(bob, ref, bot.ActionApprove)
	h.waitState(r.ID, symbot.StateScheduled)
	h.waitFor("message shows approved ahead", func() bool {
		return strings.Contains(render(h.message(ref)), "Approved ahead")
	})
	h.waitDM(alice, "approved ahead by <@"+bob+">. Access starts "+date)
	h.slash(alice, "list")
	h.waitEphemeral(alice, "approved, starts "+date)

	h.advanceTo(start.Add(-time.Minute))
	if got := h.get(r.ID); got.State != symbot.StateScheduled {
		t.Fatalf("a minute before the start: state %s, want scheduled", got.State)
	}
	if h.dir.isMember("00ualice", "G-ADMIN") {
		t.Fatal("alice is in G-ADMIN before the start time")
	}

	h.advanceTo(start)
	got := h.waitState(r.ID, symbot.StateActive)
	if !h.dir.isMember("00ualice", "G-ADMIN") {
		t.Fatal("alice is not in G-ADMIN after the start time")
	}
	if !got.GrantedAt.Equal(start) || !got.ExpiresAt.Equal(start.Add(time.Hour)) {
		t.Errorf("granted %v, expires %v; want granted at the start and expiring an hour after it", got.GrantedAt, got.ExpiresAt)
	}
	h.waitThread(ref, "Start time reached")

	// Firing again (another replica, a restart) grants nothing more.
	h.advanceTo(start.Add(time.Second))
	if c := h.get(r.ID); c.State != symbot.StateActive || !c.GrantedAt.Equal(start) {
		t.Errorf("after firing again: %s granted %v", c.State, c.GrantedAt)
	}
}

func TestScheduledRequestCancelledBeforeStartNeverGrants(t *testing.T) {
	h := mustScheduleHarness(t)
	r, ref := h.request(alice, "admin 1h at tomorrow 09:00 maintenance OPS-8")
	start := time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)
	if !r.StartAt.Equal(start) {
		t.Fatalf("StartAt = %v, want %v", r.StartAt, start)
	}
	h.click(bob, ref, bot.ActionApprove)
	h.waitState(r.ID, symbot.StateScheduled)
	h.waitDM(alice, "You can cancel it until it starts")
	if _, err := h.s.ClickButtonInDM(alice, bot.ActionCancel); err != nil {
		t.Fatalf("click Cancel in the DM: %v", err)
	}
	h.waitState(r.ID, symbot.StateCancelled)
	h.waitEphemeral(alice, "Cancelled request `"+r.ID+"`")
	h.waitFor("message shows the cancellation", func() bool {
		return strings.Contains(render(h.message(ref)), "Cancelled* by the requester before its start")
	})

	h.advanceTo(start.Add(time.Hour))
	if got := h.get(r.ID); got.State != symbot.StateCancelled {
		t.Errorf("after the start: state %s, want cancelled", got.State)
	}
	if h.dir.isMember("00ualice", "G-ADMIN") || h.dir.callCount("IsMember") > 0 {
		t.Errorf("a cancelled scheduled request reached Okta (member %v, IsMember calls %d)", h.dir.isMember("00ualice", "G-ADMIN"), h.dir.callCount("IsMember"))
	}
}

func TestScheduledRequestNotCancellableOnceStarted(t *testing.T) {
	h := mustScheduleHarness(t)
	r, ref := h.request(alice, "admin 1h at 12:00 deploy OPS-9")
	h.click(bob, ref, bot.ActionApprove)
	h.waitState(r.ID, symbot.StateScheduled)
	h.waitDM(alice, "You can cancel it until it starts")
	// The start passes; the scheduler has not run yet when alice clicks.
	h.clock.set(r.StartAt)
	if _, err := h.s.ClickButtonInDM(alice, bot.ActionCancel); err != nil {
		t.Fatalf("click Cancel: %v", err)
	}
	h.waitEphemeral(alice, "can no longer be cancelled; relinquish the access instead")
	h.waitState(r.ID, symbot.StateActive)
}

func TestScheduledRequestBadTimes(t *testing.T) {
	h := mustScheduleHarness(t)
	tests := []struct {
		name, text string
		want       []string
	}{
		{"hour out of range", "req admin 1h at 25:00 deploy", []string{"Start:", `"25:00" is not a start time`, "the hour must be 00-23", "HH:MM", "tomorrow 09:00"}},
		{"minutes out of range", "req admin 1h at 10:75 deploy", []string{"the minutes must be 00-59"}},
		{"not a time", "req admin 1h at soon deploy", []string{`"soon" is not a start time`, "not a time of day"}},
		{"no such date", "req admin 1h at 2026-02-30 09:00 deploy", []string{"there is no such date"}},
		{"missing time", "req admin 1h at", []string{"start time after `at` is missing"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ackText(t, h.slash(alice, tt.text))
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("/sym %s answered %q, want it to contain %q", tt.text, got, w)
				}
			}
		})
	}
	// Times that parse but are refused by the flow, in the worker.
	h.slash(alice, "req admin 1h at today 09:00 deploy")
	h.waitEphemeral(alice, "is in the past")
	h.slash(alice, "req admin 1h at 2027-01-30 09:00 deploy")
	h.waitEphemeral(alice, "too far ahead: flow prod takes requests at most 14d in advance")
	if n := len(h.requests(alice)); n != 0 {
		t.Errorf("requests after bad start times = %d, want 0", n)
	}
}

func TestScheduledRequestFormStartField(t *testing.T) {
	h := mustScheduleHarness(t)
	h.slash(alice, "")
	v := h.openView(alice, bot.CallbackRequest)
	if !strings.Contains(string(v.Blocks), `"block_id":"start"`) {
		t.Fatalf("form has no start field: %s", v.Blocks)
	}
	form := func(start string) map[string]map[string]slacktest.ViewValue {
		return map[string]map[string]slacktest.ViewValue{
			bot.BlockTarget:   {bot.BlockTarget: slacktest.Option("prod/admin")},
			bot.BlockDuration: {bot.BlockDuration: slacktest.Option("1h")},
			bot.BlockReason:   {bot.BlockReason: slacktest.Text("deploy OPS-7")},
			bot.BlockStart:    {bot.BlockStart: slacktest.Text(start)},
		}
	}
	// The form's opening looked alice up: her time zone is known by now.
	h.waitFor("alice's profile looked up", func() bool { return len(h.s.CallsTo("users.info")) > 0 })
	for _, tt := range []struct{ start, want string }{
		{"25:00", "the hour must be 00-23"},
		{"today 09:00", "is in the past"},
	} {
		ack, err := h.s.SubmitView(alice, v.ID, form(tt.start))
		if err != nil {
			t.Fatalf("submit: %v", err)
		}
		if got := ackErrors(t, ack)[bot.BlockStart]; !strings.Contains(got, tt.want) {
			t.Errorf("start %q: error %q, want it to contain %q", tt.start, got, tt.want)
		}
	}
	ack, err := h.s.SubmitView(alice, v.ID, form("fri 14:00"))
	if err != nil || len(ack.Payload) > 0 {
		t.Fatalf("submit: %v %s", err, ack.Payload)
	}
	var r *symbot.Request
	h.waitFor("request made", func() bool {
		rs := h.requests(alice)
		if len(rs) == 0 {
			return false
		}
		r = rs[0]
		return true
	})
	if want := time.Date(2026, 12, 4, 13, 0, 0, 0, time.UTC); !r.StartAt.Equal(want) {
		t.Errorf("StartAt = %v, want %v (Friday 14:00 in Berlin)", r.StartAt, want)
	}
}

func TestScheduledRequestRevokedByApproverBeforeStart(t *testing.T) {
	h := mustScheduleHarness(t)
	r, ref := h.request(alice, "admin 1h at 20:00 deploy OPS-10")
	h.click(bob, ref, bot.ActionApprove)
	h.waitState(r.ID, symbot.StateScheduled)
	h.waitFor("Revoke button on the scheduled request", func() bool {
		return strings.Contains(render(h.message(ref)), bot.ActionRevoke)
	})
	if _, err := h.eng.Revoke(context.Background(), r.ID, symbot.Actor{Person: symbot.Person{SlackID: carol, Email: "carol@example.com"}}, "not tonight"); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	got := h.waitState(r.ID, symbot.StateRevoked)
	if !got.Removed {
		t.Error("a scheduled request revoked before its start waits for a removal")
	}
	h.waitDM(alice, "was revoked by <@"+carol+"> before it started")
	h.advanceTo(r.StartAt.Add(time.Minute))
	if h.dir.isMember("00ualice", "G-ADMIN") {
		t.Error("alice was granted after her scheduled request was revoked")
	}
}
