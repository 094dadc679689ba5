package symbot_test

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/store/memstore"
	"github.com/symbot/symbot/store/postgres"
	"github.com/symbot/symbot/store/postgres/pgtest"
	"github.com/symbot/symbot/store/storetest"
)

// countingDir counts the directory look-ups, by person (and group).
type countingDir struct {
	*fakeDir
	mu    sync.Mutex
	calls map[string]int
	first map[string]time.Time // when each was first made
}

func (d *countingDir) firstAt(op string) time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.first[op]
}

func (d *countingDir) count(op string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.calls[op]
}

func (d *countingDir) note(op string) {
	d.mu.Lock()
	d.calls[op]++
	if _, ok := d.first[op]; !ok {
		d.first[op] = time.Now()
	}
	d.mu.Unlock()
}

func (d *countingDir) ResolveUser(ctx context.Context, p symbot.Person) (symbot.DirUser, error) {
	d.note("resolve " + p.Email)
	return d.fakeDir.ResolveUser(ctx, p)
}

func (d *countingDir) IsMember(ctx context.Context, uid, gid string) (bool, error) {
	d.note("ismember " + uid + " " + gid)
	return d.fakeDir.IsMember(ctx, uid, gid)
}

// precheckHarness runs an engine on a counting directory and a settable
// clock, after setup (if any) has set it up.
func precheckHarness(t *testing.T, setup ...func(*symbot.Engine)) (*harness, *countingDir, *clock) {
	t.Helper()
	h := newHarness(t, nil)
	dir := &countingDir{fakeDir: h.dir, calls: map[string]int{}, first: map[string]time.Time{}}
	eng, err := symbot.NewEngine(h.st, dir, h.notes, []symbot.Flow{testFlow()})
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{t: time.Now()} // the scheduler runs, on this clock: nothing is due within the test
	eng.Now = c.now
	h.eng = eng
	for _, f := range setup {
		f(eng)
	}
	// A request made before Run is posted once it runs: then Run takes
	// the early look-ups of new requests.
	r0 := h.mustSubmit(t, carol, "ro", time.Hour)
	h.start(t)
	storetest.WaitFor(t, 10*time.Second, "the engine to run", func() bool { return h.get(t, r0.ID).Message.TS != "" })
	return h, dir, c
}

func waitPrechecked(t *testing.T, h *harness, id string) *symbot.Request {
	t.Helper()
	var r *symbot.Request
	storetest.WaitFor(t, 10*time.Second, "the early look-ups", func() bool {
		r = h.get(t, id)
		return !r.PrecheckedAt.IsZero()
	})
	return r
}

// TestApprovalRecordsTheCheckLookedUpWhilePending: the requester's Okta
// user and existing membership are looked up while the request waits, and
// the approval records them as the grant's check in its own transaction:
// the grant job then makes no look-up and no commit before the Okta add
// (issue 13: two Okta round trips and a "checked" commit stood before it).
func TestApprovalRecordsTheCheckLookedUpWhilePending(t *testing.T) {
	h, dir, _ := precheckHarness(t)
	r := h.mustSubmit(t, alice, "admin", time.Hour)
	pre := waitPrechecked(t, h, r.ID)
	if pre.PreOktaUserID != "00ualice" || pre.PreMember || pre.GrantChecked {
		t.Fatalf("after the early look-ups: user %q member %t checked %t; want 00ualice, not a member, not yet checked", pre.PreOktaUserID, pre.PreMember, pre.GrantChecked)
	}
	resolves, ismembers := dir.count("resolve alice@example.com"), dir.count("ismember 00ualice GADMIN")

	got := h.mustApprove(t, r.ID, bob)
	if !got.GrantChecked || got.OktaUserID != "00ualice" || got.Preexisting {
		t.Fatalf("approved: checked %t user %q preexisting %t; want the check recorded with the approval", got.GrantChecked, got.OktaUserID, got.Preexisting)
	}
	storetest.WaitFor(t, 10*time.Second, "the grant", func() bool { return h.get(t, r.ID).State == symbot.StateActive })
	if !h.dir.isMember("00ualice", "GADMIN") {
		t.Fatal("active, but not a member")
	}
	if n, m := dir.count("resolve alice@example.com")-resolves, dir.count("ismember 00ualice GADMIN")-ismembers; n != 0 || m != 0 {
		t.Errorf("the grant made %d user and %d membership look-ups; want none (looked up while pending)", n, m)
	}
	var actions []string
	for _, e := range verifyAudit(t, h.st) {
		if e.RequestID == r.ID {
			actions = append(actions, e.Action)
		}
	}
	// Written in the approval's transaction: right after its state change.
	for i, a := range actions {
		if a == "state:approved" && (i+1 == len(actions) || actions[i+1] != "grant:checked") {
			t.Fatalf("audit of %s = %v; want grant:checked right after state:approved (in its transaction)", r.ID, actions)
		}
	}
	checks := 0
	for _, a := range actions {
		if a == "grant:checked" {
			checks++
		}
	}
	if checks != 1 {
		t.Errorf("grant:checked entries = %d, want 1: %v", checks, actions)
	}
}

// TestEarlyLookupsGiveWayToIntake: a request's early look-ups wait until
// no request, approval or denial has come in for precheckQuiet (here 300
// ms), so that they never compete with the next request's message for the
// processor (issue 13).
func TestEarlyLookupsGiveWayToIntake(t *testing.T) {
	const quiet = 300 * time.Millisecond
	h, dir, _ := precheckHarness(t, func(e *symbot.Engine) { symbot.SetPrecheckQuiet(e, quiet, time.Hour) })
	// More requests come in, one every 20 ms, from before alice's until
	// 600 ms after her approval message is posted.
	var last atomic.Int64 // unix ns of the last intake noted
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			last.Store(time.Now().UnixNano())
			symbot.NoteIntake(h.eng)
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	r := h.mustSubmit(t, alice, "admin", time.Hour)
	storetest.WaitFor(t, 10*time.Second, "the approval message", func() bool { return h.get(t, r.ID).Message.TS != "" })
	time.Sleep(600 * time.Millisecond)
	close(stop)
	<-done
	waitPrechecked(t, h, r.ID)
	if at, l := dir.firstAt("resolve alice@example.com"), time.Unix(0, last.Load()); at.Before(l.Add(quiet)) {
		t.Errorf("alice's user was looked up %v after the last intake; want at least %v (a quiet spell)", at.Sub(l), quiet)
	}
}

// TestRequestDecidedWhileLookupsWaitIsNotLookedUp: a request denied while
// its look-ups waited for a quiet spell is read again and not looked up: after a burst, many of its requests may
// have been decided, and their look-ups would only spend Okta's rate
// limit.
func TestRequestDecidedWhileLookupsWaitIsNotLookedUp(t *testing.T) {
	handled := make(chan string, 16)
	h, dir, _ := precheckHarness(t, func(e *symbot.Engine) {
		symbot.SetPrecheckQuiet(e, time.Hour, 300*time.Millisecond)
		symbot.SetPrecheckHandledHook(e, func(id string) { handled <- id })
	})
	r := h.mustSubmit(t, alice, "admin", time.Hour)
	storetest.WaitFor(t, 10*time.Second, "the approval message", func() bool { return h.get(t, r.ID).Message.TS != "" })
	if _, err := h.eng.Deny(t.Context(), r.ID, bob, "not now"); err != nil {
		t.Fatal(err)
	}
	resolves := dir.count("resolve alice@example.com") // the denial checks who alice is
	timeout := time.After(10 * time.Second)
	for id := ""; id != r.ID; {
		select {
		case id = <-handled:
		case <-timeout:
			t.Fatal("timed out waiting for the look-up worker to take the request")
		}
	}
	if n := dir.count("resolve alice@example.com") - resolves; n != 0 {
		t.Errorf("alice was looked up %d times for a request denied while its look-ups waited; want 0", n)
	}
}

// TestRequestsApprovalsAndDenialsNoteIntake: every way in for a request,
// an extension, an approval or a denial notes an intake (refused or not),
// which the early look-ups give way to.
func TestRequestsApprovalsAndDenialsNoteIntake(t *testing.T) {
	h := newHarness(t, nil)
	ctx := t.Context()
	r := h.mustSubmit(t, alice, "admin", time.Hour)
	in := symbot.RequestInput{Target: "ro", Duration: time.Hour, Reason: "fix the outage"}
	for _, c := range []struct {
		name string
		call func() error
	}{
		{"Submit", func() error { _, err := h.eng.Submit(ctx, carol, in); return err }},
		{"BreakGlass", func() error { _, err := h.eng.BreakGlass(ctx, carol, in); return err }},
		{"Extend", func() error { _, err := h.eng.Extend(ctx, r.ID, alice, time.Hour, "longer"); return err }},
		{"Approve", func() error { _, err := h.eng.Approve(ctx, r.ID, dave, ""); return err }},
		{"Deny", func() error { _, err := h.eng.Deny(ctx, r.ID, bob, ""); return err }},
	} {
		before := symbot.LastIntake(h.eng)
		err := c.call()
		if after := symbot.LastIntake(h.eng); after <= before {
			t.Errorf("%s (err %v) noted no intake: %v then %v", c.name, err, before, after)
		}
	}
}

// TestEarlyLookupsWaitForQuietAtMostMaxWait: with intake that never
// stops, the look-ups run after precheckMaxWait rather than never.
func TestEarlyLookupsWaitForQuietAtMostMaxWait(t *testing.T) {
	const most = 300 * time.Millisecond
	h, dir, _ := precheckHarness(t, func(e *symbot.Engine) { symbot.SetPrecheckQuiet(e, time.Hour, most) })
	submitted := time.Now()
	r := h.mustSubmit(t, alice, "admin", time.Hour)
	pre := waitPrechecked(t, h, r.ID)
	if pre.PreOktaUserID != "00ualice" {
		t.Fatalf("looked up user %q, want 00ualice", pre.PreOktaUserID)
	}
	if at := dir.firstAt("resolve alice@example.com"); at.Before(submitted.Add(most)) {
		t.Errorf("alice's user was looked up %v after the request; want at least %v (the most a look-up waits)", at.Sub(submitted), most)
	}
}

// TestStaleEarlyLookupsAreNotUsed: approved after GrantCheckTTL, the
// grant looks up afresh, as it always did.
func TestStaleEarlyLookupsAreNotUsed(t *testing.T) {
	h, dir, c := precheckHarness(t)
	r := h.mustSubmit(t, alice, "admin", time.Hour)
	waitPrechecked(t, h, r.ID)
	h.dir.setMember("00ualice", "GADMIN", true) // added outside symbot since
	c.add(5*time.Minute + time.Second)
	resolves, ismembers := dir.count("resolve alice@example.com"), dir.count("ismember 00ualice GADMIN")

	got := h.mustApprove(t, r.ID, bob)
	if got.GrantChecked {
		t.Fatal("a stale look-up was recorded as the grant's check")
	}
	storetest.WaitFor(t, 10*time.Second, "the grant", func() bool { return h.get(t, r.ID).State == symbot.StateActive })
	if n, m := dir.count("resolve alice@example.com")-resolves, dir.count("ismember 00ualice GADMIN")-ismembers; n != 1 || m != 1 {
		t.Errorf("the grant made %d user and %d membership look-ups; want 1 and 1", n, m)
	}
	if !h.get(t, r.ID).Preexisting {
		t.Error("the membership found at grant time is not recorded as pre-existing")
	}
}

// TestSetGrantCheckTTLWhileRunning: a reload's SetGrantCheckTTL applies
// to the approvals after it: lengthened, a look-up older than the default
// still stands; negative, the early look-ups of new requests are off.
func TestSetGrantCheckTTLWhileRunning(t *testing.T) {
	var mu sync.Mutex
	var taken []string
	h, _, c := precheckHarness(t, func(e *symbot.Engine) {
		symbot.SetPrecheckHandledHook(e, func(id string) {
			mu.Lock()
			taken = append(taken, id)
			mu.Unlock()
		})
	})
	r := h.mustSubmit(t, alice, "admin", time.Hour)
	waitPrechecked(t, h, r.ID)
	h.eng.SetGrantCheckTTL(time.Hour)
	c.add(30 * time.Minute) // past the default 5m, within the new hour
	if got := h.mustApprove(t, r.ID, bob); !got.GrantChecked {
		t.Error("approved 30m after the look-ups with GrantCheckTTL set to 1h: the look-ups were not used")
	}

	h.eng.SetGrantCheckTTL(-1)
	r2 := h.mustSubmit(t, carol, "admin", time.Hour)
	// The post decides whether to queue r2's look-ups.
	storetest.WaitFor(t, 10*time.Second, "the approval message", func() bool { return h.get(t, r2.ID).Message.TS != "" })
	// Approving now would pass even if the look-ups had been queued and
	// simply not run yet. So let a later request's look-ups run first:
	// look-ups queued for r2 would have been queued before them, and the
	// queue is first in, first out.
	h.eng.SetGrantCheckTTL(time.Hour)
	r3 := h.mustSubmit(t, dave, "admin", time.Hour)
	waitPrechecked(t, h, r3.ID)
	mu.Lock()
	if slices.Contains(taken, r2.ID) || !slices.Contains(taken, r3.ID) {
		t.Errorf("requests handled by the look-up workers: %v; want %s (on) and not %s (posted while off)", taken, r3.ID, r2.ID)
	}
	mu.Unlock()
	if got := h.get(t, r2.ID); !got.PrecheckedAt.IsZero() {
		t.Fatalf("posted with the early look-ups turned off, yet looked up at %v", got.PrecheckedAt)
	}
	h.eng.SetGrantCheckTTL(-1)
	if got := h.mustApprove(t, r2.ID, bob); got.GrantChecked || !got.PrecheckedAt.IsZero() {
		t.Errorf("with the early look-ups turned off: prechecked at %v, checked %t; want neither", got.PrecheckedAt, got.GrantChecked)
	}
}

// TestEarlyFoundMembershipGoneIsAddedAndRemoved: the person was a member
// when looked up while pending, but the membership was taken away before
// the approval: the grant adds it (it does not trust the old answer) and
// its end removes it.
func TestEarlyFoundMembershipGoneIsAddedAndRemoved(t *testing.T) {
	h, _, _ := precheckHarness(t)
	h.dir.setMember("00ualice", "GADMIN", true)
	r := h.mustSubmit(t, alice, "admin", time.Hour)
	if pre := waitPrechecked(t, h, r.ID); !pre.PreMember {
		t.Fatal("the early look-up missed the existing membership")
	}
	h.dir.setMember("00ualice", "GADMIN", false) // removed outside symbot
	if got := h.mustApprove(t, r.ID, bob); !got.GrantChecked || !got.Preexisting {
		t.Fatalf("approved: checked %t preexisting %t; want the early answer recorded", got.GrantChecked, got.Preexisting)
	}
	storetest.WaitFor(t, 10*time.Second, "the grant", func() bool { return h.get(t, r.ID).State == symbot.StateActive })
	if got := h.get(t, r.ID); got.Preexisting || !h.dir.isMember("00ualice", "GADMIN") {
		t.Fatalf("granted: preexisting %t member %t; want added by symbot", got.Preexisting, h.dir.isMember("00ualice", "GADMIN"))
	}
	if _, err := h.eng.Revoke(t.Context(), r.ID, alice, "done"); err != nil {
		t.Fatal(err)
	}
	storetest.WaitFor(t, 10*time.Second, "the removal", func() bool { return h.get(t, r.ID).Removed })
	if h.dir.isMember("00ualice", "GADMIN") {
		t.Error("the membership symbot added was left behind")
	}
}

// TestApprovalRecordsTheCheckOnPostgreSQL: with a store several replicas
// share, the approval tries the store's membership lock
// (MembershipTryLocker) and records the early look-ups as the check too.
func TestApprovalRecordsTheCheckOnPostgreSQL(t *testing.T) {
	st, err := postgres.Open(t.Context(), pgtest.NewDatabase(t), postgres.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	h := newHarness(t, st)
	r0 := h.mustSubmit(t, carol, "ro", time.Hour)
	h.start(t)
	storetest.WaitFor(t, 20*time.Second, "the engine to run", func() bool { return h.get(t, r0.ID).Message.TS != "" })
	r := h.mustSubmit(t, alice, "admin", time.Hour)
	waitPrechecked(t, h, r.ID)
	if got := h.mustApprove(t, r.ID, bob); !got.GrantChecked || got.OktaUserID != "00ualice" {
		t.Fatalf("approved on PostgreSQL: checked %t user %q; want the check recorded with the approval", got.GrantChecked, got.OktaUserID)
	}
	storetest.WaitFor(t, 20*time.Second, "the grant", func() bool { return h.get(t, r.ID).State == symbot.StateActive })
	if !h.dir.isMember("00ualice", "GADMIN") {
		t.Fatal("active, but not a member")
	}
}

// laterSpy is a store whose late writes (LaterUpdater) are recorded: for
// each committed one, whether it wrote an identity binding and whether it
// recorded early look-ups.
type laterSpy struct {
	symbot.Store
	mu     sync.Mutex
	writes []laterWrite
}

type laterWrite struct{ binding, lookups bool }

type spyTx struct {
	symbot.Tx
	w *laterWrite
}

func (t spyTx) PutIdentity(b symbot.Identity) error {
	t.w.binding = true
	return t.Tx.PutIdentity(b)
}

func (t spyTx) PutRequest(r *symbot.Request) error {
	if !r.PrecheckedAt.IsZero() {
		t.w.lookups = true
	}
	return t.Tx.PutRequest(r)
}

func (s *laterSpy) UpdateLater(ctx context.Context, fn func(symbot.Tx) error) error {
	var w laterWrite
	err := s.Store.Update(ctx, func(tx symbot.Tx) error {
		w = laterWrite{} // may run more than once
		return fn(spyTx{tx, &w})
	})
	if err == nil {
		s.mu.Lock()
		s.writes = append(s.writes, w)
		s.mu.Unlock()
	}
	return err
}

// TestFirstRequestBindsWithTheEarlyLookups: a first-time requester's
// identity binding, found by the early look-ups, is written in the same
// late write as the look-ups (one write, not two).
func TestFirstRequestBindsWithTheEarlyLookups(t *testing.T) {
	ms := memstore.New()
	ms.RerunUpdates = true
	spy := &laterSpy{Store: ms}
	h := newHarness(t, spy)
	h.start(t)
	r := h.mustSubmit(t, dave, "admin", time.Hour)
	pre := waitPrechecked(t, h, r.ID)
	if pre.PreOktaUserID != "00udave" {
		t.Fatalf("early look-ups found %q, want 00udave", pre.PreOktaUserID)
	}
	// The spy notes a late write once its commit has returned, which may
	// come after the commit is seen.
	storetest.WaitFor(t, 10*time.Second, "the look-ups' late write", func() bool {
		spy.mu.Lock()
		defer spy.mu.Unlock()
		for _, w := range spy.writes {
			if w.lookups {
				return true
			}
		}
		return false
	})
	var b symbot.Identity
	var bound bool
	if err := h.st.View(t.Context(), func(tx symbot.Tx) error {
		var err error
		b, bound, err = tx.Identity(dave.SlackID)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if !bound || b.OktaUserID != "00udave" {
		t.Fatalf("binding of dave = %+v (%t), want 00udave", b, bound)
	}
	spy.mu.Lock()
	defer spy.mu.Unlock()
	together := 0
	for _, w := range spy.writes {
		if w.binding && !w.lookups {
			t.Errorf("late writes %+v: the binding was written apart from the early look-ups", spy.writes)
		}
		if w.binding && w.lookups {
			together++
		}
	}
	if together != 1 {
		t.Errorf("late writes %+v: want one that writes the binding and the look-ups", spy.writes)
	}
}
