package store_test

import (
	"bytes"
	"errors"
	"fmt"
	bolt "go.etcd.io/bbolt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/store"
	"github.com/symbot/symbot/store/storetest"
)

// journalModelOps is writer w's sequence of identity states: after op m the
// writer's keys are journalModelState(w, m).
func journalModelState(w, m int) map[string]string {
	st := map[string]string{}
	for n := 1; n <= m; n++ {
		st[fmt.Sprintf("w%d-%03d", w, n)] = fmt.Sprintf("v%d", n)
		if n%3 == 0 {
			delete(st, fmt.Sprintf("w%d-%03d", w, n-2))
		}
	}
	return st
}

// TestJournalConcurrentModel: writers in group commits (some fns
// failing after their writes), frequent applies, and readers that check
// each snapshot is one the writers made: every listing of identities
// matches lookups and is a prefix state of each writer; the audit chain
// read is contiguous up to the head recorded in the same snapshot; every
// indexed request reads.
func TestJournalConcurrentModel(t *testing.T) {
	path := filepath.Join(t.TempDir(), "symbot.db")
	s := openAt(t, path, store.Config{NoSync: true})
	store.SetFlushAt(s, 3)
	const writers, ops = 4, 60
	var done atomic.Bool
	var wg sync.WaitGroup
	boom := errors.New("boom")
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 1; n <= ops; n++ {
				if n%7 == 0 {
					// A failing fn: its writes must vanish.
					err := s.Update(t.Context(), func(tx symbot.Tx) error {
						if err := tx.PutIdentity(symbot.Identity{SlackID: fmt.Sprintf("bad-%d-%d", w, n)}); err != nil {
							return err
						}
						if err := tx.DeleteIdentity(fmt.Sprintf("w%d-%03d", w, n-1)); err != nil {
							return err
						}
						return boom
					})
					if !errors.Is(err, boom) {
						t.Errorf("failing update: %v", err)
						return
					}
				}
				err := s.Update(t.Context(), func(tx symbot.Tx) error {
					if err := tx.PutIdentity(symbot.Identity{SlackID: fmt.Sprintf("w%d-%03d", w, n), OktaUserID: fmt.Sprintf("v%d", n)}); err != nil {
						return err
					}
					if n%3 == 0 {
						if err := tx.DeleteIdentity(fmt.Sprintf("w%d-%03d", w, n-2)); err != nil {
							return err
						}
					}
					r := &symbot.Request{ID: fmt.Sprintf("R%d-%03d", w, n), Requester: symbot.Person{SlackID: "U1"},
						State: symbot.StatePending, Reason: "x", TimeoutAt: storetest.T0.Add(time.Hour)}
					if err := tx.PutRequest(r); err != nil {
						return err
					}
					return symbot.AppendAudit(tx, nil, &symbot.AuditEntry{At: storetest.T0, RequestID: r.ID, Actor: "U1", Action: "request:created"})
				})
				if err != nil {
					t.Errorf("update: %v", err)
					return
				}
			}
		}()
	}
	var rg sync.WaitGroup
	for r := 0; r < 3; r++ {
		rg.Add(1)
		go func() {
			defer rg.Done()
			for !done.Load() {
				err := s.View(t.Context(), func(tx symbot.Tx) error {
					ids, err := tx.Identities("", 100000)
					if err != nil {
						return err
					}
					got := map[int]map[string]string{}
					for _, id := range ids {
						if strings.HasPrefix(id.SlackID, "bad") {
							return fmt.Errorf("identity %s of a failed update is visible", id.SlackID)
						}
						one, ok, err := tx.Identity(id.SlackID)
						if err != nil || !ok || one.OktaUserID != id.OktaUserID {
							return fmt.Errorf("listed %s but lookup: %v %v %v", id.SlackID, one, ok, err)
						}
						var w int
						fmt.Sscanf(id.SlackID, "w%d-", &w)
						if got[w] == nil {
							got[w] = map[string]string{}
						}
						got[w][id.SlackID] = id.OktaUserID
					}
					for w := 0; w < writers; w++ {
						okState := false
						for m := 0; m <= ops; m++ {
							want := journalModelState(w, m)
							if len(want) == 0 && len(got[w]) == 0 || maps.Equal(want, got[w]) {
								okState = true
								break
							}
						}
						if !okState {
							return fmt.Errorf("writer %d's identities %v are no state it made", w, slices.Sorted(maps.Keys(got[w])))
						}
					}
					head, _, err := tx.AuditHead()
					if err != nil {
						return err
					}
					es, err := tx.Audit(0, storetest.AllAudit)
					if err != nil {
						return err
					}
					if uint64(len(es)) != head {
						return fmt.Errorf("audit: %d entries read, head %d", len(es), head)
					}
					for i, e := range es {
						if e.Seq != uint64(i+1) {
							return fmt.Errorf("audit entry %d has seq %d", i+1, e.Seq)
						}
					}
					rs, err := tx.RequestsByState(symbot.StatePending)
					if err != nil {
						return err
					}
					if uint64(len(rs)) != head {
						return fmt.Errorf("%d pending requests, %d audit entries", len(rs), head)
					}
					return nil
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	done.Store(true)
	rg.Wait()
	want := map[string]string{}
	for w := 0; w < writers; w++ {
		maps.Copy(want, journalModelState(w, ops))
	}
	check := func(s *store.Store, when string) {
		t.Helper()
		got := map[string]string{}
		storetest.MustView(t, s, func(tx symbot.Tx) error {
			ids, err := tx.Identities("", 100000)
			for _, id := range ids {
				got[id.SlackID] = id.OktaUserID
			}
			return err
		})
		if !maps.Equal(got, want) {
			t.Errorf("%s: identities %d, want %d", when, len(got), len(want))
		}
		st, err := s.Stats(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if st.Identities != len(want) || st.Requests != writers*ops {
			t.Errorf("%s: Stats identities %d requests %d, want %d %d", when, st.Identities, st.Requests, len(want), writers*ops)
		}
	}
	check(s, "before Close")
	crashed := backupFile(t, s)
	s.Close()
	re := openAt(t, path, store.Config{ReadOnly: true})
	check(re, "after Close")
	re.Close()
	ro := openAt(t, crashed, store.Config{ReadOnly: true})
	check(ro, "crash copy read-only")
	ro.Close()
}

// TestJournalOldSnapshotAcrossApplies: a read transaction begun before
// several applies and new journal chains (its first journal use after
// them) reads its own snapshot, before and after the newer chains are
// cached; a group whose second fn fails still commits the first fn's
// delete of a binding that is only in the journal.
func TestJournalOldSnapshotAcrossApplies(t *testing.T) {
	path := filepath.Join(t.TempDir(), "symbot.db")
	s := openAt(t, path, store.Config{NoSync: true})
	// Grow the file (then free the pages) so that the commits below need
	// no remap, which would wait for the open read transaction.
	big := strings.Repeat("x", 1<<20)
	for i := 0; i < 8; i++ {
		storetest.MustUpdate(t, s, func(tx symbot.Tx) error { return tx.(symbot.RecordTx).PutRecord(fmt.Sprint("big", i), []byte(big)) })
	}
	for i := 0; i < 8; i++ {
		storetest.MustUpdate(t, s, func(tx symbot.Tx) error { return tx.(symbot.RecordTx).PutRecord(fmt.Sprint("big", i), nil) })
	}
	s.Close()
	s = openAt(t, path, store.Config{NoSync: true})
	store.SetFlushAt(s, 2)
	journalWrites(t, s, 1, 2) // two entries in the journal
	started, release := make(chan struct{}), make(chan struct{})
	var snap1, snap2 journalState
	errc := make(chan error, 1)
	go func() {
		errc <- s.View(t.Context(), func(tx symbot.Tx) error {
			close(started)
			<-release
			read := func() (st journalState, err error) {
				ids, err := tx.Identities("", 1000)
				for _, id := range ids {
					st.Identities = append(st.Identities, id.SlackID)
				}
				es, err2 := tx.Audit(0, 1000)
				for _, e := range es {
					st.Audit = append(st.Audit, e.RequestID)
				}
				return st, errors.Join(err, err2)
			}
			var err error
			if snap1, err = read(); err != nil {
				return err
			}
			snap2, err = read()
			return err
		})
	}()
	<-started
	journalWrites(t, s, 3, 7)  // applies, then new chains
	_ = readJournalState(t, s) // caches the newest chain
	close(release)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	want := []string{"U001", "U002"}
	if !slices.Equal(snap1.Identities, want) || !slices.Equal(snap2.Identities, want) || !slices.Equal(snap1.Audit, []string{"R001", "R002"}) {
		t.Errorf("old snapshot read %v / %v, audit %v; want %v", snap1.Identities, snap2.Identities, snap1.Audit, want)
	}

	// A group: fn A deletes U009 (in the journal only), fn B fails.
	store.SetFlushAt(s, 1000)
	journalWrites(t, s, 9, 1)
	boom := errors.New("boom")
	hold := make(chan struct{})
	blocker := make(chan error, 1)
	go func() {
		blocker <- s.Update(t.Context(), func(symbot.Tx) error { <-hold; return nil })
	}()
	time.Sleep(20 * time.Millisecond) // the blocker leads a group
	var wg sync.WaitGroup
	var errA, errB error
	wg.Add(2)
	go func() {
		defer wg.Done()
		errA = s.Update(t.Context(), func(tx symbot.Tx) error { return tx.DeleteIdentity("U009") })
	}()
	for store.QueueLen(s) < 1 {
		time.Sleep(time.Millisecond)
	}
	go func() {
		defer wg.Done()
		errB = s.Update(t.Context(), func(tx symbot.Tx) error {
			if _, ok, _ := tx.Identity("U009"); ok {
				return errors.New("U009 still there after A's delete in the same group")
			}
			if err := tx.PutIdentity(symbot.Identity{SlackID: "U010"}); err != nil {
				return err
			}
			return boom
		})
	}()
	for store.QueueLen(s) < 2 {
		time.Sleep(time.Millisecond)
	}
	close(hold)
	wg.Wait()
	if err := <-blocker; err != nil {
		t.Fatal(err)
	}
	if errA != nil || !errors.Is(errB, boom) {
		t.Fatalf("A: %v, B: %v", errA, errB)
	}
	storetest.MustView(t, s, func(tx symbot.Tx) error {
		if _, ok, _ := tx.Identity("U009"); ok {
			t.Error("U009 found after its committed delete")
		}
		if _, ok, _ := tx.Identity("U010"); ok {
			t.Error("U010 of the failed fn found")
		}
		return nil
	})
}

// TestJournalMissingEntryIsDamage: a journal entry deleted from the
// middle of the journal (or its last entry) is damage, as a missing chunk
// is: the open must fail and say so, not read the store as if the entry's
// request and identity binding had never been written. (The entries of one
// chain are numbered without gaps, and the bucket's sequence is the last
// one's number, so both are detectable.)
func TestJournalMissingEntryIsDamage(t *testing.T) {
	for _, which := range []string{"middle", "last"} {
		t.Run(which, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "symbot.db")
			s := openAt(t, path, store.Config{NoSync: true})
			store.SetFlushAt(s, 100)
			// No audit entries: their head would reveal the loss.
			for i := 1; i <= 3; i++ {
				storetest.MustUpdate(t, s, func(tx symbot.Tx) error {
					return tx.PutIdentity(symbot.Identity{SlackID: fmt.Sprintf("U%d", i), OktaUserID: "00u"})
				})
			}
			crashed := backupFile(t, s)
			s.Close()
			editRawNoApply(t, crashed, func(btx *bolt.Tx) error {
				b := btx.Bucket([]byte("journal"))
				c := b.Cursor()
				k, _ := c.First()
				if which == "last" {
					k, _ = c.Last()
				} else {
					k, _ = c.Next()
				}
				return b.Delete(bytes.Clone(k))
			})
			ro, err := store.Open(crashed, store.Config{ReadOnly: true})
			if err != nil {
				if !strings.Contains(err.Error(), "journal is damaged") {
					t.Fatalf("open: %v", err)
				}
				return
			}
			defer ro.Close()
			var n int
			storetest.MustView(t, ro, func(tx symbot.Tx) error {
				ids, err := tx.Identities("", 100)
				n = len(ids)
				return err
			})
			t.Errorf("a journal with its %s entry deleted opened without error; %d of 3 identity bindings read (one silently lost)", which, n)
		})
	}
}

func editRawNoApply(t *testing.T, path string, fn func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
}
