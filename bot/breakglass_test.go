package bot_test

import (
	"strings"
	"testing"
	"time"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/bot"
	"github.com/symbot/symbot/bot/slacktest"
)

const chSec = "C0SECALERT" // the break-glass alert channel

// breakGlassFlows are the test flows with break-glass access on prod.
func breakGlassFlows() []symbot.Flow {
	fs := testFlows()
	fs[0].BreakGlass = &symbot.BreakGlass{MaxDuration: time.Hour, Channel: chSec, ReviewWithin: 30 * time.Minute}
	return fs
}

func mustBreakGlassHarness(t *testing.T, opts ...harnessOpt) *harness {
	t.Helper()
	opts = append([]harnessOpt{
		withClock(newTestClock(schedT0)),
		withFlows(breakGlassFlows()),
		withServer(func(s *slacktest.Server) {
			s.AddChannel(slacktest.Channel{ID: chSec, Name: "security-alerts", BotIsMember: true})
		}),
	}, opts...)
	return MustHarness(t, opts...)
}

// breakGlass runs "/sym breakglass <text>" as user and waits for the
// access to be active and its alert posted.
func (h *harness) breakGlass(user, text string) (*symbot.Request, slacktest.MessageRef) {
	h.t.Helper()
	if got := ackText(h.t, h.slash(user, "breakglass "+text)); got != "" && !strings.Contains(got, "is being granted now, without approval") {
		h.t.Fatalf("/sym breakglass %s: ack says %q", text, got)
	}
	var r *symbot.Request
	h.waitFor("break-glass access active and announced", func() bool {
		rs := h.requests(user)
		if len(rs) == 0 {
			return false
		}
		r = rs[0]
		return r.State == symbot.StateActive && r.Message.TS != ""
	})
	return r, slacktest.MessageRef{Channel: r.Message.Channel, TS: r.Message.TS}
}

func TestBreakGlassGrantsAtOnceAndAlerts(t *testing.T) {
	h := mustBreakGlassHarness(t)
	r, ref := h.breakGlass(alice, "admin 30m database down, incident 42")
	if !r.BreakGlass || len(r.Approvals) != 0 {
		t.Errorf("request: break-glass %v, approvals %v; want break-glass with no approvals", r.BreakGlass, r.Approvals)
	}
	if !h.dir.isMember("00ualice", "G-ADMIN") {
		t.Fatal("alice is not in G-ADMIN: break-glass must grant at once")
	}
	if !r.ExpiresAt.Equal(schedT0.Add(30 * time.Minute)) {
		t.Errorf("expires %v, want 30m after the grant", r.ExpiresAt)
	}
	if ref.Channel != chSec {
		t.Errorf("alert posted in %s, want the break-glass channel %s", ref.Channel, chSec)
	}
	h.waitEphemeral(alice, "Break-glass access `"+r.ID+"`")
	h.waitFor("alert shows break-glass, review needed and Acknowledge", func() bool {
		got := render(h.message(ref))
		return strings.Contains(got, "BREAK-GLASS") && strings.Contains(got, "without approval") &&
			strings.Contains(got, "Review needed") && strings.Contains(got, bot.ActionAcknowledge) && strings.Contains(got, "Active")
	})
	h.waitFor("errors channel alerted", func() bool { return len(containing(h.s.Messages(chErr), "BREAK-GLASS: alice")) > 0 })
	if got := render(containing(h.s.Messages(chErr), "BREAK-GLASS")[0]); !strings.Contains(got, "database down, incident 42") || !strings.Contains(got, "prod/admin") {
		t.Errorf("errors-channel alert lacks the target or reason: %s", got)
	}
	h.waitDM(alice, "now in *Prod admin* in Okta")
	if n := len(h.s.Messages(chAcc)); n != 0 {
		t.Errorf("%d messages in the approval channel; break-glass posts its alert in %s only", n, chSec)
	}

	// Every step is in the audit trail.
	want := []string{"request", "state:approved (break-glass)", "state:active", "job:alert:ok", "job:post:ok"}
	var actions []string
	h.waitFor("every step audited", func() bool {
		es, err := h.eng.AuditSince(t.Context(), time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		actions = actions[:0]
		for _, e := range es {
			if e.RequestID == r.ID {
				actions = append(actions, e.Action)
			}
		}
		all := strings.Join(actions, " | ")
		for _, w := range want {
			if !strings.Contains(all, w) {
				return false
			}
		}
		return true
	})
}

func TestBreakGlassUnacknowledgedAlertsAgain(t *testing.T) {
	h := mustBreakGlassHarness(t)
	r, ref := h.breakGlass(alice, "admin 1h database down")
	h.waitFor("first alert", func() bool { return len(containing(h.s.Messages(chErr), "BREAK-GLASS")) == 1 })

	h.advanceTo(schedT0.Add(29 * time.Minute))
	if n := len(containing(h.s.Messages(chErr), "NOT REVIEWED")); n != 0 {
		t.Fatalf("%d reminders before the review window ended", n)
	}
	h.advanceTo(schedT0.Add(30 * time.Minute))
	h.waitFor("second alert in the errors channel", func() bool {
		return len(containing(h.s.Messages(chErr), "BREAK-GLASS NOT REVIEWED (reminder 1)")) == 1
	})
	h.waitThread(ref, "Not reviewed yet (reminder 1)")
	h.waitThread(ref, "<@"+bob+">") // the approvers are pinged

	// It keeps alerting after the access itself has ended.
	h.advanceTo(schedT0.Add(60 * time.Minute))
	h.waitState(r.ID, symbot.StateExpired)
	h.waitFor("third alert", func() bool {
		return len(containing(h.s.Messages(chErr), "BREAK-GLASS NOT REVIEWED (reminder 2)")) == 1
	})

	// Acknowledged: no more alerts.
	h.click(bob, ref, bot.ActionAcknowledge)
	h.waitFor("acknowledged", func() bool { return h.get(r.ID).ReviewedBy == bob })
	h.waitThread(ref, "acknowledged by <@"+bob+">")
	h.advanceTo(schedT0.Add(5 * time.Hour))
	if n := len(containing(h.s.Messages(chErr), "NOT REVIEWED")); n != 2 {
		t.Errorf("reminders after the acknowledgement: %d in all, want still 2", n)
	}
	if got := h.get(r.ID); got.ReviewAlerts != 2 {
		t.Errorf("ReviewAlerts = %d, want 2", got.ReviewAlerts)
	}
}

func TestBreakGlassAcknowledgeIsForOtherApprovers(t *testing.T) {
	h := mustBreakGlassHarness(t)
	// bob is an approver of prod; his own break-glass access needs someone else.
	r, ref := h.breakGlass(bob, "admin 30m on-call fix")
	h.click(bob, ref, bot.ActionAcknowledge)
	h.waitEphemeral(bob, "cannot review your own break-glass access")
	h.click(dave, ref, bot.ActionAcknowledge)
	h.waitEphemeral(dave, "not an approver of flow prod")
	if got := h.get(r.ID); got.ReviewedBy != "" {
		t.Fatalf("acknowledged by %s; want nobody yet", got.ReviewedBy)
	}
	h.click(carol, ref, bot.ActionAcknowledge)
	h.waitFor("carol's acknowledgement", func() bool { return h.get(r.ID).ReviewedBy == carol })
	h.waitFor("alert shows the review", func() bool {
		got := render(h.message(ref))
		return strings.Contains(got, "Reviewed* by <@"+carol+">") && !strings.Contains(got, bot.ActionAcknowledge)
	})
}

func TestBreakGlassRefusals(t *testing.T) {
	h := mustBreakGlassHarness(t, withUsers(slacktest.User{ID: "U0GONE", Name: "gone", Email: "gone@example.com", Deleted: true}))
	for _, tt := range []struct {
		name, user, text, want string
	}{
		{"flow without break-glass", alice, "db/pg 30m down", "flow db has no break-glass access"},
		{"over the cap", alice, "admin 4h down", "break-glass access in flow prod lasts at most 1h"},
		{"not a duration", alice, "admin soon down", "lasts at most 1h"},
		{"no reason", alice, "admin 30m", "Expected `/sym breakglass <target> <duration> <reason…>`"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := ackText(t, h.slash(tt.user, "breakglass "+tt.text)); !strings.Contains(got, tt.want) {
				t.Errorf("/sym breakglass %s answered %q, want %q", tt.text, got, tt.want)
			}
		})
	}
	// Admission still applies: a guest (prod does not allow guests) and a
	// deactivated account are refused.
	h.slash(gus, "breakglass admin 30m down")
	h.waitEphemeral(gus, "guests cannot request access in flow prod")
	h.slash("U0GONE", "breakglass admin 30m down")
	h.waitEphemeral("U0GONE", "deactivated")
	if h.dir.isMember("00ugus", "G-ADMIN") || len(h.requests(gus)) != 0 || len(h.requests("U0GONE")) != 0 {
		t.Error("a refused break-glass request was recorded or granted")
	}
	if n := len(containing(h.s.Messages(chErr), "BREAK-GLASS")); n != 0 {
		t.Errorf("%d break-glass alerts for refused requests", n)
	}
}
