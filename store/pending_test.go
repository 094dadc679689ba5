package store_test

import (
	"encoding/binary"
	"fmt"
	"maps"
	"math"
	"path/filepath"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/store"
	"github.com/symbot/symbot/store/storetest"
)

// rawKeys returns the number of keys in each named bucket of the closed
// store file at path (-1: no such bucket), and its schema version.
func rawKeys(t *testing.T, path string, buckets ...string) (map[string]int, uint64) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	n := map[string]int{}
	var schema uint64
	db.View(func(tx *bolt.Tx) error {
		for _, name := range buckets {
			n[name] = 0
			b := tx.Bucket([]byte(name))
			if b == nil {
				n[name] = -1
				continue
			}
			b.ForEach(func(_, _ []byte) error { n[name]++; return nil })
		}
		schema = binary.BigEndian.Uint64(tx.Bucket([]byte("meta")).Get([]byte("schema")))
		return nil
	})
	return n, schema
}

// indexView is what the indexes answer about the requests R1..R10 of U1
// and the jobs.
type indexView struct {
	Open, ByState []string
	Due           []string
	Claimed       []uint64
}

func readIndexes(t *testing.T, s *store.Store, claim bool) indexView {
	t.Helper()
	var v indexView
	storetest.MustView(t, s, func(tx symbot.Tx) error {
		rs, err := tx.OpenRequests("U1")
		for _, r := range rs {
			v.Open = append(v.Open, r.ID)
		}
		if err != nil {
			return err
		}
		if rs, err = tx.RequestsByState(symbot.StateActive); err != nil {
			return err
		}
		for _, r := range rs {
			v.ByState = append(v.ByState, r.ID)
		}
		v.Due, err = tx.DueRequests(storetest.T0.Add(time.Hour), 0)
		return err
	})
	if claim {
		js, err := s.ClaimJobs(t.Context(), "w", storetest.T0.Add(time.Hour), time.Minute, 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range js {
			v.Claimed = append(v.Claimed, j.ID)
		}
	}
	return v
}

// pendingRequest is a pending request of U1.
func pendingRequest(id string) *symbot.Request {
	return &symbot.Request{ID: id, Requester: symbot.Person{SlackID: "U1"}, State: symbot.StatePending}
}

// openAt opens the store file at path, failing the test on an error.
func openAt(t *testing.T, path string, cfg store.Config) *store.Store {
	t.Helper()
	s, err := store.Open(path, cfg)
	if err != nil {
		t.Fatalf("Open %s: %v", path, err)
	}
	return s
}

// storeFile returns the path of a closed store file holding rs, written
// with the flush threshold flushAt (math.MaxUint64: their index entries
// are left pending; 0: they are in the index buckets).
func storeFile(t *testing.T, flushAt uint64, rs ...*symbot.Request) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "symbot.db")
	s := openAt(t, path, store.Config{NoSync: true})
	store.SetFlushAt(s, flushAt)
	if len(rs) > 0 {
		storetest.MustPut(t, s, rs...)
	}
	s.Close()
	return path
}

// TestIndexEntriesWaitInThePendingBucket: a commit writes its index
// entries to the pending bucket, not to the index buckets; reads find
// them there, after a reopen too; a job deleted while its entries are
// pending never reaches the index buckets; and the commit that finds more
// than the flush threshold pending moves them all.
func TestIndexEntriesWaitInThePendingBucket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "symbot.db")
	s := openAt(t, path, store.Config{NoSync: true})
	store.SetFlushAt(s, math.MaxUint64)
	for i := 1; i <= 10; i++ {
		state := symbot.StatePending
		if i%2 == 0 {
			state = symbot.StateActive
		}
		storetest.MustPut(t, s, &symbot.Request{ID: fmt.Sprintf("R%02d", i), Requester: symbot.Person{SlackID: "U1"}, State: state,
			TimeoutAt: storetest.T0.Add(time.Duration(i) * time.Minute), ExpiresAt: storetest.T0.Add(time.Duration(i) * time.Minute)})
	}
	ids := storetest.MustAddJobs(t, s,
		symbot.Job{Kind: symbot.JobGrant, Lane: "C1", NotBefore: storetest.T0},
		symbot.Job{Kind: symbot.JobNotify, NotBefore: storetest.T0},
		symbot.Job{Kind: symbot.JobPost, Lane: "C2", NotBefore: storetest.T0})
	storetest.MustUpdate(t, s, func(tx symbot.Tx) error { return tx.DeleteJob(ids[2]) })
	want := indexView{
		Open:    []string{"R01", "R02", "R03", "R04", "R05", "R06", "R07", "R08", "R09", "R10"},
		ByState: []string{"R02", "R04", "R06", "R08", "R10"},
		Due:     []string{"R01", "R02", "R03", "R04", "R05", "R06", "R07", "R08", "R09", "R10"},
	}
	if got := readIndexes(t, s, false); !slices.Equal(got.Open, want.Open) || !slices.Equal(got.ByState, want.ByState) || !slices.Equal(got.Due, want.Due) {
		t.Fatalf("indexes read with every entry pending: %+v, want %+v", got, want)
	}
	pending := store.PendingIndexEntries(s)
	// 4 per request (requester, state, deadline, open); the grant job's
	// due, lane and rank entries and the notify job's due entry (the
	// deleted post job's due and lane entries are gone).
	if pending != 10*4+3+1 {
		t.Errorf("pending index entries = %d, want %d", pending, 10*4+3+1)
	}
	s.Close()
	n, _ := rawKeys(t, path, "req_user", "req_state", "req_time", "req_open", "job_due", "job_lane", "job_rank", "idx_pending")
	for _, b := range []string{"req_user", "req_state", "req_time", "req_open", "job_due", "job_lane", "job_rank"} {
		if n[b] != 0 {
			t.Errorf("index bucket %s holds %d keys before any flush, want 0", b, n[b])
		}
	}
	if n["idx_pending"] != int(pending) {
		t.Errorf("idx_pending holds %d keys, its count says %d", n["idx_pending"], pending)
	}

	// Reopened (as after a crash), the entries still read, and claims find
	// the jobs through them.
	s = openAt(t, path, store.Config{NoSync: true})
	if got := readIndexes(t, s, false); !slices.Equal(got.Open, want.Open) || !slices.Equal(got.Due, want.Due) {
		t.Fatalf("indexes read after reopening: %+v, want %+v", got, want)
	}
	store.SetFlushAt(s, 5)
	got := readIndexes(t, s, true) // the claim commits, and flushes
	if want := []uint64{ids[0], ids[1]}; !slices.Equal(got.Claimed, want) {
		t.Errorf("claimed %v, want %v", got.Claimed, want)
	}
	if p := store.PendingIndexEntries(s); p != 0 {
		t.Errorf("pending index entries after a commit past the threshold = %d, want 0", p)
	}
	if got := readIndexes(t, s, false); !slices.Equal(got.Open, want.Open) || !slices.Equal(got.ByState, want.ByState) || !slices.Equal(got.Due, want.Due) {
		t.Fatalf("indexes read after the flush: %+v, want %+v", got, want)
	}
	s.Close()
	n, _ = rawKeys(t, path, "req_user", "req_open", "job_due", "job_lane", "job_rank", "idx_pending")
	// The deleted post job's due and lane entries never reached their
	// buckets: only the other two jobs' are there.
	if want := map[string]int{"req_user": 10, "req_open": 10, "job_due": 2, "job_lane": 1, "job_rank": 1, "idx_pending": 0}; !maps.Equal(n, want) {
		t.Errorf("index buckets after the flush hold %v, want %v", n, want)
	}
}

// TestReadOnlyOpenReadsPendingEntries: the offline admin commands see
// requests whose index entries were still pending when the daemon stopped.
func TestReadOnlyOpenReadsPendingEntries(t *testing.T) {
	path := storeFile(t, math.MaxUint64, pendingRequest("R01"))
	ro := openAt(t, path, store.Config{ReadOnly: true})
	defer ro.Close()
	if got := readIndexes(t, ro, false); !slices.Equal(got.Open, []string{"R01"}) {
		t.Errorf("read-only OpenRequests = %v, want [R01]", got.Open)
	}
	st, err := ro.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.ByState[symbot.StatePending] != 1 {
		t.Errorf("read-only Stats.ByState = %v, want one pending", st.ByState)
	}
}

// TestOpenMakesAMissingPendingBucket: a version 2 file that lost its
// pending bucket (damage) reads as having no pending entries, and a
// read-write open makes the bucket again, so that writes work.
func TestOpenMakesAMissingPendingBucket(t *testing.T) {
	path := storeFile(t, 0, pendingRequest("R01"))
	editRaw(t, path, func(tx *bolt.Tx) error { return tx.DeleteBucket([]byte("idx_pending")) })

	ro := openAt(t, path, store.Config{ReadOnly: true})
	if got := readIndexes(t, ro, false); !slices.Equal(got.Open, []string{"R01"}) {
		t.Errorf("read-only OpenRequests = %v, want [R01]", got.Open)
	}
	ro.Close()

	s := openAt(t, path, store.Config{NoSync: true})
	defer s.Close()
	storetest.MustPut(t, s, pendingRequest("R02"))
	if got := readIndexes(t, s, false); !slices.Equal(got.Open, []string{"R01", "R02"}) {
		t.Errorf("OpenRequests = %v, want [R01 R02]", got.Open)
	}
}

// TestDamagedPendingEntryFailsNoCommit: a pending entry whose tag names no
// index (a damaged file) is kept where it is and logged by the flush,
// which moves the others; the commits it rides with succeed, and reads do
// not see it.
func TestDamagedPendingEntryFailsNoCommit(t *testing.T) {
	path := storeFile(t, 0)
	editRaw(t, path, func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("idx_pending"))
		for _, k := range [][]byte{{0xEE, 'x'}, {4}} { // an unknown tag; req_open's tag with no key
			if err := b.Put(k, []byte{1}); err != nil {
				return err
			}
		}
		return b.SetSequence(2)
	})
	s := openAt(t, path, store.Config{NoSync: true})
	store.SetFlushAt(s, 3)
	for i := 1; i <= 3; i++ { // the second commit passes the threshold and flushes
		storetest.MustPut(t, s, pendingRequest(fmt.Sprintf("R%02d", i)))
	}
	if got := readIndexes(t, s, false); !slices.Equal(got.Open, []string{"R01", "R02", "R03"}) {
		t.Errorf("OpenRequests = %v, want [R01 R02 R03]", got.Open)
	}
	s.Close()
	n, _ := rawKeys(t, path, "req_open", "idx_pending")
	if n["req_open"] < 2 || n["idx_pending"] < 2 {
		t.Errorf("after the flush req_open holds %d keys and idx_pending %d; want the flushed requests' and the 2 damaged entries kept", n["req_open"], n["idx_pending"])
	}
}
