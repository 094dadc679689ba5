// Package slacktest is a wire-level Slack simulator (Web API and Socket Mode) on 127.0.0.1 for tests and demos.
//
// A Server speaks the protocol that github.com/slack-go/slack and its socketmode
// package expect: form and JSON Web API calls answered with {"ok":...} bodies,
// HTTP 429 with Retry-After, apps.connections.open handing out ws:// URLs, a
// WebSocket that says hello, pings, delivers envelopes, reads acks and
// redelivers unacknowledged envelopes with retry_attempt set.
//
// Point the real client at it:
//
//	srv := slacktest.NewServer()
//	defer srv.Close()
//	api := slack.New(srv.BotToken, slack.OptionAPIURL(srv.APIURL()), slack.OptionAppLevelToken(srv.AppToken))
//	client := socketmode.New(api)
//
// then drive the app as a person (SlashCommand, ClickButton, SubmitView) and
// read what the app did (Messages, DMs, Ephemerals, ScheduledMessages, Views,
// Calls).
package slacktest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Default settings of a new Server.
const (
	DefaultAckTimeout      = 3 * time.Second
	DefaultMaxRetries      = 3
	DefaultDeliveryTimeout = 10 * time.Second
	DefaultPingInterval    = 10 * time.Second
	DefaultTriggerTTL      = 10 * time.Second
)

// Errors returned by the driving methods.
var (
	// ErrNotAcked means an envelope was delivered (and redelivered MaxRetries times) without an ack.
	ErrNotAcked = errors.New("slacktest: envelope not acknowledged")
	// ErrNotConnected means no Socket Mode connection came up within DeliveryTimeout.
	ErrNotConnected = errors.New("slacktest: no socket mode connection")
	// ErrClosed means the server was closed.
	ErrClosed = errors.New("slacktest: server closed")
)

// User is a workspace member, or someone the workspace can see: users.info
// answers with these fields as Slack names them (team_id, deleted,
// is_stranger, is_email_confirmed, enterprise_user, ...).
type User struct {
	ID                string
	Name              string // handle, e.g. "alice"
	RealName          string
	Email             string
	IsRestricted      bool // multi-channel guest
	IsUltraRestricted bool // single-channel guest
	IsBot             bool
	IsAppUser         bool // is_app_user: an app's user
	Deleted           bool
	TZ                string // e.g. "Europe/Berlin"; "" means "America/Los_Angeles"

	// TeamID is the user's home workspace (team_id); "" means the
	// server's TeamID. A Slack Connect external has their own org's.
	TeamID string
	// EnterpriseID is the user's Enterprise Grid org (enterprise_user.enterprise_id);
	// "" means the server's EnterpriseID. enterprise_user is sent only when
	// it is not empty.
	EnterpriseID string
	// EnterpriseTeams are the org's workspaces the user belongs to
	// (enterprise_user.teams); nil means just TeamID.
	EnterpriseTeams []string
	// IsStranger: from a workspace the app's team shares no channel with (is_stranger).
	IsStranger bool
	// EmailUnconfirmed makes is_email_confirmed false (Slack answers true
	// for a member who confirmed their address, the usual case).
	EmailUnconfirmed bool
}

// Channel is a public or private channel. Members lists human members; the
// bot's membership is BotIsMember.
type Channel struct {
	ID          string
	Name        string
	Members     []string
	BotIsMember bool
	IsPrivate   bool
}

// MessageRef names a message by channel and ts.
type MessageRef struct {
	Channel string
	TS      string
}

// Message is a message as the workspace shows it now (after updates).
type Message struct {
	Channel   string
	TS        string
	ThreadTS  string // "" for top-level messages
	User      string // poster: the bot's user ID for app posts
	Text      string
	Blocks    json.RawMessage // nil when the message has no blocks
	Updates   int             // number of chat.update / replace_original applied
	Ephemeral bool
	To        string // ephemeral target user
	Deleted   bool
	// Metadata is the message metadata chat.postMessage attached (its
	// metadata parameter), nil when none.
	Metadata *Metadata
	// OtherApp is the bot id of the app that posted the message when it is
	// not this one (see PostAsOtherApp); "" for the bot's own messages.
	OtherApp string
}

// Metadata is a message's metadata as Slack stores it: an event type and a
// JSON object payload. conversations.history returns it with
// include_all_metadata.
type Metadata struct {
	EventType    string
	EventPayload json.RawMessage // a JSON object
}

// Ref returns the message's reference.
func (m Message) Ref() MessageRef { return MessageRef{Channel: m.Channel, TS: m.TS} }

// View is a modal as opened or last updated by the app.
type View struct {
	ID              string
	User            string
	Type            string
	CallbackID      string
	PrivateMetadata string
	ExternalID      string
	Hash            string
	Title           string
	Submit          string
	Blocks          json.RawMessage
	RootViewID      string
	PreviousViewID  string
	NotifyOnClose   bool
	Updates         int
	Closed          bool              // closed by the submission's ack, or replaced by a later views.open
	Errors          map[string]string // response_action "errors" of the last submission
}

// Call is one Web API call the app made. Params never hold the token.
type Call struct {
	Method string
	Params url.Values      // form or query parameters (token removed)
	JSON   json.RawMessage // body of JSON calls (views.*, apps.connections.open)
	Error  string          // Slack error code returned, "ratelimited" for 429, "" on success
	At     time.Time
}

// Ack is the app's acknowledgement of an envelope.
type Ack struct {
	EnvelopeID string
	Payload    json.RawMessage // nil when the ack carried no payload
	Latency    time.Duration   // from the (last) envelope write to the ack read
	Sent       time.Time       // when that envelope write began
	Attempts   int             // deliveries made, 1 when acked on the first
}

// Server is a running Slack simulator. Create it with NewServer or Listen.
// Set the exported fields right after creating it, before the app connects
// and before any driving call; the methods are safe for concurrent use.
//
// Faults: FailNext, RateLimitNext, DelayNext (Web API); Disconnect,
// DropConnections, SetPings, AckTimeout/MaxRetries, DuplicateNext (Socket
// Mode); SetScopes, SetBotMembership and RevokeToken (workspace).
type Server struct {
	BotToken string
	AppToken string

	// AckTimeout is how long an envelope may stay unacked before it is
	// redelivered with retry_attempt+1 and retry_reason "timeout".
	AckTimeout time.Duration
	// MaxRetries is how many redeliveries follow the first delivery before
	// the driving call returns ErrNotAcked.
	MaxRetries int
	// DeliveryTimeout bounds how long a driving call waits for a connection.
	DeliveryTimeout time.Duration
	// PingInterval is the WebSocket ping period (slack-go gives up after 30s without one).
	PingInterval time.Duration
	// TriggerTTL is how long a trigger_id may be exchanged for a modal (Slack: 3s).
	TriggerTTL time.Duration
	// RetryOnlyEvents makes unacked slash_commands and interactive envelopes
	// fail after the first AckTimeout instead of being redelivered, as real
	// Slack does (it shows the person an error and retries only events_api).
	RetryOnlyEvents bool
	// Logger, if set, receives one record per Web API call and per envelope
	// (method, error, envelope type, attempts, latency); never tokens.
	Logger *slog.Logger

	TeamID, TeamDomain, AppID, BotID string
	// EnterpriseID, when set, makes the workspace part of an Enterprise
	// Grid org: auth.test returns it as enterprise_id and users default to it.
	EnterpriseID string

	ln   net.Listener
	http *http.Server
	base string // "http://127.0.0.1:PORT"

	closeOnce sync.Once
	closed    chan struct{}

	mu           sync.Mutex
	changed      chan struct{} // closed and replaced on every state change
	botUser      string
	users        map[string]*User
	userSeq      []string
	channels     map[string]*channelState
	ims          map[string]string // user ID -> D channel ID
	messages     []*Message        // every non-ephemeral message, posting order
	byTS         map[MessageRef]*Message
	ephem        []*Message
	scheduled    map[string]*scheduledState // pending chat.scheduleMessage, by ID
	views        map[string]*View
	viewSeq      []*View
	calls        []Call
	triggers     map[string]*trigger
	responseURLs map[string]*responseTarget
	faults       map[string][]fault
	delays       map[string][]time.Duration
	scopes       map[string]bool
	revoked      map[string]bool // tokens RevokeToken revoked
	lastTS       int64           // microseconds
	seq          int

	// socket mode
	tickets       map[string]time.Time
	conns         []*wsConn // live connections, newest last
	connections   int
	pending       map[string]*pending
	strayAcks     int
	ackLog        []Ack
	duplicateNext int
	pings         bool
	pongs         atomic.Int64 // pongs received, all connections
}

type channelState struct {
	Channel
	isIM bool
	user string // IM peer
}

type trigger struct {
	user   string
	issued time.Time
	used   bool
	viewID string // the view the interaction came from, for views.push
}

type responseTarget struct {
	user    string
	channel string
	msgTS   string // original message for block_actions; "" for slash commands
	uses    int
	issued  time.Time
}

type fault struct {
	delay      time.Duration
	slackError string
	retryAfter time.Duration
	rateLimit  bool
}

// NewServer starts a simulator on 127.0.0.1 with fresh xoxb-/xapp- tokens.
// It panics if it cannot listen, as httptest.NewServer does.
func NewServer() *Server {
	s, err := Listen("127.0.0.1:0")
	if err != nil {
		panic(err.Error())
	}
	return s
}

// Listen starts a simulator on addr (e.g. "127.0.0.1:3333" for a demo with
// a fixed port). Only loopback addresses are accepted: the simulator hands
// out tokens and has no authentication worth the name.
func Listen(addr string) (*Server, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("slacktest: listen address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("slacktest: listen address %q is not loopback; use 127.0.0.1:PORT", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("slacktest: listen on %s: %w", addr, err)
	}
	s := &Server{
		BotToken:        "xoxb-" + randHex(12) + "-" + randHex(12),
		AppToken:        "xapp-1-" + randHex(12) + "-" + randHex(16),
		AckTimeout:      DefaultAckTimeout,
		MaxRetries:      DefaultMaxRetries,
		DeliveryTimeout: DefaultDeliveryTimeout,
		PingInterval:    DefaultPingInterval,
		TriggerTTL:      DefaultTriggerTTL,
		TeamID:          "T0SIM0001",
		TeamDomain:      "symbot-sim",
		AppID:           "A0SIM0001",
		BotID:           "B0SIM0001",
		ln:              ln,
		base:            "http://" + ln.Addr().String(),
		closed:          make(chan struct{}),
		changed:         make(chan struct{}),
		botUser:         "U0SYMBOT01",
		users:           map[string]*User{},
		channels:        map[string]*channelState{},
		ims:             map[string]string{},
		byTS:            map[MessageRef]*Message{},
		scheduled:       map[string]*scheduledState{},
		views:           map[string]*View{},
		triggers:        map[string]*trigger{},
		responseURLs:    map[string]*responseTarget{},
		faults:          map[string][]fault{},
		delays:          map[string][]time.Duration{},
		tickets:         map[string]time.Time{},
		revoked:         map[string]bool{},
		pending:         map[string]*pending{},
		pings:           true,
	}
	s.scopes = map[string]bool{}
	for _, sc := range DefaultScopes {
		s.scopes[sc] = true
	}
	s.users[s.botUser] = &User{ID: s.botUser, Name: "symbot", RealName: "symbot", IsBot: true}
	mux := http.NewServeMux()
	mux.HandleFunc("/api/", s.handleAPI)
	mux.HandleFunc("/link/", s.handleWebSocket)
	mux.HandleFunc("/response/", s.handleResponseURL)
	s.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.http.Serve(ln) }()
	return s, nil
}

// DefaultScopes are the bot scopes a new Server grants.
var DefaultScopes = []string{
	"chat:write", "commands", "im:write", "im:read", "channels:read", "groups:read",
	"users:read", "users:read.email", "channels:history", "groups:history", "im:history",
}

// APIURL is the Web API base URL with the trailing slash slack.OptionAPIURL needs.
func (s *Server) APIURL() string { return s.base + "/api/" }

// BotUserID is the app's bot user ID (what auth.test returns as user_id).
func (s *Server) BotUserID() string { return s.botUser }

// Close stops the server and closes every WebSocket connection. Pending
// driving calls return ErrClosed.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.closed)
		s.mu.Lock()
		conns := append([]*wsConn(nil), s.conns...)
		s.stopScheduledLocked()
		s.mu.Unlock()
		for _, c := range conns {
			c.close()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = s.http.Shutdown(ctx)
		_ = s.http.Close()
		s.mu.Lock()
		s.notifyLocked()
		s.mu.Unlock()
	})
}

// notifyLocked wakes every WaitFor. Callers hold s.mu.
func (s *Server) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// WaitForRecheck is how often WaitFor re-evaluates its condition when the
// server's state does not change, for conditions on state outside the
// simulator (an engine's store, say).
const WaitForRecheck = 10 * time.Millisecond

// WaitFor returns nil as soon as cond reports true. cond is re-evaluated
// right after every state change of the server (message, view, call, ack,
// connection) and at least every WaitForRecheck otherwise; it must not block
// and may call the server's read methods. It returns an error wrapping
// ctx.Err() when ctx ends first.
func (s *Server) WaitFor(ctx context.Context, cond func() bool) error {
	t := time.NewTicker(WaitForRecheck)
	defer t.Stop()
	for {
		s.mu.Lock()
		ch := s.changed
		s.mu.Unlock()
		if cond() {
			return nil
		}
		select {
		case <-ch:
		case <-t.C:
		case <-ctx.Done():
			return fmt.Errorf("wait for condition: %w", ctx.Err())
		}
	}
}

// AddUser adds or replaces a workspace member.
func (s *Server) AddUser(u User) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.users[u.ID]; !ok {
		s.userSeq = append(s.userSeq, u.ID)
	}
	cp := u
	s.users[u.ID] = &cp
	s.notifyLocked()
}

// AddChannel adds or replaces a channel.
func (s *Server) AddChannel(c Channel) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cp := c
	cp.Members = append([]string(nil), c.Members...)
	s.channels[c.ID] = &channelState{Channel: cp}
	s.notifyLocked()
}

// SetBotMembership changes whether the bot is in a channel.
func (s *Server) SetBotMembership(channelID string, member bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ch, ok := s.channels[channelID]; ok {
		ch.BotIsMember = member
	}
	s.notifyLocked()
}

// SetScopes replaces the bot token's granted scopes; calls to methods whose
// scope is missing answer missing_scope with needed and provided.
func (s *Server) SetScopes(scopes ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.scopes = map[string]bool{}
	for _, sc := range scopes {
		s.scopes[sc] = true
	}
}

// IMChannel returns the D channel ID of the bot's IM with userID, creating it.
func (s *Server) IMChannel(userID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.imLocked(userID)
}

func (s *Server) imLocked(userID string) string {
	if id, ok := s.ims[userID]; ok {
		return id
	}
	s.seq++
	id := fmt.Sprintf("D%08d", s.seq)
	s.ims[userID] = id
	s.channels[id] = &channelState{Channel: Channel{ID: id, Members: []string{userID}, BotIsMember: true, IsPrivate: true}, isIM: true, user: userID}
	return id
}

// Messages returns the channel's messages (top-level and thread replies) in
// posting order with their latest content; deleted messages are left out.
func (s *Server) Messages(channelID string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Message
	for _, m := range s.messages {
		if m.Channel == channelID && !m.Deleted {
			out = append(out, cloneMessage(m))
		}
	}
	return out
}

// Thread returns the parent message with ts followed by its replies.
func (s *Server) Thread(channelID, ts string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Message
	for _, m := range s.messages {
		if m.Channel == channelID && !m.Deleted && (m.TS == ts || m.ThreadTS == ts) {
			out = append(out, cloneMessage(m))
		}
	}
	return out
}

// DMs returns the messages in the bot's IM with userID.
func (s *Server) DMs(userID string) []Message {
	s.mu.Lock()
	id, ok := s.ims[userID]
	s.mu.Unlock()
	if !ok {
		return nil
	}
	return s.Messages(id)
}

// Ephemerals returns the ephemeral messages shown to userID, in order.
func (s *Server) Ephemerals(userID string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Message
	for _, m := range s.ephem {
		if m.To == userID && !m.Deleted {
			out = append(out, cloneMessage(m))
		}
	}
	return out
}

// Message returns one message (or ephemeral message) by reference.
func (s *Server) Message(ref MessageRef) (Message, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.byTS[ref]
	if !ok {
		return Message{}, false
	}
	return cloneMessage(m), true
}

// Views returns the modals opened for userID, oldest first, with their latest content.
func (s *Server) Views(userID string) []View {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []View
	for _, v := range s.viewSeq {
		if v.User == userID {
			cp := *v
			cp.Blocks = append(json.RawMessage(nil), v.Blocks...)
			out = append(out, cp)
		}
	}
	return out
}

// CurrentView returns userID's newest modal that is still open.
func (s *Server) CurrentView(userID string) (View, bool) {
	views := s.Views(userID)
	for i := len(views) - 1; i >= 0; i-- {
		if !views[i].Closed {
			return views[i], true
		}
	}
	return View{}, false
}

// Calls returns every Web API call so far, in order.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Call, len(s.calls))
	copy(out, s.calls)
	return out
}

// CallsTo returns the calls of one method.
func (s *Server) CallsTo(method string) []Call {
	var out []Call
	for _, c := range s.Calls() {
		if c.Method == method {
			out = append(out, c)
		}
	}
	return out
}

// FailNext makes the next n calls of method answer {"ok":false,"error":slackError}.
// method "*" matches every method. missing_scope answers carry "needed" and "provided".
func (s *Server) FailNext(method, slackError string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.faults[method] = append(s.faults[method], fault{slackError: slackError})
	}
}

// RevokeToken makes the simulator refuse token from now on, as Slack does
// after auth.revoke, an app uninstall or a token rotation: every Web API
// call made with it (apps.connections.open too, for the app-level token)
// answers {"ok":false,"error":"token_revoked"}. Live Socket Mode
// connections stay up (DropConnections cuts them, and the reconnect's
// apps.connections.open is refused).
func (s *Server) RevokeToken(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.revoked[token] = true
	s.notifyLocked()
}

// RestoreToken accepts a token RevokeToken revoked again. Slack itself never
// does; tests use it to show that symbot notices a token working again.
func (s *Server) RestoreToken(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.revoked, token)
	s.notifyLocked()
}

// RateLimitNext makes the next n calls of method answer HTTP 429 with
// Retry-After in whole seconds (rounded up), which slack-go returns as
// *slack.RateLimitedError.
func (s *Server) RateLimitNext(method string, retryAfter time.Duration, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.faults[method] = append(s.faults[method], fault{rateLimit: true, retryAfter: retryAfter, slackError: "ratelimited"})
	}
}

// DelayNext makes the next n calls of method wait d before they are
// answered normally (or until the client gives up), to exercise client
// timeouts. Delays are consumed before FailNext and RateLimitNext faults.
func (s *Server) DelayNext(method string, d time.Duration, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.delays[method] = append(s.delays[method], d)
	}
}

// ClearFaults drops every queued FailNext and RateLimitNext.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = map[string][]fault{}
	s.delays = map[string][]time.Duration{}
}

func (s *Server) takeFaultLocked(method string) (fault, bool) {
	for _, key := range []string{method, "*"} {
		if q := s.faults[key]; len(q) > 0 {
			f := q[0]
			s.faults[key] = q[1:]
			return f, true
		}
	}
	return fault{}, false
}

// nextTSLocked returns a unique, increasing Slack timestamp.
func (s *Server) nextTSLocked() string {
	now := time.Now().UnixMicro()
	if now <= s.lastTS {
		now = s.lastTS + 1
	}
	s.lastTS = now
	return fmt.Sprintf("%d.%06d", now/1e6, now%1e6)
}

func (s *Server) newIDLocked(prefix string) string {
	s.seq++
	return fmt.Sprintf("%s%08d%s", prefix, s.seq, strings.ToUpper(randHex(2)))
}

func cloneMessage(m *Message) Message {
	cp := *m
	cp.Blocks = append(json.RawMessage(nil), m.Blocks...)
	if len(m.Blocks) == 0 {
		cp.Blocks = nil
	}
	if m.Metadata != nil {
		md := *m.Metadata
		md.EventPayload = append(json.RawMessage(nil), m.Metadata.EventPayload...)
		cp.Metadata = &md
	}
	return cp
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
