package bot

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/slack-go/slack"
)

// Through Transport, slack-go's PostMessage gives the same channel, ts and
// error (Slack errors, warnings' answers, rate limits, HTTP errors, bodies
// that are not JSON) as without it, while the message echoed back no
// longer reaches slack-go.
func TestTransportPostsAsBeforeWithoutTheEchoedMessage(t *testing.T) {
	answers := []struct {
		name, header, body string
		status             int
	}{
		{"ok", "", `{"ok":true,"channel":"C1","ts":"1700000000.000100","message":{"type":"message","text":"hi","ts":"1700000000.000100","bot_id":"B1","blocks":[{"type":"section","block_id":"x","text":{"type":"mrkdwn","text":"*hi*"}}],"metadata":{"event_type":"symbot_job","event_payload":{"job_id":"7"}}}}`, 200},
		{"ok with a warning", "", `{"ok":true,"channel":"C1","ts":"1.2","warning":"missing_charset","response_metadata":{"warnings":["missing_charset"]},"message":{"text":"x"}}`, 200},
		{"slack error", "", `{"ok":false,"error":"channel_not_found"}`, 200},
		{"scope error", "", `{"ok":false,"error":"missing_scope","needed":"chat:write","provided":"users:read","response_metadata":{"messages":["[ERROR] x"]}}`, 200},
		{"invalid blocks", "", `{"ok":false,"error":"invalid_blocks","errors":["must be more than 0 characters [json-pointer:/blocks/0/text/text]"],"response_metadata":{"messages":["[ERROR] must be more than 0 characters [json-pointer:/blocks/0/text/text]"]}}`, 200},
		{"rate limited", "3", `{"ok":false,"error":"ratelimited"}`, 429},
		{"server error", "", `<html>oops</html>`, 503},
		{"not json", "", `ok`, 200},
	}
	var seen string
	for _, a := range answers {
		t.Run(a.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if a.header != "" {
					w.Header().Set("Retry-After", a.header)
				}
				w.Header().Set("Content-Type", "application/json; charset=utf-8")
				w.WriteHeader(a.status)
				_, _ = io.WriteString(w, a.body)
			}))
			defer srv.Close()
			plain := slack.New("xoxb-test", slack.OptionAPIURL(srv.URL+"/"))
			trimmed := slack.New("xoxb-test", slack.OptionAPIURL(srv.URL+"/"),
				slack.OptionHTTPClient(&http.Client{Transport: spy{Transport(http.DefaultTransport), &seen}}))
			opts := []slack.MsgOption{slack.MsgOptionText("hi", false), slack.MsgOptionBlocks(slack.NewSectionBlock(mrkdwn("*hi*"), nil, nil))}
			ch1, ts1, err1 := plain.PostMessageContext(t.Context(), "C1", opts...)
			ch2, ts2, err2 := trimmed.PostMessageContext(t.Context(), "C1", opts...)
			if ch1 != ch2 || ts1 != ts2 || !reflect.DeepEqual(err1, err2) {
				t.Fatalf("through Transport: %q %q %#v; without: %q %q %#v", ch2, ts2, err2, ch1, ts1, err1)
			}
			var rl *slack.RateLimitedError
			if a.status == 429 && !errors.As(err2, &rl) {
				t.Fatalf("rate limit answered %#v, want a *slack.RateLimitedError", err2)
			}
			if a.status == 200 && strings.HasPrefix(a.body, "{") && strings.Contains(seen, `"message"`) {
				t.Fatalf("slack-go got the echoed message: %s", seen)
			}
		})
	}
}

// spy records the body slack-go reads.
type spy struct {
	next http.RoundTripper
	body *string
}

func (s spy) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := s.next.RoundTrip(r)
	if err != nil {
		return resp, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	*s.body = string(b)
	resp.Body = io.NopCloser(strings.NewReader(*s.body))
	return resp, nil
}
