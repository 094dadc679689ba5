package symbot_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/store/memstore"
	"github.com/symbot/symbot/store/storetest"
)

// attemptNotifier records the JobAttempt each PostRequest and NotifyUser
// call finds in its context. hangAfterPost makes the next post reach
// "Slack" and then hang until its context ends: the process dies before
// the job records the message.
type attemptNotifier struct {
	*fakeNotifier
	mu            sync.Mutex
	posts, dms    []symbot.JobAttempt
	hangAfterPost bool
	hung          chan struct{}
}

func (n *attemptNotifier) attempt(ctx context.Context, into *[]symbot.JobAttempt) {
	a, ok := symbot.JobAttemptFrom(ctx)
	if !ok {
		a = symbot.JobAttempt{Kind: "none"}
	}
	n.mu.Lock()
	*into = append(*into, a)
	n.mu.Unlock()
}

func (n *attemptNotifier) PostRequest(ctx context.Context, f *symbot.Flow, r *symbot.Request) (symbot.MessageRef, error) {
	n.attempt(ctx, &n.posts)
	ref, err := n.fakeNotifier.PostRequest(ctx, f, r)
	n.mu.Lock()
	hang := n.hangAfterPost
	n.hangAfterPost = false
	n.mu.Unlock()
	if hang && err == nil {
		close(n.hung)
		<-ctx.Done()
		return symbot.MessageRef{}, ctx.Err()
	}
	return ref, err
}

func (n *attemptNotifier) NotifyUser(ctx context.Context, to string, f *symbot.Flow, r *symbot.Request, ev symbot.Event) error {
	n.attempt(ctx, &n.dms)
	return n.fakeNotifier.NotifyUser(ctx, to, f, r, ev)
}

func (n *attemptNotifier) seen() (posts, dms []symbot.JobAttempt) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]symbot.JobAttempt(nil), n.posts...), append([]symbot.JobAttempt(nil), n.dms...)
}

// TestJobAttemptMarksRetries: a job's first attempt is not a retry (it
// must cost the notifier no look-up); the attempt after a recorded
// failure is, with the same job id and creation time.
func TestJobAttemptMarksRetries(t *testing.T) {
	now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	notes := &attemptNotifier{fakeNotifier: &fakeNotifier{}}
	dir := newFakeDir()
	dir.addUser("00ualice", alice.Email, "ACTIVE")
	eng, err := symbot.NewEngine(memstore.New(), dir, notes, []symbot.Flow{testFlow()})
	if err != nil {
		t.Fatal(err)
	}
	eng.Now = func() time.Time { return now }
	notes.failNext("post", fmt.Errorf("slack chat.postMessage: %w", symbot.ErrUnavailable))
	r, err := eng.Submit(t.Context(), alice, symbot.RequestInput{Target: "admin", Duration: time.Hour, Reason: "first try fails"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eng.RunDueJobs(t.Context()); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Hour) // past the retry's backoff
	if _, err := eng.RunDueJobs(t.Context()); err != nil {
		t.Fatal(err)
	}
	posts, dms := notes.seen()
	if len(posts) != 2 {
		t.Fatalf("post attempts %+v, want 2", posts)
	}
	first, second := posts[0], posts[1]
	if first.Kind != symbot.JobPost || first.RequestID != r.ID || first.JobID == 0 || first.CreatedAt.IsZero() || first.Retry {
		t.Errorf("first post attempt %+v, want job post of %s, not a retry", first, r.ID)
	}
	if !second.Retry || second.JobID != first.JobID || !second.CreatedAt.Equal(first.CreatedAt) {
		t.Errorf("post attempt after a failure %+v, want a retry of job %d created %s", second, first.JobID, first.CreatedAt)
	}
	for _, a := range dms {
		if a.Kind != symbot.JobNotify || a.Retry {
			t.Errorf("DM attempt %+v, want a first attempt of a notify job", a)
		}
	}
}

// TestJobAttemptRetryAfterCrash: the process dies after the approval
// message reached Slack and before the job recorded it; after the restart
// the job's attempt says it is a retry, so the notifier can look for the
// message it already posted.
func TestJobAttemptRetryAfterCrash(t *testing.T) {
	path := filepath.Join(t.TempDir(), "symbot.db")
	dir := newFakeDir()
	dir.addUser("00ualice", alice.Email, "ACTIVE")
	notes := &attemptNotifier{fakeNotifier: &fakeNotifier{}, hangAfterPost: true, hung: make(chan struct{})}
	life := func() (*symbot.Engine, symbot.Store, func()) {
		st := mustOpen(t, path)
		eng, err := symbot.NewEngine(st, dir, notes, []symbot.Flow{testFlow()})
		if err != nil {
			t.Fatal(err)
		}
		eng.Runtime.ShutdownGrace = 50 * time.Millisecond
		stopEngine := runEngine(eng)
		return eng, st, func() {
			stopEngine()
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
	eng, _, stop := life()
	r, err := eng.Submit(t.Context(), alice, symbot.RequestInput{Target: "admin", Duration: time.Hour, Reason: "crash after post"})
	if err != nil {
		t.Fatal(err)
	}
	<-notes.hung // posted; not recorded
	stop()
	eng, _, stop = life()
	defer stop()
	storetest.WaitFor(t, 10*time.Second, "the approval message recorded after the restart", func() bool {
		got, err := eng.Get(t.Context(), r.ID)
		return err == nil && got.Message.TS != ""
	})
	posts, _ := notes.seen()
	if len(posts) != 2 {
		t.Fatalf("post attempts %+v, want 2 (before and after the crash)", posts)
	}
	if posts[0].Retry || !posts[1].Retry || posts[1].JobID != posts[0].JobID {
		t.Errorf("post attempts %+v, want a first attempt and then a retry of the same job", posts)
	}
}
