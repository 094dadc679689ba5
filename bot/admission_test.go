package bot_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/symbot/symbot"
	"github.com/symbot/symbot/bot"
	"github.com/symbot/symbot/bot/slacktest"
	"github.com/symbot/symbot/store/memstore"
)

// opsFlow's approvers are the members of an Okta group, found by the
// email on their Slack profile: bob is one.
func opsFlow() symbot.Flow {
	return symbot.Flow{
		Name: "ops", Label: "Operations", Channel: chAcc,
		Approvers: symbot.Approvers{OktaGroup: "G-APPROVERS"},
		Durations: []time.Duration{time.Hour},
		Targets:   []symbot.Target{{Name: "console", Label: "Ops console", GroupID: "G-CONSOLE"}},
	}
}

// Accounts that are not who their profile says, each with bob's email.
const (
	extern   = "U0EXTERN"   // Slack Connect: another org's workspace
	stranger = "U0STRANGER" // is_stranger
	sister   = "U0SISTER"   // another workspace of the same Enterprise Grid org
	foreign  = "U0FOREIGN"  // another Enterprise Grid org
	gone     = "U0GONE"     // deactivated
	unconf   = "U0UNCONF"   // this workspace, email not confirmed
)

func impostors() []slacktest.User {
	return []slacktest.User{
		{ID: extern, Name: "bob", Email: "bob@example.com", TeamID: "T0PARTNER"},
		{ID: stranger, Name: "bob", Email: "bob@example.com", TeamID: "T0PARTNER", IsStranger: true},
		{ID: gone, Name: "bob", Email: "bob@example.com", Deleted: true},
		{ID: unconf, Name: "bob", Email: "bob@example.com", EmailUnconfirmed: true},
	}
}

func mustAdmissionHarness(t testing.TB, opts ...harnessOpt) *harness {
	t.Helper()
	opts = append([]harnessOpt{withFlows(append(testFlows(), opsFlow())), withUsers(impostors()...)}, opts...)
	h := MustHarness(t, opts...)
	if err := h.dir.AddMember(t.Context(), "00ubob", "G-APPROVERS"); err != nil {
		t.Fatal(err)
	}
	return h
}

// impostorRefused has attacker click Approve, Approve with note and Deny
// on a fresh ops request and checks that each is refused with why, that
// nothing changed, and that bob, the real approver, still can approve.
func impostorRefused(t *testing.T, h *harness, attacker, why string) {
	t.Helper()
	r, ref := h.request(alice, "ops/console 1h deploy")
	for _, action := range []string{bot.ActionApprove, bot.ActionApproveNote, bot.ActionDeny} {
		before := len(h.ephemeralsWith(attacker, why))
		h.click(attacker, ref, action)
		h.waitFor(action+" refused with why", func() bool { return len(h.ephemeralsWith(attacker, why)) > before })
	}
	if vs := h.s.Views(attacker); len(vs) > 0 {
		t.Errorf("%s got a form: %+v", attacker, vs[0].CallbackID)
	}
	if got := h.get(r.ID); got.State != symbot.StatePending || len(got.Approvals) != 0 {
		t.Fatalf("after %s clicked: state %s, approvals %+v; want pending, none", attacker, got.State, got.Approvals)
	}
	if h.dir.isMember("00ualice", "G-CONSOLE") {
		t.Fatalf("alice was granted G-CONSOLE after %s clicked", attacker)
	}
	// The attacker cannot request either: the refusal rides in the ack.
	if got := ackText(t, h.slash(attacker, "req ops/console 1h mine")); !strings.Contains(got, why) {
		t.Fatalf("request ack = %q, want the refusal saying %q", got, why)
	}
	h.waitFor("request refused", func() bool { return len(h.ephemeralsWith(attacker, why)) >= 4 })
	if rs := h.requests(attacker); len(rs) != 0 {
		t.Errorf("%s made a request: %+v", attacker, rs[0])
	}

	h.click(bob, ref, bot.ActionApprove)
	h.waitState(r.ID, symbot.StateActive)
}

const notMember = "another workspace or organization"

func TestSlackConnectExternalWithApproversEmailCannotApprove(t *testing.T) {
	h := mustAdmissionHarness(t)
	impostorRefused(t, h, extern, notMember)
}

func TestStrangerWithApproversEmailCannotApprove(t *testing.T) {
	h := mustAdmissionHarness(t)
	impostorRefused(t, h, stranger, "not a member of the workspace")
}

func TestForeignTeamIDInSameOrgCannotApprove(t *testing.T) {
	h := mustAdmissionHarness(t,
		withServer(func(s *slacktest.Server) { s.EnterpriseID = "E0HOME" }),
		withUsers(slacktest.User{ID: sister, Name: "bob", Email: "bob@example.com", TeamID: "T0SISTER", EnterpriseID: "E0HOME"}))
	impostorRefused(t, h, sister, notMember)
}

func TestForeignEnterpriseCannotApprove(t *testing.T) {
	h := mustAdmissionHarness(t,
		withServer(func(s *slacktest.Server) { s.EnterpriseID = "E0HOME" }),
		withUsers(slacktest.User{ID: foreign, Name: "bob", Email: "bob@example.com", EnterpriseID: "E0OTHER"}))
	impostorRefused(t, h, foreign, notMember)
}

func TestDeletedUserCannotApproveOrRevoke(t *testing.T) {
	h := mustAdmissionHarness(t)
	impostorRefused(t, h, gone, "deactivated")

	// carol is a listed approver of prod by Slack id; deactivated, she can
	// neither approve nor revoke.
	r, ref := h.request(alice, "prod/admin 1h deploy")
	h.s.AddUser(slacktest.User{ID: carol, Name: "carol", Email: "carol@example.com", Deleted: true})
	h.click(carol, ref, bot.ActionApprove)
	h.waitEphemeral(carol, "deactivated")
	h.click(bob, ref, bot.ActionApprove)
	h.waitState(r.ID, symbot.StateActive)
	h.waitFor("revoke button", func() bool { return strings.Contains(render(h.message(ref)), bot.ActionRevoke) })
	h.click(carol, ref, bot.ActionRevoke)
	h.waitFor("revoke refused", func() bool { return len(h.ephemeralsWith(carol, "deactivated")) >= 2 })
	if got := h.get(r.ID); got.State != symbot.StateActive {
		t.Errorf("state after a deactivated approver clicked Revoke = %s, want active", got.State)
	}
}

func TestUnconfirmedEmailEqualToApproversCannotApprove(t *testing.T) {
	h := mustAdmissionHarness(t)
	r, ref := h.request(alice, "ops/console 1h deploy")
	h.click(unconf, ref, bot.ActionApprove)
	h.waitEphemeral(unconf, "not an approver of flow ops")
	if got := h.get(r.ID); got.State != symbot.StatePending || len(got.Approvals) != 0 {
		t.Fatalf("state %s, approvals %+v after an unconfirmed email clicked Approve; want pending, none", got.State, got.Approvals)
	}

	// Requesting with an unconfirmed email is refused, and says why.
	h.slash(unconf, "req ops/console 1h mine")
	h.waitEphemeral(unconf, "email on your Slack profile is not confirmed")
	if rs := h.requests(unconf); len(rs) != 0 {
		t.Errorf("unconfirmed email made a request: %+v", rs[0])
	}
	// whoami says it too.
	h.slash(unconf, "whoami")
	h.waitEphemeral(unconf, "not confirmed in Slack")

	h.click(bob, ref, bot.ActionApprove)
	h.waitState(r.ID, symbot.StateActive)
}

func TestWhoamiSaysWhyAnAccountMayNotAct(t *testing.T) {
	h := mustAdmissionHarness(t)
	h.slash(extern, "whoami")
	h.waitEphemeral(extern, "*May not use symbot:* your Slack account belongs to another workspace")
}

func TestRunLearnsWorkspaceFromAuthTest(t *testing.T) {
	h := MustHarness(t, withServer(func(s *slacktest.Server) { s.FailNext("auth.test", "internal_error", 2) }))
	if n := len(h.s.CallsTo("auth.test")); n != 3 {
		t.Errorf("auth.test calls = %d, want 3 (two failures retried)", n)
	}

	s := slacktest.NewServer()
	t.Cleanup(s.Close)
	s.FailNext("auth.test", "invalid_auth", 1)
	b := bot.New(slack.New(s.BotToken, slack.OptionAPIURL(s.APIURL()), slack.OptionAppLevelToken(s.AppToken)), bot.Config{})
	eng, err := symbot.NewEngine(memstore.New(), newFakeDir(), b, testFlows())
	if err != nil {
		t.Fatal(err)
	}
	err = b.Run(t.Context(), eng)
	var te *bot.TokenError
	if !errors.As(err, &te) || te.Env != bot.EnvBotToken || te.Code != "invalid_auth" || !strings.Contains(err.Error(), "SLACK_BOT_TOKEN (invalid_auth)") {
		t.Fatalf("Run with a rejected bot token = %v, want a *bot.TokenError naming SLACK_BOT_TOKEN", err)
	}
	if s.Connections() != 0 {
		t.Errorf("connected to Socket Mode without knowing the workspace")
	}
}
