package groupcommit_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/symbot/symbot/internal/groupcommit"
)

// wait bounds each wait of these tests; only a failing test waits that long.
const wait = 30 * time.Second

var errFail = errors.New("fn failed on purpose")

type kv = map[string]string

type write = groupcommit.Write[kv]

// fakeStore is a key-value store whose transactions are copies of its
// committed map. faults, when not empty, says how each next attempt that
// ran all its fns ends instead of committing (Failed is ignored; a zero
// Result commits).
type fakeStore struct {
	q *groupcommit.Queue[kv]

	mu      sync.Mutex
	data    kv
	commits int
	faults  []groupcommit.Result
	groups  []int // size of each group that reached its end
	runs    map[string]int
}

func newFakeStore(max int) *fakeStore {
	s := &fakeStore{data: kv{}, runs: map[string]int{}}
	s.q = groupcommit.New(max, s.attempt)
	return s
}

func (s *fakeStore) attempt(group *[]*write, takeIn bool) groupcommit.Result {
	s.mu.Lock()
	tx := maps.Clone(s.data)
	s.mu.Unlock()
	failed := s.q.Each(group, takeIn, func(g []*write, i int) error { return s.q.Call(g[i], tx) })
	if failed >= 0 {
		return groupcommit.Result{Failed: failed}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.groups = append(s.groups, len(*group))
	if len(s.faults) > 0 {
		r := s.faults[0]
		s.faults = s.faults[1:]
		if r.Err != nil || r.Alone {
			r.Failed = -1
			return r
		}
	}
	s.data = tx
	s.commits++
	return groupcommit.Result{Failed: -1}
}

// put returns a fn that counts its runs under name and writes name=name.
func (s *fakeStore) put(name string, then func(kv) error) func(kv) error {
	return func(tx kv) error {
		s.mu.Lock()
		s.runs[name]++
		s.mu.Unlock()
		tx[name] = name
		if then != nil {
			return then(tx)
		}
		return nil
	}
}

func (s *fakeStore) snapshot() (kv, int, map[string]int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.data), s.commits, maps.Clone(s.runs)
}

type result struct {
	err   error
	panic any
}

// do starts s.q.Do on its own goroutine and waits until the queue holds
// want writes (0: do not wait).
func do(t *testing.T, s *fakeStore, ctx context.Context, want int, fn func(kv) error) <-chan result {
	t.Helper()
	return start(t, "queued writes", s.q.Len, want, func() error { return s.q.Do(ctx, "fake update", fn) })
}

// start runs call on its own goroutine and waits until n() is want (0: do
// not wait); the channel delivers call's error or panic.
func start(t *testing.T, what string, n func() int, want int, call func() error) <-chan result {
	t.Helper()
	ch := make(chan result, 1)
	go func() {
		var r result
		defer func() {
			r.panic = recover()
			ch <- r
		}()
		r.err = call()
	}()
	if want > 0 {
		waitFor(t, fmt.Sprintf("%d %s", want, what), func() bool { return n() == want })
	}
	return ch
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", wait, what)
		}
		time.Sleep(time.Millisecond)
	}
}

func get(t *testing.T, ch <-chan result) result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(wait):
		t.Fatal("a write did not return")
		return result{}
	}
}

// holdLeader starts a write "L" whose fn blocks until release is called,
// and returns once it runs: writes made meanwhile queue up. release
// returns where L's outcome arrives.
func holdLeader(t *testing.T, s *fakeStore) (release func() <-chan result) {
	t.Helper()
	started, unblock := make(chan struct{}), make(chan struct{})
	var once sync.Once
	ch := do(t, s, t.Context(), 0, s.put("L", func(kv) error {
		once.Do(func() { close(started) })
		<-unblock
		return nil
	}))
	select {
	case <-started:
	case <-time.After(wait):
		t.Fatal("the leading write never ran its fn")
	}
	return func() <-chan result {
		close(unblock)
		return ch
	}
}

// TestFailingWriteFailsOnlyItself: in one group, C returns an error, D
// panics and F's ctx ends while it waits. Each gets its own outcome; the
// others commit, together, once.
func TestFailingWriteFailsOnlyItself(t *testing.T) {
	s := newFakeStore(64)
	release := holdLeader(t, s)
	b := do(t, s, t.Context(), 1, s.put("B", nil))
	c := do(t, s, t.Context(), 2, s.put("C", func(kv) error { return errFail }))
	cancelled, cancel := context.WithCancel(t.Context())
	f := do(t, s, cancelled, 3, s.put("F", nil))
	d := do(t, s, t.Context(), 4, s.put("D", func(kv) error { panic("boom D") }))
	e := do(t, s, t.Context(), 5, s.put("E", nil))
	cancel()
	if r := get(t, f); !errors.Is(r.err, context.Canceled) || !strings.HasPrefix(r.err.Error(), "fake update: ") || r.panic != nil {
		t.Errorf("F (ctx cancelled while queued): got %v %v, want context.Canceled prefixed by its op", r.err, r.panic)
	}
	if r := get(t, release()); r.err != nil || r.panic != nil {
		t.Errorf("L: got %v %v, want success", r.err, r.panic)
	}
	for name, ch := range map[string]<-chan result{"B": b, "E": e} {
		if r := get(t, ch); r.err != nil || r.panic != nil {
			t.Errorf("%s: got %v %v, want success", name, r.err, r.panic)
		}
	}
	if r := get(t, c); r.err != errFail || r.panic != nil {
		t.Errorf("C: got %v %v, want its own error %v unchanged", r.err, r.panic, errFail)
	}
	if r := get(t, d); r.err != nil || r.panic != "boom D" {
		t.Errorf("D: got %v %v, want its own panic raised again", r.err, r.panic)
	}
	data, commits, runs := s.snapshot()
	if want := (kv{"L": "L", "B": "B", "E": "E"}); !maps.Equal(data, want) {
		t.Errorf("stored %v, want %v", data, want)
	}
	if commits != 1 {
		t.Errorf("commits = %d, want 1 (L, B and E in one group)", commits)
	}
	// The group ran L,B,C (C failed); L,B,D (D failed); L,B,E (committed);
	// then C and D each ran again alone, first in their transactions, and
	// failed on committed state.
	if want := map[string]int{"L": 3, "B": 3, "C": 2, "D": 2, "E": 1}; !maps.Equal(runs, want) {
		t.Errorf("runs %v, want %v", runs, want)
	}
}

// TestRefusalOnlyStandsOnCommittedState: B refuses because of A's write in
// the same group, and A's caller gives up before the group runs again, so
// A's write never commits. B runs again on committed state and succeeds.
func TestRefusalOnlyStandsOnCommittedState(t *testing.T) {
	s := newFakeStore(64)
	release := holdLeader(t, s)
	ctxA, cancelA := context.WithCancel(t.Context())
	a := do(t, s, ctxA, 1, s.put("A", nil))
	b := do(t, s, t.Context(), 2, s.put("B", func(tx kv) error {
		if tx["A"] != "" {
			cancelA()
			return errors.New("refused: A present")
		}
		return nil
	}))
	release()
	if r := get(t, a); !errors.Is(r.err, context.Canceled) {
		t.Errorf("A: %v, want context.Canceled (it never committed)", r.err)
	}
	if r := get(t, b); r.err != nil {
		t.Errorf("B: %v, want success: its refusal came from a write that was rolled back", r.err)
	}
	if data, _, _ := s.snapshot(); !maps.Equal(data, kv{"L": "L", "B": "B"}) {
		t.Errorf("stored %v, want L and B", data)
	}
}

// TestTransactionFailureReachesEveryWrite: a failure not of a fn (the
// commit, say) is every write's error, prefixed by its op, and no fn runs
// again (the commit may have happened).
func TestTransactionFailureReachesEveryWrite(t *testing.T) {
	s := newFakeStore(64)
	errCommit := errors.New("commit: disk full")
	s.faults = []groupcommit.Result{{Err: errCommit}}
	release := holdLeader(t, s)
	b := do(t, s, t.Context(), 1, s.put("B", nil))
	results := map[string]result{"L": get(t, release()), "B": get(t, b)}
	for name, r := range results {
		if !errors.Is(r.err, errCommit) || !strings.HasPrefix(r.err.Error(), "fake update: ") {
			t.Errorf("%s: got %v, want %v prefixed by its op", name, r.err, errCommit)
		}
	}
	data, commits, runs := s.snapshot()
	if len(data) != 0 || commits != 0 {
		t.Errorf("stored %v in %d commits, want nothing", data, commits)
	}
	if want := map[string]int{"L": 1, "B": 1}; !maps.Equal(runs, want) {
		t.Errorf("runs %v, want %v", runs, want)
	}
}

// TestAloneRunsEachWriteOnItsOwn: when the store cannot tell which fn made
// the transaction fail, each write runs again alone; a conflict there runs
// it again, up to MaxRetries times, and then its error stands.
func TestAloneRunsEachWriteOnItsOwn(t *testing.T) {
	s := newFakeStore(64)
	s.q.MaxRetries = 2
	errConflict := errors.New("serialisation failure")
	conflict := groupcommit.Result{Err: errConflict, Retry: errConflict}
	s.faults = []groupcommit.Result{
		{Err: errConflict, Alone: true}, // the group L,B,C
		conflict, {},                    // L alone: a conflict, then committed
		{},                           // B alone
		conflict, conflict, conflict, // C alone: gives up after 2 retries
	}
	release := holdLeader(t, s)
	b := do(t, s, t.Context(), 1, s.put("B", nil))
	c := do(t, s, t.Context(), 2, s.put("C", nil))
	if r := get(t, release()); r.err != nil {
		t.Errorf("L: %v, want success", r.err)
	}
	if r := get(t, b); r.err != nil {
		t.Errorf("B: %v, want success", r.err)
	}
	if r := get(t, c); !errors.Is(r.err, errConflict) {
		t.Errorf("C: %v, want %v after its retries ran out", r.err, errConflict)
	}
	data, commits, runs := s.snapshot()
	if want := (kv{"L": "L", "B": "B"}); !maps.Equal(data, want) || commits != 2 {
		t.Errorf("stored %v in %d commits, want %v in 2", data, commits, want)
	}
	if want := map[string]int{"L": 3, "B": 2, "C": 4}; !maps.Equal(runs, want) {
		t.Errorf("runs %v, want %v", runs, want)
	}
	if want := []int{3, 1, 1, 1, 1, 1, 1}; !slices.Equal(s.groups, want) {
		t.Errorf("group sizes %v, want %v", s.groups, want)
	}
}

// TestMaxCapsAGroup: writes beyond the cap wait for the next group.
func TestMaxCapsAGroup(t *testing.T) {
	s := newFakeStore(2)
	release := holdLeader(t, s)
	chs := []<-chan result{
		do(t, s, t.Context(), 1, s.put("B", nil)),
		do(t, s, t.Context(), 2, s.put("C", nil)),
		do(t, s, t.Context(), 3, s.put("D", nil)),
	}
	release()
	for _, ch := range chs {
		if r := get(t, ch); r.err != nil {
			t.Errorf("got %v, want success", r.err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if want := []int{2, 2}; !slices.Equal(s.groups, want) {
		t.Errorf("group sizes %v, want %v", s.groups, want)
	}
}

// TestGroupSurvivesGoexit: a fn ends the goroutine running the group (as
// t.FailNow does). The other writes of the group get an error instead of
// waiting forever, nothing of the group is stored, and the queue takes
// writes again.
func TestGroupSurvivesGoexit(t *testing.T) {
	s := newFakeStore(64)
	release := holdLeader(t, s)
	b := do(t, s, t.Context(), 1, s.put("B", func(kv) error { runtime.Goexit(); return nil }))
	c := do(t, s, t.Context(), 2, s.put("C", nil))
	release() // L's Do never returns: its goroutine ended
	for name, ch := range map[string]<-chan result{"B": b, "C": c} {
		if r := get(t, ch); r.err == nil || !strings.Contains(r.err.Error(), "ended the goroutine running the group") {
			t.Errorf("%s: got %v, want an error saying the group's goroutine ended", name, r.err)
		}
	}
	if r := get(t, do(t, s, t.Context(), 0, s.put("D", nil))); r.err != nil {
		t.Errorf("D after the group: %v, want success", r.err)
	}
	if data, _, _ := s.snapshot(); !maps.Equal(data, kv{"D": "D"}) {
		t.Errorf("stored %v, want only D", data)
	}
}

// TestCloseFinishesQueuedWrites: Close returns after the writes queued
// before it finished; writes after it fail with ClosedErr and do not run.
func TestCloseFinishesQueuedWrites(t *testing.T) {
	s := newFakeStore(64)
	errGone := errors.New("store x is gone")
	s.q.ClosedErr = errGone
	release := holdLeader(t, s)
	b := do(t, s, t.Context(), 1, s.put("B", nil))
	closed := make(chan kv, 1)
	go func() {
		s.q.Close()
		data, _, _ := s.snapshot()
		closed <- data
	}()
	waitFor(t, "Close", s.q.Closed)
	if r := get(t, do(t, s, t.Context(), 0, s.put("X", nil))); !errors.Is(r.err, errGone) || !strings.HasPrefix(r.err.Error(), "fake update: ") {
		t.Errorf("write after Close: %v, want %v prefixed by its op", r.err, errGone)
	}
	release()
	if r := get(t, b); r.err != nil {
		t.Errorf("B (queued before Close): %v, want success", r.err)
	}
	select {
	case data := <-closed:
		if want := (kv{"L": "L", "B": "B"}); !maps.Equal(data, want) {
			t.Errorf("stored when Close returned: %v, want %v", data, want)
		}
	case <-time.After(wait):
		t.Fatal("Close did not return")
	}
	if _, _, runs := s.snapshot(); runs["X"] != 0 {
		t.Errorf("X ran %d times after Close, want 0", runs["X"])
	}
}

// doLater starts s.q.DoLater (waiting at most lwait for a group) on its own
// goroutine and waits until want late writes wait (0: do not wait).
func doLater(t *testing.T, s *fakeStore, ctx context.Context, want int, lwait time.Duration, fn func(kv) error) <-chan result {
	t.Helper()
	return start(t, "late writes", s.q.LaterLen, want, func() error { return s.q.DoLater(ctx, "fake update", fn, lwait) })
}

// order returns a fn for s.put that appends name to *seen.
func order(mu *sync.Mutex, seen *[]string, name string) func(kv) error {
	return func(kv) error {
		mu.Lock()
		*seen = append(*seen, name)
		mu.Unlock()
		return nil
	}
}

// TestLateWritesJoinTheNextGroup: late writes start no group; they join
// the next one, after its other writes, and commit with it.
func TestLateWritesJoinTheNextGroup(t *testing.T) {
	s := newFakeStore(64)
	var mu sync.Mutex
	var seen []string
	l1 := doLater(t, s, t.Context(), 1, time.Hour, s.put("L1", order(&mu, &seen, "L1")))
	l2 := doLater(t, s, t.Context(), 2, time.Hour, s.put("L2", order(&mu, &seen, "L2")))
	if _, commits, _ := s.snapshot(); commits != 0 {
		t.Fatalf("commits = %d with only late writes waiting, want 0", commits)
	}
	if r := get(t, do(t, s, t.Context(), 0, s.put("A", order(&mu, &seen, "A")))); r.err != nil {
		t.Fatalf("A: %v", r.err)
	}
	for _, ch := range []<-chan result{l1, l2} {
		if r := get(t, ch); r.err != nil || r.panic != nil {
			t.Errorf("late write: %v %v, want success", r.err, r.panic)
		}
	}
	data, commits, _ := s.snapshot()
	if want := (kv{"A": "A", "L1": "L1", "L2": "L2"}); !maps.Equal(data, want) || commits != 1 {
		t.Errorf("stored %v in %d commits, want %v in 1", data, commits, want)
	}
	if want := []string{"A", "L1", "L2"}; !slices.Equal(seen, want) {
		t.Errorf("fns ran in the order %v, want %v", seen, want)
	}
}

// TestLateWriteRunsAloneAfterItsWait: with no group coming, a late write
// runs on its own once its wait is over.
func TestLateWriteRunsAloneAfterItsWait(t *testing.T) {
	s := newFakeStore(64)
	if r := get(t, doLater(t, s, t.Context(), 0, time.Millisecond, s.put("L", nil))); r.err != nil {
		t.Fatalf("L: %v", r.err)
	}
	if data, commits, _ := s.snapshot(); !maps.Equal(data, kv{"L": "L"}) || commits != 1 {
		t.Errorf("stored %v in %d commits, want L in 1", data, commits)
	}
}

// TestFailingLateWriteFailsOnlyItself: a late write that fails in another
// write's group gets its own error; the other commits.
func TestFailingLateWriteFailsOnlyItself(t *testing.T) {
	s := newFakeStore(64)
	bad := doLater(t, s, t.Context(), 1, time.Hour, s.put("bad", func(kv) error { return errFail }))
	if r := get(t, do(t, s, t.Context(), 0, s.put("A", nil))); r.err != nil {
		t.Fatalf("A: %v", r.err)
	}
	if r := get(t, bad); !errors.Is(r.err, errFail) {
		t.Errorf("late write: %v, want %v", r.err, errFail)
	}
	if data, _, _ := s.snapshot(); !maps.Equal(data, kv{"A": "A"}) {
		t.Errorf("stored %v, want only A", data)
	}
}

// TestLateWriteCancelled: a late write whose ctx ends while it waits
// returns ctx's error and never runs.
func TestLateWriteCancelled(t *testing.T) {
	s := newFakeStore(64)
	ctx, cancel := context.WithCancel(t.Context())
	l := doLater(t, s, ctx, 1, time.Hour, s.put("L", nil))
	cancel()
	if r := get(t, l); !errors.Is(r.err, context.Canceled) || !strings.HasPrefix(r.err.Error(), "fake update: ") {
		t.Errorf("L: %v, want context.Canceled prefixed by its op", r.err)
	}
	if n := s.q.LaterLen(); n != 0 {
		t.Errorf("%d late writes still waiting", n)
	}
	if r := get(t, do(t, s, t.Context(), 0, s.put("A", nil))); r.err != nil {
		t.Fatal(r.err)
	}
	if _, _, runs := s.snapshot(); runs["L"] != 0 {
		t.Errorf("L ran %d times, want 0", runs["L"])
	}
}

// TestCloseRunsLateWrites: Close runs the late writes still waiting for a
// group before it returns.
func TestCloseRunsLateWrites(t *testing.T) {
	s := newFakeStore(64)
	l := doLater(t, s, t.Context(), 1, time.Hour, s.put("L", nil))
	s.q.Close()
	if r := get(t, l); r.err != nil {
		t.Errorf("L (waiting at Close): %v, want success", r.err)
	}
	if data, _, _ := s.snapshot(); !maps.Equal(data, kv{"L": "L"}) {
		t.Errorf("stored %v when Close returned, want L", data)
	}
	if r := get(t, doLater(t, s, t.Context(), 0, time.Hour, s.put("X", nil))); !errors.Is(r.err, groupcommit.ErrClosed) {
		t.Errorf("late write after Close: %v, want %v", r.err, groupcommit.ErrClosed)
	}
}
