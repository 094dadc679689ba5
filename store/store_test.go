package store_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/store"
	"github.com/symbot/symbot/store/storetest"
)

// MustOpen opens a store in a new temporary file, closed at cleanup.
func MustOpen(tb testing.TB, cfg store.Config) *store.Store {
	tb.Helper()
	s, err := store.Open(filepath.Join(tb.TempDir(), "symbot.db"), cfg)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) symbot.Store { return MustOpen(t, store.Config{NoSync: true}) })
}

// TestContractIndexFlush runs the contract with the pending index entries
// moved to the index buckets at every commit, and never.
func TestContractIndexFlush(t *testing.T) {
	for name, at := range map[string]uint64{"always": 0, "never": math.MaxUint64} {
		t.Run(name, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) symbot.Store {
				s := MustOpen(t, store.Config{NoSync: true})
				store.SetFlushAt(s, at)
				return s
			})
		})
	}
}

func TestFileMode(t *testing.T) {
	s := MustOpen(t, store.Config{})
	fi, err := os.Stat(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("file mode = %v, want 0600", got)
	}
}

func TestOpenLocked(t *testing.T) {
	s := MustOpen(t, store.Config{})
	_, err := store.Open(s.Path(), store.Config{Timeout: 50 * time.Millisecond})
	if !errors.Is(err, symbot.ErrStoreLocked) {
		t.Fatalf("second Open: got %v, want ErrStoreLocked", err)
	}
	for _, want := range []string{s.Path(), "locked by another process", "is another symbot running?"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	// The first store still works.
	storetest.MustPut(t, s, &symbot.Request{ID: "R1", State: symbot.StatePending})
}

func TestOpenErrors(t *testing.T) {
	if _, err := store.Open("", store.Config{}); err == nil {
		t.Errorf("Open(\"\"): got nil error")
	}
	if _, err := store.Open(filepath.Join(t.TempDir(), "missing-dir", "x.db"), store.Config{}); err == nil {
		t.Errorf("Open in a missing directory: got nil error")
	}
	// A bbolt file that is not a symbot store is refused and left alone.
	path := filepath.Join(t.TempDir(), "other.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("other")); return err }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := store.Open(path, store.Config{}); err == nil || !strings.Contains(err.Error(), "not a symbot store") {
		t.Errorf("Open of a foreign bbolt file: got %v, want a 'not a symbot store' error", err)
	}
}

// editRaw opens the closed store file with bbolt directly and runs fn,
// after moving the record journal's entries into their buckets (as a
// commit that applies the journal does), so that fn finds every record
// where an older symbot kept it.
func editRaw(t *testing.T, path string, fn func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error {
		if err := store.ApplyJournal(tx); err != nil {
			return err
		}
		return fn(tx)
	}); err != nil {
		t.Fatalf("raw edit: %v", err)
	}
}

// reopenAfterEdit opens a new store with cfg, runs fill on it, closes it,
// edits the file with editRaw and returns the store opened again (closed
// when the test ends).
func reopenAfterEdit(t *testing.T, cfg store.Config, fill func(*store.Store), edit func(tx *bolt.Tx) error) *store.Store {
	t.Helper()
	path := filepath.Join(t.TempDir(), "symbot.db")
	s, err := store.Open(path, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Every commit moves its index entries to their buckets, where edit
	// (standing in for an older symbot) finds them.
	store.SetFlushAt(s, 0)
	fill(s)
	s.Close()
	editRaw(t, path, edit)
	s, err = store.Open(path, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestSchemaTooNew(t *testing.T) {
	path := filepath.Join(t.TempDir(), "symbot.db")
	s, err := store.Open(path, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	storetest.MustAddJobs(t, s, symbot.Job{Kind: symbot.JobPost})
	if _, err := s.ClaimJobs(t.Context(), "w", storetest.T0, time.Hour, 1); err != nil {
		t.Fatal(err)
	}
	s.Close()
	editRaw(t, path, func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("meta")).Put([]byte("schema"), binary.BigEndian.AppendUint64(nil, store.SchemaVersion+1))
	})
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = store.Open(path, store.Config{})
	if !errors.Is(err, symbot.ErrSchemaTooNew) {
		t.Fatalf("Open: got %v, want ErrSchemaTooNew", err)
	}
	var se *store.SchemaError
	if !errors.As(err, &se) || se.Found != store.SchemaVersion+1 || se.Supported != store.SchemaVersion {
		t.Errorf("Open: got %#v, want a SchemaError found %d supported %d", err, store.SchemaVersion+1, store.SchemaVersion)
	}
	if !strings.Contains(err.Error(), "upgrade symbot") || !strings.Contains(err.Error(), fmt.Sprint(store.SchemaVersion+1)) {
		t.Errorf("error %q should name the version and say to upgrade symbot", err)
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Errorf("Open modified a store with a newer schema")
	}
}

func TestReopenKeepsDataAndClearsLeases(t *testing.T) {
	path := filepath.Join(t.TempDir(), "symbot.db")
	s, err := store.Open(path, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	want := storetest.FullRequest("R1")
	want.State = symbot.StatePending
	storetest.MustPut(t, s, want)
	storetest.MustAddJobs(t, s,
		symbot.Job{Kind: symbot.JobGrant, Lane: "R1"},
		symbot.Job{Kind: symbot.JobNotify, Lane: "R1"},
		symbot.Job{Kind: symbot.JobPost, NotBefore: storetest.T0.Add(time.Hour)})
	storetest.MustUpdate(t, s, func(tx symbot.Tx) error {
		if _, err := tx.NextSeq("req"); err != nil {
			return err
		}
		if err := symbot.AppendAudit(tx, nil, &symbot.AuditEntry{At: storetest.T0, Action: "request", RequestID: "R1"}); err != nil {
			return err
		}
		return tx.PutIdentity(symbot.Identity{SlackID: "U1", OktaUserID: "00u1"})
	})
	claimed, err := s.ClaimJobs(t.Context(), "old-process", storetest.T0, time.Hour, 10)
	if err != nil || len(claimed) != 1 || claimed[0].ID != 1 {
		t.Fatalf("ClaimJobs = %v, %v; want job 1", claimed, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = store.Open(path, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := storetest.MustGet(t, s, "R1"); !reflect.DeepEqual(got, want) {
		t.Errorf("request after reopen:\n got %+v\nwant %+v", got, want)
	}
	storetest.MustView(t, s, func(tx symbot.Tx) error {
		js, err := tx.Jobs()
		if err != nil {
			return err
		}
		for _, j := range js {
			if j.LeaseOwner != "" || !j.LeaseUntil.IsZero() {
				t.Errorf("job %d still leased after reopen: %q until %v", j.ID, j.LeaseOwner, j.LeaseUntil)
			}
		}
		if id, _, ok, _ := tx.NextDeadline(); !ok || id != "R1" {
			t.Errorf("NextDeadline after reopen = %q %v, want R1", id, ok)
		}
		if rs, _ := tx.RequestsByRequester("U1"); len(rs) != 1 {
			t.Errorf("requester index after reopen: %d requests, want 1", len(rs))
		}
		if id, ok, _ := tx.Identity("U1"); !ok || id.OktaUserID != "00u1" {
			t.Errorf("identity after reopen = %+v %v", id, ok)
		}
		es, err := tx.Audit(0, storetest.AllAudit)
		if err != nil {
			return err
		}
		seq, hash, _ := tx.AuditHead()
		if err := symbot.VerifyAudit(es, seq, hash); err != nil || seq != 1 {
			t.Errorf("audit after reopen: head %d, verify %v", seq, err)
		}
		return nil
	})
	// The in-flight job runs again at once (same clock, no waiting for the lease).
	if at, ok, _ := s.NextJobTime(t.Context()); !ok || !at.IsZero() {
		t.Errorf("NextJobTime after reopen = %v %v, want the zero time (due now)", at, ok)
	}
	got, err := s.ClaimJobs(t.Context(), "new-process", storetest.T0, time.Hour, 10)
	if err != nil || len(got) != 1 || got[0].ID != 1 || got[0].LeaseOwner != "new-process" {
		t.Errorf("ClaimJobs after reopen = %+v, %v; want job 1 for new-process", got, err)
	}
	storetest.MustUpdate(t, s, func(tx symbot.Tx) error {
		if n, _ := tx.NextSeq("req"); n != 2 {
			t.Errorf("NextSeq after reopen = %d, want 2", n)
		}
		j := symbot.Job{Kind: symbot.JobPost}
		if err := tx.AddJob(&j); err != nil {
			return err
		}
		if j.ID != 4 {
			t.Errorf("AddJob after reopen: id %d, want 4", j.ID)
		}
		return nil
	})
}

func TestBackup(t *testing.T) {
	s := MustOpen(t, store.Config{})
	var want []*symbot.Request
	for i := range 50 {
		r := storetest.FullRequest(fmt.Sprintf("R%02d", i))
		r.State = symbot.StatePending
		r.TimeoutAt = storetest.T0.Add(time.Duration(i) * time.Minute)
		want = append(want, r)
	}
	storetest.MustPut(t, s, want...)
	storetest.MustAddJobs(t, s, symbot.Job{Kind: symbot.JobPost, RequestID: "R01"})
	for i := range 5 {
		storetest.MustUpdate(t, s, func(tx symbot.Tx) error {
			return symbot.AppendAudit(tx, nil, &symbot.AuditEntry{At: storetest.T0, Action: fmt.Sprint("a", i)})
		})
	}
	path := filepath.Join(t.TempDir(), "backup.db")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600) // as symbot backup writes it
	if err != nil {
		t.Fatal(err)
	}
	n, err := s.Backup(t.Context(), f)
	if err != nil {
		t.Fatalf("Backup: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Size() != n {
		t.Errorf("Backup reported %d bytes, file has %d", n, fi.Size())
	}
	// The original stays usable while the copy is open.
	storetest.MustPut(t, s, &symbot.Request{ID: "after-backup"})

	b, err := store.Open(path, store.Config{})
	if err != nil {
		t.Fatalf("Open backup: %v", err)
	}
	defer b.Close()
	for _, r := range want {
		if got := storetest.MustGet(t, b, r.ID); !reflect.DeepEqual(got, r) {
			t.Errorf("backup %s:\n got %+v\nwant %+v", r.ID, got, r)
		}
	}
	storetest.MustView(t, b, func(tx symbot.Tx) error {
		if _, err := tx.Request("after-backup"); !errors.Is(err, symbot.ErrNotFound) {
			t.Errorf("backup holds a request written after it: %v", err)
		}
		due, err := tx.DueRequests(storetest.T0.Add(time.Hour), 0)
		if len(due) != 50 {
			t.Errorf("backup DueRequests: %d ids, want 50", len(due))
		}
		es, _ := tx.Audit(0, storetest.AllAudit)
		seq, hash, _ := tx.AuditHead()
		if err := symbot.VerifyAudit(es, seq, hash); err != nil || seq != 5 {
			t.Errorf("backup audit: head %d, verify %v", seq, err)
		}
		js, _ := tx.Jobs()
		if len(js) != 1 || js[0].RequestID != "R01" {
			t.Errorf("backup jobs = %+v", js)
		}
		return err
	})
}

func TestStats(t *testing.T) {
	s := MustOpen(t, store.Config{})
	storetest.MustPut(t, s,
		&symbot.Request{ID: "A", State: symbot.StatePending, TimeoutAt: storetest.T0},
		&symbot.Request{ID: "B", State: symbot.StatePending},
		&symbot.Request{ID: "C", State: symbot.StateDenied})
	storetest.MustAddJobs(t, s, symbot.Job{Kind: symbot.JobPost})
	storetest.MustUpdate(t, s, func(tx symbot.Tx) error {
		return symbot.AppendAudit(tx, nil, &symbot.AuditEntry{At: storetest.T0, Action: "x"})
	})
	got, err := s.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := store.Stats{Requests: 3, Scheduled: 1, Jobs: 1, AuditEntries: 1,
		ByState: map[symbot.State]int{symbot.StatePending: 2, symbot.StateDenied: 1}, FileBytes: got.FileBytes}
	if !reflect.DeepEqual(got, want) || got.FileBytes <= 0 {
		t.Errorf("Stats = %+v, want %+v", got, want)
	}
}

const auditN = 10

// auditStore makes a closed store file with auditN chained entries.
func auditStore(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "symbot.db")
	s, err := store.Open(path, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= auditN; i++ {
		storetest.MustUpdate(t, s, func(tx symbot.Tx) error {
			return symbot.AppendAudit(tx, nil, &symbot.AuditEntry{At: storetest.T0.Add(time.Duration(i) * time.Second),
				RequestID: "R1", Actor: "U1", Action: "approve", Detail: fmt.Sprintf("detail-%d", i)})
		})
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func seqKey(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

// verify reopens path and verifies its audit chain against its head.
func verify(t *testing.T, path string) error {
	t.Helper()
	s, err := store.Open(path, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var verr error
	storetest.MustView(t, s, func(tx symbot.Tx) error {
		es, err := tx.Audit(0, storetest.AllAudit)
		if err != nil {
			return err
		}
		seq, hash, err := tx.AuditHead()
		verr = symbot.VerifyAudit(es, seq, hash)
		return err
	})
	return verr
}

func TestAuditTamper(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(b *bolt.Bucket) error
		wantSeq uint64
	}{
		{"untouched", func(b *bolt.Bucket) error { return nil }, 0},
		{"one byte changed", func(b *bolt.Bucket) error {
			v := bytes.Clone(b.Get(seqKey(4)))
			i := bytes.Index(v, []byte("detail-4"))
			if i < 0 {
				return fmt.Errorf("detail not found in %s", v)
			}
			v[i+len("detail-")] = '5'
			return b.Put(seqKey(4), v)
		}, 4},
		{"entry deleted", func(b *bolt.Bucket) error { return b.Delete(seqKey(5)) }, 6},
		{"first entry deleted", func(b *bolt.Bucket) error { return b.Delete(seqKey(1)) }, 2},
		{"last entry deleted", func(b *bolt.Bucket) error { return b.Delete(seqKey(auditN)) }, auditN},
		{"two entries swapped", func(b *bolt.Bucket) error {
			v3, v7 := bytes.Clone(b.Get(seqKey(3))), bytes.Clone(b.Get(seqKey(7)))
			if err := b.Put(seqKey(3), v7); err != nil {
				return err
			}
			return b.Put(seqKey(7), v3)
		}, 7},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := auditStore(t)
			editRaw(t, path, func(tx *bolt.Tx) error { return tc.edit(tx.Bucket([]byte("audit"))) })
			err := verify(t, path)
			if tc.wantSeq == 0 {
				if err != nil {
					t.Errorf("VerifyAudit: %v, want nil", err)
				}
				return
			}
			var ae *symbot.AuditError
			if !errors.As(err, &ae) {
				t.Fatalf("VerifyAudit: got %v, want an *AuditError", err)
			}
			if ae.Seq != tc.wantSeq {
				t.Errorf("AuditError.Seq = %d, want %d (%v)", ae.Seq, tc.wantSeq, err)
			}
		})
	}
}

func TestAuditDamagedEntry(t *testing.T) {
	path := auditStore(t)
	editRaw(t, path, func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("audit"))
		v := bytes.Clone(b.Get(seqKey(4)))
		v[0] = 'x' // no longer JSON
		return b.Put(seqKey(4), v)
	})
	s, err := store.Open(path, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.View(t.Context(), func(tx symbot.Tx) error {
		_, err := tx.Audit(0, storetest.AllAudit)
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "entry 4 is damaged") {
		t.Errorf("Audit of a damaged entry: got %v, want an error naming entry 4", err)
	}
}

func TestOpenHealthyStoreWritesNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "symbot.db")
	s, err := store.Open(path, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	storetest.MustPut(t, s, storetest.FullRequest("R1")) // active: in the open-requests index
	// A failing revoke: in the failing-revocations index.
	storetest.MustAddJobs(t, s, symbot.Job{Kind: symbot.JobPost}, symbot.Job{Kind: symbot.JobRevoke, Attempts: 2})
	s.Close()
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err = store.Open(path, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Errorf("Open of a healthy store without leases modified the file")
	}
}

// TestJobStatsIndexRebuiltOnOpen: a store written before the failing-
// revocations index existed, or since by a symbot that did not keep it,
// gets the index rebuilt from its jobs when it is opened.
func TestJobStatsIndexRebuiltOnOpen(t *testing.T) {
	tests := []struct {
		name string
		edit func(tx *bolt.Tx) error
	}{
		{"index missing", func(tx *bolt.Tx) error { return tx.DeleteBucket([]byte("job_failing")) }},
		{"index lacks a job", func(tx *bolt.Tx) error {
			return tx.Bucket([]byte("job_failing")).Delete(binary.BigEndian.AppendUint64(nil, 2))
		}},
		{"index holds a job that is gone", func(tx *bolt.Tx) error {
			return tx.Bucket([]byte("job_failing")).Put(binary.BigEndian.AppendUint64(nil, 9), nil)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := reopenAfterEdit(t, store.Config{}, func(s *store.Store) {
				storetest.MustAddJobs(t, s,
					symbot.Job{Kind: symbot.JobRevoke, Attempts: 1},
					symbot.Job{Kind: symbot.JobRevoke, Attempts: 4},
					symbot.Job{Kind: symbot.JobRevoke},
				)
			}, tt.edit)
			var got symbot.JobStats
			storetest.MustView(t, s, func(tx symbot.Tx) (err error) {
				got, err = tx.JobStats()
				return err
			})
			if want := (symbot.JobStats{Pending: 3, FailingRevokes: 2}); got != want {
				t.Errorf("JobStats after reopening = %+v, want %+v", got, want)
			}
		})
	}
}

// TestClaimRankIndexRebuiltOnOpen: a store written before the claim rank
// index existed (or since by a symbot that did not keep it) gets the index
// rebuilt from its jobs when it is opened, so its pending revocations are
// claimed ahead of the Slack jobs queued before them.
func TestClaimRankIndexRebuiltOnOpen(t *testing.T) {
	tests := []struct {
		name string
		edit func(tx *bolt.Tx) error
	}{
		{"index missing", func(tx *bolt.Tx) error { return tx.DeleteBucket([]byte("job_rank")) }},
		{"index lacks a job", func(tx *bolt.Tx) error {
			return tx.Bucket([]byte("job_rank")).Delete(binary.BigEndian.AppendUint64(nil, 3))
		}},
		{"index ranks a Slack job first", func(tx *bolt.Tx) error {
			return tx.Bucket([]byte("job_rank")).Put(binary.BigEndian.AppendUint64(nil, 1), []byte{0})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := reopenAfterEdit(t, store.Config{}, func(s *store.Store) {
				storetest.MustAddJobs(t, s,
					symbot.Job{Kind: symbot.JobNotify},
					symbot.Job{Kind: symbot.JobGrant},
					symbot.Job{Kind: symbot.JobRevoke},
				)
			}, tt.edit)
			js, err := s.ClaimJobs(context.Background(), "w", storetest.T0, time.Minute, 10)
			if err != nil {
				t.Fatal(err)
			}
			var got []symbot.JobKind
			for _, j := range js {
				got = append(got, j.Kind)
			}
			if want := []symbot.JobKind{symbot.JobRevoke, symbot.JobGrant, symbot.JobNotify}; !slices.Equal(got, want) {
				t.Errorf("claimed after reopening: %v, want %v", got, want)
			}
		})
	}
}

// A store file other users can read hands them every request, identity
// binding and the audit chain: Open refuses it and says how to fix it.
func TestOpenRefusesGroupOrWorldReadableStore(t *testing.T) {
	for _, mode := range []os.FileMode{0o640, 0o604, 0o660} {
		path := filepath.Join(t.TempDir(), "symbot.db")
		s, err := store.Open(path, store.Config{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, err = store.Open(path, store.Config{})
		if !errors.Is(err, store.ErrUnsafePath) || !strings.Contains(err.Error(), "chmod 600 "+path) {
			t.Errorf("Open of a %v store: got %v, want ErrUnsafePath saying chmod 600", mode, err)
		}
	}
}

// A store path that is a symbolic link lets whoever can change the link
// choose which database symbot trusts: Open refuses it.
func TestOpenRefusesSymlinkedStore(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "real.db")
	s, err := store.Open(real, store.Config{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	link := filepath.Join(dir, "symbot.db")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	_, err = store.Open(link, store.Config{})
	if !errors.Is(err, store.ErrUnsafePath) || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("Open through a symlink: got %v, want ErrUnsafePath naming the link", err)
	}
}

// TestOpenRequestsIndexRebuiltOnOpen: a store written before the
// open-requests index existed, or since by a symbot that did not keep it,
// gets the index rebuilt from its requests when it is opened.
func TestOpenRequestsIndexRebuiltOnOpen(t *testing.T) {
	key := func(user, id string) []byte {
		return append(binary.BigEndian.AppendUint32(nil, uint32(len(user))), user+id...)
	}
	tests := []struct {
		name string
		edit func(tx *bolt.Tx) error
	}{
		{"index missing", func(tx *bolt.Tx) error { return tx.DeleteBucket([]byte("req_open")) }},
		{"index lacks an open request", func(tx *bolt.Tx) error { return tx.Bucket([]byte("req_open")).Delete(key("U1", "R2")) }},
		{"index holds a final request", func(tx *bolt.Tx) error { return tx.Bucket([]byte("req_open")).Put(key("U1", "R3"), nil) }},
		// An older symbot ended one request and opened another: the index
		// holds as many keys as there are open requests, but not theirs.
		{"index holds a final request instead of an open one", func(tx *bolt.Tx) error {
			idx := tx.Bucket([]byte("req_open"))
			if err := idx.Delete(key("U1", "R2")); err != nil {
				return err
			}
			return idx.Put(key("U1", "R3"), nil)
		}},
		{"index names another requester", func(tx *bolt.Tx) error {
			idx := tx.Bucket([]byte("req_open"))
			if err := idx.Delete(key("U1", "R2")); err != nil {
				return err
			}
			return idx.Put(key("U2", "R2"), nil)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := reopenAfterEdit(t, store.Config{NoSync: true}, func(s *store.Store) {
				storetest.MustPut(t, s,
					&symbot.Request{ID: "R1", Requester: symbot.Person{SlackID: "U1"}, State: symbot.StatePending},
					&symbot.Request{ID: "R2", Requester: symbot.Person{SlackID: "U1"}, State: symbot.StateActive},
					&symbot.Request{ID: "R3", Requester: symbot.Person{SlackID: "U1"}, State: symbot.StateExpired},
				)
			}, tt.edit)
			var got []string
			storetest.MustView(t, s, func(tx symbot.Tx) error {
				rs, err := tx.OpenRequests("U1")
				for _, r := range rs {
					got = append(got, r.ID)
				}
				return err
			})
			if want := []string{"R1", "R2"}; !slices.Equal(got, want) {
				t.Errorf("OpenRequests after reopening = %v, want %v", got, want)
			}
		})
	}
}

// TestClaimWithNothingDueCommitsNothing: the executor claims after every
// new and every finished job; a claim that finds nothing to claim (none
// due, leased, or waiting behind its lane) must not cost a commit, whose
// fsyncs the writes people wait for would queue behind.
func TestClaimWithNothingDueCommitsNothing(t *testing.T) {
	s := MustOpen(t, store.Config{NoSync: true})
	now := time.Now()
	storetest.MustAddJobs(t, s,
		symbot.Job{Kind: symbot.JobNotify, NotBefore: now.Add(time.Hour)},                      // not due
		symbot.Job{Kind: symbot.JobGrant, LeaseOwner: "other", LeaseUntil: now.Add(time.Hour)}, // leased
		symbot.Job{Kind: symbot.JobPost, Lane: "msg:R1", NotBefore: now.Add(time.Hour)},        // lane head, not due
		symbot.Job{Kind: symbot.JobUpdate, Lane: "msg:R1"},                                     // due, behind its lane
	)
	before := store.Commits(s)
	jobs, err := s.ClaimJobs(t.Context(), "me", now, time.Minute, 10)
	if err != nil || len(jobs) != 0 {
		t.Fatalf("ClaimJobs = %v, %v; want nothing", jobs, err)
	}
	if got := store.Commits(s); got != before {
		t.Errorf("a claim that found nothing made %d commits, want 0", got-before)
	}
	storetest.MustAddJobs(t, s, symbot.Job{Kind: symbot.JobAlert})
	before = store.Commits(s)
	jobs, err = s.ClaimJobs(t.Context(), "me", now, time.Minute, 10)
	if err != nil || len(jobs) != 1 || jobs[0].Kind != symbot.JobAlert || jobs[0].LeaseOwner != "me" {
		t.Fatalf("ClaimJobs = %+v, %v; want the alert job, leased to me", jobs, err)
	}
	if got := store.Commits(s); got != before+1 {
		t.Errorf("a claim that leased a job made %d commits, want 1", got-before)
	}
}

// TestStoredRequestLeavesOutZeroFields: a request is stored without the
// fields at their zero value (most of a pending request's), reads back
// as it was put, and a record written with every field (as symbot did
// before) reads back as before.
func TestStoredRequestLeavesOutZeroFields(t *testing.T) {
	path := filepath.Join(t.TempDir(), "symbot.db")
	s, err := store.Open(path, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	pending := &symbot.Request{
		ID: "SYM-7-ABCD", Flow: "prod", Target: "admins", GroupID: "00g1",
		Requester: symbot.Person{SlackID: "U1", Name: "Ann", Email: "ann@example.com"},
		Duration:  time.Hour, Reason: "incident 42", State: symbot.StatePending,
		CreatedAt: storetest.T0, UpdatedAt: storetest.T0, TimeoutAt: storetest.T0.Add(time.Hour),
		Approvals: []symbot.Decision{}, Nonce: "n0",
	}
	storetest.MustPut(t, s, pending)
	if got := storetest.MustGet(t, s, pending.ID); !reflect.DeepEqual(got, pending) {
		t.Errorf("read back %+v, want %+v", got, pending)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Written with every field, as before.
	full := storetest.FullRequest("R-full")
	full.StartAt, full.WarnAt, full.Warned, full.RuleApprovers, full.Reposts = time.Time{}, time.Time{}, false, nil, nil
	old, err := json.Marshal(full)
	if err != nil {
		t.Fatal(err)
	}
	var raw []byte
	editRaw(t, path, func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("requests"))
		raw = bytes.Clone(b.Get([]byte(pending.ID)))
		return b.Put([]byte(full.ID), old)
	})
	for _, field := range []string{"StartAt", "ExpiresAt", "Transitions", "Warned", "RuleApprovers", "Message", "0001-01-01"} {
		if bytes.Contains(raw, []byte(field)) {
			t.Errorf("stored request holds %q: %s", field, raw)
		}
	}
	for _, field := range []string{`"TimeoutAt"`, `"Approvals":[]`, `"Nonce":"n0"`} {
		if !bytes.Contains(raw, []byte(field)) {
			t.Errorf("stored request lacks %s: %s", field, raw)
		}
	}

	s, err = store.Open(path, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := storetest.MustGet(t, s, full.ID); !reflect.DeepEqual(got, full) {
		t.Errorf("record with every field read back as %+v, want %+v", got, full)
	}
}
