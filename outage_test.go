package symbot_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/store/memstore"
)

// outageStore is a store that cannot be reached (every Update and
// ClaimJobs fails with symbot.ErrStoreUnavailable) until a time set by the
// test.
type outageStore struct {
	*memstore.Store
	mu   sync.Mutex
	upAt time.Time
}

func (s *outageStore) goDown(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.upAt = time.Now().Add(d)
}

func (s *outageStore) down() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if time.Now().Before(s.upAt) {
		return fmt.Errorf("connect to the database: %w", symbot.ErrStoreUnavailable)
	}
	return nil
}

func (s *outageStore) Update(ctx context.Context, fn func(symbot.Tx) error) error {
	if err := s.down(); err != nil {
		return err
	}
	return s.Store.Update(ctx, fn)
}

func (s *outageStore) ClaimJobs(ctx context.Context, owner string, now time.Time, lease time.Duration, max int) ([]symbot.Job, error) {
	if err := s.down(); err != nil {
		return nil, err
	}
	return s.Store.ClaimJobs(ctx, owner, now, lease, max)
}

// downAfterPost is a Notifier whose approval message reaches Slack just
// before the store becomes unreachable.
type downAfterPost struct {
	*fakeNotifier
	st *outageStore
}

func (n downAfterPost) PostRequest(ctx context.Context, f *symbot.Flow, r *symbot.Request) (symbot.MessageRef, error) {
	ref, err := n.fakeNotifier.PostRequest(ctx, f, r)
	if err == nil {
		n.st.goDown(10 * time.Second)
	}
	return ref, err
}

// TestOutcomeRecordedWhenStoreReturns: the database goes away between the
// approval message reaching Slack and the job recording it. The worker
// records it once the database is back, instead of leaving the job to post
// a second message when its lease runs out.
func TestOutcomeRecordedWhenStoreReturns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ms := memstore.New()
		ms.RerunUpdates = true
		st := &outageStore{Store: ms}
		notes := &fakeNotifier{}
		dir := newFakeDir()
		dir.addUser("00ualice", alice.Email, "ACTIVE")
		eng, err := symbot.NewEngine(st, dir, downAfterPost{notes, st}, []symbot.Flow{testFlow()})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { defer close(done); _ = eng.Run(ctx) }()
		defer func() { cancel(); <-done }()

		r, err := eng.Submit(t.Context(), alice, symbot.RequestInput{Target: "admin", Duration: time.Hour, Reason: "fix the outage"})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Minute) // the outage, and the job's lease, run out
		synctest.Wait()
		if got := notes.find("post", "CACCESS", ""); len(got) != 1 {
			t.Errorf("approval messages posted: %d, want 1", len(got))
		}
		got, err := eng.Get(t.Context(), r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Message.TS == "" {
			t.Error("the approval message was posted but never recorded")
		}
	})
}
