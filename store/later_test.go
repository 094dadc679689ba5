package store_test

import (
	"maps"
	"path/filepath"
	"testing"
	"time"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/store"
	"github.com/symbot/symbot/store/storetest"
)

// later starts s.UpdateLater(fn) on its own goroutine and waits until want
// late writes wait for a group.
func later(t *testing.T, s *store.Store, want int, fn func(symbot.Tx) error) <-chan storetest.Result {
	t.Helper()
	ch := make(chan storetest.Result, 1)
	go func() {
		var r storetest.Result
		defer func() {
			r.Panic = recover()
			ch <- r
		}()
		r.Err = s.UpdateLater(t.Context(), fn)
	}()
	storetest.WaitFor(t, 10*time.Second, "the late write to wait", func() bool { return store.LaterLen(s) == want })
	return ch
}

func writeOp(tag string) func(symbot.Tx) error {
	return func(tx symbot.Tx) error { _, err := storetest.WriteOp(tx, tag); return err }
}

// TestUpdateLaterSharesTheNextCommit: late writes wait for an Update and
// share its commit (one fsync), after its fn.
func TestUpdateLaterSharesTheNextCommit(t *testing.T) {
	s := MustOpen(t, store.Config{})
	store.SetLaterWait(s, time.Hour)
	l1 := later(t, s, 1, writeOp("L1"))
	l2 := later(t, s, 2, writeOp("L2"))
	if got := store.Commits(s); got != 0 {
		t.Fatalf("commits = %d with only late writes waiting, want 0", got)
	}
	if err := s.Update(t.Context(), writeOp("U")); err != nil {
		t.Fatal(err)
	}
	for _, ch := range []<-chan storetest.Result{l1, l2} {
		if r := storetest.Get(t, ch); r.Err != nil || r.Panic != nil {
			t.Errorf("late write: got %v %v, want success", r.Err, r.Panic)
		}
	}
	if got, want := store.Commits(s), uint64(1); got != want {
		t.Errorf("commits = %d, want %d", got, want)
	}
	if got, want := storetest.RequestTags(t, s), map[uint64]string{1: "U", 2: "L1", 3: "L2"}; !maps.Equal(got, want) {
		t.Errorf("stored requests by seq = %v, want %v (the Update first)", got, want)
	}
	checkJobsAndAudit(t, s, 3)
}

// TestUpdateLaterCommitsAlone: with no Update coming, a late write commits
// on its own once its wait is over.
func TestUpdateLaterCommitsAlone(t *testing.T) {
	s := MustOpen(t, store.Config{})
	store.SetLaterWait(s, time.Millisecond)
	if err := s.UpdateLater(t.Context(), writeOp("L")); err != nil {
		t.Fatal(err)
	}
	if got, want := storetest.RequestTags(t, s), map[uint64]string{1: "L"}; !maps.Equal(got, want) {
		t.Errorf("stored requests by seq = %v, want %v", got, want)
	}
}

// TestCloseCommitsLaterWrites: Close commits the late writes still
// waiting for company before it closes the file.
func TestCloseCommitsLaterWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "symbot.db")
	s, err := store.Open(path, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	store.SetLaterWait(s, time.Hour)
	l := later(t, s, 1, writeOp("L"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if r := storetest.Get(t, l); r.Err != nil || r.Panic != nil {
		t.Errorf("late write waiting at Close: got %v %v, want success", r.Err, r.Panic)
	}
	s2, err := store.Open(path, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if got, want := storetest.RequestTags(t, s2), map[uint64]string{1: "L"}; !maps.Equal(got, want) {
		t.Errorf("after reopening: requests %v, want %v", got, want)
	}
}
