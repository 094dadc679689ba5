package symbot_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/store/memstore"
	"github.com/symbot/symbot/store/storetest"
)

// preparer is a fakeNotifier that prepares approval messages (a
// symbot.PostPreparer). PreparePost waits for gate when it is set.
type preparer struct {
	*fakeNotifier
	gate chan struct{}

	mu                       sync.Mutex
	prepared, viaPrep, plain []string // request ids: prepared, posted prepared, posted by PostRequest
	mismatch                 []string
}

func (n *preparer) PreparePost(f *symbot.Flow, r *symbot.Request) symbot.PreparedPost {
	n.mu.Lock()
	gate := n.gate
	n.mu.Unlock()
	if gate != nil {
		<-gate
	}
	n.mu.Lock()
	n.prepared = append(n.prepared, r.ID)
	n.mu.Unlock()
	return fmt.Sprintf("%s in %s", r.ID, f.Channel)
}

func (n *preparer) PostPrepared(ctx context.Context, f *symbot.Flow, r *symbot.Request, p symbot.PreparedPost) (symbot.MessageRef, error) {
	n.mu.Lock()
	n.viaPrep = append(n.viaPrep, r.ID)
	if want := fmt.Sprintf("%s in %s", r.ID, f.Channel); p != want {
		n.mismatch = append(n.mismatch, fmt.Sprintf("posted %v for %s", p, want))
	}
	n.mu.Unlock()
	return n.fakeNotifier.PostRequest(ctx, f, r)
}

func (n *preparer) PostRequest(ctx context.Context, f *symbot.Flow, r *symbot.Request) (symbot.MessageRef, error) {
	n.mu.Lock()
	n.plain = append(n.plain, r.ID)
	n.mu.Unlock()
	return n.fakeNotifier.PostRequest(ctx, f, r)
}

func (n *preparer) calls() (prepared, viaPrep, plain, mismatch []string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.prepared), slices.Clone(n.viaPrep), slices.Clone(n.plain), slices.Clone(n.mismatch)
}

// startPreparing runs an engine whose notifier prepares approval messages
// (stopped at the end of the test, or by stop) and posts a first request,
// whose calls it then forgets: the hand-over of a new request's post job
// (and so its preparation) needs the executor running, which runEngine
// starts on its own goroutine.
func startPreparing(t *testing.T) (eng *symbot.Engine, n *preparer, stop func()) {
	t.Helper()
	n = &preparer{fakeNotifier: &fakeNotifier{}}
	eng, err := symbot.NewEngine(memstore.New(), newFakeDir(), n, []symbot.Flow{testFlow()})
	if err != nil {
		t.Fatal(err)
	}
	eng.Runtime.ShutdownGrace = 50 * time.Millisecond
	stop = runEngine(eng)
	t.Cleanup(stop) // a second stop returns at once
	r, err := eng.Submit(t.Context(), carol, symbot.RequestInput{Target: "admin", Duration: time.Hour, Reason: "warm up"})
	if err != nil {
		t.Fatal(err)
	}
	waitPosted(t, n.fakeNotifier, r.ID)
	n.mu.Lock()
	n.prepared, n.viaPrep, n.plain, n.mismatch = nil, nil, nil, nil
	n.mu.Unlock()
	return eng, n, stop
}

// hold makes PreparePost wait until the returned channel is closed.
func (n *preparer) hold() chan struct{} {
	gate := make(chan struct{})
	n.mu.Lock()
	n.gate = gate
	n.mu.Unlock()
	return gate
}

func waitPosted(t *testing.T, notes *fakeNotifier, id string) {
	t.Helper()
	storetest.WaitFor(t, 10*time.Second, "the approval message of "+id, func() bool {
		return slices.ContainsFunc(notes.find("post", "", symbot.EventRequested), func(n note) bool { return n.ID == id })
	})
}

// TestNewRequestPostsItsPreparedMessage: a notifier that can prepare an
// approval message gets the new request to prepare while its transaction
// commits, and the post job posts that prepared message, not a fresh
// rendering.
func TestNewRequestPostsItsPreparedMessage(t *testing.T) {
	eng, n, _ := startPreparing(t)
	var ids []string
	for _, who := range []symbot.Actor{alice, bob} {
		r, err := eng.Submit(t.Context(), who, symbot.RequestInput{Target: "admin", Duration: time.Hour, Reason: "prepared"})
		if err != nil {
			t.Fatal(err)
		}
		waitPosted(t, n.fakeNotifier, r.ID)
		ids = append(ids, r.ID)
	}
	prepared, viaPrep, plain, mismatch := n.calls()
	if !slices.Equal(prepared, ids) || !slices.Equal(viaPrep, ids) || len(plain) != 0 || len(mismatch) != 0 {
		t.Errorf("prepared %v, posted prepared %v, posted by PostRequest %v (mismatches %v); want %v prepared and posted prepared, none by PostRequest", prepared, viaPrep, plain, mismatch, ids)
	}
}

// TestPreparedMessageDroppedAfterReload: a message prepared from flows that
// a reload replaced before the post is not posted; the post job renders the
// message again from the flows in use.
func TestPreparedMessageDroppedAfterReload(t *testing.T) {
	eng, n, _ := startPreparing(t)
	gate := n.hold()
	r, err := eng.Submit(t.Context(), alice, symbot.RequestInput{Target: "admin", Duration: time.Hour, Reason: "reloaded"})
	if err != nil {
		t.Fatal(err)
	}
	// Committed; its post job waits for the preparation, held at the gate.
	if err := eng.SetFlows([]symbot.Flow{testFlow()}, nil); err != nil {
		t.Fatal(err)
	}
	close(gate)
	waitPosted(t, n.fakeNotifier, r.ID)
	prepared, viaPrep, plain, _ := n.calls()
	if !slices.Equal(prepared, []string{r.ID}) || len(viaPrep) != 0 || !slices.Equal(plain, []string{r.ID}) {
		t.Errorf("prepared %v, posted prepared %v, posted by PostRequest %v; want it prepared, then posted by PostRequest only", prepared, viaPrep, plain)
	}
}

// TestStuckPreparationDoesNotHoldShutdown: a post job waiting for a
// preparation that never ends gives up when its context ends, so the
// engine stops.
func TestStuckPreparationDoesNotHoldShutdown(t *testing.T) {
	eng, n, stop := startPreparing(t)
	defer close(n.hold()) // lets the stuck preparation end after the test
	if _, err := eng.Submit(t.Context(), alice, symbot.RequestInput{Target: "admin", Duration: time.Hour, Reason: "stuck"}); err != nil {
		t.Fatal(err)
	}
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(30 * time.Second):
		t.Fatal("the engine did not stop while a post job waited for a stuck preparation")
	}
}
