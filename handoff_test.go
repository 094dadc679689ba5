package symbot_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/store/memstore"
	"github.com/symbot/symbot/store/postgres"
	"github.com/symbot/symbot/store/postgres/pgtest"
	"github.com/symbot/symbot/store/storetest"
)

// claimSpy records the kinds of the jobs the executor claimed.
type claimSpy struct {
	symbot.Store
	mu      sync.Mutex
	claimed map[symbot.JobKind]int
}

func (s *claimSpy) ClaimJobs(ctx context.Context, owner string, now time.Time, lease time.Duration, max int) ([]symbot.Job, error) {
	js, err := s.Store.ClaimJobs(ctx, owner, now, lease, max)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, j := range js {
		s.claimed[j.Kind]++
	}
	return js, err
}

func (s *claimSpy) count(k symbot.JobKind) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.claimed[k]
}

// TestCreatedJobsRunWithoutAClaim: the approval message of a new request
// and the grant of an approved one run on this process's workers straight
// from the transaction that created them, not after a claim transaction
// and a wait in the executor's queue (issue 13: a claim commit stood
// before every approval message and every Okta add).
func TestCreatedJobsRunWithoutAClaim(t *testing.T) {
	ms := memstore.New()
	ms.RerunUpdates = true // the hand-over must survive its transaction running twice
	spy := &claimSpy{Store: ms, claimed: map[symbot.JobKind]int{}}
	h := newHarness(t, spy)
	// A request made before the executor runs is claimed once it does:
	// once its message is posted, the executor is running.
	r0 := h.mustSubmit(t, carol, "ro", time.Hour)
	h.start(t)
	storetest.WaitFor(t, 10*time.Second, "the executor to run", func() bool { return h.get(t, r0.ID).Message.TS != "" })
	spy.mu.Lock()
	clear(spy.claimed)
	spy.mu.Unlock()

	r := h.mustSubmit(t, alice, "admin", time.Hour)
	storetest.WaitFor(t, 10*time.Second, "the approval message", func() bool { return h.get(t, r.ID).Message.TS != "" })
	h.mustApprove(t, r.ID, bob)
	storetest.WaitFor(t, 10*time.Second, "the grant", func() bool { return h.get(t, r.ID).State == symbot.StateActive })
	if !h.dir.isMember("00ualice", "GADMIN") {
		t.Fatal("active, but not a member")
	}
	if n := spy.count(symbot.JobPost); n != 0 {
		t.Errorf("the post job was claimed %d times; want it run where the request was made", n)
	}
	if n := spy.count(symbot.JobGrant); n != 0 {
		t.Errorf("the grant job was claimed %d times; want it run where the approval was made", n)
	}
	if n := len(h.notes.find("post", "", "")); n != 2 {
		t.Errorf("approval messages posted = %d, want 2", n)
	}
	if adds, _ := h.dir.counts("00ualice", "GADMIN"); adds != 1 {
		t.Errorf("Okta adds = %d, want 1", adds)
	}
}

// TestCreatedJobsClaimedWithoutRun: with no executor running (RunDueJobs,
// tools), a new job is written unleased and claimed as before.
func TestCreatedJobsClaimedWithoutRun(t *testing.T) {
	h := newHarness(t, nil)
	r := h.mustSubmit(t, alice, "admin", time.Hour)
	js := h.pendingJobs(t)
	if len(js) != 1 || js[0].Kind != symbot.JobPost || js[0].LeaseOwner != "" || js[0].LeaseToken != 0 {
		t.Fatalf("jobs after a submit with no executor = %+v; want one unleased post job", js)
	}
	if _, err := h.eng.RunDueJobs(t.Context()); err != nil {
		t.Fatal(err)
	}
	if h.get(t, r.ID).Message.TS == "" {
		t.Error("the post job did not run")
	}
}

// gateFirstAdd holds the first Okta add until release is closed.
type gateFirstAdd struct {
	*fakeDir
	once    sync.Once
	entered chan struct{}
	release chan struct{}
}

func (d *gateFirstAdd) AddMember(ctx context.Context, uid, gid string) error {
	first := false
	d.once.Do(func() { first = true })
	if first {
		close(d.entered)
		select {
		case <-d.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return d.fakeDir.AddMember(ctx, uid, gid)
}

// TestHandedOverGrantFencedAcrossReplicas: a grant job handed to a local
// worker of replica A carries A's lease like a claimed job does. When A
// stalls past its lease, replica B claims the job with a new fencing token
// and grants; A's late outcome is refused: the request becomes active
// once, recorded by B.
func TestHandedOverGrantFencedAcrossReplicas(t *testing.T) {
	url := pgtest.NewDatabase(t)
	open := func() *postgres.Store {
		st, err := postgres.Open(t.Context(), url, postgres.Config{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	stA, stB := open(), open()
	dir := &gateFirstAdd{fakeDir: newFakeDir(), entered: make(chan struct{}), release: make(chan struct{})}
	for _, a := range []symbot.Actor{alice, bob} {
		dir.addUser("00u"+a.Name, a.Email, "ACTIVE")
	}
	flow := testFlow()
	run := func(st symbot.Store, owner string, skew time.Duration) *symbot.Engine {
		eng, err := symbot.NewEngine(st, dir, &fakeNotifier{}, []symbot.Flow{flow})
		if err != nil {
			t.Fatal(err)
		}
		eng.Runtime.Owner = owner
		eng.Now = func() time.Time { return time.Now().Add(skew) }
		t.Cleanup(runEngine(eng))
		return eng
	}
	a := run(stA, "replica-a", 0)
	r, err := a.Submit(t.Context(), alice, symbot.RequestInput{Target: "admin", Duration: 4 * time.Hour, Reason: "fence test"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Approve(t.Context(), r.ID, bob, ""); err != nil {
		t.Fatal(err)
	}
	select {
	case <-dir.entered: // A's worker is in the Okta add
	case <-time.After(20 * time.Second):
		t.Fatal("replica A never reached the Okta add")
	}
	grant := func(st symbot.Store) *symbot.Job {
		var g *symbot.Job
		_ = st.View(context.Background(), func(tx symbot.Tx) error {
			js, err := tx.Jobs()
			for _, j := range js {
				if j.Kind == symbot.JobGrant {
					g = &j
				}
			}
			return err
		})
		return g
	}
	if g := grant(stA); g == nil || g.LeaseOwner != "replica-a" || g.LeaseToken != 1 {
		t.Fatalf("the grant job A's worker runs = %+v; want it leased to replica-a, token 1", g)
	}
	// B's clock is an hour ahead: to B, A's lease has run out.
	run(stB, "replica-b", time.Hour)
	storetest.WaitFor(t, 20*time.Second, "replica B to claim the grant", func() bool {
		g := grant(stB)
		return g != nil && g.LeaseOwner == "replica-b" && g.LeaseToken == 2
	})
	close(dir.release) // A's add returns; its outcome must be refused
	storetest.WaitFor(t, 20*time.Second, "the grant to be done", func() bool {
		got, err := a.Get(t.Context(), r.ID)
		return err == nil && got.State == symbot.StateActive && grant(stA) == nil
	})
	got, _ := a.Get(t.Context(), r.ID)
	actives := 0
	for _, tr := range got.Transitions {
		if tr.To == symbot.StateActive {
			actives++
		}
	}
	if actives != 1 {
		t.Errorf("transitions to active = %d, want 1: %+v", actives, got.Transitions)
	}
	if d := got.GrantedAt.Sub(time.Now()); d < 30*time.Minute {
		t.Errorf("granted at %v: recorded by replica A, whose lease was taken over; want replica B's (an hour ahead)", got.GrantedAt)
	}
	oks := 0
	for _, e := range verifyAudit(t, stA) {
		if e.Action == "job:grant:ok" {
			oks++
		}
	}
	if oks != 1 {
		t.Errorf("grant completions audited = %d, want 1", oks)
	}
}

// readSpy records the reads of one request in read-only transactions
// made after its approval committed and before its Okta add began. Claims
// wait meanwhile, so that the approval's Slack jobs (which read the
// request too) run only after the add began.
type readSpy struct {
	symbot.Store
	id     string
	adding chan struct{} // closed when the Okta add of id's grant has begun

	mu       sync.Mutex
	approved bool // the approval of id is committed
	early    int  // reads of id between the two
}

func (s *readSpy) ClaimJobs(ctx context.Context, owner string, now time.Time, lease time.Duration, max int) ([]symbot.Job, error) {
	s.mu.Lock()
	approved := s.approved
	s.mu.Unlock()
	if approved {
		select {
		case <-s.adding:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return s.Store.ClaimJobs(ctx, owner, now, lease, max)
}

func (s *readSpy) View(ctx context.Context, fn func(symbot.Tx) error) error {
	return s.Store.View(ctx, func(tx symbot.Tx) error { return fn(&readSpyTx{Tx: tx, s: s}) })
}

func (s *readSpy) Update(ctx context.Context, fn func(symbot.Tx) error) error {
	approves := false
	err := s.Store.Update(ctx, func(tx symbot.Tx) error {
		approves = false // the store may run fn more than once
		return fn(&approveSpyTx{Tx: tx, id: s.id, approves: &approves})
	})
	if err == nil && approves {
		s.mu.Lock()
		s.approved = true
		s.mu.Unlock()
	}
	return err
}

type readSpyTx struct {
	symbot.Tx
	s *readSpy
}

func (t *readSpyTx) Request(id string) (*symbot.Request, error) {
	t.s.mu.Lock()
	if id == t.s.id && t.s.approved {
		select {
		case <-t.s.adding:
		default:
			t.s.early++
		}
	}
	t.s.mu.Unlock()
	return t.Tx.Request(id)
}

// approveSpyTx notes a write of request id as approved.
type approveSpyTx struct {
	symbot.Tx
	id       string
	approves *bool
}

func (t *approveSpyTx) PutRequest(r *symbot.Request) error {
	if r.ID == t.id && r.State == symbot.StateApproved {
		*t.approves = true
	}
	return t.Tx.PutRequest(r)
}

// TestApprovedGrantGoesStraightToTheAdd: the approval that completes the
// quorum, with the early look-ups fresh, hands its grant job the request as
// it committed it and the membership lock it took for the transaction:
// between the approval's commit and the Okta add the grant reads nothing
// and waits for no lock (issue 13: two reads of the request and the lock
// stood there).
func TestApprovedGrantGoesStraightToTheAdd(t *testing.T) {
	ms := memstore.New()
	ms.RerunUpdates = true
	spy := &readSpy{Store: ms, adding: make(chan struct{})}
	dir := &gateFirstAdd{fakeDir: newFakeDir(), entered: make(chan struct{}), release: make(chan struct{})}
	for _, a := range []symbot.Actor{alice, bob} {
		dir.addUser("00u"+a.Name, a.Email, "ACTIVE")
	}
	notes := &fakeNotifier{}
	eng, err := symbot.NewEngine(spy, dir, notes, []symbot.Flow{testFlow()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(runEngine(eng))

	r, err := eng.Submit(t.Context(), alice, symbot.RequestInput{Target: "admin", Duration: time.Hour, Reason: "straight to the add"})
	if err != nil {
		t.Fatal(err)
	}
	get := func() *symbot.Request {
		got, err := eng.Get(t.Context(), r.ID)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	storetest.WaitFor(t, 10*time.Second, "the early look-ups", func() bool { return !get().PrecheckedAt.IsZero() })
	spy.mu.Lock()
	spy.id = r.ID
	spy.mu.Unlock()
	if _, err := eng.Approve(t.Context(), r.ID, bob, ""); err != nil {
		t.Fatal(err)
	}
	select {
	case <-dir.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the grant never reached the Okta add")
	}
	spy.mu.Lock()
	close(spy.adding)
	early, approved := spy.early, spy.approved
	spy.mu.Unlock()
	if !approved {
		t.Fatal("the approval's commit was not seen")
	}
	if early != 0 {
		t.Errorf("the request was read %d times between the approval's commit and the Okta add; want 0", early)
	}
	close(dir.release)
	storetest.WaitFor(t, 10*time.Second, "the grant and its messages", func() bool {
		return get().State == symbot.StateActive && len(notes.find("update", "", symbot.EventGranted)) == 1
	})
	if n := len(notes.find("update", "", symbot.EventApproved)); n != 1 {
		t.Errorf("approval message updates = %d, want 1", n)
	}
	if adds, _ := dir.counts("00ualice", "GADMIN"); adds != 1 {
		t.Errorf("Okta adds = %d, want 1", adds)
	}
	if !dir.isMember("00ualice", "GADMIN") {
		t.Error("active, but not a member")
	}
}
