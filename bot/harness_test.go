package bot_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/symbot/symbot"
	"github.com/symbot/symbot/bot"
	"github.com/symbot/symbot/bot/slacktest"
	"github.com/symbot/symbot/store/memstore"
)

// fakeDir is a hand-written in-memory Directory: people by email, group
// members by group id.
type fakeDir struct {
	mu      sync.Mutex
	users   map[string]symbot.DirUser // by email
	members map[string]map[string]bool
	delay   time.Duration   // ResolveUser and IsMember take this long: a slow Okta
	calls   map[string]int  // by method
	down    map[string]bool // groups whose IsMember fails as unavailable
}

// slow makes ResolveUser and IsMember take d.
func (d *fakeDir) slow(dd time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.delay = dd
}

// called counts a call to method and waits out the delay.
func (d *fakeDir) called(ctx context.Context, method string) error {
	d.mu.Lock()
	d.calls[method]++
	delay := d.delay
	d.mu.Unlock()
	if delay <= 0 {
		return nil
	}
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// callCount returns how often method was called.
func (d *fakeDir) callCount(method string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.calls[method]
}

func newFakeDir() *fakeDir {
	return &fakeDir{users: map[string]symbot.DirUser{}, members: map[string]map[string]bool{}, calls: map[string]int{}}
}

func (d *fakeDir) addUser(id, email string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.users[email] = symbot.DirUser{ID: id, Login: email, Email: email, Status: "ACTIVE"}
}

func (d *fakeDir) ResolveUser(ctx context.Context, p symbot.Person) (symbot.DirUser, error) {
	if err := d.called(ctx, "ResolveUser"); err != nil {
		return symbot.DirUser{}, fmt.Errorf("resolve %s: %w: %w", p.Email, symbot.ErrUnavailable, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	u, ok := d.users[p.Email]
	if !ok {
		return symbot.DirUser{}, fmt.Errorf("resolve %s: %w", p.Email, symbot.ErrUserNotFound)
	}
	return u, nil
}

func (d *fakeDir) IsMember(ctx context.Context, uid, gid string) (bool, error) {
	d.mu.Lock()
	d.calls["IsMember "+gid]++ // by group too: the approver checks apart from the grants' look-ups
	d.mu.Unlock()
	if err := d.called(ctx, "IsMember"); err != nil {
		return false, fmt.Errorf("is member: %w: %w", symbot.ErrUnavailable, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.down[gid] {
		return false, fmt.Errorf("is member of %s: %w", gid, symbot.ErrUnavailable)
	}
	return d.members[gid][uid], nil
}

func (d *fakeDir) AddMember(_ context.Context, uid, gid string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.members[gid] == nil {
		d.members[gid] = map[string]bool{}
	}
	d.members[gid][uid] = true
	return nil
}

func (d *fakeDir) RemoveMember(_ context.Context, uid, gid string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.members[gid], uid)
	return nil
}

func (d *fakeDir) ListMembers(_ context.Context, gid string) ([]symbot.DirUser, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []symbot.DirUser
	for _, u := range d.users {
		if d.members[gid][u.ID] {
			out = append(out, u)
		}
	}
	return out, nil
}

func (d *fakeDir) isMember(uid, gid string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.members[gid][uid]
}

// People of the test workspace.
const (
	alice = "U0ALICE"   // requester
	bob   = "U0BOB"     // approver
	carol = "U0CAROL"   // approver
	dave  = "U0DAVE"    // not an approver
	gus   = "U0GUEST"   // guest, listed as an approver
	botty = "U0BOTUSER" // a bot, listed as an approver
	chAcc = "C0ACCESS"  // approval channel
	chErr = "C0ERRORS"  // errors channel
)

func testFlows() []symbot.Flow {
	return []symbot.Flow{
		{
			Name: "prod", Label: "Production", Channel: chAcc,
			Approvers:   symbot.Approvers{Users: []string{bob, carol, gus, botty}},
			AllowRevoke: true,
			Durations:   []time.Duration{time.Hour, 4 * time.Hour},
			Targets: []symbot.Target{
				{Name: "admin", Label: "Prod admin", GroupID: "G-ADMIN"},
				{Name: "readonly", Label: "Prod read-only", GroupID: "G-RO"},
			},
		},
		{
			Name: "db", Label: "Databases", Channel: chAcc,
			Approvers:         symbot.Approvers{Users: []string{bob, carol}},
			ApprovalsRequired: 2,
			Durations:         []time.Duration{30 * time.Minute},
			Targets: []symbot.Target{
				{Name: "pg", Label: "Postgres superuser", GroupID: "G-PG"},
				{Name: "readonly", Label: "DB read-only", GroupID: "G-DBRO"},
			},
		},
	}
}

type harness struct {
	t   testing.TB
	s   *slacktest.Server
	bot *bot.Bot
	eng *symbot.Engine
	dir *fakeDir
	st  *memstore.Store
	// clock is the harness's settable clock (withClock), or nil.
	clock *testClock

	cancel context.CancelFunc
	done   chan error
}

type harnessOpt func(*harnessCfg)

type harnessCfg struct {
	clock  *testClock
	flows  []symbot.Flow
	botCfg bot.Config
	users  []slacktest.User
	server func(*slacktest.Server)
	bot    func(*bot.Bot)
}

// withUsers adds people to the workspace (or replaces the standard ones).
func withUsers(us ...slacktest.User) harnessOpt {
	return func(c *harnessCfg) { c.users = append(c.users, us...) }
}

// withBot changes the bot before it runs.
func withBot(fn func(*bot.Bot)) harnessOpt {
	return func(c *harnessCfg) { c.bot = fn }
}

// withServer changes the simulator before the bot connects.
func withServer(fn func(*slacktest.Server)) harnessOpt {
	return func(c *harnessCfg) { c.server = fn }
}

// testClock is a settable clock for the engine and the bot: deadlines
// come when a test moves it (harness.advance), not when time passes.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func newTestClock(at time.Time) *testClock { return &testClock{now: at} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// withClock runs the engine and the bot on c.
func withClock(c *testClock) harnessOpt { return func(cfg *harnessCfg) { cfg.clock = c } }

// advanceTo moves the harness clock to t and fires what is due then, as
// the scheduler does when its timer runs out.
func (h *harness) advanceTo(t time.Time) {
	h.t.Helper()
	// Let the queued jobs finish first: a clock jump past their leases
	// would have them run twice (at least once is the contract, but the
	// tests count messages).
	h.waitFor("jobs done before the clock moves", func() bool {
		var n int
		_ = h.st.View(context.Background(), func(tx symbot.Tx) error {
			st, err := tx.JobStats()
			n = st.Pending
			return err
		})
		return n == 0
	})
	h.clock.set(t)
	if err := h.eng.FireDue(context.Background()); err != nil {
		h.t.Fatalf("FireDue at %v: %v", t, err)
	}
}

func withFlows(f []symbot.Flow) harnessOpt { return func(c *harnessCfg) { c.flows = f } }
func withBotConfig(fn func(*bot.Config)) harnessOpt {
	return func(c *harnessCfg) { fn(&c.botCfg) }
}

func testLogger(tb testing.TB) *slog.Logger {
	if os.Getenv("BOT_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// MustHarness starts a Slack simulator, a bot and an engine on a memstore.
func MustHarness(tb testing.TB, opts ...harnessOpt) *harness {
	tb.Helper()
	cfg := harnessCfg{flows: testFlows(), botCfg: bot.Config{ErrorsChannel: chErr, Logger: testLogger(tb)}}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.clock != nil {
		cfg.botCfg.Now = cfg.clock.Now
	}
	s := slacktest.NewServer()
	tb.Cleanup(s.Close)
	for _, u := range []slacktest.User{
		{ID: alice, Name: "alice", Email: "alice@example.com"},
		{ID: bob, Name: "bob", Email: "bob@example.com"},
		{ID: carol, Name: "carol", Email: "carol@example.com"},
		{ID: dave, Name: "dave", Email: "dave@example.com"},
		{ID: gus, Name: "gus", Email: "gus@example.com", IsRestricted: true},
		{ID: botty, Name: "botty", Email: "botty@example.com", IsBot: true},
	} {
		s.AddUser(u)
	}
	for _, u := range cfg.users {
		s.AddUser(u)
	}
	if cfg.server != nil {
		cfg.server(s)
	}
	s.AddChannel(slacktest.Channel{ID: chAcc, Name: "access", BotIsMember: true})
	s.AddChannel(slacktest.Channel{ID: chErr, Name: "symbot-errors", BotIsMember: true})

	dir := newFakeDir()
	for _, e := range []string{"alice", "bob", "carol", "dave", "gus"} {
		dir.addUser("00u"+e, e+"@example.com")
	}
	api := slack.New(s.BotToken, slack.OptionAPIURL(s.APIURL()), slack.OptionAppLevelToken(s.AppToken))
	b := bot.New(api, cfg.botCfg)
	if cfg.bot != nil {
		cfg.bot(b)
	}
	st := memstore.New()
	st.RerunUpdates = true // transactions must survive being run twice
	eng, err := symbot.NewEngine(st, dir, b, cfg.flows)
	if err != nil {
		tb.Fatalf("NewEngine: %v", err)
	}
	eng.Runtime.RetryBase = 10 * time.Millisecond
	eng.Runtime.RetryMax = 100 * time.Millisecond
	eng.Runtime.RevokeRetryMax = 100 * time.Millisecond
	eng.Logger = cfg.botCfg.Logger
	if cfg.clock != nil {
		eng.Now = cfg.clock.Now
	}

	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{t: tb, s: s, bot: b, eng: eng, dir: dir, st: st, clock: cfg.clock, cancel: cancel, done: make(chan error, 2)}
	go func() { h.done <- eng.Run(ctx) }()
	go func() { h.done <- b.Run(ctx, eng) }()
	tb.Cleanup(h.stop)
	h.waitFor("bot connected", b.Connected)
	return h
}

func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.cancel = nil
	for range 2 {
		select {
		case err := <-h.done:
			if err != nil {
				h.t.Errorf("run returned %v", err)
			}
		case <-time.After(15 * time.Second):
			h.t.Errorf("run did not stop within 15s")
			return
		}
	}
}

// waitFor waits (10s at most) until cond holds.
func (h *harness) waitFor(what string, cond func() bool) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.s.WaitFor(ctx, cond); err != nil {
		h.t.Fatalf("waiting for %s: %v", what, err)
	}
}

func (h *harness) slash(user, text string) slacktest.Ack {
	h.t.Helper()
	ack, err := h.s.SlashCommand(user, "/sym", text, chAcc)
	if err != nil {
		h.t.Fatalf("/sym %s: %v", text, err)
	}
	return ack
}

func (h *harness) click(user string, ref slacktest.MessageRef, action string) slacktest.Ack {
	h.t.Helper()
	ack, err := h.s.ClickButton(user, ref, action)
	if err != nil {
		h.t.Fatalf("click %s: %v", action, err)
	}
	return ack
}

// request submits "/sym req <text>" as user and waits for its approval message.
func (h *harness) request(user, text string) (*symbot.Request, slacktest.MessageRef) {
	h.t.Helper()
	before := len(h.requests(user))
	ack := h.slash(user, "req "+text)
	if told := ackText(h.t, ack); len(ack.Payload) > 0 && !strings.Contains(told, "sent; it is waiting for approval") {
		h.t.Fatalf("/sym req %s: ack says %s", text, ack.Payload)
	}
	var r *symbot.Request
	h.waitFor("request recorded and posted", func() bool {
		rs := h.requests(user)
		if len(rs) <= before {
			return false
		}
		r = rs[0]
		return r.Message.TS != ""
	})
	return r, slacktest.MessageRef{Channel: r.Message.Channel, TS: r.Message.TS}
}

// requests returns user's non-final requests, newest first.
func (h *harness) requests(user string) []*symbot.Request {
	rs, err := h.eng.ListForUser(context.Background(), user)
	if err != nil {
		h.t.Fatalf("ListForUser: %v", err)
	}
	return rs
}

func (h *harness) get(id string) *symbot.Request {
	h.t.Helper()
	r, err := h.eng.Get(context.Background(), id)
	if err != nil {
		h.t.Fatalf("Get %s: %v", id, err)
	}
	return r
}

func (h *harness) waitState(id string, s symbot.State) *symbot.Request {
	h.t.Helper()
	var r *symbot.Request
	h.waitFor(fmt.Sprintf("%s to be %s", id, s), func() bool {
		var err error
		r, err = h.eng.Get(context.Background(), id)
		return err == nil && r.State == s
	})
	return r
}

func (h *harness) message(ref slacktest.MessageRef) slacktest.Message {
	h.t.Helper()
	m, ok := h.s.Message(ref)
	if !ok {
		h.t.Fatalf("no message %v", ref)
	}
	return m
}

// containing returns the messages whose rendering contains sub.
func containing(ms []slacktest.Message, sub string) []slacktest.Message {
	var out []slacktest.Message
	for _, m := range ms {
		if strings.Contains(render(m), sub) {
			out = append(out, m)
		}
	}
	return out
}

// ephemeralsWith returns the ephemeral messages to user containing sub.
func (h *harness) ephemeralsWith(user, sub string) []slacktest.Message {
	return containing(h.s.Ephemerals(user), sub)
}

// dmsWith returns the DMs to user containing sub.
func (h *harness) dmsWith(user, sub string) []slacktest.Message {
	return containing(h.s.DMs(user), sub)
}

// waitEphemeral waits for an ephemeral message to user containing sub.
func (h *harness) waitEphemeral(user, sub string) slacktest.Message {
	h.t.Helper()
	return h.waitFirst(fmt.Sprintf("ephemeral to %s containing %q", user, sub), func() []slacktest.Message { return h.ephemeralsWith(user, sub) })
}

// waitDM waits for a DM to user containing sub.
func (h *harness) waitDM(user, sub string) slacktest.Message {
	h.t.Helper()
	return h.waitFirst(fmt.Sprintf("DM to %s containing %q", user, sub), func() []slacktest.Message { return h.dmsWith(user, sub) })
}

// waitFirst waits until list returns a message and returns the first.
func (h *harness) waitFirst(what string, list func() []slacktest.Message) slacktest.Message {
	h.t.Helper()
	var ms []slacktest.Message
	h.waitFor(what, func() bool { ms = list(); return len(ms) > 0 })
	return ms[0]
}

func (h *harness) waitThread(ref slacktest.MessageRef, sub string) {
	h.t.Helper()
	h.waitFor(fmt.Sprintf("thread reply containing %q", sub), func() bool {
		for _, m := range h.s.Thread(ref.Channel, ref.TS) {
			if m.TS != ref.TS && strings.Contains(render(m), sub) {
				return true
			}
		}
		return false
	})
}

// openView returns user's newest open view with the callback id.
func (h *harness) openView(user, callbackID string) slacktest.View {
	h.t.Helper()
	var v slacktest.View
	h.waitFor("modal "+callbackID+" for "+user, func() bool {
		vs := h.s.Views(user)
		for i := len(vs) - 1; i >= 0; i-- {
			if vs[i].CallbackID == callbackID && !vs[i].Closed {
				v = vs[i]
				return true
			}
		}
		return false
	})
	return v
}

// render flattens a message's text and every text in its blocks, plus the
// action ids of its elements, for assertions.
func render(m slacktest.Message) string {
	var b strings.Builder
	b.WriteString(m.Text)
	var v any
	if len(m.Blocks) > 0 && json.Unmarshal(m.Blocks, &v) == nil {
		walkTexts(v, &b)
	}
	return b.String()
}

func walkTexts(v any, b *strings.Builder) {
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			if s, ok := val.(string); ok && (k == "text" || k == "action_id") {
				b.WriteString("\n")
				b.WriteString(s)
				continue
			}
			walkTexts(val, b)
		}
	case []any:
		for _, e := range x {
			walkTexts(e, b)
		}
	}
}

func ackText(tb testing.TB, a slacktest.Ack) string {
	tb.Helper()
	var p struct {
		Text string `json:"text"`
	}
	if len(a.Payload) == 0 {
		return ""
	}
	if err := json.Unmarshal(a.Payload, &p); err != nil {
		tb.Fatalf("ack payload %s: %v", a.Payload, err)
	}
	return p.Text
}

func ackErrors(tb testing.TB, a slacktest.Ack) map[string]string {
	tb.Helper()
	var p struct {
		ResponseAction string            `json:"response_action"`
		Errors         map[string]string `json:"errors"`
	}
	if len(a.Payload) == 0 {
		return nil
	}
	if err := json.Unmarshal(a.Payload, &p); err != nil {
		tb.Fatalf("ack payload %s: %v", a.Payload, err)
	}
	if p.ResponseAction != "errors" {
		tb.Fatalf("ack response_action = %q, want errors", p.ResponseAction)
	}
	return p.Errors
}

var errTimeout = errors.New("timeout")

// wantFormErrors submits values to the view and checks that the form is
// refused with exactly the blocks of want, each error containing its text.
func (h *harness) wantFormErrors(t *testing.T, user, viewID string, values map[string]map[string]slacktest.ViewValue, want map[string]string) {
	t.Helper()
	ack, err := h.s.SubmitView(user, viewID, values)
	if err != nil {
		t.Fatalf("submit: %v", err)
	}
	errs := ackErrors(t, ack)
	if len(errs) != len(want) {
		t.Errorf("errors = %v, want keys of %v", errs, want)
	}
	for k, w := range want {
		if !strings.Contains(errs[k], w) {
			t.Errorf("error for %s = %q, want it to contain %q", k, errs[k], w)
		}
	}
}
