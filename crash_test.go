package symbot_test

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/store"
	"github.com/symbot/symbot/store/storetest"
)

// blockingDir wraps fakeDir: when block is set, AddMember/RemoveMember do
// their work and then hang until the context ends, like a process that dies
// after Okta applied the change but before symbot recorded it.
type blockingDir struct {
	*fakeDir
	mu      sync.Mutex
	block   map[string]bool
	entered chan string
}

func (d *blockingDir) hang(ctx context.Context, op string) error {
	d.mu.Lock()
	b := d.block[op]
	d.mu.Unlock()
	if !b {
		return nil
	}
	d.entered <- op
	<-ctx.Done()
	return ctx.Err()
}

func (d *blockingDir) AddMember(ctx context.Context, uid, gid string) error {
	if err := d.fakeDir.AddMember(ctx, uid, gid); err != nil {
		return err
	}
	return d.hang(ctx, "add")
}

func (d *blockingDir) RemoveMember(ctx context.Context, uid, gid string) error {
	if err := d.fakeDir.RemoveMember(ctx, uid, gid); err != nil {
		return err
	}
	return d.hang(ctx, "remove")
}

func mustOpen(tb testing.TB, path string) *store.Store {
	tb.Helper()
	st, err := store.Open(path, store.Config{})
	if err != nil {
		tb.Fatalf("open store: %v", err)
	}
	return st
}

// TestCrashBetweenStateChangeAndSideEffect closes the store (the process
// "dies") while the grant and later the removal are in flight, after Okta
// applied them, and checks a restart completes each exactly once.
func TestCrashBetweenStateChangeAndSideEffect(t *testing.T) {
	path := filepath.Join(t.TempDir(), "symbot.db")
	flow := testFlow()
	flow.Durations = []time.Duration{2 * time.Second}
	flow.ExpiryWarning = 0
	dir := &blockingDir{fakeDir: newFakeDir(), block: map[string]bool{"add": true}, entered: make(chan string, 4)}
	dir.addUser("00ualice", alice.Email, "ACTIVE")
	notes := &fakeNotifier{}

	// life runs one "process": an engine on the store until stop is called.
	life := func() (*symbot.Engine, *store.Store, func()) {
		st := mustOpen(t, path)
		eng, err := symbot.NewEngine(st, dir, notes, []symbot.Flow{flow})
		if err != nil {
			t.Fatal(err)
		}
		eng.Runtime.RetryBase = 50 * time.Millisecond
		eng.Runtime.ShutdownGrace = 100 * time.Millisecond
		stopEngine := runEngine(eng)
		return eng, st, func() {
			stopEngine()
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}

	eng, _, stop := life()
	r, err := eng.Submit(t.Context(), alice, symbot.RequestInput{Target: "admin", Duration: 2 * time.Second, Reason: "crash test"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eng.Approve(t.Context(), r.ID, bob, ""); err != nil {
		t.Fatal(err)
	}
	<-dir.entered // Okta has the membership; symbot has not recorded it
	stop()

	dir.mu.Lock()
	dir.block = map[string]bool{"remove": true}
	dir.mu.Unlock()
	eng, st, stop := life()
	storetest.WaitFor(t, 10*time.Second, "the grant to complete after restart", func() bool {
		got, err := eng.Get(t.Context(), r.ID)
		return err == nil && got.State == symbot.StateActive
	})
	<-dir.entered // expired; Okta removed it; symbot has not recorded it
	got, _ := eng.Get(t.Context(), r.ID)
	if got.State != symbot.StateExpired || got.Removed {
		t.Fatalf("before the second crash: state %s removed %t", got.State, got.Removed)
	}
	_ = st
	stop()

	dir.mu.Lock()
	dir.block = nil
	dir.mu.Unlock()
	eng, st, stop = life()
	defer stop()
	storetest.WaitFor(t, 10*time.Second, "the removal to complete after restart", func() bool {
		got, err := eng.Get(t.Context(), r.ID)
		return err == nil && got.Removed
	})
	storetest.WaitFor(t, 10*time.Second, "every job to finish", func() bool {
		var n int
		_ = st.View(t.Context(), func(tx symbot.Tx) error { js, err := tx.Jobs(); n = len(js); return err })
		return n == 0
	})
	if dir.isMember("00ualice", "GADMIN") {
		t.Fatal("access left behind after crashes")
	}
	got, _ = eng.Get(t.Context(), r.ID)
	var states []symbot.State
	for _, tr := range got.Transitions {
		states = append(states, tr.To)
	}
	if want := []symbot.State{symbot.StateApproved, symbot.StateActive, symbot.StateExpired}; len(states) != len(want) || states[0] != want[0] || states[1] != want[1] || states[2] != want[2] {
		t.Errorf("transitions = %v, want %v", states, want)
	}
	for _, ev := range []symbot.Event{symbot.EventApproved, symbot.EventGranted, symbot.EventRemoved} {
		if n := len(notes.find("dm", "UALICE", ev)); n != 1 {
			t.Errorf("%s DMs = %d, want exactly 1", ev, n)
		}
	}
	if n := len(notes.find("post", "", "")); n != 1 {
		t.Errorf("approval messages posted = %d, want 1", n)
	}
	verifyAudit(t, st)
}

// gatedDir blocks AddMember until the gate opens, and records the order in
// which adds finish relative to other events.
type gatedDir struct {
	*fakeDir
	entered chan struct{}
	gate    chan struct{}
	mu      sync.Mutex
	log     []string
}

func (d *gatedDir) note(s string) {
	d.mu.Lock()
	d.log = append(d.log, s)
	d.mu.Unlock()
}

func (d *gatedDir) AddMember(ctx context.Context, uid, gid string) error {
	select {
	case d.entered <- struct{}{}:
	default:
	}
	<-d.gate
	err := d.fakeDir.AddMember(ctx, uid, gid)
	d.note("add done")
	return err
}

// lockAskStore tells when a transaction gave up to take the membership
// lock (the revocation of an approved request whose add may be in flight).
type lockAskStore struct {
	symbot.Store
	asked chan struct{}
}

func (s *lockAskStore) Update(ctx context.Context, fn func(symbot.Tx) error) error {
	err := s.Store.Update(ctx, fn)
	if err != nil && strings.Contains(err.Error(), "membership lock") {
		select {
		case s.asked <- struct{}{}:
		default:
		}
	}
	return err
}

// TestRevokeWaitsForInFlightAdd revokes an approved request while its Okta
// add is in flight: the revocation is acknowledged only after the add has
// finished (so nothing is added after "revoked"), and the membership is
// removed.
func TestRevokeWaitsForInFlightAdd(t *testing.T) {
	h := newHarness(t, nil)
	d := &gatedDir{fakeDir: h.dir, entered: make(chan struct{}, 1), gate: make(chan struct{})}
	st := &lockAskStore{Store: h.st, asked: make(chan struct{}, 1)}
	eng, err := symbot.NewEngine(st, d, h.notes, []symbot.Flow{testFlow()})
	if err != nil {
		t.Fatal(err)
	}
	h.eng = eng
	h.start(t)
	r := h.mustSubmit(t, alice, "admin", time.Hour)
	h.mustApprove(t, r.ID, bob)
	select {
	case <-d.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the grant never reached the Okta add")
	}
	done := make(chan error, 1)
	go func() {
		_, err := eng.Revoke(context.Background(), r.ID, carol, "stop")
		d.note("revoke acknowledged")
		done <- err
	}()
	// Open the gate once the revocation has found the add in flight and
	// gone for the membership lock, which the grant holds.
	select {
	case <-st.asked:
	case <-time.After(10 * time.Second):
		t.Fatal("the revocation never asked for the membership lock")
	}
	close(d.gate)
	if err := <-done; err != nil {
		t.Fatalf("revoke: %v", err)
	}
	d.mu.Lock()
	order := append([]string(nil), d.log...)
	d.mu.Unlock()
	if len(order) != 2 || order[0] != "add done" {
		t.Fatalf("order = %v, want the add to finish before the revocation is acknowledged", order)
	}
	storetest.WaitFor(t, 10*time.Second, "the removal", func() bool {
		got, err := eng.Get(context.Background(), r.ID)
		return err == nil && got.Removed
	})
	if h.dir.isMember("00ualice", "GADMIN") {
		t.Fatal("membership left behind")
	}
}
