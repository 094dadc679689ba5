package store_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
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

// TestReadOnlyOpenWaitsForTheWriter stops an offline reader from opening
// (or worse, writing) a store a daemon holds: a read-only Open fails with
// a *LockedError while a read-write store is open, and reads once it is
// closed.
func TestReadOnlyOpenWaitsForTheWriter(t *testing.T) {
	s := MustOpen(t, store.Config{})
	storetest.MustPut(t, s, &symbot.Request{ID: "R1", State: symbot.StateActive, Requester: symbot.Person{SlackID: "U1"}})
	_, err := store.Open(s.Path(), store.Config{ReadOnly: true, Timeout: 50 * time.Millisecond})
	var le *store.LockedError
	if !errors.As(err, &le) || !errors.Is(err, symbot.ErrStoreLocked) {
		t.Fatalf("read-only Open of a held store: got %v, want a *LockedError", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ro, err := store.Open(s.Path(), store.Config{ReadOnly: true})
	if err != nil {
		t.Fatalf("read-only Open of a free store: %v", err)
	}
	defer ro.Close()
	if got := storetest.MustGet(t, ro, "R1"); got.State != symbot.StateActive {
		t.Errorf("R1 read back in state %s, want active", got.State)
	}
	// Two readers at once are fine; a writer waits for them.
	ro2, err := store.Open(s.Path(), store.Config{ReadOnly: true})
	if err != nil {
		t.Fatalf("a second read-only Open: %v", err)
	}
	ro2.Close()
	if _, err := store.Open(s.Path(), store.Config{Timeout: 50 * time.Millisecond}); !errors.Is(err, symbot.ErrStoreLocked) {
		t.Errorf("read-write Open while a reader holds the store: got %v, want ErrStoreLocked", err)
	}
}

// TestReadOnlyOpenNeverWrites stops the offline commands from changing the
// file: not the lease clearing or the index rebuilds a read-write Open
// makes, and no Update.
func TestReadOnlyOpenNeverWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "symbot.db")
	s, err := store.Open(path, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	storetest.MustPut(t, s, &symbot.Request{ID: "R1", State: symbot.StatePending, Requester: symbot.Person{SlackID: "U1"}})
	storetest.MustAddJobs(t, s, symbot.Job{Kind: symbot.JobPost, RequestID: "R1"})
	if _, err := s.ClaimJobs(t.Context(), "daemon", time.Now(), time.Hour, 1); err != nil {
		t.Fatal(err)
	}
	s.Close()
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	ro, err := store.Open(path, store.Config{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := ro.Update(t.Context(), func(tx symbot.Tx) error { return tx.PutRequest(&symbot.Request{ID: "R2", State: symbot.StatePending}) }); err == nil {
		t.Error("Update on a read-only store succeeded")
	}
	var buf bytes.Buffer
	if _, err := ro.Backup(t.Context(), &buf); err != nil {
		t.Errorf("Backup of a read-only store: %v", err)
	}
	ro.Close()
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Error("a read-only open changed the file (it cleared the job's lease?)")
	}

	if _, err := store.Open(filepath.Join(t.TempDir(), "missing.db"), store.Config{ReadOnly: true}); err == nil {
		t.Error("read-only Open of a missing file succeeded")
	} else if _, statErr := os.Stat(filepath.Join(t.TempDir(), "missing.db")); statErr == nil {
		t.Error("read-only Open created the missing file")
	}
}

// TestReadOnlyOpenOfAStoreNeedingRepair stops a read-only reader from
// reading records whose indexes a read-write Open would rebuild first: a
// store written by a symbot from before the records bucket, or the
// identities bucket. View, Stats and Export say what to do (Stats and
// Export panicked on the missing bucket when it was the identities
// bucket), and the backup still works.
func TestReadOnlyOpenOfAStoreNeedingRepair(t *testing.T) {
	const advice = "start `symbot run` with this version once"
	for _, missing := range []string{"records", "identities"} {
		t.Run(missing, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "symbot.db")
			s, err := store.Open(path, store.Config{})
			if err != nil {
				t.Fatal(err)
			}
			storetest.MustPut(t, s, &symbot.Request{ID: "R1", State: symbot.StatePending, Requester: symbot.Person{SlackID: "U1"}})
			s.Close()
			editRaw(t, path, func(tx *bolt.Tx) error { return tx.DeleteBucket([]byte(missing)) })
			ro, err := store.Open(path, store.Config{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			defer ro.Close()
			err = ro.View(t.Context(), func(tx symbot.Tx) error { _, err := tx.Request("R1"); return err })
			if err == nil || !strings.Contains(err.Error(), advice) {
				t.Errorf("View of a store needing repair: got %v, want the advice to start symbot once", err)
			}
			if _, err := ro.Stats(t.Context()); err == nil || !strings.Contains(err.Error(), advice) {
				t.Errorf("Stats of a store needing repair: got %v, want the advice to start symbot once", err)
			}
			if _, err := ro.Export(t.Context()); err == nil || !strings.Contains(err.Error(), advice) {
				t.Errorf("Export of a store needing repair: got %v, want the advice to start symbot once", err)
			}
			var buf bytes.Buffer
			if _, err := ro.Backup(t.Context(), &buf); err != nil || buf.Len() == 0 {
				t.Errorf("Backup of a store needing repair: %d bytes, %v", buf.Len(), err)
			}
		})
	}
}

// TestReadOnlyOpenWithoutTheRankIndex: a file from before the job rank
// index (or with a stale one) is read by the offline commands as it is:
// the index only orders job claims, which a read-only store never makes.
// The read-only open leaves the file alone, and the next read-write open
// rebuilds the index, so revocations are claimed first again.
func TestReadOnlyOpenWithoutTheRankIndex(t *testing.T) {
	tests := []struct {
		name string
		edit func(tx *bolt.Tx) error
	}{
		{"index missing (a file from before it)", func(tx *bolt.Tx) error { return tx.DeleteBucket([]byte("job_rank")) }},
		{"index ranks a Slack job first", func(tx *bolt.Tx) error {
			return tx.Bucket([]byte("job_rank")).Put(binary.BigEndian.AppendUint64(nil, 1), []byte{0})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "symbot.db")
			s, err := store.Open(path, store.Config{})
			if err != nil {
				t.Fatal(err)
			}
			storetest.MustPut(t, s, &symbot.Request{ID: "R1", State: symbot.StateActive, Requester: symbot.Person{SlackID: "U1"}})
			storetest.MustAddJobs(t, s,
				symbot.Job{Kind: symbot.JobNotify, RequestID: "R1"},
				symbot.Job{Kind: symbot.JobGrant, RequestID: "R1"},
				symbot.Job{Kind: symbot.JobRevoke, RequestID: "R1"},
			)
			s.Close()
			editRaw(t, path, tt.edit)
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}

			ro, err := store.Open(path, store.Config{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			var (
				got  *symbot.Request
				jobs []symbot.Job
			)
			err = ro.View(t.Context(), func(tx symbot.Tx) error {
				var err error
				if got, err = tx.Request("R1"); err != nil {
					return err
				}
				jobs, err = tx.Jobs()
				return err
			})
			if err != nil {
				t.Fatalf("read-only View: %v", err)
			}
			if got.State != symbot.StateActive || len(jobs) != 3 {
				t.Errorf("read-only View: R1 %s with %d jobs, want active with 3", got.State, len(jobs))
			}
			if st, err := ro.Stats(t.Context()); err != nil || st.Requests != 1 {
				t.Errorf("read-only Stats: %+v, %v; want 1 request", st, err)
			}
			ro.Close()
			after, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(before, after) {
				t.Error("the read-only open changed the file")
			}

			rw, err := store.Open(path, store.Config{})
			if err != nil {
				t.Fatal(err)
			}
			defer rw.Close()
			js, err := rw.ClaimJobs(t.Context(), "w", storetest.T0.Add(time.Hour), time.Minute, 10)
			if err != nil {
				t.Fatal(err)
			}
			var kinds []symbot.JobKind
			for _, j := range js {
				kinds = append(kinds, j.Kind)
			}
			if want := []symbot.JobKind{symbot.JobRevoke, symbot.JobGrant, symbot.JobNotify}; !slices.Equal(kinds, want) {
				t.Errorf("claimed after a read-write open: %v, want %v (the index rebuilt)", kinds, want)
			}
		})
	}
}

// TestLongReadDoesNotStallWrites: a read transaction held open (a backup
// of a large store takes seconds) does not hold writes while the file
// grows: bbolt maps the file again when it outgrows the mapping, which
// waits for every read to end, and the store maps room to grow at open.
// Without it the writes below wait for the read, and the test fails after
// its minute (a hang detector, not a speed check).
func TestLongReadDoesNotStallWrites(t *testing.T) {
	s, err := store.Open(filepath.Join(t.TempDir(), "symbot.db"), store.Config{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	reading, release := make(chan struct{}), make(chan struct{})
	readDone := make(chan error, 1)
	go func() {
		readDone <- s.View(t.Context(), func(symbot.Tx) error {
			close(reading)
			<-release
			return nil
		})
	}()
	<-reading
	wrote := make(chan error, 1)
	go func() {
		big := bytes.Repeat([]byte("x"), 1<<20)
		for i := range 32 { // 32 MB: the file outgrows any small mapping
			if err := s.Update(t.Context(), func(tx symbot.Tx) error {
				return tx.(symbot.RecordTx).PutRecord(fmt.Sprintf("big-%d", i), big)
			}); err != nil {
				wrote <- err
				return
			}
		}
		wrote <- nil
	}()
	select {
	case err := <-wrote:
		if err != nil {
			t.Errorf("writes during a long read: %v", err)
		}
	case <-time.After(time.Minute):
		t.Error("32 writes growing the file did not finish in a minute while a read was open: they waited for it")
	}
	close(release)
	if err := <-readDone; err != nil {
		t.Fatal(err)
	}
}
