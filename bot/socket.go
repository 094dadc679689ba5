// Socket Mode: symbot's own client of the WebSocket that Slack delivers
// slash commands, button clicks and events on.
//
// It does what slack-go's socketmode.Client does for the bot (open the
// connection with apps.connections.open, reconnect with backoff, answer
// pings, acknowledge envelopes) and hands the bot the same
// socketmode.Event values, but it decodes each envelope once, where
// slack-go decodes it three times and passes it through two goroutines,
// and it decodes a button's block_actions payload without the message the
// button sits in, which symbot never reads: slack-go's decoding of that
// message's blocks was most of a click's time from the envelope to the
// bot (0.3 ms of the grant's 2-2.5 ms).

package bot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"
	"github.com/slack-go/slack/socketmode"
)

const (
	// defaultSocketPingTimeout: a connection on which Slack sent nothing,
	// not even a WebSocket ping, for this long is dead; it is replaced.
	// Slack pings every few seconds. slack-go's default is the same.
	defaultSocketPingTimeout = 30 * time.Second
	// socketReadLimit bounds one envelope (a modal's view with its
	// blocks is the largest Slack sends: well under 1 MB).
	socketReadLimit = 8 << 20
	// socketMaxResponse is Slack's limit for a message sent on the
	// socket: it silently drops an ack of 20 KB or more.
	socketMaxResponse = 20 << 10
	// socketBackoffMax caps the wait between failed connection attempts.
	socketBackoffMax = 5 * time.Minute
	// socketShortLived: a connection that ends sooner than this counts as
	// a failed attempt, so that connections dying at once back off too.
	socketShortLived = 10 * time.Second
	// socketDialTimeout bounds apps.connections.open and the WebSocket
	// handshake together.
	socketDialTimeout = time.Minute
)

// errSocketDisconnect: Slack asked for a new connection (a "disconnect"
// envelope: refresh_requested, warning, link_disabled).
var errSocketDisconnect = errors.New("slack asked to reconnect")

// errSocketNotConnected is an ack's error while no connection is open:
// Slack delivers the envelope again.
var errSocketNotConnected = errors.New("socket mode: not connected")

// socketClient is one bot's Socket Mode connection, replaced as it fails.
type socketClient struct {
	api         *slack.Client // holds the app-level token (apps.connections.open)
	log         *slog.Logger
	dialer      *websocket.Dialer
	pingTimeout time.Duration
	events      chan socketmode.Event

	mu    sync.Mutex
	conn  *websocket.Conn // the open connection; nil between connections
	ready chan struct{}   // closed once conn is set; a new one while it is nil
}

func newSocketClient(api *slack.Client, log *slog.Logger, pingTimeout time.Duration) *socketClient {
	if pingTimeout <= 0 {
		pingTimeout = defaultSocketPingTimeout
	}
	return &socketClient{
		api: api,
		log: log,
		dialer: &websocket.Dialer{
			Proxy:            http.ProxyFromEnvironment,
			HandshakeTimeout: 45 * time.Second,
			// Above the largest ack, so that an ack goes in one frame.
			WriteBufferSize: 32 << 10,
		},
		pingTimeout: pingTimeout,
		events:      make(chan socketmode.Event, 64),
		ready:       make(chan struct{}),
	}
}

// run connects, delivers the envelopes on c.events and reconnects until
// ctx ends (it then returns ctx's error) or Slack refuses the app-level
// token (it returns Slack's error).
func (c *socketClient) run(ctx context.Context) error {
	short := 0 // connections in a row that ended within socketShortLived
	for count := 0; ; count++ {
		conn, err := c.connect(ctx, count)
		if err != nil {
			return err
		}
		c.emit(ctx, socketmode.Event{Type: socketmode.EventTypeConnected, Data: &socketmode.ConnectedEvent{ConnectionCount: count}})
		began := time.Now()
		err = c.serve(ctx, conn)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.log.Debug("socket mode: reconnecting", "err", err)
		if time.Since(began) >= socketShortLived {
			short = 0
			continue
		}
		short++
		if !pause(ctx, socketBackoff(short)) {
			return ctx.Err()
		}
	}
}

// connect opens a connection, trying again with backoff until it
// succeeds, ctx ends or the token is refused.
func (c *socketClient) connect(ctx context.Context, count int) (*websocket.Conn, error) {
	for failures := 0; ; {
		c.emit(ctx, socketmode.Event{Type: socketmode.EventTypeConnecting, Data: &slack.ConnectingEvent{Attempt: failures + 1, ConnectionCount: count}})
		conn, err := c.dial(ctx)
		if err == nil {
			return conn, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if _, ok := refusedCode(err); ok {
			return nil, err // the app-level token is refused: Run says which
		}
		if se, ok := errors.AsType[slack.StatusCodeError](err); ok && se.Code == http.StatusNotFound {
			c.emit(ctx, socketmode.Event{Type: socketmode.EventTypeInvalidAuth, Data: &slack.InvalidAuthEvent{}})
			return nil, err
		}
		failures++
		wait := socketBackoff(failures)
		if rl, ok := errors.AsType[*slack.RateLimitedError](err); ok {
			wait = max(wait, rl.RetryAfter)
		}
		c.emit(ctx, socketmode.Event{Type: socketmode.EventTypeConnectionError, Data: &slack.ConnectionErrorEvent{Attempt: failures, Backoff: wait, ErrorObj: err}})
		if !pause(ctx, wait) {
			return nil, ctx.Err()
		}
	}
}

// pause waits d, or until ctx ends; it reports whether d passed.
func pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// socketBackoff is the wait after the nth failed connection attempt in a
// row: 100 ms doubling, capped, with up to 10% added at random so that
// replicas do not retry in step.
func socketBackoff(n int) time.Duration {
	d := socketBackoffMax
	if n < 32 {
		d = min(socketBackoffMax, 100*time.Millisecond<<(n-1))
	}
	return d + rand.N(d/10+1)
}

// dial asks Slack for a connection URL and opens it.
func (c *socketClient) dial(ctx context.Context) (*websocket.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, socketDialTimeout)
	defer cancel()
	_, url, err := c.api.StartSocketModeContext(ctx)
	if err != nil {
		return nil, err
	}
	conn, resp, err := c.dialer.DialContext(ctx, url, http.Header{"Origin": {"https://api.slack.com"}})
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		// Not the URL: its ticket lets anyone take the connection.
		return nil, fmt.Errorf("socket mode: open the WebSocket: %w", err)
	}
	conn.SetReadLimit(socketReadLimit)
	return conn, nil
}

// serve reads conn's envelopes into c.events until the connection fails,
// goes quiet for the ping timeout, Slack asks for a new one, or ctx ends.
func (c *socketClient) serve(ctx context.Context, conn *websocket.Conn) error {
	c.mu.Lock()
	c.conn = conn
	close(c.ready)
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.conn = nil
		c.ready = make(chan struct{})
		c.mu.Unlock()
		conn.Close()
	}()
	stop := context.AfterFunc(ctx, func() { closeSocket(conn) }) // ends the read below
	defer stop()
	alive := func() { conn.SetReadDeadline(time.Now().Add(c.pingTimeout)) }
	conn.SetPingHandler(func(data string) error {
		alive()
		err := conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(5*time.Second))
		if errors.Is(err, websocket.ErrCloseSent) {
			return nil // closing: the read reports it
		}
		// A pong that cannot be written (a write that failed before, or
		// one stuck for 5s) ends the read: the connection is replaced.
		return err
	})
	for {
		alive()
		_, data, err := conn.ReadMessage()
		if err != nil {
			if ctx.Err() == nil {
				c.emit(ctx, socketmode.Event{Type: socketmode.EventTypeIncomingError, Data: &slack.IncomingEventError{ErrorObj: err}})
			}
			return err
		}
		evt, err := parseEnvelope(data)
		switch {
		case errors.Is(err, errSocketDisconnect):
			closeSocket(conn)
			return err
		case err != nil:
			c.emit(ctx, socketmode.Event{Type: socketmode.EventTypeErrorBadMessage, Data: &socketmode.ErrorBadMessage{Cause: err, Message: data}})
		default:
			c.emit(ctx, evt)
		}
	}
}

// closeSocket closes conn with a close frame, as a client leaving on
// purpose does.
func closeSocket(conn *websocket.Conn) {
	conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	conn.Close()
}

// emit hands evt to the bot, unless ctx ends first.
func (c *socketClient) emit(ctx context.Context, evt socketmode.Event) {
	select {
	case c.events <- evt:
	case <-ctx.Done():
	}
}

// parseEnvelope decodes one message from Slack: an envelope (slash
// command, interaction, event), hello, or disconnect
// (errSocketDisconnect).
func parseEnvelope(data []byte) (socketmode.Event, error) {
	req := &socketmode.Request{}
	if err := json.Unmarshal(data, req); err != nil {
		return socketmode.Event{}, fmt.Errorf("unreadable socket mode message: %w", err)
	}
	evt := socketmode.Event{Request: req}
	switch req.Type {
	case socketmode.RequestTypeHello:
		evt.Type = socketmode.EventTypeHello
	case socketmode.RequestTypeDisconnect:
		return socketmode.Event{}, fmt.Errorf("%w (%s)", errSocketDisconnect, req.Reason)
	case socketmode.RequestTypeSlashCommands:
		var cmd slack.SlashCommand
		if err := json.Unmarshal(req.Payload, &cmd); err != nil {
			return socketmode.Event{}, fmt.Errorf("unreadable slash command: %w", err)
		}
		evt.Type, evt.Data = socketmode.EventTypeSlashCommand, cmd
	case socketmode.RequestTypeInteractive:
		cb, err := decodeInteraction(req.Payload)
		if err != nil {
			return socketmode.Event{}, err
		}
		evt.Type, evt.Data = socketmode.EventTypeInteractive, cb
	case socketmode.RequestTypeEventsAPI:
		ev, err := slackevents.ParseEvent(req.Payload, slackevents.OptionNoVerifyToken())
		if err != nil {
			return socketmode.Event{}, fmt.Errorf("unreadable Events API event: %w", err)
		}
		evt.Type, evt.Data = socketmode.EventTypeEventsAPI, ev
	default:
		return socketmode.Event{}, fmt.Errorf("socket mode message of unknown type %q", req.Type)
	}
	return evt, nil
}

// decodeInteraction decodes an interaction payload without its "message",
// the message a clicked button sits in, which symbot never reads (it
// reads the container, channel, user and actions): decoding that
// message's blocks cost more than the rest of the click's way in.
func decodeInteraction(payload []byte) (slack.InteractionCallback, error) {
	var cb slack.InteractionCallback
	var top map[string]json.RawMessage
	if err := json.Unmarshal(payload, &top); err != nil {
		return cb, fmt.Errorf("unreadable interaction: %w", err)
	}
	if _, ok := top["message"]; ok {
		delete(top, "message")
		trimmed, err := json.Marshal(top)
		if err != nil {
			return cb, fmt.Errorf("unreadable interaction: %w", err)
		}
		payload = trimmed
	}
	if err := json.Unmarshal(payload, &cb); err != nil {
		return cb, fmt.Errorf("unreadable interaction: %w", err)
	}
	return cb, nil
}

// ack acknowledges envelope id, with payload (nil: none), on the open
// connection, waiting for the next one (until ctx ends) while none is
// open, as between a disconnect and its replacement. A write that fails
// closes the connection (gorilla fails every write after one has), so
// that it is replaced. An ack that is not sent leaves Slack to deliver
// the envelope again (events) or show the person an error (commands,
// clicks).
func (c *socketClient) ack(ctx context.Context, id string, payload any) error {
	js, err := json.Marshal(socketmode.Response{EnvelopeID: id, Payload: payload})
	if err != nil {
		return fmt.Errorf("encode the ack: %w", err)
	}
	if len(js) >= socketMaxResponse {
		return fmt.Errorf("ack of %d bytes: Slack drops one of %d bytes or more", len(js), socketMaxResponse)
	}
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%w: %w", errSocketNotConnected, err)
		}
		c.mu.Lock()
		conn, ready := c.conn, c.ready
		if conn != nil {
			break // c.mu held
		}
		c.mu.Unlock()
		select {
		case <-ready:
		case <-ctx.Done():
		}
	}
	defer c.mu.Unlock()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(10 * time.Second)
	}
	c.conn.SetWriteDeadline(deadline)
	if err := c.conn.WriteMessage(websocket.TextMessage, js); err != nil {
		c.conn.Close() // the read fails and serve replaces the connection
		return fmt.Errorf("socket mode: send the ack: %w", err)
	}
	return nil
}
