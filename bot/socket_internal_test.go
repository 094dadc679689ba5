package bot

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/slack-go/slack"
)

// A block_actions payload as Slack sends it for a click on an approval
// message: the message itself (with its blocks) rides along.
const clickPayload = `{"type":"block_actions","team":{"id":"T0SIM0001","domain":"sim"},"user":{"id":"U0BOB","username":"bob","name":"bob","team_id":"T0SIM0001"},"api_app_id":"A0SIM0001","token":"t","container":{"type":"message","message_ts":"1700000000.000100","channel_id":"C0ACCESS","is_ephemeral":false},"trigger_id":"1.2.abc","channel":{"id":"C0ACCESS","name":"access"},"message":{"type":"message","user":"U0SYMBOT01","ts":"1700000000.000100","text":"Request SYM-1","blocks":[{"type":"section","block_id":"head","text":{"type":"mrkdwn","text":"*alice* asks for *admin*"}},{"type":"context","elements":[{"type":"mrkdwn","text":"reason: on call"}]},{"type":"actions","block_id":"decide","elements":[{"type":"button","action_id":"sym_approve","text":{"type":"plain_text","text":"Approve"},"style":"primary","value":"SYM-1|n1"},{"type":"button","action_id":"sym_deny","text":{"type":"plain_text","text":"Deny"},"style":"danger","value":"SYM-1|n1"}]}],"metadata":{"event_type":"sym_request","event_payload":{"id":"SYM-1"}}},"state":{"values":{}},"response_url":"https://hooks.slack.com/actions/T/1/x","actions":[{"type":"button","action_id":"sym_approve","block_id":"decide","text":{"type":"plain_text","text":"Approve"},"value":"SYM-1|n1","style":"primary","action_ts":"1700000001.000200"}]}`

// A view_submission has no message: it decodes as slack-go decodes it.
const submitPayload = `{"type":"view_submission","team":{"id":"T0SIM0001"},"user":{"id":"U0ALICE"},"trigger_id":"1.4.ghi","view":{"id":"V1","type":"modal","callback_id":"sym_request","private_metadata":"{\"c\":\"C0ACCESS\"}","blocks":[{"type":"input","block_id":"reason","label":{"type":"plain_text","text":"Reason"},"element":{"type":"plain_text_input","action_id":"reason"}}],"state":{"values":{"reason":{"reason":{"type":"plain_text_input","value":"on call"}}}}}}`

// TestDecodeInteractionLeavesOnlyTheMessageOut: the interaction symbot
// decodes is slack-go's decoding of the same payload with the message
// (which symbot never reads) left out, field for field.
func TestDecodeInteractionLeavesOnlyTheMessageOut(t *testing.T) {
	for name, payload := range map[string]string{"block_actions": clickPayload, "view_submission": submitPayload} {
		t.Run(name, func(t *testing.T) {
			var want slack.InteractionCallback
			if err := json.Unmarshal([]byte(payload), &want); err != nil {
				t.Fatal(err)
			}
			if name == "block_actions" && len(want.Message.Blocks.BlockSet) == 0 {
				t.Fatal("the test payload's message has no blocks to leave out")
			}
			want.Message = slack.Message{}
			got, err := decodeInteraction([]byte(payload))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("decoded\n%+v\nwant slack-go's decoding without the message\n%+v", got, want)
			}
			if name == "block_actions" {
				if len(got.ActionCallback.BlockActions) != 1 || got.ActionCallback.BlockActions[0].Value != "SYM-1|n1" || got.Container.MessageTs != "1700000000.000100" || got.User.ID != "U0BOB" || got.ResponseURL == "" {
					t.Errorf("what symbot reads of a click is missing: %+v", got)
				}
			}
		})
	}
	if _, err := decodeInteraction([]byte(`{"type":"block_actions",`)); err == nil || !strings.Contains(err.Error(), "unreadable interaction") {
		t.Errorf("broken payload: %v, want an unreadable interaction error", err)
	}
}

// TestParseEnvelope: each kind of message becomes the event slack-go
// would have made of it; disconnect asks for a new connection; the rest
// are errors the bot logs as bad messages.
func TestParseEnvelope(t *testing.T) {
	evt, err := parseEnvelope([]byte(`{"envelope_id":"e1","type":"slash_commands","accepts_response_payload":true,"retry_attempt":2,"retry_reason":"timeout","payload":{"user_id":"U0ALICE","command":"/sym","text":"whoami","channel_id":"C0ACCESS"}}`))
	if err != nil {
		t.Fatal(err)
	}
	cmd, ok := evt.Data.(slack.SlashCommand)
	if evt.Type != "slash_commands" || !ok || cmd.Text != "whoami" || cmd.UserID != "U0ALICE" || evt.Request == nil || evt.Request.EnvelopeID != "e1" || !evt.Request.AcceptsResponsePayload || evt.Request.RetryAttempt != 2 {
		t.Errorf("slash command envelope: %+v (request %+v)", evt, evt.Request)
	}
	evt, err = parseEnvelope([]byte(`{"envelope_id":"e3","type":"interactive","payload":` + clickPayload + `}`))
	if cb, ok := evt.Data.(slack.InteractionCallback); err != nil || evt.Type != "interactive" || !ok || cb.Type != slack.InteractionTypeBlockActions {
		t.Errorf("interactive envelope: %+v, %v", evt, err)
	}
	if evt, err := parseEnvelope([]byte(`{"type":"hello","num_connections":1}`)); err != nil || evt.Type != "hello" {
		t.Errorf("hello: %+v, %v", evt, err)
	}
	if _, err := parseEnvelope([]byte(`{"type":"disconnect","reason":"refresh_requested"}`)); !errors.Is(err, errSocketDisconnect) || !strings.Contains(err.Error(), "refresh_requested") {
		t.Errorf("disconnect: %v, want errSocketDisconnect naming the reason", err)
	}
	for frame, want := range map[string]string{
		`not json`: "unreadable socket mode message",
		`{"envelope_id":"e9","type":"unknown_type","payload":{}}`: `unknown type "unknown_type"`,
		`{"type":"slash_commands","payload":"a string"}`:          "unreadable slash command",
	} {
		if _, err := parseEnvelope([]byte(frame)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error with %q", frame, err, want)
		}
	}
}

// TestSocketAckLimits: an ack is refused when no connection is open (Slack
// delivers the envelope again) and when it is too large for Slack to take.
func TestSocketAckLimits(t *testing.T) {
	c := newSocketClient(slack.New("xoxb-test"), slog.New(slog.DiscardHandler), 0)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := c.ack(ctx, "e1", nil); !errors.Is(err, errSocketNotConnected) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("ack without a connection until its deadline: %v, want %v and the deadline", err, errSocketNotConnected)
	}
	big := map[string]string{"text": strings.Repeat("x", socketMaxResponse)}
	if err := c.ack(context.Background(), "e1", big); err == nil || !strings.Contains(err.Error(), "Slack drops") {
		t.Errorf("ack of 20 KB: %v, want the size refused", err)
	}
	if c.pingTimeout != defaultSocketPingTimeout {
		t.Errorf("default ping timeout %v, want %v", c.pingTimeout, defaultSocketPingTimeout)
	}
}

// TestSocketBackoff: 100 ms doubling, capped at 5 minutes, with up to 10%
// added.
func TestSocketBackoff(t *testing.T) {
	for n, base := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 5: 1600 * time.Millisecond, 12: 204800 * time.Millisecond, 13: socketBackoffMax, 40: socketBackoffMax, 1000: socketBackoffMax} {
		for range 20 {
			if d := socketBackoff(n); d < base || d > base+base/10 {
				t.Fatalf("socketBackoff(%d) = %v, want %v plus up to 10%%", n, d, base)
			}
		}
	}
}

// wsPeer is a WebSocket server for one client: what the client sends
// arrives on got.
type wsPeer struct {
	url string
	got chan []byte
}

func newWSPeer(t *testing.T) *wsPeer {
	t.Helper()
	p := &wsPeer{got: make(chan []byte, 8)}
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer conn.Close()
		for {
			_, data, err := conn.ReadMessage()
			if err != nil {
				return
			}
			p.got <- data
		}
	}))
	t.Cleanup(srv.Close)
	p.url = "ws" + strings.TrimPrefix(srv.URL, "http")
	return p
}

// TestSocketAckWaitsForTheNextConnection: an ack made while no connection
// is open (between a disconnect and its replacement) is sent on the next
// one, not dropped.
func TestSocketAckWaitsForTheNextConnection(t *testing.T) {
	peer := newWSPeer(t)
	c := newSocketClient(slack.New("xoxb-test"), slog.New(slog.DiscardHandler), 0)
	acked := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		acked <- c.ack(ctx, "e1", map[string]string{"text": "hi"})
	}()
	conn, _, err := websocket.DefaultDialer.Dial(peer.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- c.serve(ctx, conn) }()
	defer func() {
		cancel()
		<-served
	}()
	if err := within(t, acked, "the ack, once a connection opened"); err != nil {
		t.Fatalf("ack: %v", err)
	}
	data := within(t, peer.got, "the ack at the peer")
	var r struct {
		EnvelopeID string          `json:"envelope_id"`
		Payload    json.RawMessage `json:"payload"`
	}
	if err := json.Unmarshal(data, &r); err != nil || r.EnvelopeID != "e1" || string(r.Payload) != `{"text":"hi"}` {
		t.Errorf("peer got %s (%v), want the ack of e1 with its payload", data, err)
	}
}

// within returns what ch delivers, failing t if nothing comes in 30s.
func within[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(30 * time.Second):
		t.Fatalf("waited 30s for %s", what)
		panic("unreachable")
	}
}

// failingConn is a net.Conn whose writes fail once fail is set; its
// reads go on.
type failingConn struct {
	net.Conn
	fail atomic.Bool
}

func (f *failingConn) Write(b []byte) (int, error) {
	if f.fail.Load() {
		return 0, errors.New("write failed on purpose")
	}
	return f.Conn.Write(b)
}

// TestSocketFailedAckReplacesTheConnection: gorilla fails every write
// after one has, so an ack that fails closes the connection, and serve
// returns for run to open another (the reads alone would have gone on).
func TestSocketFailedAckReplacesTheConnection(t *testing.T) {
	peer := newWSPeer(t)
	u, err := url.Parse(peer.url)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	fc := &failingConn{Conn: raw}
	conn, _, err := websocket.NewClient(fc, u, nil, 4096, 4096)
	if err != nil {
		t.Fatal(err)
	}
	c := newSocketClient(slack.New("xoxb-test"), slog.New(slog.DiscardHandler), 0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- c.serve(ctx, conn) }()
	actx, acancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer acancel()
	if err := c.ack(actx, "e0", nil); err != nil { // waits for serve to take the connection
		t.Fatalf("first ack: %v", err)
	}
	fc.fail.Store(true)
	if err := c.ack(actx, "e1", nil); err == nil || !strings.Contains(err.Error(), "send the ack") {
		t.Fatalf("ack on a connection that cannot write: %v, want the write's error", err)
	}
	within(t, served, "serve to give up the connection after a failed ack")
}
