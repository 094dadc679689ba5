package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/symbot/symbot"
	"github.com/symbot/symbot/store/postgres"
	"github.com/symbot/symbot/store/storetest"
)

var errFail = errors.New("fn failed on purpose")

// queue starts s.Update(ctx, fn) and waits until the queue holds want
// writes; see storetest.Queue.
func queue(t *testing.T, s *postgres.Store, ctx context.Context, want int, fn func(symbot.Tx) error) <-chan storetest.Result {
	t.Helper()
	return storetest.Queue(t, s, func() int { return postgres.QueueLen(s) }, ctx, want, fn)
}

// checkJobsAndAudit checks that s holds n jobs, in one lane whose ids grow
// with the requests' sequence numbers, and a valid audit chain of n
// entries.
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
		for i := 1; i < len(js); i++ {
			var a, b uint64
			fmt.Sscanf(js[i-1].RequestID, "R%d", &a)
			fmt.Sscanf(js[i].RequestID, "R%d", &b)
			if a >= b {
				t.Errorf("job %d (%s) comes before job %d (%s): ids out of commit order", js[i-1].ID, js[i-1].RequestID, js[i].ID, js[i].RequestID)
			}
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

// Without group commit each of B..E would pay its own commit (and turn of
// the writer lock): they share one, and a failing fn is rolled back alone.
func TestGroupCommitRollsBackOnlyTheFailingWrite(t *testing.T) {
	s, _ := MustOpen(t)
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
	before := postgres.Commits(s)
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
	// B..E formed one group, which ran three times (C and then D failed)
	// and committed once. C and D failed after B had written, so each ran
	// once more on its own, on committed state, and failed again: only
	// then do their errors stand.
	if got, want := postgres.Commits(s)-before, uint64(1); got != want {
		t.Errorf("commits = %d, want %d", got, want)
	}
	if got, want := runs, map[string]int{"B": 3, "C": 2, "D": 2, "E": 1}; !maps.Equal(got, want) {
		t.Errorf("fn runs = %v, want %v", got, want)
	}
	if got, want := storetest.RequestTags(t, s), map[uint64]string{1: "B", 2: "E"}; !maps.Equal(got, want) {
		t.Errorf("stored requests by seq = %v, want %v", got, want)
	}
	checkJobsAndAudit(t, s, 2)
}

// TestGroupCommitAcrossReplicas: 3 replicas, each with concurrent writers
// (some failing, some panicking), write through group commits. The
// sequence has no gaps or repeats, only the successful writes are stored,
// job ids grow in commit order (lanes depend on it) and the audit chain is
// one chain.
func TestGroupCommitAcrossReplicas(t *testing.T) {
	const workers, each = 6, 15
	rs, _ := replicas(t, 3)
	var (
		mu      sync.Mutex
		okSeqs  []uint64
		okTags  = map[string]bool{}
		commits uint64
		wg      sync.WaitGroup
	)
	for ri, s := range rs {
		for w := range workers {
			wg.Go(func() {
				for i := range each {
					tag := fmt.Sprintf("r%d-w%d-%d", ri, w, i)
					kind := (w*each + i) % 7 // 0: error, 1: panic, else success
					var seq uint64
					var err error
					var panicked any
					func() {
						defer func() { panicked = recover() }()
						err = s.Update(t.Context(), func(tx symbot.Tx) error {
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
						if !errors.Is(err, errFail) || panicked != nil {
							t.Errorf("%s: got %v %v, want its error", tag, err, panicked)
						}
					case 1:
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
	}
	wg.Wait()
	for _, s := range rs {
		commits += postgres.Commits(s)
	}
	n := len(okTags)
	slices.Sort(okSeqs)
	for i, got := range okSeqs {
		if want := uint64(i + 1); got != want {
			t.Fatalf("sequence numbers of the committed fns: %v..., want 1..%d without gaps or repeats", okSeqs[:i+1], n)
		}
	}
	tags := storetest.RequestTags(t, rs[0])
	if len(tags) != n {
		t.Errorf("stored %d requests, want %d", len(tags), n)
	}
	for seq, tag := range tags {
		if !okTags[tag] {
			t.Errorf("request R%d was written by %s, whose Update failed", seq, tag)
		}
	}
	checkJobsAndAudit(t, rs[0], n)
	t.Logf("%d successful writes in %d commits", n, commits)
}

// TestGroupRefusalOnlyStandsOnCommittedState: B is refused because of A's
// write in the same group; A's caller then gives up before the group is
// run again, so A's write never commits. B runs again on committed state
// and succeeds.
func TestGroupRefusalOnlyStandsOnCommittedState(t *testing.T) {
	s, _ := MustOpen(t)
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

// TestHeldWriteFailureIsItsWritersError: a write sent later (held back
// to share a round trip) fails on the server. The Update that made it gets
// the error and stores nothing; the others of its group, whose statements
// went in the same pipeline, are run again and commit.
func TestHeldWriteFailureIsItsWritersError(t *testing.T) {
	s, url := MustOpen(t)
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), `CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused by test trigger'; END $$;
		CREATE TRIGGER refuse BEFORE INSERT ON identities FOR EACH ROW WHEN (NEW.slack_id = 'UBAD') EXECUTE FUNCTION refuse()`); err != nil {
		t.Fatal(err)
	}
	release := storetest.HoldLeader(t, s)
	bad := queue(t, s, t.Context(), 1, func(tx symbot.Tx) error {
		return tx.PutIdentity(symbot.Identity{SlackID: "UBAD"}) // fails only when sent
	})
	good := queue(t, s, t.Context(), 2, func(tx symbot.Tx) error { _, err := storetest.WriteOp(tx, "G"); return err })
	last := queue(t, s, t.Context(), 3, func(tx symbot.Tx) error { return tx.PutIdentity(symbot.Identity{SlackID: "ULAST"}) })
	release()
	if r := storetest.Get(t, bad); r.Err == nil || !strings.Contains(r.Err.Error(), "refused by test trigger") {
		t.Errorf("the Update whose held write failed: got %v, want the server's error", r.Err)
	}
	for name, ch := range map[string]<-chan storetest.Result{"the write after it": good, "the last write": last} {
		if r := storetest.Get(t, ch); r.Err != nil || r.Panic != nil {
			t.Errorf("%s: got %v %v, want success", name, r.Err, r.Panic)
		}
	}
	if got, want := storetest.RequestTags(t, s), map[uint64]string{1: "G"}; !maps.Equal(got, want) {
		t.Errorf("stored requests %v, want %v", got, want)
	}
	err = s.View(t.Context(), func(tx symbot.Tx) error {
		if _, ok, _ := tx.Identity("UBAD"); ok {
			t.Error("the refused identity is stored")
		}
		if _, ok, _ := tx.Identity("ULAST"); !ok {
			t.Error("the last write's identity is missing")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	checkJobsAndAudit(t, s, 1)
}

// TestHeldJobChangesKeepNotFound: changes of a job row the transaction
// holds are sent later; changes of a job it does not hold are sent at once,
// so a missing job is still reported as ErrNotFound by the call itself.
func TestHeldJobChangesKeepNotFound(t *testing.T) {
	s, _ := MustOpen(t)
	storetest.MustUpdate(t, s, func(tx symbot.Tx) error {
		j := &symbot.Job{Kind: symbot.JobPost, RequestID: "R1"}
		if err := tx.AddJob(j); err != nil {
			return err
		}
		if err := tx.DeleteJob(j.ID); err != nil { // held: it was inserted here
			return err
		}
		if err := tx.DeleteJob(j.ID); !errors.Is(err, symbot.ErrNotFound) {
			t.Errorf("second DeleteJob of job %d: got %v, want ErrNotFound", j.ID, err)
		}
		if err := tx.UpdateJob(j); !errors.Is(err, symbot.ErrNotFound) {
			t.Errorf("UpdateJob of deleted job %d: got %v, want ErrNotFound", j.ID, err)
		}
		if _, err := tx.Job(j.ID); !errors.Is(err, symbot.ErrNotFound) {
			t.Errorf("Job %d after its delete: got %v, want ErrNotFound", j.ID, err)
		}
		return nil
	})
	var ids []uint64
	storetest.MustUpdate(t, s, func(tx symbot.Tx) error {
		ids = ids[:0]
		for range 3 {
			j := &symbot.Job{Kind: symbot.JobPost, RequestID: "R2"}
			if err := tx.AddJob(j); err != nil {
				return err
			}
			ids = append(ids, j.ID)
		}
		return nil
	})
	storetest.MustUpdate(t, s, func(tx symbot.Tx) error {
		j := &symbot.Job{Kind: symbot.JobPost, RequestID: "R3"}
		if err := tx.AddJob(j); err != nil {
			return err
		}
		if j.ID <= ids[2] {
			t.Errorf("job id %d after ids %v: the counter did not move past the ids given out", j.ID, ids)
		}
		return nil
	})
}

// TestRequestReadsSeeEarlierWritesOfTheGroup: a read-write transaction
// keeps the requests it read or wrote (the writer lock it holds keeps them
// true): later fns of its group, and later reads of the same fn, see the
// writes made before them, and the next transaction reads afresh what
// another replica wrote meanwhile.
func TestRequestReadsSeeEarlierWritesOfTheGroup(t *testing.T) {
	rs, _ := replicas(t, 2)
	s, other := rs[0], rs[1]
	req := func(id, reason string) *symbot.Request {
		return &symbot.Request{ID: id, State: symbot.StatePending, Reason: reason, Requester: symbot.Person{SlackID: "U1"}}
	}
	storetest.MustUpdate(t, s, func(tx symbot.Tx) error {
		if err := tx.PutRequest(req("R1", "v1")); err != nil {
			return err
		}
		return tx.AddJob(&symbot.Job{Kind: symbot.JobPost, RequestID: "R1"})
	})
	release := storetest.HoldLeader(t, s)
	reasonOf := func(tx symbot.Tx, id string) (string, error) {
		r, err := tx.Request(id)
		if err != nil {
			return "", err
		}
		return r.Reason, nil
	}
	a := queue(t, s, t.Context(), 1, func(tx symbot.Tx) error {
		j, err := tx.Job(1) // reads R1 with it
		if err != nil {
			return err
		}
		if got, err := reasonOf(tx, j.RequestID); err != nil || got != "v1" {
			return fmt.Errorf("A read R1 = %q, %v; want v1", got, err)
		}
		if err := tx.PutRequest(req("R1", "v2")); err != nil {
			return err
		}
		if got, err := reasonOf(tx, "R1"); err != nil || got != "v2" {
			return fmt.Errorf("A read R1 after its write = %q, %v; want v2", got, err)
		}
		if _, err := tx.Request("R9"); !errors.Is(err, symbot.ErrNotFound) {
			return fmt.Errorf("A read R9 (missing): %v, want ErrNotFound", err)
		}
		return tx.PutRequest(req("R9", "new"))
	})
	b := queue(t, s, t.Context(), 2, func(tx symbot.Tx) error {
		if err := tx.(symbot.RequestPrefetcher).PrefetchRequests([]string{"R1", "R9", "R404"}); err != nil {
			return err
		}
		for id, want := range map[string]string{"R1": "v2", "R9": "new"} {
			if got, err := reasonOf(tx, id); err != nil || got != want {
				return fmt.Errorf("B read %s = %q, %v; want %q (A's write)", id, got, err, want)
			}
		}
		if _, err := tx.Request("R404"); !errors.Is(err, symbot.ErrNotFound) {
			return fmt.Errorf("B read R404: %v, want ErrNotFound", err)
		}
		return nil
	})
	release()
	for name, ch := range map[string]<-chan storetest.Result{"A": a, "B": b} {
		if r := storetest.Get(t, ch); r.Err != nil || r.Panic != nil {
			t.Errorf("%s: %v %v", name, r.Err, r.Panic)
		}
	}
	storetest.MustUpdate(t, other, func(tx symbot.Tx) error { return tx.PutRequest(req("R1", "v3")) })
	storetest.MustUpdate(t, s, func(tx symbot.Tx) error {
		if got, err := reasonOf(tx, "R1"); err != nil || got != "v3" {
			t.Errorf("next transaction read R1 = %q, %v; want v3 (the other replica's write)", got, err)
		}
		return nil
	})
}

// TestJobsReadAheadForAGroup: the jobs the fns of a group will read
// (symbot.ContextWithJob) are read at once; each fn still sees the writes
// of those before it: a job deleted or changed by an earlier fn, a request
// it rewrote.
func TestJobsReadAheadForAGroup(t *testing.T) {
	s, _ := MustOpen(t)
	var ids []uint64
	storetest.MustUpdate(t, s, func(tx symbot.Tx) error {
		ids = ids[:0]
		for _, rid := range []string{"R1", "R2"} {
			if err := tx.PutRequest(&symbot.Request{ID: rid, State: symbot.StatePending, Reason: "v1", Requester: symbot.Person{SlackID: "U1"}}); err != nil {
				return err
			}
			j := &symbot.Job{Kind: symbot.JobPost, RequestID: rid}
			if err := tx.AddJob(j); err != nil {
				return err
			}
			ids = append(ids, j.ID)
		}
		return nil
	})
	release := storetest.HoldLeader(t, s)
	withJob := func(id uint64) context.Context { return symbot.ContextWithJob(t.Context(), id) }
	a := queue(t, s, withJob(ids[0]), 1, func(tx symbot.Tx) error {
		j, err := tx.Job(ids[0])
		if err != nil {
			return err
		}
		r, err := tx.Request(j.RequestID)
		if err != nil || r.Reason != "v1" {
			return fmt.Errorf("A read %s: %v %v", j.RequestID, r, err)
		}
		r.Reason = "v2"
		if err := tx.PutRequest(r); err != nil {
			return err
		}
		j2, err := tx.Job(ids[1])
		if err != nil {
			return err
		}
		j2.Attempts = 7
		if err := tx.UpdateJob(j2); err != nil {
			return err
		}
		return tx.DeleteJob(ids[0])
	})
	b := queue(t, s, withJob(ids[0]), 2, func(tx symbot.Tx) error {
		if _, err := tx.Job(ids[0]); !errors.Is(err, symbot.ErrNotFound) {
			return fmt.Errorf("B read job %d deleted by A: %v, want ErrNotFound", ids[0], err)
		}
		r, err := tx.Request("R1")
		if err != nil || r.Reason != "v2" {
			return fmt.Errorf("B read R1: %+v %v, want A's v2", r, err)
		}
		return nil
	})
	c := queue(t, s, withJob(ids[1]), 3, func(tx symbot.Tx) error {
		j, err := tx.Job(ids[1])
		if err != nil || j.Attempts != 7 {
			return fmt.Errorf("C read job %d: %+v %v, want A's change (7 attempts)", ids[1], j, err)
		}
		return tx.DeleteJob(ids[1])
	})
	before := postgres.Commits(s)
	release()
	for name, ch := range map[string]<-chan storetest.Result{"A": a, "B": b, "C": c} {
		if r := storetest.Get(t, ch); r.Err != nil || r.Panic != nil {
			t.Errorf("%s: %v %v", name, r.Err, r.Panic)
		}
	}
	if got := postgres.Commits(s) - before; got != 1 {
		t.Errorf("commits = %d, want 1 (one group)", got)
	}
	storetest.MustView(t, s, func(tx symbot.Tx) error {
		js, err := tx.Jobs()
		if len(js) != 0 {
			t.Errorf("jobs left: %+v", js)
		}
		return err
	})
}
