package bot_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/bot"
	"github.com/symbot/symbot/bot/slacktest"
)

func TestCommandsAnsweredInAck(t *testing.T) {
	h := MustHarness(t)
	tests := []struct {
		name, text string
		want       []string
	}{
		{"help", "help", []string{"/sym req <target> <duration> <reason…>", "/sym list", "/sym whoami"}},
		{"unknown word", "frobnicate now", []string{"I don't know `frobnicate`", "/sym req"}},
		{"list with argument", "list all", []string{"`/sym list` takes nothing"}},
		{"target without duration", "req admin", []string{"duration and reason are missing"}},
		{"missing reason", "req admin 1h", []string{"The reason is missing", "/sym req <target> <duration> <reason…>"}},
		{"unknown target", "req nosuch 1h because", []string{"Target:", "no target named", "admin"}},
		{"ambiguous target", "req readonly 1h because", []string{"several flows", "prod/readonly", "db/readonly"}},
		{"unknown flow", "req nope/admin 1h because", []string{"Flow:", "no flow named"}},
		{"bad duration", "req admin soon because", []string{"Duration:", "invalid duration"}},
		{"duration not offered", "req admin 3h because", []string{"Duration:", "3h is not offered by prod", "1h, 4h"}},
		{"unknown flow for form", "req nosuchflow", []string{"no flow \"nosuchflow\""}},
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
	if n := len(h.requests(alice)); n != 0 {
		t.Errorf("requests after bad commands = %d, want 0", n)
	}
}

func TestRequestApproveGrantRevoke(t *testing.T) {
	h := MustHarness(t)
	r, ref := h.request(alice, "admin 1h fix incident 42")
	h.waitEphemeral(alice, "waiting for approval")

	m := h.message(ref)
	got := render(m)
	for _, w := range []string{"<@" + alice + ">", "Prod admin", "Production", "1h", "fix incident 42", r.ID, "Waiting for approval", bot.ActionApprove, bot.ActionDeny} {
		if !strings.Contains(got, w) {
			t.Errorf("approval message lacks %q:\n%s", w, got)
		}
	}

	h.click(bob, ref, bot.ActionApprove)
	h.waitState(r.ID, symbot.StateActive)
	h.waitFor("message shows active", func() bool { return strings.Contains(render(h.message(ref)), "Active") })
	got = render(h.message(ref))
	if !strings.Contains(got, bot.ActionRevoke) || strings.Contains(got, bot.ActionApprove) {
		t.Errorf("active message: want only a Revoke button:\n%s", got)
	}
	if !strings.Contains(got, "<!date^") {
		t.Errorf("active message lacks a Slack date:\n%s", got)
	}
	h.waitThread(ref, "Approved by <@"+bob+">")
	h.waitThread(ref, "Access granted in Okta")
	h.waitDM(alice, "was approved by <@"+bob+">")
	h.waitDM(alice, "now in *Prod admin* in Okta")
	if !h.dir.isMember("00ualice", "G-ADMIN") {
		t.Fatalf("alice not in G-ADMIN after grant")
	}

	// Revoke by an approver goes through the note modal.
	h.click(carol, ref, bot.ActionRevoke)
	v := h.openView(carol, bot.CallbackNote)
	ack, err := h.s.SubmitView(carol, v.ID, map[string]map[string]slacktest.ViewValue{bot.BlockNote: {bot.BlockNote: slacktest.Text("incident over")}})
	if err != nil {
		t.Fatalf("submit note: %v", err)
	}
	if len(ack.Payload) > 0 {
		t.Fatalf("revoke note ack = %s, want empty", ack.Payload)
	}
	h.waitState(r.ID, symbot.StateRevoked)
	h.waitFor("membership removed", func() bool { return !h.dir.isMember("00ualice", "G-ADMIN") })
	h.waitDM(alice, "was revoked by <@"+carol+">")
	h.waitFor("message shows revoked, no buttons", func() bool {
		s := render(h.message(ref))
		return strings.Contains(s, "Revoked") && strings.Contains(s, "incident over") && !strings.Contains(s, "sym_")
	})
}

func TestRequestModal(t *testing.T) {
	h := MustHarness(t)
	if got := ackText(t, h.slash(alice, "")); got != "" {
		t.Fatalf("/sym ack text = %q, want none", got)
	}
	v := h.openView(alice, bot.CallbackRequest)
	if !strings.Contains(string(v.Blocks), "prod/admin") || !strings.Contains(string(v.Blocks), "db/pg") {
		t.Fatalf("form lacks the targets of both flows: %s", v.Blocks)
	}

	tests := []struct {
		name   string
		values map[string]map[string]slacktest.ViewValue
		want   map[string]string // block id -> substring of its error
	}{
		{"nothing chosen", map[string]map[string]slacktest.ViewValue{}, map[string]string{bot.BlockTarget: "Choose", bot.BlockDuration: "Choose", bot.BlockReason: "Missing"}},
		{"duration of another flow", map[string]map[string]slacktest.ViewValue{
			bot.BlockTarget:   {bot.BlockTarget: slacktest.Option("db/pg")},
			bot.BlockDuration: {bot.BlockDuration: slacktest.Option("1h")},
			bot.BlockReason:   {bot.BlockReason: slacktest.Text("x")},
		}, map[string]string{bot.BlockDuration: "1h is not offered by db; choose one of 30m"}},
		{"blank reason", map[string]map[string]slacktest.ViewValue{
			bot.BlockTarget:   {bot.BlockTarget: slacktest.Option("prod/admin")},
			bot.BlockDuration: {bot.BlockDuration: slacktest.Option("1h")},
			bot.BlockReason:   {bot.BlockReason: slacktest.Text("   ")},
		}, map[string]string{bot.BlockReason: "Missing"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.wantFormErrors(t, alice, v.ID, tt.values, tt.want)
		})
	}
	ack, err := h.s.SubmitView(alice, v.ID, map[string]map[string]slacktest.ViewValue{
		bot.BlockTarget:   {bot.BlockTarget: slacktest.Option("prod/readonly")},
		bot.BlockDuration: {bot.BlockDuration: slacktest.Option("4h")},
		bot.BlockReason:   {bot.BlockReason: slacktest.Text("quarterly audit")},
	})
	if err != nil {
		t.Fatalf("submit: %v", err)
	}
	if len(ack.Payload) > 0 {
		t.Fatalf("valid submission ack = %s, want empty (close)", ack.Payload)
	}
	h.waitEphemeral(alice, "waiting for approval")
	rs := h.requests(alice)
	if len(rs) != 1 || rs[0].Target != "readonly" || rs[0].Flow != "prod" || rs[0].Reason != "quarterly audit" {
		t.Fatalf("requests = %+v, want one prod/readonly", rs)
	}

	// /sym req <flow> opens the form for that flow only.
	h.slash(alice, "req db")
	h.waitFor("second form", func() bool { return len(h.s.Views(alice)) >= 2 })
	vs := h.s.Views(alice)
	last := vs[len(vs)-1]
	if strings.Contains(string(last.Blocks), "prod/admin") || !strings.Contains(string(last.Blocks), "db/pg") {
		t.Errorf("flow form shows other flows: %s", last.Blocks)
	}
}

func TestDenyWithNoteIsEscaped(t *testing.T) {
	h := MustHarness(t)
	r, ref := h.request(alice, "admin 1h deploy")
	h.click(bob, ref, bot.ActionDeny)
	v := h.openView(bob, bot.CallbackNote)
	if _, err := h.s.SubmitView(bob, v.ID, map[string]map[string]slacktest.ViewValue{bot.BlockNote: {bot.BlockNote: slacktest.Text("no <!channel> & <@U0DAVE>")}}); err != nil {
		t.Fatalf("submit: %v", err)
	}
	h.waitState(r.ID, symbot.StateDenied)
	dm := render(h.waitDM(alice, "was denied by <@"+bob+">"))
	if !strings.Contains(dm, "no &lt;!channel&gt; &amp; &lt;@U0DAVE&gt;") {
		t.Errorf("DM note not escaped:\n%s", dm)
	}
	h.waitFor("message shows denied", func() bool { return strings.Contains(render(h.message(ref)), "Denied") })
	got := render(h.message(ref))
	if strings.Contains(got, "<!channel>") || strings.Contains(got, "<@U0DAVE>") || strings.Contains(got, "sym_approve") {
		t.Errorf("denied message unescaped or still has buttons:\n%s", got)
	}
}

func TestInjectionInReasonRendersEscaped(t *testing.T) {
	h := MustHarness(t)
	evil := "<!channel> <@U123> <http://evil|ok> & <!here>"
	r, ref := h.request(alice, "admin 1h "+evil)
	if r.Reason != evil {
		t.Fatalf("stored reason = %q, want %q", r.Reason, evil)
	}
	want := "&lt;!channel&gt; &lt;@U123&gt; &lt;http://evil|ok&gt; &amp; &lt;!here&gt;"
	check := func(where, s string) {
		t.Helper()
		for _, bad := range []string{"<!channel>", "<@U123>", "<http://evil|ok>", "<!here>"} {
			if strings.Contains(s, bad) {
				t.Errorf("%s contains live %q:\n%s", where, bad, s)
			}
		}
		if !strings.Contains(s, want) {
			t.Errorf("%s lacks the escaped reason %q:\n%s", where, want, s)
		}
	}
	check("approval message", render(h.message(ref)))
	h.click(bob, ref, bot.ActionApprove)
	h.waitState(r.ID, symbot.StateActive)
	h.waitFor("message re-rendered", func() bool { return strings.Contains(render(h.message(ref)), "Active") })
	check("updated approval message", render(h.message(ref)))
	// The extension form carries the reason as a plain-text initial value;
	// the DMs name the target, never the raw reason.
	for _, m := range h.s.DMs(alice) {
		s := render(m)
		for _, bad := range []string{"<!channel>", "<@U123>", "<http://evil|ok>"} {
			if strings.Contains(s, bad) {
				t.Errorf("DM contains live %q:\n%s", bad, s)
			}
		}
	}
}

func TestPolicyRefusalsChangeNothing(t *testing.T) {
	h := MustHarness(t)
	r, ref := h.request(alice, "admin 1h fix")
	before := h.message(ref)
	tests := []struct {
		name, user, want string
	}{
		{"non-approver", dave, "not an approver of flow prod"},
		{"self-approval", alice, "cannot approve your own request"},
		{"guest approver", gus, "guests cannot approve"},
		{"bot approver", botty, "bots and apps cannot request or decide access"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.click(tt.user, ref, bot.ActionApprove)
			e := h.waitEphemeral(tt.user, tt.want)
			if !strings.HasPrefix(e.Text, "You can't do that") {
				t.Errorf("ephemeral = %q", e.Text)
			}
		})
	}
	if got := h.get(r.ID); got.State != symbot.StatePending || len(got.Approvals) != 0 {
		t.Errorf("after refusals: state %s, approvals %d; want pending, 0", got.State, len(got.Approvals))
	}
	// A non-approver's Deny is refused before any form opens.
	h.click(dave, ref, bot.ActionDeny)
	h.waitFor("second refusal to dave", func() bool { return len(h.ephemeralsWith(dave, "not an approver")) == 2 })
	if n := len(h.s.Views(dave)); n != 0 {
		t.Errorf("dave got %d views, want none", n)
	}
	if after := h.message(ref); after.Updates != before.Updates {
		t.Errorf("approval message updated %d times by refused clicks", after.Updates-before.Updates)
	}

	// A guest cannot request in a flow that does not allow guests.
	h.slash(gus, "req admin 1h please")
	h.waitEphemeral(gus, "guests cannot request access in flow prod")
	if n := len(h.requests(gus)); n != 0 {
		t.Errorf("guest has %d requests, want 0", n)
	}
}

func TestTwoApproversAtOnce(t *testing.T) {
	h := MustHarness(t)
	r, ref := h.request(alice, "admin 1h fix")
	var wg sync.WaitGroup
	for _, u := range []string{bob, carol} {
		wg.Go(func() {
			if _, err := h.s.ClickButton(u, ref, bot.ActionApprove); err != nil {
				t.Errorf("click by %s: %v", u, err)
			}
		})
	}
	wg.Wait()
	got := h.waitState(r.ID, symbot.StateActive)
	if len(got.Approvals) != 1 {
		t.Fatalf("approvals = %d, want 1", len(got.Approvals))
	}
	winner := got.Approvals[0].By
	loser := bob
	if winner == bob {
		loser = carol
	}
	e := h.waitEphemeral(loser, "is already approved by <@"+winner+">")
	if !strings.Contains(e.Text, "Nothing was changed") {
		t.Errorf("loser's ephemeral = %q", e.Text)
	}
	if n := len(h.ephemeralsWith(winner, "already")); n != 0 {
		t.Errorf("winner got %d 'already' ephemerals", n)
	}
}

func TestQuorumAndDuplicateEnvelope(t *testing.T) {
	h := MustHarness(t)
	r, ref := h.request(alice, "pg 30m migrate")
	h.s.DuplicateNext(1) // the same envelope twice, as a Slack retry
	ack := h.click(bob, ref, bot.ActionApprove)
	if ack.EnvelopeID == "" {
		t.Fatal("no ack")
	}
	h.waitThread(ref, "(1 of 2)")
	got := h.get(r.ID)
	if got.State != symbot.StatePending || len(got.Approvals) != 1 {
		t.Fatalf("after duplicate delivery: state %s approvals %d; want pending with 1", got.State, len(got.Approvals))
	}
	if st := h.bot.Stats(); st.Duplicates < 1 {
		t.Errorf("Stats.Duplicates = %d, want >= 1", st.Duplicates)
	}
	// A double click by the same person within the window is ignored too.
	h.click(bob, ref, bot.ActionApprove)
	if st := h.bot.Stats(); st.DoubleClicks != 1 {
		t.Errorf("Stats.DoubleClicks = %d, want 1", st.DoubleClicks)
	}
	h.click(carol, ref, bot.ActionApprove)
	h.waitState(r.ID, symbot.StateActive)
	// Checked last, after later work has been handled: a duplicate handled
	// a second time would have answered bob by now.
	h.waitThread(ref, "Access granted")
	if n := len(h.ephemeralsWith(bob, "already approved")); n != 0 {
		t.Errorf("bob got %d 'already approved' answers; the duplicate was handled twice", n)
	}
}

func TestCancelRelinquishFromListAndDM(t *testing.T) {
	h := MustHarness(t)
	r1, _ := h.request(alice, "admin 1h one")
	r2, ref2 := h.request(alice, "prod/readonly 1h two")
	h.click(bob, ref2, bot.ActionApprove)
	h.waitState(r2.ID, symbot.StateActive)

	h.slash(alice, "list")
	list := h.waitEphemeral(alice, "Your requests and access")
	s := render(list)
	for _, w := range []string{r1.ID, r2.ID, "waiting for approval", "active until", "left", bot.ActionCancel, bot.ActionRelinquish} {
		if !strings.Contains(s, w) {
			t.Errorf("list lacks %q:\n%s", w, s)
		}
	}
	h.click(alice, list.Ref(), bot.ActionCancel)
	h.waitState(r1.ID, symbot.StateCancelled)
	h.waitEphemeral(alice, "Cancelled request `"+r1.ID+"`")

	h.waitDM(alice, "now in *Prod read-only*")
	if _, err := h.s.ClickButtonInDM(alice, bot.ActionRelinquish); err != nil {
		t.Fatalf("relinquish: %v", err)
	}
	h.waitState(r2.ID, symbot.StateRevoked)
	h.waitEphemeral(alice, "is being removed")
	h.waitFor("membership removed", func() bool { return !h.dir.isMember("00ualice", "G-RO") })

	h.slash(alice, "list")
	h.waitEphemeral(alice, "no pending requests and no active access")
}

func TestWhoami(t *testing.T) {
	h := MustHarness(t)
	h.slash(bob, "whoami")
	e := render(h.waitEphemeral(bob, "May approve"))
	for _, w := range []string{"<@" + bob + ">", "bob@example.com", "00ubob", "*May request:* `prod`, `db`", "*May approve:* `prod`, `db`"} {
		if !strings.Contains(e, w) {
			t.Errorf("whoami lacks %q:\n%s", w, e)
		}
	}
	h.slash(gus, "whoami")
	e = render(h.waitEphemeral(gus, "May approve"))
	for _, w := range []string{"(a guest)", "*May request:* none", "*May approve:* none"} {
		if !strings.Contains(e, w) {
			t.Errorf("guest whoami lacks %q:\n%s", w, e)
		}
	}
}

func TestExtendFromWarning(t *testing.T) {
	flows := testFlows()
	flows[0].ExpiryWarning = flows[0].Durations[0] - 300_000_000 // warn 0.3s after the grant
	h := MustHarness(t, withFlows(flows))
	r, ref := h.request(alice, "admin 1h work")
	h.click(bob, ref, bot.ActionApprove)
	r = h.waitState(r.ID, symbot.StateActive)
	h.waitDM(alice, "Need more time?")
	if _, err := h.s.ClickButtonInDM(alice, bot.ActionExtend); err != nil {
		t.Fatalf("click extend: %v", err)
	}
	v := h.openView(alice, bot.CallbackExtend)
	if !strings.Contains(string(v.Blocks), "Extension: work") {
		t.Errorf("extend form lacks the prefilled reason: %s", v.Blocks)
	}
	ack, err := h.s.SubmitView(alice, v.ID, map[string]map[string]slacktest.ViewValue{bot.BlockReason: {bot.BlockReason: slacktest.Text("")}})
	if err != nil {
		t.Fatal(err)
	}
	if errs := ackErrors(t, ack); !strings.Contains(errs[bot.BlockReason], "Missing") {
		t.Errorf("empty reason errors = %v", errs)
	}
	if _, err := h.s.SubmitView(alice, v.ID, nil); err != nil { // initial values: 1h, "Extension: work"
		t.Fatal(err)
	}
	h.waitEphemeral(alice, "Extension request")
	var ext *symbot.Request
	h.waitFor("extension request posted", func() bool {
		for _, x := range h.requests(alice) {
			if x.ExtensionOf == r.ID && x.Message.TS != "" {
				ext = x
				return true
			}
		}
		return false
	})
	extRef := slacktest.MessageRef{Channel: ext.Message.Channel, TS: ext.Message.TS}
	if s := render(h.message(extRef)); !strings.Contains(s, "extending `"+r.ID+"`") {
		t.Errorf("extension message:\n%s", s)
	}
	h.click(carol, extRef, bot.ActionApprove)
	h.waitState(ext.ID, symbot.StateExtended)
	h.waitDM(alice, "extension of `"+r.ID+"`")
	if got := h.get(r.ID); !got.ExpiresAt.After(r.ExpiresAt) {
		t.Errorf("expiry did not move: %v -> %v", r.ExpiresAt, got.ExpiresAt)
	}
}

func TestDisconnectMidFlow(t *testing.T) {
	h := MustHarness(t)
	r, ref := h.request(alice, "pg 30m migrate")
	h.s.Disconnect("refresh_requested")
	h.click(bob, ref, bot.ActionApprove) // delivered on the new connection
	h.s.DropConnections()
	h.click(carol, ref, bot.ActionApprove)
	got := h.waitState(r.ID, symbot.StateActive)
	if len(got.Approvals) != 2 {
		t.Errorf("approvals = %d, want 2", len(got.Approvals))
	}
	for _, u := range []string{bob, carol} {
		if n := len(h.s.Ephemerals(u)); n != 0 {
			t.Errorf("%s got %d ephemerals (an event was handled twice?): %v", u, n, h.s.Ephemerals(u))
		}
	}
	h.waitFor("reconnected", h.bot.Connected)
	if st := h.bot.Stats(); st.Reconnects < 2 || st.Connections < 3 {
		t.Errorf("Stats = %+v, want >= 2 reconnects", st)
	}
}

func TestStopsCleanly(t *testing.T) {
	h := MustHarness(t)
	h.request(alice, "admin 1h x")
	h.stop()
	if h.bot.Connected() {
		t.Error("Connected after Run returned")
	}
	// A second Run with a cancelled context returns at once.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := h.bot.Run(ctx, h.eng); err != nil {
		t.Errorf("Run with cancelled ctx = %v", err)
	}
}
