package symbot_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/store/memstore"
)

// fakeDir is an in-memory Directory with call counts and injected failures.
type fakeDir struct {
	mu      sync.Mutex
	users   map[string]symbot.DirUser // by email
	members map[string]map[string]bool
	adds    map[string]int // "uid|gid" -> calls
	removes map[string]int
	// failures: op -> errors returned (in order) before succeeding
	fail map[string][]error
	// resolveCalls counts ResolveUser calls.
	resolveCalls int
}

func newFakeDir() *fakeDir {
	return &fakeDir{
		users:   map[string]symbot.DirUser{},
		members: map[string]map[string]bool{},
		adds:    map[string]int{},
		removes: map[string]int{},
		fail:    map[string][]error{},
	}
}

func (d *fakeDir) addUser(id, email, status string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.users[email] = symbot.DirUser{ID: id, Login: email, Email: email, Status: status, Via: symbot.ViaEmail}
}

func (d *fakeDir) setMember(uid, gid string, on bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.members[gid] == nil {
		d.members[gid] = map[string]bool{}
	}
	d.members[gid][uid] = on
}

func (d *fakeDir) isMember(uid, gid string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.members[gid][uid]
}

func (d *fakeDir) failNext(op string, errs ...error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.fail[op] = append(d.fail[op], errs...)
}

func (d *fakeDir) takeFail(op string) error {
	if errs := d.fail[op]; len(errs) > 0 {
		d.fail[op] = errs[1:]
		return errs[0]
	}
	return nil
}

func (d *fakeDir) counts(uid, gid string) (adds, removes int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.adds[uid+"|"+gid], d.removes[uid+"|"+gid]
}

func (d *fakeDir) ResolveUser(ctx context.Context, p symbot.Person) (symbot.DirUser, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.resolveCalls++
	if err := d.takeFail("resolve"); err != nil {
		return symbot.DirUser{}, err
	}
	u, ok := d.users[p.Email]
	if !ok {
		return symbot.DirUser{}, fmt.Errorf("no active Okta user with the email %s: %w", p.Email, symbot.ErrUserNotFound)
	}
	if u.Status != "ACTIVE" {
		return symbot.DirUser{}, fmt.Errorf("Okta user %s is %s: %w", p.Email, u.Status, symbot.ErrUserNotActive)
	}
	return u, nil
}

func (d *fakeDir) IsMember(ctx context.Context, uid, gid string) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.takeFail("ismember"); err != nil {
		return false, err
	}
	return d.members[gid][uid], nil
}

func (d *fakeDir) AddMember(ctx context.Context, uid, gid string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.takeFail("add"); err != nil {
		return err
	}
	d.adds[uid+"|"+gid]++
	if d.members[gid] == nil {
		d.members[gid] = map[string]bool{}
	}
	d.members[gid][uid] = true
	return nil
}

func (d *fakeDir) RemoveMember(ctx context.Context, uid, gid string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.takeFail("remove"); err != nil {
		return err
	}
	d.removes[uid+"|"+gid]++
	delete(d.members[gid], uid)
	return nil
}

func (d *fakeDir) ListMembers(ctx context.Context, gid string) ([]symbot.DirUser, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.takeFail("list"); err != nil {
		return nil, err
	}
	byID := map[string]symbot.DirUser{}
	for _, u := range d.users {
		byID[u.ID] = u
	}
	var out []symbot.DirUser
	for uid, on := range d.members[gid] {
		if on {
			u, ok := byID[uid]
			if !ok {
				u = symbot.DirUser{ID: uid, Login: uid + "@example.com", Status: "ACTIVE"}
			}
			out = append(out, u)
		}
	}
	slices.SortFunc(out, func(a, b symbot.DirUser) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// note is one notification the fake notifier received.
type note struct {
	Kind  string // post, update, dm, alert
	To    string
	ID    string
	Event symbot.Event
	State symbot.State
	Text  string
}

type fakeNotifier struct {
	mu    sync.Mutex
	notes []note
	seq   int
	fail  map[string][]error
	gate  chan struct{} // when set, NotifyUser waits for it to close
}

func (n *fakeNotifier) failNext(kind string, errs ...error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.fail == nil {
		n.fail = map[string][]error{}
	}
	n.fail[kind] = append(n.fail[kind], errs...)
}

func (n *fakeNotifier) take(kind string) error {
	if errs := n.fail[kind]; len(errs) > 0 {
		n.fail[kind] = errs[1:]
		return errs[0]
	}
	return nil
}

func (n *fakeNotifier) PostRequest(ctx context.Context, f *symbot.Flow, r *symbot.Request) (symbot.MessageRef, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.take("post"); err != nil {
		return symbot.MessageRef{}, err
	}
	n.seq++
	n.notes = append(n.notes, note{Kind: "post", To: f.Channel, ID: r.ID, Event: symbot.EventRequested, State: r.State})
	return symbot.MessageRef{Channel: f.Channel, TS: fmt.Sprintf("1700000000.%06d", n.seq)}, nil
}

func (n *fakeNotifier) UpdateRequest(ctx context.Context, f *symbot.Flow, r *symbot.Request, ev symbot.Event) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.take("update"); err != nil {
		return err
	}
	n.notes = append(n.notes, note{Kind: "update", To: r.Message.Channel, ID: r.ID, Event: ev, State: r.State})
	return nil
}

func (n *fakeNotifier) NotifyUser(ctx context.Context, to string, f *symbot.Flow, r *symbot.Request, ev symbot.Event) error {
	if n.gate != nil {
		<-n.gate
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.take("dm"); err != nil {
		return err
	}
	n.notes = append(n.notes, note{Kind: "dm", To: to, ID: r.ID, Event: ev, State: r.State})
	return nil
}

// NotifyMember records a DM to a person without a request, as kind
// "member" (To: the email, Text: flow/target).
func (n *fakeNotifier) NotifyMember(ctx context.Context, email string, f *symbot.Flow, target string, ev symbot.Event) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.take("member"); err != nil {
		return err
	}
	n.notes = append(n.notes, note{Kind: "member", To: email, Event: ev, Text: f.Name + "/" + target})
	return nil
}

func (n *fakeNotifier) Alert(ctx context.Context, a symbot.Alert) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.notes = append(n.notes, note{Kind: "alert", ID: a.RequestID, Event: a.Event, Text: a.Text})
	return nil
}

// find returns the notes matching kind (and to and event when non-empty).
func (n *fakeNotifier) find(kind, to string, ev symbot.Event) []note {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []note
	for _, x := range n.notes {
		if x.Kind == kind && (to == "" || x.To == to) && (ev == "" || x.Event == ev) {
			out = append(out, x)
		}
	}
	return out
}

func (n *fakeNotifier) events(kind, to string) []symbot.Event {
	var out []symbot.Event
	for _, x := range n.find(kind, to, "") {
		out = append(out, x.Event)
	}
	return out
}

// People used across the tests.
var (
	alice   = symbot.Actor{Person: symbot.Person{SlackID: "UALICE", Name: "alice", Email: "alice@example.com"}}
	bob     = symbot.Actor{Person: symbot.Person{SlackID: "UBOB", Name: "bob", Email: "bob@example.com"}}
	carol   = symbot.Actor{Person: symbot.Person{SlackID: "UCAROL", Name: "carol", Email: "carol@example.com"}}
	dave    = symbot.Actor{Person: symbot.Person{SlackID: "UDAVE", Name: "dave", Email: "dave@example.com"}}
	guest   = symbot.Actor{Person: symbot.Person{SlackID: "UGUEST", Name: "gus", Email: "gus@example.com"}, IsGuest: true}
	botUser = symbot.Actor{Person: symbot.Person{SlackID: "UBOT", Name: "robot", Email: "robot@example.com"}, IsBot: true}
)

func testFlow() symbot.Flow {
	return symbot.Flow{
		Name:          "prod",
		Label:         "Production",
		Channel:       "CACCESS",
		Approvers:     symbot.Approvers{Users: []string{"UBOB", "UCAROL"}},
		AllowRevoke:   true,
		Durations:     []time.Duration{15 * time.Minute, time.Hour, 4 * time.Hour},
		ExpiryWarning: 10 * time.Minute,
		Targets: []symbot.Target{
			{Name: "admin", Label: "Prod admin", GroupID: "GADMIN"},
			{Name: "ro", Label: "Prod read-only", GroupID: "GRO"},
		},
	}
}

type harness struct {
	eng   *symbot.Engine
	dir   *fakeDir
	notes *fakeNotifier
	st    symbot.Store
}

func newHarness(t testing.TB, st symbot.Store, flows ...symbot.Flow) *harness {
	t.Helper()
	if st == nil {
		ms := memstore.New()
		ms.RerunUpdates = true // every transaction must survive being run twice
		st = ms
	}
	if len(flows) == 0 {
		flows = []symbot.Flow{testFlow()}
	}
	h := &harness{dir: newFakeDir(), notes: &fakeNotifier{}, st: st}
	for _, a := range []symbot.Actor{alice, bob, carol, dave, guest, botUser} {
		h.dir.addUser("00u"+a.Name, a.Email, "ACTIVE")
	}
	eng, err := symbot.NewEngine(st, h.dir, h.notes, flows)
	if err != nil {
		t.Fatalf("NewEngine: %v", err)
	}
	eng.Runtime.RetryBase = time.Second
	eng.Runtime.RetryMax = 10 * time.Second
	eng.Runtime.RevokeRetryMax = 10 * time.Second
	h.eng = eng
	return h
}

// start runs the engine until the test ends.
func (h *harness) start(t testing.TB) {
	t.Helper()
	t.Cleanup(runEngine(h.eng))
}

// runEngine runs eng (Run) until stop is called; stop returns once Run
// has returned.
func runEngine(eng *symbot.Engine) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = eng.Run(ctx) }()
	return func() { cancel(); <-done }
}

func (h *harness) mustSubmit(t testing.TB, a symbot.Actor, target string, d time.Duration) *symbot.Request {
	t.Helper()
	r, err := h.eng.Submit(t.Context(), a, symbot.RequestInput{Target: target, Duration: d, Reason: "fix the outage"})
	if err != nil {
		t.Fatalf("Submit(%s, %s): %v", a.Name, target, err)
	}
	return r
}

// mustGrant submits a request, has bob approve it and waits (in a synctest
// bubble) until the grant is active.
func (h *harness) mustGrant(t testing.TB, a symbot.Actor, target string, d time.Duration) *symbot.Request {
	t.Helper()
	r := h.mustSubmit(t, a, target, d)
	h.mustApprove(t, r.ID, bob)
	synctest.Wait()
	return h.wantState(t, r.ID, symbot.StateActive)
}

// mustActivate submits a 15-minute admin request for each of who, has bob
// approve each, runs the grant jobs and checks the grants are active; it
// returns their IDs. Unlike mustGrant it needs no synctest bubble.
func (h *harness) mustActivate(t testing.TB, who ...symbot.Actor) []string {
	t.Helper()
	var ids []string
	for _, a := range who {
		r := h.mustSubmit(t, a, "admin", 15*time.Minute)
		h.mustApprove(t, r.ID, bob)
		ids = append(ids, r.ID)
	}
	if _, err := h.eng.RunDueJobs(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		h.wantState(t, id, symbot.StateActive)
	}
	return ids
}

func (h *harness) mustApprove(t testing.TB, id string, a symbot.Actor) *symbot.Request {
	t.Helper()
	r, err := h.eng.Approve(t.Context(), id, a, "")
	if err != nil {
		t.Fatalf("Approve(%s by %s): %v", id, a.Name, err)
	}
	return r
}

func (h *harness) get(t testing.TB, id string) *symbot.Request {
	t.Helper()
	r, err := h.eng.Get(context.Background(), id)
	if err != nil {
		t.Fatalf("Get(%s): %v", id, err)
	}
	return r
}

func (h *harness) wantState(t testing.TB, id string, want symbot.State) *symbot.Request {
	t.Helper()
	r := h.get(t, id)
	if r.State != want {
		t.Fatalf("request %s state = %s, want %s (transitions %+v)", id, r.State, want, r.Transitions)
	}
	return r
}

func (h *harness) pendingJobs(t testing.TB) []symbot.Job {
	t.Helper()
	var jobs []symbot.Job
	if err := h.st.View(context.Background(), func(tx symbot.Tx) error {
		var err error
		jobs, err = tx.Jobs()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return jobs
}

func eventsEqual(got []symbot.Event, want ...symbot.Event) bool { return slices.Equal(got, want) }
