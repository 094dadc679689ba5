package store_test

import (
	"context"
	"errors"
	"fmt"
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

// writeOp stores a request tagged tag under the next "n" sequence number,
// with a job and an audit entry, and returns that number.
func writeOp(tx symbot.Tx, tag string) (uint64, error) {
	n, err := tx.NextSeq("n")
	if err != nil {
		return 0, err
	}
	id := fmt.Sprintf("R%d", n)
	if err := tx.PutRequest(&symbot.Request{ID: id, State: symbot.StatePending, Reason: tag, Requester: symbot.Person{SlackID: "U1"}}); err != nil {
		return 0, err
	}
	if err := tx.AddJob(&symbot.Job{Kind: symbot.JobPost, RequestID: id}); err != nil {
		return 0, err
	}
	return n, symbot.AppendAudit(tx, nil, &symbot.AuditEntry{At: time.Unix(int64(n), 0).UTC(), RequestID: id, Actor: "U1", Action: tag})
}

// holdLeader starts an Update whose fn blocks until the returned release
// is called, and returns once that fn runs: writes made meanwhile queue up
// and join its group. release waits for that Update to return nil.
func holdLeader(t *testing.T, s *store.Store) (release func()) {
	t.Helper()
	started, unblock, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	var once sync.Once
	go func() {
		done <- s.Update(t.Context(), func(symbot.Tx) error {
			once.Do(func() { close(started) }) // the fn may run again
			<-unblock
			return nil
		})
	}()
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the leading Update never ran its fn")
	}
	return func() {
		t.Helper()
		close(unblock)
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("leading Update: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the leading Update did not return")
		}
	}
}

// result is what one queued Update returned (or panicked with).
type result struct {
	err   error
	panic any
}

// queue starts Update(ctx, fn) on its own goroutine, waits until it is
// queued (the queue has want writes) and returns where its result arrives.
func queue(t *testing.T, s *store.Store, ctx context.Context, want int, fn func(symbot.Tx) error) <-chan result {
	t.Helper()
	ch := make(chan result, 1)
	go func() {
		var r result
		defer func() {
			r.panic = recover()
			ch <- r
		}()
		r.err = s.Update(ctx, fn)
	}()
	storetest.WaitFor(t, 10*time.Second, fmt.Sprintf("%d queued writes", want), func() bool { return store.QueueLen(s) == want })
	return ch
}

func get(t *testing.T, ch <-chan result) result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("a queued Update did not return")
		return result{}
	}
}

// requestTags returns the tags of the stored requests R1, R2, ... by seq.
func requestTags(t *testing.T, s symbot.Store) map[uint64]string {
	t.Helper()
	tags := map[uint64]string{}
	err := s.View(t.Context(), func(tx symbot.Tx) error {
		rs, err := tx.RequestsByRequester("U1")
		for _, r := range rs {
			var n uint64
			if _, err := fmt.Sscanf(r.ID, "R%d", &n); err != nil {
				return fmt.Errorf("request id %q: %w", r.ID, err)
			}
			tags[n] = r.Reason
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return tags
}

func TestGroupCommitRollsBackOnlyTheFailingWrite(t *testing.T) {
	s := MustOpen(t, store.Config{})
	release := holdLeader(t, s)

	var mu sync.Mutex
	runs := map[string]int{}
	seqs := map[string]uint64{}
	op := func(tag string, then func() error) func(symbot.Tx) error {
		return func(tx symbot.Tx) error {
			mu.Lock()
			runs[tag]++
			mu.Unlock()
			n, err := writeOp(tx, tag)
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
	if r := get(t, f); !errors.Is(r.err, context.Canceled) || r.panic != nil {
		t.Errorf("F (ctx cancelled while queued): got %v %v, want context.Canceled", r.err, r.panic)
	}
	release()

	if r := get(t, b); r.err != nil || r.panic != nil {
		t.Errorf("B: got %v %v, want success", r.err, r.panic)
	}
	if r := get(t, c); !errors.Is(r.err, errFail) || r.panic != nil {
		t.Errorf("C: got %v %v, want its own error %v", r.err, r.panic, errFail)
	}
	if r := get(t, d); r.err != nil || r.panic != "boom D" {
		t.Errorf("D: got err %v panic %v, want its own panic %q", r.err, r.panic, "boom D")
	}
	if r := get(t, e); r.err != nil || r.panic != nil {
		t.Errorf("E: got %v %v, want success", r.err, r.panic)
	}
	// B..E joined the leader's group, which ran three times (C and then D
	// failed) and committed once. C and D failed after B had written, so
	// each ran once more on its own, on committed state, and failed again:
	// only then do their errors stand.
	if got, want := store.Commits(s), uint64(1); got != want {
		t.Errorf("commits = %d, want %d", got, want)
	}
	if got, want := runs, map[string]int{"B": 3, "C": 2, "D": 2, "E": 1}; !mapsEqual(got, want) {
		t.Errorf("fn runs = %v, want %v", got, want)
	}
	if got, want := requestTags(t, s), map[uint64]string{1: "B", 2: "E"}; !mapsEqual(got, want) {
		t.Errorf("stored requests by seq = %v, want %v", got, want)
	}
	if seqs["B"] != 1 || seqs["E"] != 2 {
		t.Errorf("seqs seen by the committed fns: B %d, E %d; want 1, 2", seqs["B"], seqs["E"])
	}
	checkJobsAndAudit(t, s, 2)
}

func mapsEqual[K comparable, V comparable](a, b map[K]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
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

func TestGroupCommitConcurrent(t *testing.T) {
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
				func() {
					defer func() { panicked = recover() }()
					err = s.Update(t.Context(), func(tx symbot.Tx) error {
						n, err := writeOp(tx, tag)
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
	tags := requestTags(t, s)
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
	release := holdLeader(t, s)
	b := queue(t, s, t.Context(), 1, func(tx symbot.Tx) error { _, err := writeOp(tx, "B"); return err })
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
	if r := get(t, b); r.err != nil || r.panic != nil {
		t.Errorf("write queued before Close: got %v %v, want success", r.err, r.panic)
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
	if got, want := requestTags(t, s2), map[uint64]string{1: "B"}; !mapsEqual(got, want) {
		t.Errorf("after reopening: requests %v, want %v", got, want)
	}
}

// TestGroupRefusalOnlyStandsOnCommittedState: B is refused because of A's
// write in the same group; A's caller then gives up before the group is
// re-run, so A's write never commits. B must not keep a refusal caused by a
// write that does not exist: it runs again on committed state and succeeds.
func TestGroupRefusalOnlyStandsOnCommittedState(t *testing.T) {
	s := MustOpen(t, store.Config{})
	release := holdLeader(t, s)
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
	if r := get(t, a); !errors.Is(r.err, context.Canceled) {
		t.Fatalf("A: %v, want context.Canceled (it never committed)", r.err)
	}
	if r := get(t, b); r.err != nil {
		t.Fatalf("B: %v, want success: its refusal came from a write that was rolled back", r.err)
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
			_, err := writeOp(tx, "L")
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
		if _, err := writeOp(tx, "B"); err != nil {
			return err
		}
		runtime.Goexit()
		return nil
	})
	c := queue(t, s, t.Context(), 2, func(tx symbot.Tx) error { _, err := writeOp(tx, "C"); return err })
	close(unblock)
	<-exited
	for name, ch := range map[string]<-chan result{"B": b, "C": c} {
		if r := get(t, ch); r.err == nil || !strings.Contains(r.err.Error(), "ended the goroutine running the group") || r.panic != nil {
			t.Errorf("%s in the group: got %v %v, want an error saying the group's goroutine ended", name, r.err, r.panic)
		}
	}
	if got := requestTags(t, s); len(got) != 0 {
		t.Errorf("stored requests %v, want none", got)
	}
	storetest.MustUpdate(t, s, func(tx symbot.Tx) error { _, err := writeOp(tx, "D"); return err })
	if got, want := requestTags(t, s), map[uint64]string{1: "D"}; !mapsEqual(got, want) {
		t.Errorf("after the group: requests %v, want %v", got, want)
	}
}
