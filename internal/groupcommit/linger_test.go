package groupcommit_test

import (
	"errors"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"
)

// newLingerStore is newFakeStore with Queue.Linger set.
func newLingerStore(max int) *fakeStore {
	s := newFakeStore(max)
	s.q.Linger = true
	return s
}

// waitRuns waits until name's fn has run n times.
func (s *fakeStore) waitRuns(t *testing.T, name string, n int) {
	t.Helper()
	waitFor(t, name+" to run", func() bool {
		_, _, runs := s.snapshot()
		return runs[name] >= n
	})
}

// TestLingerRunsLateWritesAtOnce: with Linger, a late write made while no
// group runs has its fn run at once, and its transaction waits open for
// company: a second late write joins it, then a Do, whose fn runs last,
// and the three commit together, once.
func TestLingerRunsLateWritesAtOnce(t *testing.T) {
	s := newLingerStore(64)
	var mu sync.Mutex
	var seen []string
	l1 := doLater(t, s, t.Context(), 0, time.Hour, s.put("L1", order(&mu, &seen, "L1")))
	s.waitRuns(t, "L1", 1)
	l2 := doLater(t, s, t.Context(), 0, time.Hour, s.put("L2", order(&mu, &seen, "L2")))
	s.waitRuns(t, "L2", 1)
	if _, commits, _ := s.snapshot(); commits != 0 {
		t.Fatalf("commits = %d with only late writes, want 0", commits)
	}
	if n := s.q.LaterLen(); n != 2 {
		t.Errorf("LaterLen = %d with two late writes in an open group, want 2", n)
	}
	if r := get(t, do(t, s, t.Context(), 0, s.put("A", order(&mu, &seen, "A")))); r.err != nil {
		t.Fatalf("A: %v", r.err)
	}
	for _, ch := range []<-chan result{l1, l2} {
		if r := get(t, ch); r.err != nil || r.panic != nil {
			t.Errorf("late write: %v %v, want success", r.err, r.panic)
		}
	}
	data, commits, runs := s.snapshot()
	if want := (kv{"A": "A", "L1": "L1", "L2": "L2"}); !maps.Equal(data, want) || commits != 1 {
		t.Errorf("stored %v in %d commits, want %v in 1", data, commits, want)
	}
	if want := []string{"L1", "L2", "A"}; !slices.Equal(seen, want) {
		t.Errorf("fns ran in the order %v, want %v", seen, want)
	}
	if want := map[string]int{"L1": 1, "L2": 1, "A": 1}; !maps.Equal(runs, want) {
		t.Errorf("runs %v, want each once", runs)
	}
	if n := s.q.LaterLen(); n != 0 {
		t.Errorf("LaterLen = %d after the commit, want 0", n)
	}
}

// TestLingerCommitsWhenTheFirstWaitEnds: a lingering group with no Do
// commits when the earliest wait of its late writes is over, taking the
// later ones with it.
func TestLingerCommitsWhenTheFirstWaitEnds(t *testing.T) {
	s := newLingerStore(64)
	short := doLater(t, s, t.Context(), 0, 50*time.Millisecond, s.put("S", nil))
	s.waitRuns(t, "S", 1)
	long := doLater(t, s, t.Context(), 0, time.Hour, s.put("H", nil))
	for _, ch := range []<-chan result{short, long} {
		if r := get(t, ch); r.err != nil {
			t.Fatalf("late write: %v", r.err)
		}
	}
	if data, commits, _ := s.snapshot(); !maps.Equal(data, kv{"S": "S", "H": "H"}) || commits != 1 {
		t.Errorf("stored %v in %d commits, want S and H in 1", data, commits)
	}
}

// TestLingerHandsTheLeadToALateWrite: a late write made while a group
// commits waits for it, then leads a group of its own at once (its fn runs
// before its wait is over and before any Do comes), which the next Do
// joins.
func TestLingerHandsTheLeadToALateWrite(t *testing.T) {
	s := newLingerStore(64)
	inCommit, unblock := make(chan struct{}), make(chan struct{})
	var once sync.Once
	s.committing = func() {
		once.Do(func() {
			close(inCommit)
			<-unblock
		})
	}
	l := do(t, s, t.Context(), 0, s.put("L", nil))
	select {
	case <-inCommit:
	case <-time.After(wait):
		t.Fatal("L never reached its commit")
	}
	x := doLater(t, s, t.Context(), 1, time.Hour, s.put("X", nil))
	close(unblock)
	if r := get(t, l); r.err != nil {
		t.Fatalf("L: %v", r.err)
	}
	s.waitRuns(t, "X", 1)
	if data, commits, _ := s.snapshot(); !maps.Equal(data, kv{"L": "L"}) || commits != 1 {
		t.Fatalf("stored %v in %d commits, want L in 1 (X open, not committed)", data, commits)
	}
	if r := get(t, do(t, s, t.Context(), 0, s.put("B", nil))); r.err != nil {
		t.Fatalf("B: %v", r.err)
	}
	if r := get(t, x); r.err != nil {
		t.Fatalf("X: %v", r.err)
	}
	if data, commits, _ := s.snapshot(); !maps.Equal(data, kv{"L": "L", "X": "X", "B": "B"}) || commits != 2 {
		t.Errorf("stored %v in %d commits, want L, X, B in 2", data, commits)
	}
}

// TestLingerFailingDoCommitsTheRestAtOnce: a Do that fails in a lingering
// group gets its error, and the late writes commit at once, without
// waiting for their wait (an hour) or for another Do.
func TestLingerFailingDoCommitsTheRestAtOnce(t *testing.T) {
	s := newLingerStore(64)
	l := doLater(t, s, t.Context(), 0, time.Hour, s.put("L", nil))
	s.waitRuns(t, "L", 1)
	if r := get(t, do(t, s, t.Context(), 0, s.put("bad", func(kv) error { return errFail }))); !errors.Is(r.err, errFail) {
		t.Fatalf("bad: %v, want %v", r.err, errFail)
	}
	if r := get(t, l); r.err != nil {
		t.Fatalf("L: %v", r.err)
	}
	if data, commits, _ := s.snapshot(); !maps.Equal(data, kv{"L": "L"}) || commits != 1 {
		t.Errorf("stored %v in %d commits, want L in 1", data, commits)
	}
}

// TestLingerFullGroupCommits: a lingering group that reaches the queue's
// max commits without waiting for a Do.
func TestLingerFullGroupCommits(t *testing.T) {
	s := newLingerStore(2)
	l1 := doLater(t, s, t.Context(), 0, time.Hour, s.put("L1", nil))
	s.waitRuns(t, "L1", 1)
	l2 := doLater(t, s, t.Context(), 0, time.Hour, s.put("L2", nil))
	for _, ch := range []<-chan result{l1, l2} {
		if r := get(t, ch); r.err != nil {
			t.Fatalf("late write: %v", r.err)
		}
	}
	if data, commits, _ := s.snapshot(); !maps.Equal(data, kv{"L1": "L1", "L2": "L2"}) || commits != 1 {
		t.Errorf("stored %v in %d commits, want L1 and L2 in 1", data, commits)
	}
}

// TestLingerCloseCommits: Close commits a lingering group at once.
func TestLingerCloseCommits(t *testing.T) {
	s := newLingerStore(64)
	l := doLater(t, s, t.Context(), 0, time.Hour, s.put("L", nil))
	s.waitRuns(t, "L", 1)
	s.q.Close()
	if r := get(t, l); r.err != nil {
		t.Errorf("L (lingering at Close): %v, want success", r.err)
	}
	if data, commits, _ := s.snapshot(); !maps.Equal(data, kv{"L": "L"}) || commits != 1 {
		t.Errorf("stored %v in %d commits when Close returned, want L in 1", data, commits)
	}
}
