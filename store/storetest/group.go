package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/symbot/symbot"
)

// Helpers for the group-commit tests of the adapters that queue concurrent
// Updates into one transaction (store, store/postgres).

// groupWait bounds each wait of these helpers; only a failing test waits
// that long.
const groupWait = 30 * time.Second

// WriteOp stores a request tagged tag under the next "n" sequence number,
// with a job (in lane "L") and an audit entry, and returns that number.
func WriteOp(tx symbot.Tx, tag string) (uint64, error) {
	n, err := tx.NextSeq("n")
	if err != nil {
		return 0, err
	}
	id := fmt.Sprintf("R%d", n)
	if err := tx.PutRequest(&symbot.Request{ID: id, State: symbot.StatePending, Reason: tag, Requester: symbot.Person{SlackID: "U1"}}); err != nil {
		return 0, err
	}
	if err := tx.AddJob(&symbot.Job{Kind: symbot.JobPost, RequestID: id, Lane: "L"}); err != nil {
		return 0, err
	}
	return n, symbot.AppendAudit(tx, nil, &symbot.AuditEntry{At: time.Unix(int64(n), 0).UTC(), RequestID: id, Actor: "U1", Action: tag})
}

// HoldLeader starts an Update whose fn blocks until the returned release
// is called, and returns once that fn runs: writes made meanwhile queue up
// and join its group. release waits for that Update to return nil.
func HoldLeader(t *testing.T, s symbot.Store) (release func()) {
	t.Helper()
	started, unblock, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	var once sync.Once
	go func() {
		done <- s.Update(t.Context(), func(symbot.Tx) error {
			once.Do(func() { close(started) }) // the fn may run again
			<-unblock
			return nil
		})
	}()
	select {
	case <-started:
	case <-time.After(groupWait):
		t.Fatal("the leading Update never ran its fn")
	}
	return func() {
		t.Helper()
		close(unblock)
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("leading Update: %v", err)
			}
		case <-time.After(groupWait):
			t.Fatal("the leading Update did not return")
		}
	}
}

// Result is what one queued Update returned (or panicked with).
type Result struct {
	Err   error
	Panic any
}

// Queue starts s.Update(ctx, fn) on its own goroutine, waits until it is
// queued (queueLen reports want writes) and returns where its result
// arrives; Get reads it.
func Queue(t *testing.T, s symbot.Store, queueLen func() int, ctx context.Context, want int, fn func(symbot.Tx) error) <-chan Result {
	t.Helper()
	ch := make(chan Result, 1)
	go func() {
		var r Result
		defer func() {
			r.Panic = recover()
			ch <- r
		}()
		r.Err = s.Update(ctx, fn)
	}()
	WaitFor(t, groupWait, fmt.Sprintf("%d queued writes", want), func() bool { return queueLen() == want })
	return ch
}

// Get returns the result a Queue channel delivers.
func Get(t *testing.T, ch <-chan Result) Result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(groupWait):
		t.Fatal("a queued Update did not return")
		return Result{}
	}
}

// RequestTags returns the tags WriteOp gave the stored requests R1, R2, ...
// by sequence number.
func RequestTags(t *testing.T, s symbot.Store) map[uint64]string {
	t.Helper()
	tags := map[uint64]string{}
	err := s.View(t.Context(), func(tx symbot.Tx) error {
		rs, err := tx.RequestsByRequester("U1")
		for _, r := range rs {
			var n uint64
			if _, err := fmt.Sscanf(r.ID, "R%d", &n); err != nil {
				return fmt.Errorf("request id %q: %w", r.ID, err)
			}
			tags[n] = r.Reason
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return tags
}
