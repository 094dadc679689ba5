package store_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
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
// reading records whose indexes a read-write Open would rebuild first: it
// says what to do, and the backup still works.
func TestReadOnlyOpenOfAStoreNeedingRepair(t *testing.T) {
	path := filepath.Join(t.TempDir(), "symbot.db")
	s, err := store.Open(path, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	storetest.MustPut(t, s, &symbot.Request{ID: "R1", State: symbot.StatePending, Requester: symbot.Person{SlackID: "U1"}})
	s.Close()
	// As a store written by a symbot from before the records bucket.
	editRaw(t, path, func(tx *bolt.Tx) error { return tx.DeleteBucket([]byte("records")) })
	ro, err := store.Open(path, store.Config{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	err = ro.View(t.Context(), func(tx symbot.Tx) error { _, err := tx.Request("R1"); return err })
	if err == nil || !strings.Contains(err.Error(), "start `symbot run` with this version once") {
		t.Errorf("View of a store needing repair: got %v, want the advice to start symbot once", err)
	}
	var buf bytes.Buffer
	if _, err := ro.Backup(t.Context(), &buf); err != nil || buf.Len() == 0 {
		t.Errorf("Backup of a store needing repair: %d bytes, %v", buf.Len(), err)
	}
}
