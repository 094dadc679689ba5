// The bot's HTTP transport: chat.postMessage answers without the message.

package bot

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// Transport returns the HTTP transport for the slack-go client the bot
// uses: every call goes through next unchanged, except that a successful
// (HTTP 200, JSON) chat.postMessage answer reaches slack-go without its
// "message" field, the posted message echoed back with all its blocks.
// slack-go's PostMessage decodes that whole message and then returns only
// the channel and ts, which is all the bot reads; decoding it cost more
// CPU per approval message than the rest of the answer. Everything
// slack-go does read (ok, error, errors, warning, response_metadata,
// needed, provided, channel, ts, message_ts, scheduled_message_id, text)
// is passed on as Slack sent it, so errors and warnings surface exactly
// as before; rate limits and other HTTP errors are not touched. An
// answer that is not a JSON object is passed on as it came.
//
// A client with this transport must not use slack-go's
// PostMessageWithResponse (its Message would be empty); the bot does not.
func Transport(next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return postTrimmer{next}
}

type postTrimmer struct{ next http.RoundTripper }

// postAnswer is a chat.postMessage answer as slack-go reads it, without
// the message.
type postAnswer struct {
	Ok                 bool            `json:"ok"`
	Error              string          `json:"error,omitempty"`
	Warning            string          `json:"warning,omitempty"`
	Errors             json.RawMessage `json:"errors,omitempty"`
	ResponseMetadata   json.RawMessage `json:"response_metadata,omitempty"`
	Needed             string          `json:"needed,omitempty"`
	Provided           string          `json:"provided,omitempty"`
	Channel            string          `json:"channel,omitempty"`
	TS                 string          `json:"ts,omitempty"`
	MessageTS          string          `json:"message_ts,omitempty"`
	ScheduledMessageID string          `json:"scheduled_message_id,omitempty"`
	Text               string          `json:"text,omitempty"`
}

func (t postTrimmer) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusOK || !strings.HasSuffix(req.URL.Path, "/chat.postMessage") {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	var a postAnswer
	if json.Unmarshal(body, &a) == nil {
		if trimmed, err := json.Marshal(a); err == nil {
			body = trimmed
		}
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	return resp, nil
}
