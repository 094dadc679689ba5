package store_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	berrors "go.etcd.io/bbolt/errors"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/store"
	"github.com/symbot/symbot/store/storetest"
)

var errFail = errors.New("fn failed on purpose")

// queue starts s.Update(ctx, fn) and waits until the queue holds want
// writes; see storetest.Queue.
func queue(t *testing.T, s *store.Store, ctx context.Context, want int, fn func(symbot.Tx) error) <-chan storetest.Result {
	t.Helper()
	return storetest.Queue(t, s, func() int { return store.QueueLen(s) }, ctx, want, fn)
}

func TestGroupCommitRollsBackOnlyTheFailingWrite(t *testing.T) {
	s := MustOpen(t, store.Config{})
	release := storetest.HoldLeader(t, s)

	var mu sync.Mutex
	runs := map[string]int{}
	seqs := map[string]uint64{}
	op := func(tag string, then func() error) func(symbot.Tx) error {
		return func(tx symbot.Tx) error {
			mu.Lock()
			runs[tag]++
			mu.Unlock()
			n, err := storetest.WriteOp(tx, tag)
			if err != nil {
				return err
			}
			mu.Lock()
			seqs[tag] = n
			mu.Unlock()
			return then()
		}
	}
	ok := func() error { return nil }
	cancelled, cancel := context.WithCancel(t.Context())
	b := queue(t, s, t.Context(), 1, op("B", ok))
	c := queue(t, s, t.Context(), 2, op("C", func() error { return errFail }))
	f := queue(t, s, cancelled, 3, op("F", ok))
	d := queue(t, s, t.Context(), 4, op("D", func() error { panic("boom D") }))
	e := queue(t, s, t.Context(), 5, op("E", ok))
	cancel()
	if r := storetest.Get(t, f); !errors.Is(r.Err, context.Canceled) || r.Panic != nil {
		t.Errorf("F (ctx cancelled while queued): got %v %v, want context.Canceled", r.Err, r.Panic)
	}
	release()

	if r := storetest.Get(t, b); r.Err != nil || r.Panic != nil {
		t.Errorf("B: got %v %v, want success", r.Err, r.Panic)
	}
	if r := storetest.Get(t, c); !errors.Is(r.Err, errFail) || r.Panic != nil {
		t.Errorf("C: got %v %v, want its own error %v", r.Err, r.Panic, errFail)
	}
	if r := storetest.Get(t, d); r.Err != nil || r.Panic != "boom D" {
		t.Errorf("D: got err %v panic %v, want its own panic %q", r.Err, r.Panic, "boom D")
	}
	if r := storetest.Get(t, e); r.Err != nil || r.Panic != nil {
		t.Errorf("E: got %v %v, want success", r.Err, r.Panic)
	}
	// B..E joined the leader's group, which ran three times (C and then D
	// failed) and committed once. C and D failed after B had written, so
	// each ran once more on its own, on committed state, and failed again:
	// only then do their errors stand.
	if got, want := store.Commits(s), uint64(1); got != want {
		t.Errorf("commits = %d, want %d", got, want)
	}
	if got, want := runs, map[string]int{"B": 3, "C": 2, "D": 2, "E": 1}; !maps.Equal(got, want) {
		t.Errorf("fn runs = %v, want %v", got, want)
	}
	if got, want := storetest.RequestTags(t, s), map[uint64]string{1: "B", 2: "E"}; !maps.Equal(got, want) {
		t.Errorf("stored requests by seq = %v, want %v", got, want)
	}
	if seqs["B"] != 1 || seqs["E"] != 2 {
		t.Errorf("seqs seen by the committed fns: B %d, E %d; want 1, 2", seqs["B"], seqs["E"])
	}
	checkJobsAndAudit(t, s, 2)
}

// checkJobsAndAudit checks that s holds n jobs and a valid audit chain of
// n entries.
func checkJobsAndAudit(t *testing.T, s symbot.Store, n int) {
	t.Helper()
	err := s.View(t.Context(), func(tx symbot.Tx) error {
		js, err := tx.Jobs()
		if err != nil {
			return err
		}
		if len(js) != n {
			t.Errorf("jobs = %d, want %d", len(js), n)
		}
		es, err := tx.Audit(0, storetest.AllAudit)
		if err != nil {
			return err
		}
		seq, hash, err := tx.AuditHead()
		if err != nil {
			return err
		}
		if len(es) != n || seq != uint64(n) {
			t.Errorf("audit: %d entries, head %d; want %d", len(es), seq, n)
		}
		if err := symbot.VerifyAudit(es, seq, hash); err != nil {
			t.Errorf("audit chain: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestGroupCommitConcurrent(t *testing.T) { testGroupCommitConcurrent(t, false) }

// TestGroupCommitConcurrentWithLaterWrites: the same, every other worker
// writing with UpdateLater.
func TestGroupCommitConcurrentWithLaterWrites(t *testing.T) { testGroupCommitConcurrent(t, true) }

func testGroupCommitConcurrent(t *testing.T, late bool) {
	const workers, each = 16, 30
	s := MustOpen(t, store.Config{}) // fsync on: commits are slow enough for groups to form
	var (
		mu      sync.Mutex
		okSeqs  []uint64
		okTags  = map[string]bool{}
		badTags = map[string]bool{}
		wg      sync.WaitGroup
	)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				tag := fmt.Sprintf("w%d-%d", w, i)
				kind := (w*each + i) % 7 // 0: error, 1: panic, else success
				var seq uint64
				var err error
				var panicked any
				update := s.Update
				if late && w%2 == 1 {
					update = s.UpdateLater
				}
				func() {
					defer func() { panicked = recover() }()
					err = update(t.Context(), func(tx symbot.Tx) error {
						n, err := storetest.WriteOp(tx, tag)
						if err != nil {
							return err
						}
						seq = n
						switch kind {
						case 0:
							return fmt.Errorf("%s: %w", tag, errFail)
						case 1:
							panic(tag)
						}
						return nil
					})
				}()
				mu.Lock()
				switch kind {
				case 0:
					badTags[tag] = true
					if !errors.Is(err, errFail) || panicked != nil {
						t.Errorf("%s: got %v %v, want its error", tag, err, panicked)
					}
				case 1:
					badTags[tag] = true
					if err != nil || panicked != tag {
						t.Errorf("%s: got err %v panic %v, want its panic", tag, err, panicked)
					}
				default:
					okTags[tag] = true
					okSeqs = append(okSeqs, seq)
					if err != nil || panicked != nil {
						t.Errorf("%s: got %v %v, want success", tag, err, panicked)
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()

	n := len(okTags)
	slices.Sort(okSeqs)
	for i, got := range okSeqs {
		if want := uint64(i + 1); got != want {
			t.Fatalf("sequence numbers of the committed fns: %v..., want 1..%d without gaps or repeats", okSeqs[:i+1], n)
		}
	}
	tags := storetest.RequestTags(t, s)
	if len(tags) != n {
		t.Errorf("stored %d requests, want %d", len(tags), n)
	}
	for seq, tag := range tags {
		if !okTags[tag] {
			t.Errorf("request R%d was written by %s, whose Update failed", seq, tag)
		}
	}
	checkJobsAndAudit(t, s, n)
	storeNext(t, s, uint64(n+1))
	t.Logf("%d writes (%d failed) in %d commits", workers*each, len(badTags), store.Commits(s))
}

// storeNext checks that the "n" counter continues at want.
func storeNext(t *testing.T, s symbot.Store, want uint64) {
	t.Helper()
	err := s.Update(t.Context(), func(tx symbot.Tx) error {
		got, err := tx.NextSeq("n")
		if got != want {
			t.Errorf("next sequence = %d, want %d", got, want)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestCloseCommitsQueuedWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "symbot.db")
	s, err := store.Open(path, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	release := storetest.HoldLeader(t, s)
	b := queue(t, s, t.Context(), 1, func(tx symbot.Tx) error { _, err := storetest.WriteOp(tx, "B"); return err })
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	storetest.WaitFor(t, 10*time.Second, "Close to start", func() bool { return store.Closed(s) })
	if err := s.Update(t.Context(), func(symbot.Tx) error { return nil }); !errors.Is(err, berrors.ErrDatabaseNotOpen) {
		t.Errorf("Update after Close: got %v, want ErrDatabaseNotOpen", err)
	}
	if _, err := s.ClaimJobs(t.Context(), "w", time.Now(), time.Minute, 1); !errors.Is(err, berrors.ErrDatabaseNotOpen) {
		t.Errorf("ClaimJobs after Close: got %v, want ErrDatabaseNotOpen", err)
	}
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while a write was queued", err)
	default:
	}
	release()
	if r := storetest.Get(t, b); r.Err != nil || r.Panic != nil {
		t.Errorf("write queued before Close: got %v %v, want success", r.Err, r.Panic)
	}
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return")
	}
	s2, err := store.Open(path, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if got, want := storetest.RequestTags(t, s2), map[uint64]string{1: "B"}; !maps.Equal(got, want) {
		t.Errorf("after reopening: requests %v, want %v", got, want)
	}
}

// TestGroupRefusalOnlyStandsOnCommittedState: B is refused because of A's
// write in the same group; A's caller then gives up before the group is
// re-run, so A's write never commits. B must not keep a refusal caused by a
// write that does not exist: it runs again on committed state and succeeds.
func TestGroupRefusalOnlyStandsOnCommittedState(t *testing.T) {
	s := MustOpen(t, store.Config{})
	release := storetest.HoldLeader(t, s)
	ctxA, cancelA := context.WithCancel(t.Context())
	a := queue(t, s, ctxA, 1, func(tx symbot.Tx) error {
		return tx.PutIdentity(symbot.Identity{SlackID: "UMARK"})
	})
	b := queue(t, s, t.Context(), 2, func(tx symbot.Tx) error {
		_, seen, err := tx.Identity("UMARK")
		if err != nil {
			return err
		}
		if seen {
			cancelA() // A's caller gives up meanwhile
			return errors.New("refused: marker present")
		}
		return tx.PutIdentity(symbot.Identity{SlackID: "UB"})
	})
	release()
	if r := storetest.Get(t, a); !errors.Is(r.Err, context.Canceled) {
		t.Fatalf("A: %v, want context.Canceled (it never committed)", r.Err)
	}
	if r := storetest.Get(t, b); r.Err != nil {
		t.Fatalf("B: %v, want success: its refusal came from a write that was rolled back", r.Err)
	}
	err := s.View(t.Context(), func(tx symbot.Tx) error {
		if _, ok, _ := tx.Identity("UMARK"); ok {
			t.Error("A's write is stored although A failed")
		}
		if _, ok, _ := tx.Identity("UB"); !ok {
			t.Error("B's write is missing")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestGroupSurvivesGoexit: a fn in a group ends the goroutine running the
// group (as t.FailNow does). The other writes of the group get an error
// instead of waiting forever, nothing of the group is stored, and the store
// takes writes again.
func TestGroupSurvivesGoexit(t *testing.T) {
	s := MustOpen(t, store.Config{})
	started, unblock, exited := make(chan struct{}), make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		s.Update(t.Context(), func(tx symbot.Tx) error {
			close(started)
			<-unblock
			_, err := storetest.WriteOp(tx, "L")
			return err
		})
		t.Error("the leading Update returned although a fn in its group ended its goroutine")
	}()
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the leading Update never ran its fn")
	}
	b := queue(t, s, t.Context(), 1, func(tx symbot.Tx) error {
		if _, err := storetest.WriteOp(tx, "B"); err != nil {
			return err
		}
		runtime.Goexit()
		return nil
	})
	c := queue(t, s, t.Context(), 2, func(tx symbot.Tx) error { _, err := storetest.WriteOp(tx, "C"); return err })
	close(unblock)
	<-exited
	for name, ch := range map[string]<-chan storetest.Result{"B": b, "C": c} {
		if r := storetest.Get(t, ch); r.Err == nil || !strings.Contains(r.Err.Error(), "ended the goroutine running the group") || r.Panic != nil {
			t.Errorf("%s in the group: got %v %v, want an error saying the group's goroutine ended", name, r.Err, r.Panic)
		}
	}
	if got := storetest.RequestTags(t, s); len(got) != 0 {
		t.Errorf("stored requests %v, want none", got)
	}
	storetest.MustUpdate(t, s, func(tx symbot.Tx) error { _, err := storetest.WriteOp(tx, "D"); return err })
	if got, want := storetest.RequestTags(t, s), map[uint64]string{1: "D"}; !maps.Equal(got, want) {
		t.Errorf("after the group: requests %v, want %v", got, want)
	}
}
