package symbot_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/store/memstore"
	"github.com/symbot/symbot/store/storetest"
)

// requestReads counts the requests read in read-only transactions until
// posted is set (but skip's).
type requestReads struct {
	symbot.Store
	mu     sync.Mutex
	posted bool
	skip   string // a request whose reads do not count
	before int    // reads of a request before the approval message's post
}

func (s *requestReads) View(ctx context.Context, fn func(symbot.Tx) error) error {
	return s.Store.View(ctx, func(tx symbot.Tx) error { return fn(&requestReadsTx{Tx: tx, s: s}) })
}

type requestReadsTx struct {
	symbot.Tx
	s *requestReads
}

func (t *requestReadsTx) Request(id string) (*symbot.Request, error) {
	t.s.mu.Lock()
	if !t.s.posted && id != t.s.skip {
		t.s.before++
	}
	t.s.mu.Unlock()
	return t.Tx.Request(id)
}

// postSeen marks st posted when the approval message's post begins.
type postSeen struct {
	*fakeNotifier
	st *requestReads
}

func (n *postSeen) PostRequest(ctx context.Context, f *symbot.Flow, r *symbot.Request) (symbot.MessageRef, error) {
	n.st.mu.Lock()
	n.st.posted = true
	n.st.mu.Unlock()
	return n.fakeNotifier.PostRequest(ctx, f, r)
}

// TestHandedPostPostsTheCommittedRequest: the approval message's job,
// handed over by the request's transaction, posts the request as that
// transaction wrote it: nothing reads the request between the commit and
// the post.
func TestHandedPostPostsTheCommittedRequest(t *testing.T) {
	st := &requestReads{Store: memstore.New()}
	notes := &fakeNotifier{}
	eng, err := symbot.NewEngine(st, newFakeDir(), &postSeen{fakeNotifier: notes, st: st}, []symbot.Flow{testFlow()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(runEngine(eng))
	waitPost := func(id string) {
		t.Helper()
		var post note
		storetest.WaitFor(t, 10*time.Second, "the approval message of "+id, func() bool {
			for _, n := range notes.find("post", "", symbot.EventRequested) {
				if n.ID == id {
					post = n
					return true
				}
			}
			return false
		})
		if post.State != symbot.StatePending {
			t.Errorf("posted %s as %s, want pending", id, post.State)
		}
	}
	// A first request, posted once the engine runs (the hand-over needs
	// its executor).
	first, err := eng.Submit(t.Context(), bob, symbot.RequestInput{Target: "admin", Duration: time.Hour, Reason: "warm up"})
	if err != nil {
		t.Fatal(err)
	}
	waitPost(first.ID)
	st.mu.Lock()
	st.posted, st.skip, st.before = false, first.ID, 0 // its early look-ups may still read it
	st.mu.Unlock()

	r, err := eng.Submit(t.Context(), alice, symbot.RequestInput{Target: "admin", Duration: time.Hour, Reason: "post what was written"})
	if err != nil {
		t.Fatal(err)
	}
	waitPost(r.ID)
	st.mu.Lock()
	before := st.before
	st.mu.Unlock()
	if before != 0 {
		t.Errorf("the request was read %d times between its commit and its post; want 0", before)
	}
}
