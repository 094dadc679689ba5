package symbot_test

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/store"
	"github.com/symbot/symbot/store/storetest"
)

var chaosOps = flag.Int("chaos.ops", 300, "operations in TestChaos (raise for a soak run, e.g. -chaos.ops=20000)")

// chaosDir is a fakeDir that fails at random and checks, on every add,
// that an approved request asked for it.
type chaosDir struct {
	*fakeDir
	t       *testing.T
	st      func() symbot.Store
	mu      sync.Mutex
	rng     *rand.Rand
	failP   float64
	illegal []string
}

// view reads the store; a failure is a test error, never a silent pass.
func (d *chaosDir) view(fn func(symbot.Tx) error) {
	if err := d.st().View(context.Background(), fn); err != nil {
		d.t.Errorf("chaos check: read store: %v", err)
	}
}

func (d *chaosDir) roll() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.rng.Float64() < d.failP {
		return fmt.Errorf("chaos: %w", symbot.ErrUnavailable)
	}
	return nil
}

func (d *chaosDir) ResolveUser(ctx context.Context, p symbot.Person) (symbot.DirUser, error) {
	if err := d.roll(); err != nil {
		return symbot.DirUser{}, err
	}
	return d.fakeDir.ResolveUser(ctx, p)
}

func (d *chaosDir) IsMember(ctx context.Context, uid, gid string) (bool, error) {
	if err := d.roll(); err != nil {
		return false, err
	}
	return d.fakeDir.IsMember(ctx, uid, gid)
}

func (d *chaosDir) AddMember(ctx context.Context, uid, gid string) error {
	if err := d.roll(); err != nil {
		return err
	}
	// Never grant what nobody approved: some request of this person for this
	// group must be approved (its grant in flight) right now.
	ok := false
	d.view(func(tx symbot.Tx) error {
		rs, err := tx.RequestsByState(symbot.StateApproved)
		for _, r := range rs {
			if r.OktaUserID == uid && r.GroupID == gid && r.GrantChecked && len(r.Approvals) > 0 {
				ok = true
			}
		}
		return err
	})
	if !ok {
		var diag []string
		d.view(func(tx symbot.Tx) error {
			for _, st := range []symbot.State{symbot.StatePending, symbot.StateApproved, symbot.StateActive, symbot.StateExpired, symbot.StateRevoked, symbot.StateFailed, symbot.StateDenied, symbot.StateCancelled, symbot.StateTimedOut, symbot.StateExtended} {
				rs, err := tx.RequestsByState(st)
				if err != nil {
					return err
				}
				for _, r := range rs {
					if r.GroupID == gid && (r.OktaUserID == uid || r.OktaUserID == "") {
						diag = append(diag, fmt.Sprintf("%s %s checked=%t uid=%q tr=%v", r.ID, r.State, r.GrantChecked, r.OktaUserID, r.Transitions))
					}
				}
			}
			return nil
		})
		d.mu.Lock()
		d.illegal = append(d.illegal, fmt.Sprintf("added %s|%s with no approved request: %v", uid, gid, diag))
		d.mu.Unlock()
	}
	return d.fakeDir.AddMember(ctx, uid, gid)
}

func (d *chaosDir) RemoveMember(ctx context.Context, uid, gid string) error {
	if err := d.roll(); err != nil {
		return err
	}
	// Never remove a membership another grant still needs (active, or its
	// grant in flight), nor one the person had before symbot.
	d.view(func(tx symbot.Tx) error {
		for _, s := range []symbot.State{symbot.StateActive, symbot.StateApproved} {
			rs, err := tx.RequestsByState(s)
			if err != nil {
				return err
			}
			for _, r := range rs {
				if r.OktaUserID == uid && r.GroupID == gid && (r.State == symbot.StateActive || r.GrantChecked) {
					d.mu.Lock()
					d.illegal = append(d.illegal, "removed "+uid+"|"+gid+" needed by "+r.ID)
					d.mu.Unlock()
				}
				if r.OktaUserID == uid && r.GroupID == gid && r.Preexisting {
					d.mu.Lock()
					d.illegal = append(d.illegal, "removed pre-existing "+uid+"|"+gid)
					d.mu.Unlock()
				}
			}
		}
		return nil
	})
	return d.fakeDir.RemoveMember(ctx, uid, gid)
}

// TestChaos drives random requests, decisions, revocations and extensions
// through the engine on a bbolt store while the directory and Slack fail at
// random and the process "crashes" (engine stopped mid-job, store closed and
// reopened). When the dust settles every grant has ended, every membership
// is back to what it was before symbot, no job is left, nothing was added
// without an approval, and the audit chain verifies.
func TestChaos(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))

	a := testFlow()
	a.Durations = []time.Duration{300 * time.Millisecond, 600 * time.Millisecond}
	a.ExpiryWarning = 100 * time.Millisecond
	a.ApprovalTimeout = 2 * time.Second
	b := testFlow()
	b.Name = "oncall"
	b.Approvers = symbot.Approvers{Users: []string{"UBOB", "UCAROL", "UDAVE"}}
	b.ApprovalsRequired = 2
	b.Durations = []time.Duration{400 * time.Millisecond}
	b.ApprovalTimeout = 2 * time.Second
	b.Targets = []symbot.Target{{Name: "oc-admin", GroupID: "GADMIN"}} // shares GADMIN with prod/admin
	flows := []symbot.Flow{a, b}

	people := []symbot.Actor{alice, bob, carol, dave}
	base := newFakeDir()
	for _, p := range people {
		base.addUser("00u"+p.Name, p.Email, "ACTIVE")
	}
	base.setMember("00ucarol", "GADMIN", true) // carol was an admin before symbot
	before := map[string]bool{"00ucarol|GADMIN": true}

	path := filepath.Join(t.TempDir(), "chaos.db")
	var cur symbot.Store
	var curMu sync.Mutex
	dir := &chaosDir{fakeDir: base, t: t, rng: rand.New(rand.NewPCG(seed, 7)), failP: 0.25,
		st: func() symbot.Store { curMu.Lock(); defer curMu.Unlock(); return cur }}
	notes := &fakeNotifier{}

	var eng *symbot.Engine
	var stop func()
	start := func() {
		st, err := store.Open(path, store.Config{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		curMu.Lock()
		cur = st
		curMu.Unlock()
		eng, err = symbot.NewEngine(st, dir, notes, flows)
		if err != nil {
			t.Fatal(err)
		}
		eng.Runtime.RetryBase, eng.Runtime.RetryMax, eng.Runtime.RevokeRetryMax = 5*time.Millisecond, 50*time.Millisecond, 50*time.Millisecond
		eng.Runtime.ShutdownGrace = time.Millisecond
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = eng.Run(ctx) }()
		stop = func() {
			cancel()
			<-done
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
	start()

	var ids []string
	targets := []string{"prod/admin", "prod/ro", "oncall/oc-admin"}
	ctx := context.Background()
	for i := range *chaosOps {
		p := people[rng.IntN(len(people))]
		switch op := rng.IntN(10); {
		case op < 3:
			tg := targets[rng.IntN(len(targets))]
			d := a.Durations[rng.IntN(len(a.Durations))]
			if tg == "oncall/oc-admin" {
				d = b.Durations[0]
			}
			r, err := eng.Submit(ctx, p, symbot.RequestInput{Target: tg, Duration: d, Reason: "chaos"})
			if err == nil {
				ids = append(ids, r.ID)
			}
		case op < 6 && len(ids) > 0:
			_, _ = eng.Approve(ctx, ids[rng.IntN(len(ids))], p, "")
		case op < 7 && len(ids) > 0:
			_, _ = eng.Deny(ctx, ids[rng.IntN(len(ids))], p, "no")
		case op < 8 && len(ids) > 0:
			_, _ = eng.Revoke(ctx, ids[rng.IntN(len(ids))], p, "done")
		case op < 9 && len(ids) > 0:
			if r, err := eng.Extend(ctx, ids[rng.IntN(len(ids))], p, 0, "more"); err == nil {
				ids = append(ids, r.ID)
			}
		default:
			time.Sleep(time.Duration(rng.IntN(20)) * time.Millisecond)
		}
		if i%60 == 59 { // crash and restart
			stop()
			start()
		}
	}

	// Settle: no more faults; pending requests time out, grants expire.
	dir.mu.Lock()
	dir.failP = 0
	dir.mu.Unlock()
	storetest.WaitFor(t, 30*time.Second, "no live requests and no jobs", func() bool {
		var live, jobs int
		err := cur.View(ctx, func(tx symbot.Tx) error {
			for _, s := range []symbot.State{symbot.StatePending, symbot.StateApproved, symbot.StateActive} {
				rs, err := tx.RequestsByState(s)
				if err != nil {
					return err
				}
				live += len(rs)
			}
			js, err := tx.Jobs()
			jobs = len(js)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return live == 0 && jobs == 0
	})
	stop()

	for _, p := range people {
		for _, g := range []string{"GADMIN", "GRO"} {
			key := "00u" + p.Name + "|" + g
			if got := base.isMember("00u"+p.Name, g); got != before[key] {
				t.Errorf("%s in %s = %t after every grant ended, want %t (as before symbot)", p.Name, g, got, before[key])
			}
		}
	}
	if len(dir.illegal) > 0 {
		t.Errorf("illegal membership changes: %v", dir.illegal)
	}
	st, err := store.Open(path, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	es := verifyAudit(t, st)
	var ended, states = 0, map[symbot.State]int{}
	_ = st.View(ctx, func(tx symbot.Tx) error {
		for _, id := range ids {
			r, err := tx.Request(id)
			if err != nil {
				return err
			}
			states[r.State]++
			if r.Holding() {
				t.Errorf("%s still holds a membership (%s, removed=%t)", r.ID, r.State, r.Removed)
			}
			if r.State == symbot.StateExpired || r.State == symbot.StateRevoked {
				ended++
			}
		}
		return nil
	})
	t.Logf("%d ops, %d requests, states %v, %d audit entries", *chaosOps, len(ids), states, len(es))
	if ended == 0 && *chaosOps >= 300 {
		t.Error("no grant ever ended: the chaos run exercised nothing")
	}
}
