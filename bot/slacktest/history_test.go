package slacktest_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/slack-go/slack"

	"github.com/symbot/symbot/bot/slacktest"
)

// TestPostMetadataAndHistory: metadata posted with chat.postMessage is
// stored and read back by conversations.history (only with
// include_all_metadata), newest first, a page at a time, between oldest
// and latest.
func TestPostMetadataAndHistory(t *testing.T) {
	srv := newServer(t)
	api := newAPI(srv)
	ctx := t.Context()
	var tss []string
	for i, id := range []string{"1", "2", "3", "4", "5"} {
		opts := []slack.MsgOption{slack.MsgOptionText("message "+id, false)}
		if i%2 == 0 {
			opts = append(opts, slack.MsgOptionMetadata(slack.SlackMetadata{EventType: "symbot_job", EventPayload: map[string]any{"job_id": id}}))
		}
		_, ts, err := api.PostMessageContext(ctx, "C1", opts...)
		if err != nil {
			t.Fatalf("PostMessage %s: %v", id, err)
		}
		tss = append(tss, ts)
	}
	// A thread reply is not part of the channel's history.
	if _, _, err := api.PostMessageContext(ctx, "C1", slack.MsgOptionText("reply", false), slack.MsgOptionTS(tss[0])); err != nil {
		t.Fatal(err)
	}
	m, _ := srv.Message(slacktest.MessageRef{Channel: "C1", TS: tss[2]})
	if m.Metadata == nil || m.Metadata.EventType != "symbot_job" || string(m.Metadata.EventPayload) != `{"job_id":"3"}` {
		t.Errorf("stored metadata = %+v, want symbot_job {\"job_id\":\"3\"}", m.Metadata)
	}

	var got []string
	cursor := ""
	pages := 0
	for {
		h, err := api.GetConversationHistoryContext(ctx, &slack.GetConversationHistoryParameters{
			ChannelID: "C1", Oldest: tss[0], Limit: 2, Cursor: cursor, IncludeAllMetadata: true})
		if err != nil {
			t.Fatalf("history: %v", err)
		}
		pages++
		for _, m := range h.Messages {
			got = append(got, m.Text+"|"+m.Metadata.EventType+"|"+func() string { s, _ := m.Metadata.EventPayload["job_id"].(string); return s }())
		}
		if !h.HasMore {
			if h.ResponseMetaData.NextCursor != "" {
				t.Errorf("last page has next_cursor %q", h.ResponseMetaData.NextCursor)
			}
			break
		}
		cursor = h.ResponseMetaData.NextCursor
	}
	want := "message 5|symbot_job|5,message 4||,message 3|symbot_job|3,message 2||"
	if strings.Join(got, ",") != want || pages != 2 {
		t.Errorf("history after the first message, 2 a page = %v in %d pages, want %s in 2", got, pages, want)
	}

	h, err := api.GetConversationHistoryContext(ctx, &slack.GetConversationHistoryParameters{
		ChannelID: "C1", Oldest: tss[0], Latest: tss[2], Inclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Messages) != 3 || h.Messages[0].Timestamp != tss[2] || h.Messages[2].Timestamp != tss[0] || h.HasMore {
		t.Errorf("inclusive oldest..latest = %d messages, has_more %t; want messages 3, 2, 1", len(h.Messages), h.HasMore)
	}
	if h.Messages[0].Metadata.EventType != "" {
		t.Errorf("metadata %+v returned without include_all_metadata", h.Messages[0].Metadata)
	}
}

// TestPostMetadataValidated: metadata that is not a JSON object is an
// error; one without a usable event_type or payload is dropped with the
// warning invalid_metadata_schema, and the message is posted.
func TestPostMetadataValidated(t *testing.T) {
	srv := newServer(t)
	for _, tc := range []struct {
		name, metadata, wantErr, wantWarning string
	}{
		{"not json", `{"event_type":`, "invalid_metadata_format", ""},
		{"not an object", `["symbot_job"]`, "invalid_metadata_format", ""},
		{"period in event_type", `{"event_type":"symbot.job","event_payload":{}}`, "", "invalid_metadata_schema"},
		{"no event_type", `{"event_payload":{"a":"b"}}`, "", "invalid_metadata_schema"},
		{"payload not an object", `{"event_type":"symbot_job","event_payload":"x"}`, "", "invalid_metadata_schema"},
		{"valid", `{"event_type":"symbot_job","event_payload":{"job_id":"7"}}`, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := postForm(t, srv, "chat.postMessage", map[string]string{"channel": "C1", "text": "hi", "metadata": tc.metadata})
			if tc.wantErr != "" {
				if resp["ok"] != false || resp["error"] != tc.wantErr {
					t.Fatalf("answer %v, want error %s", resp, tc.wantErr)
				}
				return
			}
			if resp["ok"] != true {
				t.Fatalf("answer %v, want ok", resp)
			}
			w, _ := resp["warning"].(string)
			if w != tc.wantWarning {
				t.Errorf("warning %q, want %q", w, tc.wantWarning)
			}
			ts, _ := resp["ts"].(string)
			m, _ := srv.Message(slacktest.MessageRef{Channel: "C1", TS: ts})
			if (m.Metadata != nil) != (tc.wantWarning == "") {
				t.Errorf("stored metadata %+v with warning %q", m.Metadata, tc.wantWarning)
			}
		})
	}
}

// TestHistoryScopesAndMembership: conversations.history needs the history
// scope of the conversation's kind and the bot in it.
func TestHistoryScopesAndMembership(t *testing.T) {
	srv := newServer(t)
	srv.AddChannel(slacktest.Channel{ID: "G1", Name: "private", BotIsMember: true, IsPrivate: true})
	api := newAPI(srv)
	ctx := t.Context()
	dm := srv.IMChannel("U1")
	history := func(ch string) error {
		_, err := api.GetConversationHistoryContext(ctx, &slack.GetConversationHistoryParameters{ChannelID: ch, IncludeAllMetadata: true})
		return err
	}
	code := func(err error) (string, string) {
		var se slack.SlackErrorResponse
		if errors.As(err, &se) {
			return se.Err, se.Needed
		}
		if err != nil {
			return err.Error(), ""
		}
		return "", ""
	}
	for _, ch := range []string{"C1", "G1", dm} {
		if err := history(ch); err != nil {
			t.Errorf("history of %s with the default scopes: %v", ch, err)
		}
	}
	if c, _ := code(history("C2")); c != "not_in_channel" {
		t.Errorf("history of a public channel without the bot: %q, want not_in_channel", c)
	}
	if c, _ := code(history("C404")); c != "channel_not_found" {
		t.Errorf("history of an unknown channel: %q, want channel_not_found", c)
	}
	srv.SetScopes("chat:write", "im:write", "users:read")
	for ch, want := range map[string]string{"C1": "channels:history", "G1": "groups:history", dm: "im:history"} {
		if c, needed := code(history(ch)); c != "missing_scope" || needed != want {
			t.Errorf("history of %s without history scopes: %q needing %q, want missing_scope needing %s", ch, c, needed, want)
		}
	}
	srv.SetScopes("chat:write", "im:history")
	if err := history(dm); err != nil {
		t.Errorf("history of an IM with im:history only: %v", err)
	}
	srv.FailNext("conversations.history", "missing_scope", 1)
	if c, needed := code(history(dm)); c != "missing_scope" || !strings.Contains(needed, "channels:history") {
		t.Errorf("injected missing_scope: %q needing %q", c, needed)
	}
	srv.SetScopes(slacktest.DefaultScopes...)
	for _, bad := range []slack.GetConversationHistoryParameters{{ChannelID: "C1", Cursor: "nope"}, {ChannelID: "C1", Oldest: "yesterday"}} {
		if c, _ := code(func() error { _, err := api.GetConversationHistoryContext(ctx, &bad); return err }()); c != "invalid_cursor" && c != "invalid_ts_oldest" {
			t.Errorf("history with %+v: %q, want invalid_cursor or invalid_ts_oldest", bad, c)
		}
	}
}

// postForm makes a form-encoded Web API call with the bot token and
// returns the decoded answer.
func postForm(t *testing.T, srv *slacktest.Server, method string, params map[string]string) map[string]any {
	t.Helper()
	form := url.Values{"token": {srv.BotToken}}
	for k, v := range params {
		form.Set(k, v)
	}
	resp, err := http.PostForm(srv.APIURL()+method, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRepliesWithMetadata: conversations.replies reads a thread oldest
// first, a page at a time, with the replies' metadata.
func TestRepliesWithMetadata(t *testing.T) {
	srv := newServer(t)
	api := newAPI(srv)
	ctx := t.Context()
	_, parent, err := api.PostMessageContext(ctx, "C1", slack.MsgOptionText("parent", false))
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"1", "2", "3"} {
		if _, _, err := api.PostMessageContext(ctx, "C1", slack.MsgOptionText("reply "+id, false), slack.MsgOptionTS(parent),
			slack.MsgOptionMetadata(slack.SlackMetadata{EventType: "symbot_job", EventPayload: map[string]any{"job_id": id}})); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := api.PostMessageContext(ctx, "C1", slack.MsgOptionText("another top-level message", false)); err != nil {
		t.Fatal(err)
	}
	var got []string
	cursor := ""
	for pages := 0; ; pages++ {
		if pages == 3 {
			t.Fatalf("more than 3 pages of 2 for 4 messages: %v", got)
		}
		msgs, more, next, err := api.GetConversationRepliesContext(ctx, &slack.GetConversationRepliesParameters{
			ChannelID: "C1", Timestamp: parent, Limit: 2, Cursor: cursor, IncludeAllMetadata: true})
		if err != nil {
			t.Fatalf("replies: %v", err)
		}
		for _, m := range msgs {
			id, _ := m.Metadata.EventPayload["job_id"].(string)
			got = append(got, m.Text+"|"+id)
		}
		if !more {
			break
		}
		cursor = next
	}
	if want := "parent|,reply 1|1,reply 2|2,reply 3|3"; strings.Join(got, ",") != want {
		t.Errorf("thread = %v, want %s", got, want)
	}
	if _, _, _, err := api.GetConversationRepliesContext(ctx, &slack.GetConversationRepliesParameters{ChannelID: "C1", Timestamp: "1.000001"}); err == nil || !strings.Contains(err.Error(), "thread_not_found") {
		t.Errorf("replies of no message: %v, want thread_not_found", err)
	}
}
