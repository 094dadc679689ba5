package store_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/store"
	"github.com/symbot/symbot/store/storetest"
)

// journalWrites makes n group commits on s, each writing a request, an
// audit entry and an identity binding: the records a new request's commit
// and its early look-ups write.
func journalWrites(t *testing.T, s *store.Store, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		storetest.MustUpdate(t, s, func(tx symbot.Tx) error {
			r := &symbot.Request{ID: fmt.Sprintf("R%03d", i), Requester: symbot.Person{SlackID: fmt.Sprintf("U%03d", i)},
				State: symbot.StatePending, Reason: "journal test", TimeoutAt: storetest.T0.Add(time.Hour)}
			if err := tx.PutRequest(r); err != nil {
				return err
			}
			if err := tx.PutIdentity(symbot.Identity{SlackID: r.Requester.SlackID, OktaUserID: "00u" + r.ID, CachedAt: storetest.T0}); err != nil {
				return err
			}
			return symbot.AppendAudit(tx, nil, &symbot.AuditEntry{At: storetest.T0, RequestID: r.ID, Actor: "U1", Action: "request:created"})
		})
	}
}

// journalState is what the store answers about the records journalWrites
// wrote: the requests, identity bindings and audit details, in order.
type journalState struct {
	Requests, Identities, Audit []string
	Stats                       [2]int // Stats.Requests, Stats.Identities
}

func readJournalState(t *testing.T, s *store.Store) journalState {
	t.Helper()
	var st journalState
	storetest.MustView(t, s, func(tx symbot.Tx) error {
		rs, err := tx.RequestsByState(symbot.StatePending)
		if err != nil {
			return err
		}
		for _, r := range rs {
			got, err := tx.Request(r.ID)
			if err != nil {
				return err
			}
			st.Requests = append(st.Requests, got.ID)
		}
		ids, err := tx.Identities("", 1000)
		if err != nil {
			return err
		}
		for _, id := range ids {
			one, ok, err := tx.Identity(id.SlackID)
			if err != nil || !ok {
				return fmt.Errorf("identity %s listed but not found: %v", id.SlackID, err)
			}
			st.Identities = append(st.Identities, one.SlackID+"="+one.OktaUserID)
		}
		es, err := tx.Audit(0, 1000)
		if err != nil {
			return err
		}
		for _, e := range es {
			st.Audit = append(st.Audit, fmt.Sprint(e.Seq, e.RequestID))
		}
		return nil
	})
	stats, err := s.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	st.Stats = [2]int{stats.Requests, stats.Identities}
	return st
}

// backupFile writes a Backup of the open store s to a file and returns its
// path: the file as a crash at this point would leave it.
func backupFile(t *testing.T, s *store.Store) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "copy.db")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Backup(t.Context(), f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestRecordsWaitInTheJournal: a group commit writes its requests, audit
// entries and identity bindings to the journal, not to their buckets;
// reads, listings and counts find them there, in a file left by a crash
// (read-only and read-write) too; the commit that would leave more than
// the threshold moves them all; and Close moves them.
func TestRecordsWaitInTheJournal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "symbot.db")
	s := openAt(t, path, store.Config{NoSync: true})
	store.SetFlushAt(s, 4)
	journalWrites(t, s, 1, 4)
	if n := store.JournalEntries(s); n != 4 {
		t.Fatalf("journal entries after 4 commits = %d, want 4", n)
	}
	want := readJournalState(t, s)
	if len(want.Requests) != 4 || len(want.Identities) != 4 || len(want.Audit) != 4 || want.Stats != [2]int{4, 4} {
		t.Fatalf("read through the journal: %+v; want 4 requests, identities and audit entries", want)
	}

	crashed := backupFile(t, s)
	if n, _ := rawKeys(t, crashed, "requests", "identities", "audit"); n["requests"] != 0 || n["identities"] != 0 || n["audit"] != 0 {
		t.Errorf("record buckets hold %v before the journal is applied; want them empty", n)
	}
	ro := openAt(t, crashed, store.Config{ReadOnly: true})
	if got := readJournalState(t, ro); !equalState(got, want) {
		t.Errorf("read-only open of a file with a journal: %+v, want %+v", got, want)
	}
	ro.Close()
	rw := openAt(t, crashed, store.Config{NoSync: true})
	store.SetFlushAt(rw, math.MaxUint64)
	if got := readJournalState(t, rw); !equalState(got, want) {
		t.Errorf("read-write open of a file with a journal: %+v, want %+v", got, want)
	}
	rw.Close()
	if n, _ := rawKeys(t, crashed, "requests", "identities", "audit", "journal"); n["requests"] != 4 || n["identities"] != 4 || n["audit"] != 4 || n["journal"] != 0 {
		t.Errorf("after Close: %v; want the 4 records in each bucket and an empty journal", n)
	}

	// The fifth commit would leave 5 entries: it applies all of them.
	journalWrites(t, s, 5, 1)
	if n := store.JournalEntries(s); n != 0 {
		t.Errorf("journal entries after the commit over the threshold = %d, want 0", n)
	}
	applied := backupFile(t, s)
	if n, _ := rawKeys(t, applied, "requests", "identities", "audit"); n["requests"] != 5 || n["identities"] != 5 || n["audit"] != 5 {
		t.Errorf("record buckets after the apply: %v; want 5 records each", n)
	}
	journalWrites(t, s, 6, 2)
	want = readJournalState(t, s)
	if len(want.Requests) != 7 || want.Stats != [2]int{7, 7} {
		t.Errorf("after 7 commits: %+v; want 7 of each", want)
	}
	s.Close()
	re := openAt(t, path, store.Config{ReadOnly: true})
	if got := readJournalState(t, re); !equalState(got, want) {
		t.Errorf("after Close and a reopen: %+v, want %+v", got, want)
	}
}

func equalState(a, b journalState) bool {
	return slices.Equal(a.Requests, b.Requests) && slices.Equal(a.Identities, b.Identities) &&
		slices.Equal(a.Audit, b.Audit) && a.Stats == b.Stats
}

// TestJournalWritesInOneGroupCommit: the writes of a group commit's fns
// read each other through the journal (a later fn sees an earlier one's
// request), a delete hides a record that is in its bucket, and a fn that
// fails leaves nothing of its writes behind.
func TestJournalWritesInOneGroupCommit(t *testing.T) {
	s := openAt(t, filepath.Join(t.TempDir(), "symbot.db"), store.Config{NoSync: true})
	store.SetFlushAt(s, 0)
	journalWrites(t, s, 1, 1) // R001 and U001 in their buckets
	store.SetFlushAt(s, math.MaxUint64)
	storetest.MustUpdate(t, s, func(tx symbot.Tx) error {
		if err := tx.DeleteIdentity("U001"); err != nil {
			return err
		}
		if _, ok, err := tx.Identity("U001"); err != nil || ok {
			return fmt.Errorf("identity U001 after its delete in the same transaction: found %v, %v", ok, err)
		}
		r, err := tx.Request("R001")
		if err != nil {
			return err
		}
		r.Reason = "changed"
		return tx.PutRequest(r)
	})
	boom := errors.New("boom")
	err := s.Update(t.Context(), func(tx symbot.Tx) error {
		if err := tx.PutIdentity(symbot.Identity{SlackID: "U009", OktaUserID: "00u9"}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("failing Update: %v", err)
	}
	storetest.MustView(t, s, func(tx symbot.Tx) error {
		if _, ok, _ := tx.Identity("U001"); ok {
			t.Error("the deleted identity U001 is still found")
		}
		if _, ok, _ := tx.Identity("U009"); ok {
			t.Error("identity U009, written by a failed Update, is found")
		}
		if ids, _ := tx.Identities("", 10); len(ids) != 0 {
			t.Errorf("Identities = %v, want none", ids)
		}
		if r, err := tx.Request("R001"); err != nil || r.Reason != "changed" {
			t.Errorf("R001 = %v, %v; want the journal's version (reason changed)", r, err)
		}
		return nil
	})
	if st := readJournalState(t, s); st.Stats != [2]int{1, 0} {
		t.Errorf("Stats (requests, identities) = %v, want [1 0]", st.Stats)
	}
}

// TestJournalReadsTheirOwnSnapshot: a read transaction begun before a
// commit reads the journal as it was then, although the decoded entries
// of the newer journal are cached; one begun after reads the commit.
func TestJournalReadsTheirOwnSnapshot(t *testing.T) {
	path := filepath.Join(t.TempDir(), "symbot.db")
	s := openAt(t, path, store.Config{NoSync: true})
	store.SetFlushAt(s, math.MaxUint64)
	journalWrites(t, s, 1, 2)
	s.Close() // applies the journal
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, InitialMmapSize: 16 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	j := store.NewJournalReader()
	put := func(key, val string) {
		t.Helper()
		if err := db.Update(func(btx *bolt.Tx) error { return j.Put(btx, key, val) }); err != nil {
			t.Fatal(err)
		}
	}
	get := func(btx *bolt.Tx, key string) string {
		t.Helper()
		v, err := j.Get(btx, key)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	put("R001", "v1")
	old, err := db.Begin(false)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Rollback()
	put("R001", "v2")
	put("R003", "v3")
	now, err := db.Begin(false)
	if err != nil {
		t.Fatal(err)
	}
	defer now.Rollback()
	if got := get(now, "R001") + get(now, "R003"); got != "v2v3" {
		t.Errorf("a transaction begun after the commits reads %q, want v2v3", got)
	}
	if got := get(old, "R001") + get(old, "R003"); got != "v1" {
		t.Errorf("a transaction begun before the commits reads %q, want v1 (its snapshot), after the newer journal was cached", got)
	}
	if got := get(now, "R002"); !strings.Contains(got, "R002") {
		t.Errorf("R002, in its bucket, reads %q", got)
	}
}

// TestDamagedJournalFailsReadsNotSilently: a journal entry with a missing
// chunk makes the store fail to open with an error that says to restore a
// backup, rather than read as if the entry's records did not exist.
func TestDamagedJournalFailsReadsNotSilently(t *testing.T) {
	path := filepath.Join(t.TempDir(), "symbot.db")
	s := openAt(t, path, store.Config{NoSync: true})
	store.SetFlushAt(s, math.MaxUint64)
	storetest.MustUpdate(t, s, func(tx symbot.Tx) error {
		return tx.PutRequest(&symbot.Request{ID: "R001", Requester: symbot.Person{SlackID: "U1"}, State: symbot.StatePending,
			Reason: strings.Repeat("long reason ", 300), TimeoutAt: storetest.T0.Add(time.Hour)})
	})
	crashed := backupFile(t, s)
	s.Close()
	db, err := bolt.Open(crashed, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(btx *bolt.Tx) error {
		b := btx.Bucket([]byte("journal"))
		k, _ := b.Cursor().First()
		if k == nil || b.Get(append(bytes.Clone(k[:8]), 0, 1)) == nil {
			return errors.New("want an entry of two chunks or more")
		}
		return b.Delete(k)
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	_, err = store.Open(crashed, store.Config{ReadOnly: true})
	if err == nil || !strings.Contains(err.Error(), "journal is damaged") || !strings.Contains(err.Error(), "restore") {
		t.Errorf("Open of a store with a damaged journal: %v; want an error saying the journal is damaged and to restore a backup", err)
	}
}

// TestOpenUpgradesOlderSchemas: a store from before the pending bucket
// (schema version 1: no pending bucket, no journal) or from before the
// journal (version 2) reads as it is when opened read-only, which leaves
// it untouched, and a read-write open makes the missing buckets and
// records the current version, keeping its records.
func TestOpenUpgradesOlderSchemas(t *testing.T) {
	for _, c := range []struct {
		version uint64
		missing []string
	}{{1, []string{"journal", "idx_pending"}}, {2, []string{"journal"}}} {
		t.Run(fmt.Sprint("version", c.version), func(t *testing.T) {
			path := storeFile(t, 0, pendingRequest("R01"))
			editRaw(t, path, func(tx *bolt.Tx) error {
				for _, b := range c.missing {
					if err := tx.DeleteBucket([]byte(b)); err != nil {
						return err
					}
				}
				return tx.Bucket([]byte("meta")).Put([]byte("schema"), binary.BigEndian.AppendUint64(nil, c.version))
			})
			ro := openAt(t, path, store.Config{ReadOnly: true})
			if got := readIndexes(t, ro, false); !slices.Equal(got.Open, []string{"R01"}) {
				t.Errorf("read-only OpenRequests = %v, want [R01]", got.Open)
			}
			ro.Close()
			n, schema := rawKeys(t, path, c.missing...)
			if schema != c.version || slices.ContainsFunc(c.missing, func(b string) bool { return n[b] != -1 }) {
				t.Fatalf("after a read-only open: schema %d, %v; want %d and no %v buckets (untouched)", schema, n, c.version, c.missing)
			}

			s := openAt(t, path, store.Config{NoSync: true})
			store.SetFlushAt(s, math.MaxUint64)
			storetest.MustPut(t, s, pendingRequest("R02"))
			if got := readIndexes(t, s, false); !slices.Equal(got.Open, []string{"R01", "R02"}) {
				t.Errorf("OpenRequests after the upgrade = %v, want [R01 R02]", got.Open)
			}
			if store.JournalEntries(s) != 1 {
				t.Errorf("journal entries after a commit = %d, want 1", store.JournalEntries(s))
			}
			s.Close()
			n, schema = rawKeys(t, path, "journal", "requests", "idx_pending")
			if schema != store.SchemaVersion || n["journal"] != 0 || n["requests"] != 2 || n["idx_pending"] < 1 {
				t.Errorf("after a read-write open and Close: schema %d, %v; want %d, an empty journal, 2 requests and R02's pending index entries", schema, n, store.SchemaVersion)
			}
		})
	}
}

// TestAuditAfterTheLastPossibleSeq: nothing comes after math.MaxUint64
// (after+1 wrapped to the first entry, and every entry was returned).
func TestAuditAfterTheLastPossibleSeq(t *testing.T) {
	s := openAt(t, filepath.Join(t.TempDir(), "symbot.db"), store.Config{NoSync: true})
	journalWrites(t, s, 1, 2)
	storetest.MustView(t, s, func(tx symbot.Tx) error {
		es, err := tx.Audit(math.MaxUint64, 10)
		if err != nil || len(es) != 0 {
			t.Errorf("Audit(MaxUint64) = %d entries, %v; want none", len(es), err)
		}
		return nil
	})
}
