package slacktest_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"

	"github.com/symbot/symbot/bot/slacktest"
)

func unix(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }

func TestScheduleAndDeleteMessage(t *testing.T) {
	srv := newServer(t)
	api := newAPI(srv)
	ctx := t.Context()
	postAt := time.Now().Add(24 * time.Hour)

	ch, id, err := api.ScheduleMessageContext(ctx, "C1", unix(postAt), slack.MsgOptionText("preflight", false), slack.MsgOptionBlocks(approvalBlocks("b")...))
	if err != nil {
		t.Fatalf("ScheduleMessage: %v", err)
	}
	if ch != "C1" || !strings.HasPrefix(id, "Q") {
		t.Errorf("ScheduleMessage = (%q, %q), want C1 and a Q... id", ch, id)
	}
	got := srv.ScheduledMessages("C1")
	if len(got) != 1 {
		t.Fatalf("scheduled messages = %+v, want 1", got)
	}
	if sm := got[0]; sm.ID != id || sm.Channel != "C1" || sm.Text != "preflight" || sm.PostAt.Unix() != postAt.Unix() || !strings.Contains(string(sm.Blocks), `"approve"`) {
		t.Errorf("scheduled message = %+v", sm)
	}
	if msgs := srv.Messages("C1"); len(msgs) != 0 {
		t.Errorf("a scheduled message shows in the history: %+v", msgs)
	}
	if other := srv.ScheduledMessages("C2"); len(other) != 0 {
		t.Errorf("C2 scheduled = %+v, want none", other)
	}

	list, _, err := api.GetScheduledMessagesContext(ctx, &slack.GetScheduledMessagesParameters{Channel: "C1"})
	if err != nil {
		t.Fatalf("GetScheduledMessages: %v", err)
	}
	if len(list) != 1 || list[0].ID != id || list[0].Channel != "C1" || int64(list[0].PostAt) != postAt.Unix() || list[0].Text != "preflight" {
		t.Errorf("chat.scheduledMessages.list = %+v", list)
	}

	ok, err := api.DeleteScheduledMessageContext(ctx, &slack.DeleteScheduledMessageParameters{Channel: ch, ScheduledMessageID: id})
	if err != nil || !ok {
		t.Fatalf("DeleteScheduledMessage = %v, %v; want true, nil", ok, err)
	}
	if got := srv.ScheduledMessages(""); len(got) != 0 {
		t.Errorf("after delete: scheduled = %+v, want none", got)
	}
	_, err = api.DeleteScheduledMessageContext(ctx, &slack.DeleteScheduledMessageParameters{Channel: ch, ScheduledMessageID: id})
	var se slack.SlackErrorResponse
	if !errors.As(err, &se) || se.Err != "invalid_scheduled_message_id" {
		t.Errorf("second delete: got %v, want invalid_scheduled_message_id", err)
	}
	if calls := srv.CallsTo("chat.scheduleMessage"); len(calls) != 1 || calls[0].Params.Get("post_at") != unix(postAt) || calls[0].Params.Has("token") {
		t.Errorf("recorded calls = %+v", calls)
	}
}

func TestScheduleMessageToUserIsAnIM(t *testing.T) {
	srv := newServer(t)
	api := newAPI(srv)
	ch, _, err := api.ScheduleMessageContext(t.Context(), "U1", unix(time.Now().Add(time.Hour)), slack.MsgOptionText("later", false))
	if err != nil {
		t.Fatalf("ScheduleMessage: %v", err)
	}
	if want := srv.IMChannel("U1"); ch != want {
		t.Errorf("channel = %q, want the IM %q", ch, want)
	}
	if got := srv.ScheduledMessages(ch); len(got) != 1 || got[0].Text != "later" {
		t.Errorf("scheduled in IM = %+v", got)
	}
}

func TestScheduleMessageErrors(t *testing.T) {
	srv := newServer(t)
	srv.AddChannel(slacktest.Channel{ID: "G1", Name: "secret", IsPrivate: true})
	api := newAPI(srv)
	ctx := t.Context()
	now := time.Now()
	schedule := func(ch, postAt string, opts ...slack.MsgOption) func() error {
		return func() error {
			if len(opts) == 0 {
				opts = []slack.MsgOption{slack.MsgOptionText("x", false)}
			}
			_, _, err := api.ScheduleMessageContext(ctx, ch, postAt, opts...)
			return err
		}
	}
	del := func(ch, id string) func() error {
		return func() error {
			_, err := api.DeleteScheduledMessageContext(ctx, &slack.DeleteScheduledMessageParameters{Channel: ch, ScheduledMessageID: id})
			return err
		}
	}
	_, farID, err := api.ScheduleMessageContext(ctx, "C1", unix(now.Add(time.Hour)), slack.MsgOptionText("x", false))
	if err != nil {
		t.Fatal(err)
	}
	_, soonID, err := api.ScheduleMessageContext(ctx, "C1", unix(now.Add(30*time.Second)), slack.MsgOptionText("x", false))
	if err != nil {
		t.Fatal(err)
	}
	hour := unix(now.Add(time.Hour))
	for _, tc := range []struct {
		name string
		call func() error
		want string
	}{
		{"unknown channel", schedule("C999", hour), "channel_not_found"},
		{"bot not in public channel", schedule("C2", hour), "not_in_channel"},
		{"bot not in private channel", schedule("G1", hour), "channel_not_found"},
		{"post_at in the past", schedule("C1", unix(now.Add(-time.Minute))), "time_in_past"},
		{"post_at more than 120 days ahead", schedule("C1", unix(now.Add(121*24*time.Hour))), "time_too_far"},
		{"post_at not a number", schedule("C1", "tomorrow"), "invalid_time"},
		{"post_at missing", schedule("C1", ""), "invalid_time"},
		{"no text", schedule("C1", hour, slack.MsgOptionText("", false)), "no_text"},
		{"thread of unknown message", schedule("C1", hour, slack.MsgOptionText("x", false), slack.MsgOptionTS("1.000001")), "thread_not_found"},
		{"delete unknown id", del("C1", "Q0000000000"), "invalid_scheduled_message_id"},
		{"delete in another channel", del("C2", farID), "invalid_scheduled_message_id"},
		{"delete in unknown channel", del("C999", farID), "channel_not_found"},
		{"delete within 60 seconds of posting", del("C1", soonID), "invalid_scheduled_message_id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			var se slack.SlackErrorResponse
			if !errors.As(err, &se) || se.Err != tc.want {
				t.Fatalf("got %v, want slack error %q", err, tc.want)
			}
		})
	}
	if got := srv.ScheduledMessages("C1"); len(got) != 2 || got[0].ID != soonID || got[1].ID != farID {
		t.Errorf("scheduled after the failures = %+v, want the two good ones, soonest first", got)
	}
}

func TestScheduleMessageTooManyInWindow(t *testing.T) {
	srv := newServer(t)
	api := newAPI(srv)
	ctx := t.Context()
	at := time.Now().Add(time.Hour)
	for i := range slacktest.MaxScheduledPerWindow {
		if _, _, err := api.ScheduleMessageContext(ctx, "C1", unix(at.Add(time.Duration(i)*time.Second)), slack.MsgOptionText("x", false)); err != nil {
			t.Fatalf("message %d: %v", i+1, err)
		}
	}
	_, _, err := api.ScheduleMessageContext(ctx, "C1", unix(at.Add(time.Minute)), slack.MsgOptionText("x", false))
	var se slack.SlackErrorResponse
	if !errors.As(err, &se) || se.Err != "restricted_too_many" {
		t.Fatalf("one more in the window: got %v, want restricted_too_many", err)
	}
	if _, _, err := api.ScheduleMessageContext(ctx, "C1", unix(at.Add(time.Hour)), slack.MsgOptionText("x", false)); err != nil {
		t.Errorf("outside the window: %v", err)
	}
}

func TestScheduledMessageIsPostedWhenDue(t *testing.T) {
	srv := newServer(t)
	srv.AddChannel(slacktest.Channel{ID: "C3", Name: "left", BotIsMember: true})
	api := newAPI(srv)
	ctx := t.Context()
	postAt := unix(time.Now().Add(time.Second))
	if _, _, err := api.ScheduleMessageContext(ctx, "C1", postAt, slack.MsgOptionText("on time", false)); err != nil {
		t.Fatalf("ScheduleMessage C1: %v", err)
	}
	if _, _, err := api.ScheduleMessageContext(ctx, "C3", postAt, slack.MsgOptionText("never", false)); err != nil {
		t.Fatalf("ScheduleMessage C3: %v", err)
	}
	srv.SetBotMembership("C3", false) // the bot leaves before the message is due
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := srv.WaitFor(wctx, func() bool { return len(srv.ScheduledMessages("")) == 0 }); err != nil {
		t.Fatalf("scheduled messages still pending: %+v", srv.ScheduledMessages(""))
	}
	msgs := srv.Messages("C1")
	if len(msgs) != 1 || msgs[0].Text != "on time" || msgs[0].User != srv.BotUserID() {
		t.Errorf("C1 history = %+v, want the scheduled message posted by the bot", msgs)
	}
	if msgs := srv.Messages("C3"); len(msgs) != 0 {
		t.Errorf("C3 history = %+v, want nothing (the bot left)", msgs)
	}
}

func TestScheduleMessageRawResponse(t *testing.T) {
	srv := newServer(t)
	postAt := unix(time.Now().Add(time.Hour))
	resp, err := http.PostForm(srv.APIURL()+"chat.scheduleMessage", url.Values{
		"token": {srv.BotToken}, "channel": {"approvals"}, "post_at": {postAt}, "text": {"hi"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		OK                 bool           `json:"ok"`
		Channel            string         `json:"channel"`
		ScheduledMessageID string         `json:"scheduled_message_id"`
		PostAt             string         `json:"post_at"`
		Message            map[string]any `json:"message"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("decode: %v", err)
	}
	if !body.OK || body.Channel != "C1" || body.PostAt != postAt || !strings.HasPrefix(body.ScheduledMessageID, "Q") ||
		body.Message["type"] != "delayed_message" || body.Message["text"] != "hi" || body.Message["bot_id"] != srv.BotID {
		t.Errorf("response = %+v", body)
	}
}
