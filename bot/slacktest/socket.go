package slacktest

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

var upgrader = websocket.Upgrader{
	// slack-go sends Origin: https://api.slack.com.
	CheckOrigin: func(*http.Request) bool { return true },
}

// wsConn is one Socket Mode connection.
type wsConn struct {
	id       int
	ws       *websocket.Conn
	wmu      sync.Mutex // serialises data frames (gorilla allows one writer)
	draining bool       // disconnect sent; guarded by Server.mu
	done     chan struct{}
	once     sync.Once
}

func (c *wsConn) writeJSON(v any) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return c.ws.WriteJSON(v)
}

func (c *wsConn) close() {
	c.once.Do(func() {
		close(c.done)
		_ = c.ws.Close()
	})
}

// envelope is a Socket Mode request from Slack to the app.
type envelope struct {
	EnvelopeID             string          `json:"envelope_id"`
	Type                   string          `json:"type"`
	Payload                json.RawMessage `json:"payload"`
	AcceptsResponsePayload bool            `json:"accepts_response_payload"`
	RetryAttempt           int             `json:"retry_attempt"`
	RetryReason            string          `json:"retry_reason"`
}

type ackMsg struct {
	payload json.RawMessage
	at      time.Time
}

type pending struct {
	acks chan ackMsg
}

func (s *Server) handleWebSocket(w http.ResponseWriter, r *http.Request) {
	ticket := r.URL.Query().Get("ticket")
	s.mu.Lock()
	_, ok := s.tickets[ticket]
	delete(s.tickets, ticket)
	s.mu.Unlock()
	if !ok {
		http.Error(w, "invalid or used ticket: call apps.connections.open for a fresh URL", http.StatusUnauthorized)
		return
	}
	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader already answered
	}
	s.mu.Lock()
	s.connections++
	c := &wsConn{id: s.connections, ws: ws, done: make(chan struct{})}
	live := len(s.conns) + 1
	s.mu.Unlock()

	hello := map[string]any{
		"type":            "hello",
		"num_connections": live,
		"debug_info":      map[string]any{"host": "applink-sim", "build_number": 1, "approximate_connection_time": 18060},
		"connection_info": map[string]any{"app_id": s.AppID},
	}
	if err := c.writeJSON(hello); err != nil {
		c.close()
		return
	}
	s.mu.Lock()
	s.conns = append(s.conns, c)
	s.notifyLocked()
	s.mu.Unlock()

	c.ws.SetPongHandler(func(string) error {
		s.pongs.Add(1)
		return nil
	})
	go s.pingLoop(c)
	s.readLoop(c)

	c.close()
	s.mu.Lock()
	for i, cc := range s.conns {
		if cc == c {
			s.conns = append(s.conns[:i], s.conns[i+1:]...)
			break
		}
	}
	s.notifyLocked()
	s.mu.Unlock()
}

func (s *Server) pingLoop(c *wsConn) {
	s.mu.Lock()
	interval := s.PingInterval
	s.mu.Unlock()
	if interval <= 0 {
		interval = DefaultPingInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		s.mu.Lock()
		on := s.pings
		s.mu.Unlock()
		if on {
			if err := c.ws.WriteControl(websocket.PingMessage, []byte("ping"), time.Now().Add(5*time.Second)); err != nil {
				c.close()
				return
			}
		}
		select {
		case <-t.C:
		case <-c.done:
			return
		case <-s.closed:
			return
		}
	}
}

func (s *Server) readLoop(c *wsConn) {
	for {
		_, data, err := c.ws.ReadMessage()
		if err != nil {
			return
		}
		at := time.Now()
		var res struct {
			EnvelopeID string          `json:"envelope_id"`
			Payload    json.RawMessage `json:"payload"`
		}
		if json.Unmarshal(data, &res) != nil || res.EnvelopeID == "" {
			continue
		}
		if string(res.Payload) == "null" {
			res.Payload = nil
		}
		s.mu.Lock()
		s.ackLog = append(s.ackLog, Ack{EnvelopeID: res.EnvelopeID, Payload: res.Payload})
		if p, ok := s.pending[res.EnvelopeID]; ok {
			select {
			case p.acks <- ackMsg{payload: res.Payload, at: at}:
			default:
			}
		} else {
			s.strayAcks++
		}
		s.notifyLocked()
		s.mu.Unlock()
	}
}

// currentConn waits for a live connection that was not asked to
// disconnect. With several (an app may hold up to 10, one per replica or
// worker), it picks one at random, as Slack spreads envelopes among an
// app's connections.
func (s *Server) currentConn(deadline <-chan time.Time) (*wsConn, error) {
	for {
		s.mu.Lock()
		var c *wsConn
		live := make([]*wsConn, 0, len(s.conns))
		for _, cc := range s.conns {
			if !cc.draining {
				live = append(live, cc)
			}
		}
		if len(live) > 0 {
			c = live[rand.IntN(len(live))]
		}
		ch := s.changed
		s.mu.Unlock()
		if c != nil {
			return c, nil
		}
		select {
		case <-ch:
		case <-deadline:
			return nil, ErrNotConnected
		case <-s.closed:
			return nil, ErrClosed
		}
	}
}

// deliver sends an envelope and waits for its ack, redelivering on AckTimeout.
// With copies > 1 the envelope is written that many times back to back
// (duplicate delivery) and deliver waits for as many acks.
func (s *Server) deliver(typ string, payload json.RawMessage, copies int) (Ack, error) {
	s.mu.Lock()
	id := "sim-" + randHex(8) + "-" + randHex(4)
	p := &pending{acks: make(chan ackMsg, 16)}
	s.pending[id] = p
	ackTimeout, maxRetries, deliveryTimeout := s.AckTimeout, s.MaxRetries, s.DeliveryTimeout
	if s.RetryOnlyEvents && typ != "events_api" {
		maxRetries = 0
	}
	logger := s.Logger
	if copies <= 0 {
		if s.duplicateNext > 0 {
			s.duplicateNext--
			copies = 2
		} else {
			copies = 1
		}
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.pending, id)
		s.mu.Unlock()
	}()
	if ackTimeout <= 0 {
		ackTimeout = DefaultAckTimeout
	}
	env := envelope{
		EnvelopeID:             id,
		Type:                   typ,
		Payload:                payload,
		AcceptsResponsePayload: typ != "events_api",
	}
	deadline := time.NewTimer(deliveryTimeout)
	defer deadline.Stop()

	var first Ack
	got := 0
	for attempt := 0; ; {
		c, err := s.currentConn(deadline.C)
		if err != nil {
			return Ack{}, fmt.Errorf("deliver %s envelope: %w", typ, err)
		}
		env.RetryAttempt = attempt
		sentAt := time.Now()
		writeErr := c.writeJSON(env)
		for i := 1; writeErr == nil && i < copies; i++ {
			dup := env
			dup.RetryAttempt, dup.RetryReason = attempt+i, "timeout"
			writeErr = c.writeJSON(dup)
		}
		if writeErr != nil {
			// Never delivered: not an attempt. Wait for another connection
			// (bounded by DeliveryTimeout).
			s.mu.Lock()
			c.draining = true
			s.mu.Unlock()
			c.close()
			continue
		}
		timer := time.NewTimer(ackTimeout)
	wait:
		for {
			select {
			case a := <-p.acks:
				got++
				if got == 1 {
					first = Ack{EnvelopeID: id, Payload: a.payload, Latency: a.at.Sub(sentAt), Sent: sentAt, Attempts: attempt + 1}
				}
				if got >= copies {
					timer.Stop()
					if logger != nil {
						logger.Info("slacktest envelope acked", "type", typ, "envelope_id", id, "attempts", first.Attempts, "latency", first.Latency, "payload", len(first.Payload) > 0)
					}
					return first, nil
				}
			case <-timer.C:
				break wait
			case <-s.closed:
				timer.Stop()
				return Ack{}, ErrClosed
			}
		}
		if got > 0 {
			// A duplicate was not acked; the first ack is what matters.
			return first, nil
		}
		attempt++
		env.RetryReason = "timeout"
		if attempt > maxRetries {
			if logger != nil {
				logger.Warn("slacktest envelope not acked", "type", typ, "envelope_id", id, "attempts", attempt)
			}
			return Ack{}, fmt.Errorf("deliver %s envelope %s after %d attempts: %w", typ, id, attempt, ErrNotAcked)
		}
		deadline.Reset(deliveryTimeout)
	}
}

// SendEnvelope delivers a raw envelope of type typ ("events_api",
// "slash_commands", "interactive") with payload (marshalled to JSON unless
// it is a json.RawMessage or []byte) and waits for the ack.
func (s *Server) SendEnvelope(typ string, payload any) (Ack, error) {
	raw, err := toRaw(payload)
	if err != nil {
		return Ack{}, err
	}
	return s.deliver(typ, raw, 0)
}

// SendEnvelopeTwice writes the same envelope (same envelope_id) twice back
// to back, the second with retry_attempt 1 and retry_reason "timeout", as
// Slack does when it believes the first ack was late, and waits for both acks.
func (s *Server) SendEnvelopeTwice(typ string, payload any) (Ack, error) {
	raw, err := toRaw(payload)
	if err != nil {
		return Ack{}, err
	}
	return s.deliver(typ, raw, 2)
}

// DuplicateNext makes the next n envelopes of the driving methods
// (SlashCommand, ClickButton, SubmitView, SendEnvelope) be delivered twice
// with the same envelope_id; the call waits for both acks and returns the first.
func (s *Server) DuplicateNext(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.duplicateNext += n
}

func toRaw(payload any) (json.RawMessage, error) {
	switch p := payload.(type) {
	case json.RawMessage:
		return p, nil
	case []byte:
		return p, nil
	}
	raw, err := json.Marshal(payload)
	if err != nil {
		return nil, fmt.Errorf("marshal envelope payload: %w", err)
	}
	return raw, nil
}

// Disconnect sends {"type":"disconnect","reason":reason} on every live
// connection (reasons Slack uses: "warning", "refresh_requested",
// "link_disabled"); slack-go reconnects through apps.connections.open.
// New deliveries wait for the new connection.
func (s *Server) Disconnect(reason string) {
	s.mu.Lock()
	conns := append([]*wsConn(nil), s.conns...)
	for _, c := range conns {
		c.draining = true
	}
	s.notifyLocked()
	s.mu.Unlock()
	msg := map[string]any{"type": "disconnect", "reason": reason, "debug_info": map[string]any{"host": "applink-sim"}}
	for _, c := range conns {
		if err := c.writeJSON(msg); err != nil {
			c.close()
		}
	}
}

// DropConnections closes every live connection's TCP socket without a
// close frame, as a network failure would.
func (s *Server) DropConnections() {
	s.mu.Lock()
	conns := append([]*wsConn(nil), s.conns...)
	for _, c := range conns {
		c.draining = true
	}
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.ws.UnderlyingConn().Close()
	}
}

// Pongs is the number of WebSocket pongs the clients have answered pings
// with, on every connection.
func (s *Server) Pongs() int64 { return s.pongs.Load() }

// SetPings turns WebSocket pings on or off (a client reconnects when it
// sees none within its ping timeout, 30s by default in symbot and
// slack-go).
func (s *Server) SetPings(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pings = on
}

// Connections is the number of Socket Mode connections ever established.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.connections
}

// Connected reports whether a live connection (not asked to disconnect) exists.
func (s *Server) Connected() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		if !c.draining {
			return true
		}
	}
	return false
}

// Acks returns every ack read so far, in order (Latency is not set here).
func (s *Server) Acks() []Ack {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Ack(nil), s.ackLog...)
}

// StrayAcks counts acks whose envelope was no longer awaited (late acks
// after a redelivery was answered, acks of unknown envelopes).
func (s *Server) StrayAcks() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.strayAcks
}
