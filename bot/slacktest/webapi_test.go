package slacktest_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"

	"github.com/symbot/symbot/bot/slacktest"
)

func newAPI(srv *slacktest.Server) *slack.Client {
	return slack.New(srv.BotToken, slack.OptionAPIURL(srv.APIURL()), slack.OptionAppLevelToken(srv.AppToken))
}

func approvalBlocks(blockID string) []slack.Block {
	return []slack.Block{
		slack.NewSectionBlock(slack.NewTextBlockObject("mrkdwn", "*alice* wants okta-admins", false, false), nil, nil),
		slack.NewActionBlock(blockID,
			slack.NewButtonBlockElement("approve", "req-1", slack.NewTextBlockObject("plain_text", "Approve", false, false)).WithStyle(slack.StylePrimary),
			slack.NewButtonBlockElement("deny", "req-1", slack.NewTextBlockObject("plain_text", "Deny", false, false)).WithStyle(slack.StyleDanger),
		),
	}
}

func TestPostUpdateEphemeralDM(t *testing.T) {
	srv := newServer(t)
	api := newAPI(srv)
	ctx := t.Context()

	auth, err := api.AuthTestContext(ctx)
	if err != nil {
		t.Fatalf("AuthTest: %v", err)
	}
	if auth.UserID != srv.BotUserID() || auth.BotID == "" {
		t.Errorf("auth.test = %+v, want user %s and a bot ID", auth, srv.BotUserID())
	}

	ch, ts, err := api.PostMessageContext(ctx, "C1", slack.MsgOptionText("fallback", false), slack.MsgOptionBlocks(approvalBlocks("decide")...))
	if err != nil {
		t.Fatalf("PostMessage: %v", err)
	}
	if ch != "C1" || !strings.Contains(ts, ".") {
		t.Errorf("PostMessage = (%q, %q), want C1 and a ts", ch, ts)
	}
	_, ts2, err := api.PostMessageContext(ctx, "C1", slack.MsgOptionText("reply", false), slack.MsgOptionTS(ts))
	if err != nil {
		t.Fatalf("PostMessage reply: %v", err)
	}
	if ts2 <= ts {
		t.Errorf("second ts %q not after first %q", ts2, ts)
	}
	if _, _, _, err := api.UpdateMessageContext(ctx, "C1", ts, slack.MsgOptionText("approved by bob", false), slack.MsgOptionBlocks()); err != nil {
		t.Fatalf("UpdateMessage: %v", err)
	}
	msgs := srv.Messages("C1")
	if len(msgs) != 2 {
		t.Fatalf("messages = %d, want 2", len(msgs))
	}
	if m := msgs[0]; m.Text != "approved by bob" || m.Blocks != nil || m.Updates != 1 || m.User != srv.BotUserID() {
		t.Errorf("updated message = %+v", m)
	}
	if th := srv.Thread("C1", ts); len(th) != 2 || th[1].ThreadTS != ts || th[1].Text != "reply" {
		t.Errorf("thread = %+v", th)
	}

	if _, err := api.PostEphemeralContext(ctx, "C1", "U2", slack.MsgOptionText("only bob", false)); err != nil {
		t.Fatalf("PostEphemeral: %v", err)
	}
	if e := srv.Ephemerals("U2"); len(e) != 1 || e[0].Text != "only bob" || e[0].Channel != "C1" || !e[0].Ephemeral {
		t.Errorf("ephemerals = %+v", e)
	}

	// Posting to a user ID lands in the IM; conversations.open returns the same IM.
	dmCh, _, err := api.PostMessageContext(ctx, "U1", slack.MsgOptionText("granted", false))
	if err != nil {
		t.Fatalf("PostMessage to user: %v", err)
	}
	if !strings.HasPrefix(dmCh, "D") {
		t.Errorf("DM channel = %q, want a D ID", dmCh)
	}
	im, _, already, err := api.OpenConversationContext(ctx, &slack.OpenConversationParameters{Users: []string{"U1"}})
	if err != nil {
		t.Fatalf("OpenConversation: %v", err)
	}
	if im.ID != dmCh || !already || !im.IsIM {
		t.Errorf("conversations.open = %+v already=%v, want %s already open", im, already, dmCh)
	}
	if d := srv.DMs("U1"); len(d) != 1 || d[0].Text != "granted" {
		t.Errorf("DMs = %+v", d)
	}

	link, err := api.GetPermalinkContext(ctx, &slack.PermalinkParameters{Channel: "C1", Ts: ts})
	if err != nil || !strings.Contains(link, "/archives/C1/p") {
		t.Errorf("permalink = %q, %v", link, err)
	}

	if got := len(srv.CallsTo("chat.postMessage")); got != 3 {
		t.Errorf("chat.postMessage calls = %d, want 3", got)
	}
	for _, c := range srv.Calls() {
		if c.Params.Get("token") != "" || strings.Contains(string(c.JSON), srv.BotToken) {
			t.Errorf("call %s recorded the token", c.Method)
		}
	}
}

func TestUsers(t *testing.T) {
	srv := newServer(t)
	api := newAPI(srv)
	u, err := api.GetUserInfoContext(t.Context(), "U3")
	if err != nil {
		t.Fatalf("GetUserInfo: %v", err)
	}
	if u.Profile.Email != "guest@example.com" || !u.IsRestricted || u.IsUltraRestricted || u.IsBot || u.Name != "guest" {
		t.Errorf("user = %+v", u)
	}
	byMail, err := api.GetUserByEmailContext(t.Context(), "ALICE@example.com")
	if err != nil {
		t.Fatalf("GetUserByEmail: %v", err)
	}
	if byMail.ID != "U1" || byMail.TZ != "Europe/Berlin" {
		t.Errorf("lookupByEmail = %+v, want U1 in Europe/Berlin", byMail)
	}
	info, err := api.GetConversationInfoContext(t.Context(), &slack.GetConversationInfoInput{ChannelID: "C1"})
	if err != nil || info.Name != "approvals" || !info.IsMember {
		t.Errorf("conversations.info = %+v, %v", info, err)
	}
}

func TestErrors(t *testing.T) {
	srv := newServer(t)
	srv.AddChannel(slacktest.Channel{ID: "G1", Name: "secret", IsPrivate: true})
	srv.AddUser(slacktest.User{ID: "U9", Name: "gone", Deleted: true})
	api := newAPI(srv)
	wrong := slack.New("xoxb-wrong", slack.OptionAPIURL(srv.APIURL()))
	ctx := t.Context()
	post := func(ch string, opts ...slack.MsgOption) func() error {
		return func() error {
			_, _, err := api.PostMessageContext(ctx, ch, append([]slack.MsgOption{slack.MsgOptionText("x", false)}, opts...)...)
			return err
		}
	}
	badBlocks := []slack.Block{slack.NewSectionBlock(slack.NewTextBlockObject("mrkdwn", strings.Repeat("x", 3001), false, false), nil, nil)}
	for _, tc := range []struct {
		name string
		call func() error
		want string
	}{
		{"unknown channel", post("C999"), "channel_not_found"},
		{"bot not in public channel", post("C2"), "not_in_channel"},
		{"bot not in private channel", post("G1"), "channel_not_found"},
		{"DM to deleted user", post("U9"), "user_disabled"},
		{"thread of unknown message", post("C1", slack.MsgOptionTS("1.000001")), "thread_not_found"},
		{"section text too long", post("C1", slack.MsgOptionBlocks(badBlocks...)), "invalid_blocks"},
		{"wrong token", func() error { _, err := wrong.AuthTestContext(ctx); return err }, "invalid_auth"},
		{"unknown user", func() error { _, err := api.GetUserInfoContext(ctx, "U404"); return err }, "user_not_found"},
		{"unknown email", func() error { _, err := api.GetUserByEmailContext(ctx, "x@y.z"); return err }, "users_not_found"},
		{"update unknown message", func() error {
			_, _, _, err := api.UpdateMessageContext(ctx, "C1", "1.000002", slack.MsgOptionText("x", false))
			return err
		}, "message_not_found"},
		{"ephemeral to non-member", func() error {
			_, err := api.PostEphemeralContext(ctx, "C1", "U3", slack.MsgOptionText("x", false))
			return err
		}, "user_not_in_channel"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			var se slack.SlackErrorResponse
			if !errors.As(err, &se) || se.Err != tc.want {
				t.Fatalf("got %v, want slack error %q", err, tc.want)
			}
		})
	}
}

func TestFailNextAndMissingScope(t *testing.T) {
	srv := newServer(t)
	api := newAPI(srv)
	ctx := t.Context()
	srv.FailNext("chat.postMessage", "missing_scope", 1)
	_, _, err := api.PostMessageContext(ctx, "C1", slack.MsgOptionText("x", false))
	var se slack.SlackErrorResponse
	if !errors.As(err, &se) || se.Err != "missing_scope" || se.Needed != "chat:write" || !strings.Contains(se.Provided, "users:read") {
		t.Fatalf("got %#v, want missing_scope needing chat:write", err)
	}
	if _, _, err := api.PostMessageContext(ctx, "C1", slack.MsgOptionText("x", false)); err != nil {
		t.Fatalf("second post: %v, want the fault used up", err)
	}
	srv.SetScopes("chat:write")
	_, err = api.GetUserByEmailContext(ctx, "alice@example.com")
	if !errors.As(err, &se) || se.Err != "missing_scope" || se.Needed != "users:read.email" || se.Provided != "chat:write" {
		t.Fatalf("got %#v, want missing_scope needing users:read.email", err)
	}
	if c := srv.CallsTo("users.lookupByEmail"); len(c) != 1 || c[0].Error != "missing_scope" {
		t.Errorf("recorded calls = %+v", c)
	}
}

func TestRateLimitNext(t *testing.T) {
	srv := newServer(t)
	api := newAPI(srv)
	srv.RateLimitNext("chat.postMessage", 2*time.Second, 1)
	_, _, err := api.PostMessageContext(t.Context(), "C1", slack.MsgOptionText("x", false))
	var rl *slack.RateLimitedError
	if !errors.As(err, &rl) || rl.RetryAfter != 2*time.Second {
		t.Fatalf("got %v, want *slack.RateLimitedError with RetryAfter 2s", err)
	}
	if _, _, err := api.PostMessageContext(t.Context(), "C1", slack.MsgOptionText("x", false)); err != nil {
		t.Fatalf("second post: %v", err)
	}
}

func TestClickButton(t *testing.T) {
	srv := newServer(t)
	a := MustApp(t, srv, nil)
	ctx := t.Context()
	// The second block has no block_id: Slack (and the simulator) assigns one.
	blocks := append(approvalBlocks("decide"), slack.NewActionBlock("",
		slack.NewButtonBlockElement("extend", "req-1", slack.NewTextBlockObject("plain_text", "Extend", false, false))))
	_, ts, err := a.api.PostMessageContext(ctx, "C1", slack.MsgOptionText("approve?", false), slack.MsgOptionBlocks(blocks...))
	if err != nil {
		t.Fatalf("PostMessage: %v", err)
	}
	if _, err := srv.ClickButton("U2", slacktest.MessageRef{Channel: "C1", TS: ts}, "approve"); err != nil {
		t.Fatalf("ClickButton: %v", err)
	}
	if _, err := srv.ClickButtonInChannel("U1", "C1", "extend"); err != nil {
		t.Fatalf("ClickButtonInChannel: %v", err)
	}
	evs := a.requests(socketmode.EventTypeInteractive)
	if len(evs) != 2 {
		t.Fatalf("interactive events = %d, want 2", len(evs))
	}
	cb := evs[0].Data.(slack.InteractionCallback)
	if cb.Type != slack.InteractionTypeBlockActions || len(cb.ActionCallback.BlockActions) != 1 {
		t.Fatalf("callback = %+v, want one block action", cb)
	}
	act := cb.ActionCallback.BlockActions[0]
	if act.ActionID != "approve" || act.Value != "req-1" || act.BlockID != "decide" {
		t.Errorf("action = %+v, want approve/req-1/decide", act)
	}
	if cb.User.ID != "U2" || cb.Channel.ID != "C1" || cb.Message.Timestamp != ts || cb.Container.MessageTs != ts {
		t.Errorf("callback user/channel/message = %s/%s/%s", cb.User.ID, cb.Channel.ID, cb.Message.Timestamp)
	}
	if cb.TriggerID == "" || cb.ResponseURL == "" || len(cb.Message.Blocks.BlockSet) != 3 {
		t.Errorf("callback lacks trigger_id/response_url/blocks: %+v", cb)
	}
	cb2 := evs[1].Data.(slack.InteractionCallback)
	if len(cb2.ActionCallback.BlockActions) != 1 || cb2.ActionCallback.BlockActions[0].BlockID == "" {
		t.Errorf("generated block_id missing: %+v", cb2.ActionCallback)
	}

	// The app answers through response_url: replace the original message.
	if _, _, err := a.api.PostMessageContext(ctx, "", slack.MsgOptionText("approved", false), slack.MsgOptionReplaceOriginal(cb.ResponseURL)); err != nil {
		t.Fatalf("replace via response_url: %v", err)
	}
	if m, _ := srv.Message(slacktest.MessageRef{Channel: "C1", TS: ts}); m.Text != "approved" || m.Updates != 1 || m.Blocks != nil {
		t.Errorf("message after replace_original = %+v", m)
	}

	// DM buttons.
	if _, _, err := a.api.PostMessageContext(ctx, "U1", slack.MsgOptionText("extend?", false), slack.MsgOptionBlocks(approvalBlocks("dm")...)); err != nil {
		t.Fatalf("PostMessage DM: %v", err)
	}
	if _, err := srv.ClickButtonInDM("U1", "deny"); err != nil {
		t.Fatalf("ClickButtonInDM: %v", err)
	}
	if _, err := srv.ClickButton("U1", slacktest.MessageRef{Channel: "C1", TS: ts}, "nope"); err == nil {
		t.Errorf("ClickButton on a missing action_id succeeded")
	}
}

func TestViewsOpenSubmit(t *testing.T) {
	srv := newServer(t)
	var openErr error
	var a *app
	modal := slack.ModalViewRequest{
		Type:            slack.VTModal,
		Title:           slack.NewTextBlockObject("plain_text", "Request access", false, false),
		Submit:          slack.NewTextBlockObject("plain_text", "Request", false, false),
		CallbackID:      "request",
		PrivateMetadata: "C1",
		Blocks: slack.Blocks{BlockSet: []slack.Block{
			slack.NewInputBlock("reason", slack.NewTextBlockObject("plain_text", "Reason", false, false), nil,
				slack.NewPlainTextInputBlockElement(nil, "reason_input")),
			slack.NewInputBlock("target", slack.NewTextBlockObject("plain_text", "Group", false, false), nil,
				slack.NewOptionsGroupSelectBlockElement("static_select", nil, "target_select",
					slack.NewOptionGroupBlockElement(slack.NewTextBlockObject("plain_text", "Okta", false, false),
						slack.NewOptionBlockObject("okta-admins", slack.NewTextBlockObject("plain_text", "Okta admins", false, false), nil)))),
			slack.NewInputBlock("duration", slack.NewTextBlockObject("plain_text", "For", false, false), nil,
				&slack.SelectBlockElement{Type: "static_select", ActionID: "duration_select",
					Options: []*slack.OptionBlockObject{
						slack.NewOptionBlockObject("1h", slack.NewTextBlockObject("plain_text", "1 hour", false, false), nil),
						slack.NewOptionBlockObject("2h", slack.NewTextBlockObject("plain_text", "2 hours", false, false), nil)},
					InitialOption: slack.NewOptionBlockObject("2h", slack.NewTextBlockObject("plain_text", "2 hours", false, false), nil)}),
		}},
	}
	var triggers []string
	a = MustApp(t, srv, func(evt socketmode.Event) (bool, any) {
		switch d := evt.Data.(type) {
		case slack.SlashCommand:
			triggers = append(triggers, d.TriggerID)
			_, openErr = a.api.OpenViewContext(t.Context(), d.TriggerID, modal)
		case slack.InteractionCallback:
			if d.View.State.Values["reason"]["reason_input"].Value == "" {
				return true, slack.NewErrorsViewSubmissionResponse(map[string]string{"reason": "Say why"})
			}
		}
		return true, nil
	})
	if _, err := srv.SlashCommand("U1", "/sym", "", ""); err != nil {
		t.Fatalf("SlashCommand: %v", err)
	}
	if openErr != nil {
		t.Fatalf("OpenView: %v", openErr)
	}
	views := srv.Views("U1")
	if len(views) != 1 || views[0].CallbackID != "request" || views[0].Title != "Request access" || views[0].PrivateMetadata != "C1" {
		t.Fatalf("views = %+v", views)
	}
	// A trigger works once; made-up triggers never.
	_, err := a.api.OpenViewContext(t.Context(), triggers[0], modal)
	var se slack.SlackErrorResponse
	if !errors.As(err, &se) || se.Err != "exchanged_trigger_id" {
		t.Errorf("reused trigger: %v, want exchanged_trigger_id", err)
	}
	_, err = a.api.OpenViewContext(t.Context(), "123.456.abc", modal)
	if !errors.As(err, &se) || se.Err != "invalid_trigger_id" {
		t.Errorf("made-up trigger: %v, want invalid_trigger_id", err)
	}

	ack, err := srv.SubmitView("U1", views[0].ID, nil)
	if err != nil {
		t.Fatalf("SubmitView: %v", err)
	}
	var resp slack.ViewSubmissionResponse
	if err := json.Unmarshal(ack.Payload, &resp); err != nil || resp.ResponseAction != slack.RAErrors || resp.Errors["reason"] != "Say why" {
		t.Fatalf("ack payload = %s (%v), want errors for reason", ack.Payload, err)
	}
	if v := srv.Views("U1")[0]; v.Closed || v.Errors["reason"] != "Say why" {
		t.Errorf("view after errors = %+v, want open with errors", v)
	}

	ack, err = srv.SubmitView("U1", views[0].ID, map[string]map[string]slacktest.ViewValue{
		"reason": {"reason_input": slacktest.Text("on call")},
		"target": {"target_select": slacktest.Option("okta-admins")},
	})
	if err != nil {
		t.Fatalf("SubmitView: %v", err)
	}
	if ack.Payload != nil {
		t.Errorf("ack payload = %s, want none", ack.Payload)
	}
	evs := a.requests(socketmode.EventTypeInteractive)
	cb := evs[len(evs)-1].Data.(slack.InteractionCallback)
	if cb.Type != slack.InteractionTypeViewSubmission || cb.View.CallbackID != "request" || cb.View.PrivateMetadata != "C1" {
		t.Errorf("submission = %+v", cb.View)
	}
	sel := cb.View.State.Values["target"]["target_select"]
	if sel.Type != "static_select" || sel.SelectedOption.Value != "okta-admins" || sel.SelectedOption.Text.Text != "Okta admins" {
		t.Errorf("selected option = %+v", sel)
	}
	if dur := cb.View.State.Values["duration"]["duration_select"]; dur.SelectedOption.Value != "2h" || dur.SelectedOption.Text.Text != "2 hours" {
		t.Errorf("unset select = %+v, want its initial option 2h", dur)
	}
	if v := srv.Views("U1")[0]; !v.Closed {
		t.Errorf("view after empty ack is open, want closed")
	}
}

func TestViewValidation(t *testing.T) {
	srv := newServer(t)
	var openErr error
	var a *app
	a = MustApp(t, srv, func(evt socketmode.Event) (bool, any) {
		if d, ok := evt.Data.(slack.SlashCommand); ok {
			_, openErr = a.api.OpenViewContext(t.Context(), d.TriggerID, slack.ModalViewRequest{
				Type:  slack.VTModal,
				Title: slack.NewTextBlockObject("plain_text", "A title that is far too long for Slack", false, false),
			})
		}
		return true, nil
	})
	if _, err := srv.SlashCommand("U1", "/sym", "", "C1"); err != nil {
		t.Fatalf("SlashCommand: %v", err)
	}
	var se slack.SlackErrorResponse
	if !errors.As(openErr, &se) || se.Err != "invalid_arguments" || len(se.ResponseMetadata.Messages) == 0 {
		t.Fatalf("got %#v, want invalid_arguments with messages", openErr)
	}
}

func TestSlashResponsesAndEphemeralButtons(t *testing.T) {
	srv := newServer(t)
	var a *app
	a = MustApp(t, srv, func(evt socketmode.Event) (bool, any) {
		d, ok := evt.Data.(slack.SlashCommand)
		if !ok {
			return true, nil
		}
		switch d.Text {
		case "ack":
			return true, map[string]any{"text": "Working on it"}
		case "url":
			_, _, _ = a.api.PostMessageContext(t.Context(), "", slack.MsgOptionText("Shown in channel", false), slack.MsgOptionResponseURL(d.ResponseURL, slack.ResponseTypeInChannel))
		case "buttons":
			_, _ = a.api.PostEphemeralContext(t.Context(), d.ChannelID, d.UserID, slack.MsgOptionText("pick", false), slack.MsgOptionBlocks(approvalBlocks("eph")...))
		}
		return true, nil
	})
	for _, text := range []string{"ack", "url", "buttons"} {
		if _, err := srv.SlashCommand("U1", "/sym", text, "C1"); err != nil {
			t.Fatalf("SlashCommand %q: %v", text, err)
		}
	}
	eph := srv.Ephemerals("U1")
	if len(eph) != 2 || eph[0].Text != "Working on it" || eph[1].Text != "pick" {
		t.Fatalf("ephemerals = %+v", eph)
	}
	if msgs := srv.Messages("C1"); len(msgs) != 1 || msgs[0].Text != "Shown in channel" {
		t.Errorf("channel messages = %+v", msgs)
	}
	if _, err := srv.ClickButton("U2", eph[1].Ref(), "approve"); err == nil {
		t.Errorf("U2 clicked U1's ephemeral message")
	}
	if _, err := srv.ClickButton("U1", eph[1].Ref(), "approve"); err != nil {
		t.Fatalf("ClickButton on ephemeral: %v", err)
	}
	evs := a.requests(socketmode.EventTypeInteractive)
	cb := evs[len(evs)-1].Data.(slack.InteractionCallback)
	if !cb.Container.IsEphemeral || cb.ActionCallback.BlockActions[0].BlockID != "eph" {
		t.Errorf("ephemeral click = %+v", cb.Container)
	}
}

func TestPublicChannelScopeAndListen(t *testing.T) {
	srv := newServer(t)
	api := newAPI(srv)
	srv.SetScopes(append(slacktest.DefaultScopes, "chat:write.public")...)
	if _, _, err := api.PostMessageContext(t.Context(), "C2", slack.MsgOptionText("x", false)); err != nil {
		t.Errorf("post to public channel with chat:write.public: %v", err)
	}
	if _, err := slacktest.Listen("0.0.0.0:0"); err == nil {
		t.Errorf("Listen on a non-loopback address succeeded")
	}
}

func TestViewButtonPushAndClose(t *testing.T) {
	srv := newServer(t)
	var a *app
	var pushErr error
	modal := func(title string) slack.ModalViewRequest {
		return slack.ModalViewRequest{
			Type: slack.VTModal, Title: slack.NewTextBlockObject("plain_text", title, false, false),
			NotifyOnClose: true,
			Blocks: slack.Blocks{BlockSet: []slack.Block{
				slack.NewActionBlock("more", slack.NewButtonBlockElement("details", "d", slack.NewTextBlockObject("plain_text", "Details", false, false))),
			}},
		}
	}
	a = MustApp(t, srv, func(evt socketmode.Event) (bool, any) {
		switch d := evt.Data.(type) {
		case slack.SlashCommand:
			_, _ = a.api.OpenViewContext(t.Context(), d.TriggerID, modal("First"))
		case slack.InteractionCallback:
			if d.Type == slack.InteractionTypeBlockActions {
				_, pushErr = a.api.PushViewContext(t.Context(), d.TriggerID, modal("Second"))
			}
		}
		return true, nil
	})
	if _, err := srv.SlashCommand("U1", "/sym", "", "C1"); err != nil {
		t.Fatalf("SlashCommand: %v", err)
	}
	first, ok := srv.CurrentView("U1")
	if !ok {
		t.Fatalf("no modal open")
	}
	if _, err := srv.ClickViewButton("U1", first.ID, "details", nil); err != nil {
		t.Fatalf("ClickViewButton: %v", err)
	}
	if pushErr != nil {
		t.Fatalf("PushView: %v", pushErr)
	}
	second, _ := srv.CurrentView("U1")
	if second.Title != "Second" || second.PreviousViewID != first.ID {
		t.Errorf("pushed view = %+v, want Second on top of %s", second, first.ID)
	}
	evs := a.requests(socketmode.EventTypeInteractive)
	cb := evs[len(evs)-1].Data.(slack.InteractionCallback)
	if cb.Container.ViewID != first.ID || cb.View.ID != first.ID || cb.ActionCallback.BlockActions[0].ActionID != "details" {
		t.Errorf("view block action = container %+v view %s", cb.Container, cb.View.ID)
	}
	if _, err := srv.CloseView("U1", second.ID); err != nil {
		t.Fatalf("CloseView: %v", err)
	}
	evs = a.requests(socketmode.EventTypeInteractive)
	if cb := evs[len(evs)-1].Data.(slack.InteractionCallback); cb.Type != slack.InteractionTypeViewClosed || cb.View.ID != second.ID {
		t.Errorf("last interaction = %s for %s, want view_closed for %s", cb.Type, cb.View.ID, second.ID)
	}
}

func TestDelayNext(t *testing.T) {
	srv := newServer(t)
	api := newAPI(srv)
	srv.DelayNext("chat.postMessage", time.Minute, 1)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, _, err := api.PostMessageContext(ctx, "C1", slack.MsgOptionText("x", false))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want a deadline error", err)
	}
	waitFor(t, srv, "abandoned call recorded", func() bool {
		c := srv.CallsTo("chat.postMessage")
		return len(c) == 1 && c[0].Error == "client_gone"
	})
	if len(srv.Messages("C1")) != 0 {
		t.Errorf("abandoned post was stored")
	}
}

func TestRawWireErrors(t *testing.T) {
	srv := newServer(t)
	post := func(method string, form url.Values) map[string]any {
		t.Helper()
		resp, err := http.PostForm(srv.APIURL()+method, form)
		if err != nil {
			t.Fatalf("post %s: %v", method, err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			t.Fatalf("%s: status %d, content type %q", method, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		var body map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatalf("decode %s: %v", method, err)
		}
		return body
	}
	for _, tc := range []struct {
		name, method string
		form         url.Values
		want         string
	}{
		{"no token", "auth.test", url.Values{}, "not_authed"},
		{"app token for chat", "chat.postMessage", url.Values{"token": {srv.AppToken}, "channel": {"C1"}, "text": {"x"}}, "not_allowed_token_type"},
		{"bot token for socket", "apps.connections.open", url.Values{"token": {srv.BotToken}}, "not_allowed_token_type"},
		{"blocks not JSON", "chat.postMessage", url.Values{"token": {srv.BotToken}, "channel": {"C1"}, "blocks": {"[{"}}, "invalid_blocks_format"},
		{"unknown block type", "chat.postMessage", url.Values{"token": {srv.BotToken}, "channel": {"C1"}, "blocks": {`[{"type":"nope"}]`}}, "invalid_blocks"},
		{"duplicate block_id", "chat.postMessage", url.Values{"token": {srv.BotToken}, "channel": {"C1"}, "blocks": {`[{"type":"divider","block_id":"a"},{"type":"divider","block_id":"a"}]`}}, "invalid_blocks"},
		{"no text", "chat.postMessage", url.Values{"token": {srv.BotToken}, "channel": {"C1"}}, "no_text"},
		{"unknown method", "chat.frobnicate", url.Values{"token": {srv.BotToken}}, "unknown_method"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := post(tc.method, tc.form)
			if body["ok"] != false || body["error"] != tc.want {
				t.Errorf("got %v, want error %q", body, tc.want)
			}
		})
	}
}

// TestUsersInfoTrustFields: the fields an app checks before it trusts a
// person reach slack-go's User as real Slack sends them.
func TestUsersInfoTrustFields(t *testing.T) {
	srv := newServer(t)
	srv.EnterpriseID = "E0HOME"
	srv.AddUser(slacktest.User{ID: "U10", Name: "ext", Email: "bob@example.com", TeamID: "T0OTHER", EnterpriseID: "E0OTHER"})
	srv.AddUser(slacktest.User{ID: "U11", Name: "stranger", TeamID: "T0OTHER", IsStranger: true})
	srv.AddUser(slacktest.User{ID: "U12", Name: "gone", Email: "gone@example.com", Deleted: true})
	srv.AddUser(slacktest.User{ID: "U13", Name: "unconfirmed", Email: "bob@example.com", EmailUnconfirmed: true})
	srv.AddUser(slacktest.User{ID: "U14", Name: "app", IsBot: true, IsAppUser: true})
	api := newAPI(srv)
	ctx := t.Context()

	auth, err := api.AuthTestContext(ctx)
	if err != nil || auth.TeamID != srv.TeamID || auth.EnterpriseID != "E0HOME" {
		t.Fatalf("auth.test = %+v, %v; want team %s, enterprise E0HOME", auth, err, srv.TeamID)
	}
	tests := []struct {
		id    string
		check func(u *slack.User) bool
	}{
		{"U1", func(u *slack.User) bool {
			return u.TeamID == srv.TeamID && u.IsEmailConfirmed && !u.IsStranger && !u.Deleted && u.Enterprise.EnterpriseID == "E0HOME" && len(u.Enterprise.Teams) == 1 && u.Enterprise.Teams[0] == srv.TeamID
		}},
		{"U10", func(u *slack.User) bool {
			return u.TeamID == "T0OTHER" && u.Profile.Team == "T0OTHER" && u.Enterprise.EnterpriseID == "E0OTHER" && u.Profile.Email == "bob@example.com"
		}},
		{"U11", func(u *slack.User) bool { return u.IsStranger && u.TeamID == "T0OTHER" }},
		{"U12", func(u *slack.User) bool { return u.Deleted }},
		{"U13", func(u *slack.User) bool { return !u.IsEmailConfirmed && u.Profile.Email == "bob@example.com" }},
		{"U14", func(u *slack.User) bool { return u.IsBot && u.IsAppUser && !u.IsEmailConfirmed }},
	}
	for _, tt := range tests {
		u, err := api.GetUserInfoContext(ctx, tt.id)
		if err != nil {
			t.Fatalf("users.info %s: %v", tt.id, err)
		}
		if !tt.check(u) {
			t.Errorf("users.info %s = %+v", tt.id, u)
		}
	}
}

// TestRevokedTokenIsRefused: a revoked token is answered token_revoked, as
// Slack answers it, through slack-go's own error type; for the app-level
// token that makes socketmode give up instead of retrying; the other token
// keeps working, and RestoreToken accepts it again.
func TestRevokedTokenIsRefused(t *testing.T) {
	srv := newServer(t)
	api := newAPI(srv)
	ctx := t.Context()
	srv.RevokeToken(srv.BotToken)
	_, err := api.AuthTestContext(ctx)
	var se slack.SlackErrorResponse
	if !errors.As(err, &se) || se.Err != "token_revoked" {
		t.Fatalf("auth.test with a revoked bot token: %v, want token_revoked", err)
	}
	if _, _, err := api.StartSocketModeContext(ctx); err != nil {
		t.Errorf("apps.connections.open with the app token while the bot token is revoked: %v", err)
	}

	srv.RevokeToken(srv.AppToken)
	if _, _, err := api.StartSocketModeContext(ctx); !errors.As(err, &se) || se.Err != "token_revoked" {
		t.Errorf("apps.connections.open with a revoked app token: %v, want token_revoked", err)
	}
	sm := socketmode.New(api)
	if err := sm.RunContext(ctx); err == nil || err.Error() != "token_revoked" {
		t.Errorf("socketmode.RunContext with a revoked app token = %v, want token_revoked (fatal, no retry)", err)
	}

	srv.RestoreToken(srv.BotToken)
	if _, err := api.AuthTestContext(ctx); err != nil {
		t.Errorf("auth.test after RestoreToken: %v", err)
	}
}
