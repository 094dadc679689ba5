// Package bot is symbot's Slack adapter: the Socket Mode loop, the /sym
// grammar, modals, Block Kit messages and button handlers. It turns what
// people type and click into Engine calls, and implements symbot.Notifier to
// turn the engine's notifications into Slack messages.
package bot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"
	"github.com/symbot/symbot"
)

// Config holds the bot's optional settings; zero values get defaults.
type Config struct {
	Command       string       // slash command name; default "/sym"
	ErrorsChannel string       // channel id for operator alerts; empty logs them instead
	Logger        *slog.Logger // default: discard
	Now           func() time.Time
	Workers       int // concurrent handlers of slow work (Engine and Slack calls); default 8
	QueueSize     int // slow work waiting for a worker before symbot answers "busy"; default 1024

	UserCacheTTL    time.Duration // how long a users.info answer is trusted; default 5m
	ClickWindow     time.Duration // repeated identical clicks within it are ignored; default 5s
	DedupSize       int           // envelope ids and click keys remembered; default 8192
	AckTimeout      time.Duration // longest wait to queue an ack; default 2s
	MaxRetryWait    time.Duration // longest Retry-After honoured inside an interactive call; default 10s
	ShutdownTimeout time.Duration // how long Run waits for running handlers; default 10s

	// Limits are the per-person limits; zero fields get DefaultLimits.
	Limits Limits

	// SocketPingTimeout: a Socket Mode connection on which Slack sent
	// nothing, not even a ping, for this long is replaced; default 30s.
	SocketPingTimeout time.Duration

	// Dedup, when set, remembers envelope ids and clicks for every replica
	// sharing the store (symbot.Deduper), so that an envelope redelivered to
	// another replica's connection, or a double click that lands on two
	// replicas, is recognised. The bot's own in-process set is kept too.
	Dedup symbot.Deduper
}

// dedupTimeout bounds a shared-dedup call made on the event loop; when it
// fails, the bot goes by its own memory (the engine re-checks every
// decision against stored state anyway).
const dedupTimeout = 500 * time.Millisecond

// sharedSeen asks the shared dedup whether key was handled by any replica.
func (b *Bot) sharedSeen(key string, now time.Time) bool {
	if b.cfg.Dedup == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), dedupTimeout)
	defer cancel()
	seen, err := b.cfg.Dedup.Seen(ctx, key, now)
	if err != nil {
		b.log.Warn("shared dedup", "err", err)
		return false
	}
	return seen
}

// sharedMark records key as handled for every replica.
func (b *Bot) sharedMark(key string, now time.Time, ttl time.Duration) {
	if b.cfg.Dedup == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), dedupTimeout)
	defer cancel()
	if _, err := b.cfg.Dedup.Mark(ctx, key, now, ttl); err != nil {
		b.log.Warn("shared dedup", "err", err)
	}
}

// envelopeMemory is how long envelope ids are remembered across replicas:
// Slack redelivers an unacknowledged envelope within minutes.
const envelopeMemory = 30 * time.Minute

// Bot is the Slack adapter. Create it with New, pass it to symbot.NewEngine
// as the Notifier, then call Run with the engine.
type Bot struct {
	api *slack.Client
	cfg Config
	log *slog.Logger

	eng     atomic.Pointer[symbot.Engine]
	running atomic.Bool

	connected atomic.Bool
	queue     *fairQueue
	limits    *limiter

	recent *recentSet // envelope ids, trigger ids, click keys, consumed views
	actors *actorCache
	// approvers caches whoami's "may approve flow X" answers.
	approvers *approverCache
	ws        atomic.Pointer[workspace] // from auth.test, at the start of Run
	self      atomic.Pointer[string]    // this app's bot_id, from auth.test (see selfBotID)
	dms       sync.Map                  // user id -> DM channel id

	reportedMu sync.Mutex
	reported   map[string]bool // configuration problems already reported

	connections, reconnects, envelopes, duplicates, doubleClicks, busy atomic.Int64

	callsMu sync.Mutex
	calls   map[CallKey]int64

	// ackReplyWindow is how long after a slash command's envelope arrives
	// an answer to it may still ride in its ack (ackReply).
	ackReplyWindow time.Duration
}

// CallKey names a Slack Web API method and the result of one call: "ok",
// "rate_limited", a Slack error code such as "channel_not_found", or "error".
type CallKey struct {
	Method string
	Result string
}

// Stats is a snapshot of the bot's counters.
type Stats struct {
	Connected    bool
	Connections  int64 // successful Socket Mode connections since start
	Reconnects   int64 // connections after the first
	Envelopes    int64 // envelopes received (including duplicates)
	Duplicates   int64 // redelivered envelopes acknowledged again and skipped
	DoubleClicks int64 // repeated identical clicks ignored
	Busy         int64 // envelopes answered "busy" because the work queue was full
	Queued       int   // slow work waiting for a worker now
	SlackCalls   map[CallKey]int64
}

// New returns a Bot that talks to Slack through api. The caller builds api
// with slack.OptionAppLevelToken (Socket Mode) and, in tests, OptionAPIURL.
func New(api *slack.Client, cfg Config) *Bot {
	if cfg.Command == "" {
		cfg.Command = DefaultCommand
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 8
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 1024
	}
	if cfg.UserCacheTTL <= 0 {
		cfg.UserCacheTTL = 5 * time.Minute
	}
	if cfg.ClickWindow <= 0 {
		cfg.ClickWindow = 5 * time.Second
	}
	if cfg.DedupSize <= 0 {
		cfg.DedupSize = 8192
	}
	if cfg.AckTimeout <= 0 {
		cfg.AckTimeout = 2 * time.Second
	}
	if cfg.MaxRetryWait <= 0 {
		cfg.MaxRetryWait = 10 * time.Second
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 10 * time.Second
	}
	b := &Bot{
		api:      api,
		cfg:      cfg,
		log:      cfg.Logger,
		queue:    newFairQueue(cfg.QueueSize, maxQueuedPerPerson, cfg.Workers/2),
		recent:   newRecentSet(cfg.DedupSize),
		reported: map[string]bool{},
		calls:    map[CallKey]int64{},

		ackReplyWindow: defaultAckReplyWindow,
	}
	b.actors = newActorCache(b)
	b.limits = newLimiter(cfg.Limits)
	b.approvers = newApproverCache()
	return b
}

var _ symbot.Notifier = (*Bot)(nil)

// Connected reports whether the Socket Mode connection is up.
func (b *Bot) Connected() bool { return b.connected.Load() }

// Stats returns a snapshot of the bot's counters.
func (b *Bot) Stats() Stats {
	b.callsMu.Lock()
	calls := maps.Clone(b.calls)
	b.callsMu.Unlock()
	return Stats{
		Connected:    b.connected.Load(),
		Connections:  b.connections.Load(),
		Reconnects:   b.reconnects.Load(),
		Envelopes:    b.envelopes.Load(),
		Duplicates:   b.duplicates.Load(),
		DoubleClicks: b.doubleClicks.Load(),
		Busy:         b.busy.Load(),
		Queued:       b.queue.len(),
		SlackCalls:   calls,
	}
}

// Run connects to Slack in Socket Mode and handles commands and clicks with
// eng until ctx ends; it then waits (at most Config.ShutdownTimeout) for
// running handlers and returns nil. It returns an error early only when the
// connection cannot be made at all (e.g. the app token is invalid).
func (b *Bot) Run(ctx context.Context, eng *symbot.Engine) error {
	if eng == nil {
		return errors.New("run bot: nil engine")
	}
	if !b.running.CompareAndSwap(false, true) {
		return errors.New("run bot: already running")
	}
	defer b.running.Store(false)
	b.eng.Store(eng)

	// Admission compares every actor's team and org with the app's own:
	// learn them before taking any envelope.
	if err := b.learnWorkspace(ctx); err != nil {
		return fmt.Errorf("run bot: %w", err)
	}
	if ctx.Err() != nil {
		return nil
	}

	sm := newSocketClient(b.api, b.log, b.cfg.SocketPingTimeout)

	// Workers outlive ctx by at most ShutdownTimeout so that work already
	// acknowledged to Slack gets its chance to finish.
	workCtx, workCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer workCancel()
	b.queue.start()
	var wg sync.WaitGroup
	for range b.cfg.Workers {
		wg.Go(func() { b.work(workCtx) })
	}

	// The connection outlives ctx until the acks queued at shutdown are
	// sent (below); envelopes it reads meanwhile go unhandled and
	// unacknowledged: Slack delivers events again, and shows the person
	// of a command or click an error.
	smCtx, smCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer smCancel()
	smDone := make(chan error, 1)
	go func() { smDone <- sm.run(smCtx) }()

	// Acks outlive ctx briefly: the ones queued when shutdown starts are
	// still sent (bounded by AckTimeout), so Slack does not redeliver work
	// this process already took on.
	ackCtx, ackCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer ackCancel()
	acks := newAckQueue(1024)
	acksDone := make(chan struct{})
	go func() { defer close(acksDone); b.sendAcks(ackCtx, sm, acks.ch) }()

	var runErr error
	smFinished := false
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err := <-smDone:
			smFinished = true
			if ctx.Err() == nil {
				runErr = socketModeError(err)
				b.log.Error("socket mode stopped", "err", err)
			}
			break loop
		case evt := <-sm.events:
			b.handleEvent(acks, evt)
		}
	}
	b.connected.Store(false)
	acks.close() // work that settles its envelope later finds it closed: Slack redelivers
	ackTimer := time.NewTimer(b.cfg.AckTimeout)
	select {
	case <-acksDone:
	case <-ackTimer.C:
		ackCancel()
		<-acksDone
	}
	ackTimer.Stop()
	smCancel()

	// Stop taking work; let the workers finish what is queued, bounded.
	b.queue.stop()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	timer := time.NewTimer(b.cfg.ShutdownTimeout)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		b.log.Warn("handlers still running at shutdown; cancelling them", "timeout", b.cfg.ShutdownTimeout)
		workCancel()
		<-done
	}
	if !smFinished {
		<-smDone
	}
	return runErr
}

// work runs queued tasks until the queue stops and nothing more may run.
func (b *Bot) work(ctx context.Context) {
	for {
		t, ok := b.queue.take()
		if !ok {
			return
		}
		b.runTask(ctx, t)
		b.queue.done(t)
	}
}

func (b *Bot) runTask(ctx context.Context, t task) {
	defer func() {
		if p := recover(); p != nil {
			b.log.Error("handler panicked", "task", t.name, "panic", p)
		}
	}()
	t.fn(ctx)
}

// maxQueuedPerPerson bounds one person's waiting work.
const maxQueuedPerPerson = 16

// enqueue hands slow work for user to the worker pool without blocking;
// it reports false when the queue, or user's share of it, is full.
func (b *Bot) enqueue(name, user string, class taskClass, fn func(ctx context.Context)) bool {
	if b.queue.push(task{name: name, user: user, class: class, fn: fn}) {
		return true
	}
	b.busy.Add(1)
	b.log.Warn("work queue full", "task", name, "user", user, "queued", b.queue.len())
	return false
}

// handleEvent runs on the event loop: it must never block on Slack or the
// engine.
func (b *Bot) handleEvent(acks *ackQueue, evt socketmode.Event) {
	switch evt.Type {
	case socketmode.EventTypeConnecting:
		b.connected.Store(false)
	case socketmode.EventTypeConnected:
		b.connected.Store(true)
		if n := b.connections.Add(1); n > 1 {
			b.reconnects.Add(1)
			b.log.Info("socket mode reconnected", "connections", n)
		} else {
			b.log.Info("socket mode connected")
		}
	case socketmode.EventTypeHello:
		b.connected.Store(true)
	case socketmode.EventTypeConnectionError:
		b.connected.Store(false)
		if e, ok := evt.Data.(*slack.ConnectionErrorEvent); ok {
			b.log.Warn("socket mode connection failed", "attempt", e.Attempt, "backoff", e.Backoff, "err", e.ErrorObj)
		}
	case socketmode.EventTypeInvalidAuth:
		b.connected.Store(false)
		b.log.Error("socket mode: app token rejected; check the app-level token (connections:write)")
	case socketmode.EventTypeIncomingError:
		b.log.Warn("socket mode read failed; reconnecting", "err", evt.Data)
	case socketmode.EventTypeErrorBadMessage:
		// Not the message: it may hold a person's text or a response_url.
		if e, ok := evt.Data.(*socketmode.ErrorBadMessage); ok {
			b.log.Warn("socket mode: unreadable message", "err", e.Cause, "bytes", len(e.Message))
		}
	case socketmode.EventTypeSlashCommand, socketmode.EventTypeInteractive, socketmode.EventTypeEventsAPI:
		if evt.Request == nil {
			return
		}
		b.handleEnvelope(acks, evt)
	}
}

// handleEnvelope acknowledges one envelope (deduplicating redeliveries)
// and queues any slow work. Most envelopes are acknowledged at once; one
// whose work changes stored state (a request, a decision) is acknowledged
// by that work once its outcome is stored (ackWhenDone), so that a process
// that dies in between leaves the envelope unacknowledged: Slack delivers
// it again, or shows the person an error, instead of an acknowledgement
// followed by nothing. Such work on a slash command answers the person in
// that ack when it still can (ackReply), not by a response_url call.
func (b *Bot) handleEnvelope(acks *ackQueue, evt socketmode.Event) {
	b.envelopes.Add(1)
	req := evt.Request
	now := b.cfg.Now()
	if prev, dup := b.recent.get("env|"+req.EnvelopeID, now); dup {
		b.duplicates.Add(1)
		if prev == ackWhenDone {
			// Its work is still running here: that work acknowledges it.
			b.log.Debug("duplicate envelope of work in progress", "envelope_id", req.EnvelopeID, "retry_attempt", req.RetryAttempt)
			return
		}
		b.log.Debug("duplicate envelope", "envelope_id", req.EnvelopeID, "retry_attempt", req.RetryAttempt)
		b.ack(acks, req.EnvelopeID, prev)
		return
	}
	if req.RetryAttempt > 0 && b.sharedSeen("env|"+req.EnvelopeID, now) {
		// Another replica handled it (its ack was lost or late): acknowledge
		// without handling it again.
		b.duplicates.Add(1)
		b.log.Debug("envelope handled by another replica", "envelope_id", req.EnvelopeID, "retry_attempt", req.RetryAttempt)
		b.ack(acks, req.EnvelopeID, nil)
		return
	}
	settle, reply := b.settlers(acks, req.EnvelopeID)
	var payload any
	switch evt.Type {
	case socketmode.EventTypeSlashCommand:
		if cmd, ok := evt.Data.(slack.SlashCommand); ok {
			var ar *ackReply
			if req.AcceptsResponsePayload {
				ar = &ackReply{send: reply, until: time.Now().Add(b.ackReplyWindow)}
			}
			payload = b.onSlash(cmd, now, settle, ar)
		}
	case socketmode.EventTypeInteractive:
		if cb, ok := evt.Data.(slack.InteractionCallback); ok {
			payload = b.onInteraction(cb, now, req.RetryAttempt > 0, settle)
		}
	}
	if payload == ackWhenDone {
		// Remember that its work runs here, unless that work already
		// settled it.
		b.recent.addValue("env|"+req.EnvelopeID, now, 0, ackWhenDone)
		return
	}
	payload = b.boundAck(payload)
	if payload == errNoAck {
		// Overloaded: leave it unacknowledged so Slack delivers it again.
		return
	}
	settle(payload)
}

// settlers returns the two ways to acknowledge envelope id, of which only
// the first call of either does anything: settle(payload) acknowledges it
// with payload; reply(msg) does the same with an answer to the person and
// reports whether it queued the ack. An answer whose ack could not be
// queued is not kept for a redelivery's ack: its caller sends it another
// way.
func (b *Bot) settlers(acks *ackQueue, id string) (settle func(any), reply func(any) bool) {
	var once sync.Once
	do := func(payload any, answer bool) (acked bool) {
		once.Do(func() {
			at := b.cfg.Now()
			b.recent.put("env|"+id, at, 0, payload)
			acked = b.ack(acks, id, payload)
			switch {
			case acked:
				// Only an envelope this replica acknowledges is handled for
				// the others: one whose ack was dropped is delivered again.
				go b.sharedMark("env|"+id, at, envelopeMemory) // off the event loop: a retry comes seconds later
			case answer:
				b.recent.put("env|"+id, at, 0, nil)
			}
		})
		return acked
	}
	return func(payload any) { do(payload, false) }, func(payload any) bool { return do(payload, true) }
}

// ackWhenDone as an ack payload means "the queued work acknowledges this
// envelope when its outcome is stored".
var ackWhenDone = &struct{ later bool }{true}

// settled wraps work queued for an envelope so that the envelope is
// acknowledged (with no payload) when the work ends, whatever its outcome:
// by then the outcome is stored, or the person was told why not. When the
// work's answer to the person rode in the ack (ackReply), the envelope is
// acknowledged already and this does nothing. Work cut short by shutdown
// leaves its envelope unacknowledged, for Slack to deliver again to
// another replica.
func settled(settle func(any), fn func(ctx context.Context)) func(ctx context.Context) {
	return func(ctx context.Context) {
		fn(ctx)
		if ctx.Err() == nil {
			settle(nil)
		}
	}
}

// errNoAck as an ack payload means "do not acknowledge".
var errNoAck = &struct{ noAck bool }{true}

// ackItem is one acknowledgement waiting to be written.
type ackItem struct {
	envelopeID string
	payload    any
}

// ackQueue holds acknowledgements waiting to be written. Work that
// settles its envelope after Run stopped finds it closed.
type ackQueue struct {
	mu     sync.Mutex
	ch     chan ackItem
	closed bool
}

func newAckQueue(n int) *ackQueue { return &ackQueue{ch: make(chan ackItem, n)} }

// put queues a without blocking; it reports false when the queue is full
// or closed.
func (q *ackQueue) put(a ackItem) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return false
	}
	select {
	case q.ch <- a:
		return true
	default:
		return false
	}
}

func (q *ackQueue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.closed {
		q.closed = true
		close(q.ch)
	}
}

// ack queues an acknowledgement without blocking and reports whether it
// did. If the queue is full (the socket is down for long) or closed
// (shutting down) the ack is dropped: Slack redelivers the envelope and the
// duplicate is acknowledged then.
func (b *Bot) ack(acks *ackQueue, envelopeID string, payload any) bool {
	if !acks.put(ackItem{envelopeID, payload}) {
		b.log.Warn("ack queue full or closed; Slack will redeliver", "envelope_id", envelopeID)
		return false
	}
	return true
}

// sendAcks writes queued acks to the socket, each bounded by AckTimeout
// (an ack made while the socket is down waits for the next connection
// that long).
func (b *Bot) sendAcks(ctx context.Context, sm *socketClient, acks <-chan ackItem) {
	for a := range acks {
		actx, cancel := context.WithTimeout(ctx, b.cfg.AckTimeout)
		if err := sm.ack(actx, a.envelopeID, a.payload); err != nil {
			b.log.Warn("ack failed; Slack will redeliver", "envelope_id", a.envelopeID, "err", err)
		}
		cancel()
	}
}

// engine returns the engine given to Run.
func (b *Bot) engine() *symbot.Engine { return b.eng.Load() }

// socketModeError wraps the error that ended Socket Mode; when Slack
// refused the app-level token it is a *TokenError naming the variable that
// holds it and how to make a new one.
func socketModeError(err error) error {
	if te := tokenError(EnvAppToken, "apps.connections.open", err); te != nil {
		return fmt.Errorf("socket mode connection: %w", te)
	}
	// socketmode may hand back Slack's bare error code.
	if code := err.Error(); refused(code) {
		return fmt.Errorf("socket mode connection: %w", &TokenError{Env: EnvAppToken, Code: code, Method: "apps.connections.open", Err: err})
	}
	return fmt.Errorf("socket mode connection: %w", err)
}
