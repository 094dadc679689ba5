package bot

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slack-go/slack"
)

// responseURLRecorder is a response_url endpoint on 127.0.0.1 that keeps
// the messages posted to it.
type responseURLRecorder struct {
	mu   sync.Mutex
	msgs []ackMessage
}

func (r *responseURLRecorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	var m struct {
		ResponseType string          `json:"response_type"`
		Text         string          `json:"text"`
		Blocks       json.RawMessage `json:"blocks"`
	}
	_ = json.Unmarshal(body, &m)
	r.mu.Lock()
	r.msgs = append(r.msgs, ackMessage{ResponseType: m.ResponseType, Text: m.Text})
	r.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"ok":true}`)
}

func (r *responseURLRecorder) texts() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, m := range r.msgs {
		out = append(out, m.Text)
	}
	return out
}

// queued returns the acks waiting in q without blocking.
func queued(q *ackQueue) []ackItem {
	var out []ackItem
	for {
		select {
		case a, ok := <-q.ch:
			if !ok {
				return out
			}
			out = append(out, a)
		default:
			return out
		}
	}
}

// TestAnswerRidesInTheAckOnlyWhenItCan: the first answer of work that
// settles a slash command's envelope later goes in the ack; every other
// answer goes by the response_url as before: one to an envelope
// acknowledged already, a second answer, one too large for an ack, one
// after the window, one while Run stops (ack queue closed), and one of
// work cut short by shutdown (which leaves the envelope unacknowledged).
func TestAnswerRidesInTheAckOnlyWhenItCan(t *testing.T) {
	rec := &responseURLRecorder{}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	b := New(slack.New("xoxb-test", slack.OptionAPIURL(srv.URL+"/api/")), Config{})
	big := strings.Repeat("x", 2800)
	var blocks []slack.Block
	for range 8 {
		blocks = append(blocks, slack.NewSectionBlock(mrkdwn(big), nil, nil))
	}
	type answer struct {
		text   string
		blocks []slack.Block
	}
	tests := []struct {
		name    string
		before  func(settle func(any), acks *ackQueue)
		ctx     func() context.Context
		window  time.Duration
		answers []answer
		// wantAck is the text of the queued ack's payload ("" for none);
		// wantURL the texts posted to the response_url.
		wantAcks int
		wantAck  string
		wantURL  []string
	}{
		{name: "first answer", answers: []answer{{text: "one"}}, wantAcks: 1, wantAck: "one"},
		{name: "acknowledged already", before: func(settle func(any), _ *ackQueue) { settle(nil) }, answers: []answer{{text: "one"}}, wantAcks: 1, wantURL: []string{"one"}},
		{name: "second answer", answers: []answer{{text: "one"}, {text: "two"}}, wantAcks: 1, wantAck: "one", wantURL: []string{"two"}},
		{name: "too large for an ack", answers: []answer{{text: "one", blocks: blocks}}, wantURL: []string{"one"}},
		{name: "after the window", window: -time.Second, answers: []answer{{text: "one"}}, wantURL: []string{"one"}},
		{name: "ack queue closed", before: func(_ func(any), acks *ackQueue) { acks.close() }, answers: []answer{{text: "one"}}, wantURL: []string{"one"}},
		{name: "cut short", ctx: func() context.Context {
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			return ctx
		}, answers: []answer{{text: "one"}}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec.mu.Lock()
			rec.msgs = nil
			rec.mu.Unlock()
			acks := newAckQueue(4)
			id := "env-" + string(rune('a'+i))
			settle, reply := b.settlers(acks, id)
			if tt.before != nil {
				tt.before(settle, acks)
			}
			window := tt.window
			if window == 0 {
				window = time.Minute
			}
			to := replyTo{User: "U1", ResponseURL: srv.URL + "/response/1", ack: &ackReply{send: reply, until: time.Now().Add(window)}}
			ctx := t.Context()
			if tt.ctx != nil {
				ctx = tt.ctx()
			}
			for _, a := range tt.answers {
				b.tell(ctx, to, a.text, a.blocks...)
			}
			got := queued(acks)
			if len(got) != tt.wantAcks {
				t.Fatalf("acks queued = %d (%+v), want %d", len(got), got, tt.wantAcks)
			}
			if tt.wantAcks > 0 {
				m, _ := got[0].payload.(ackMessage)
				if got[0].envelopeID != id || m.Text != tt.wantAck {
					t.Errorf("ack = %s %+v, want %s with text %q", got[0].envelopeID, got[0].payload, id, tt.wantAck)
				}
				if tt.wantAck != "" && m.ResponseType != slack.ResponseTypeEphemeral {
					t.Errorf("ack response_type = %q, want ephemeral", m.ResponseType)
				}
			}
			if urls := rec.texts(); strings.Join(urls, "|") != strings.Join(tt.wantURL, "|") {
				t.Errorf("response_url got %q, want %q", urls, tt.wantURL)
			}
			// A redelivery is acknowledged with the answer only when the
			// answer went in the ack.
			prev, _ := b.recent.get("env|"+id, time.Now())
			if m, ok := prev.(ackMessage); ok != (tt.wantAck != "") || (ok && m.Text != tt.wantAck) {
				t.Errorf("remembered ack payload %+v, want one with %q", prev, tt.wantAck)
			}
		})
	}
}
