package symbot_test

import (
	"context"
	"testing"
	"time"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/store/memstore"
)

// takeoverNotifier lets "another replica" take over every post job while
// this one is posting: its lease ran out (a long pause) and the other
// replica claimed it, which bumped the fencing token.
type takeoverNotifier struct {
	*fakeNotifier
	st symbot.Store
}

func (n *takeoverNotifier) PostRequest(ctx context.Context, f *symbot.Flow, r *symbot.Request) (symbot.MessageRef, error) {
	err := n.st.Update(ctx, func(tx symbot.Tx) error {
		js, err := tx.Jobs()
		if err != nil {
			return err
		}
		for _, j := range js {
			if j.Kind == symbot.JobPost {
				j.LeaseOwner, j.LeaseToken, j.LeaseUntil = "replica-b", j.LeaseToken+1, time.Now().Add(time.Hour)
				if err := tx.UpdateJob(&j); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return symbot.MessageRef{}, err
	}
	return n.fakeNotifier.PostRequest(ctx, f, r)
}

func TestCompletionChecksLeaseOwnerAndToken(t *testing.T) {
	st := memstore.New()
	dir := newFakeDir()
	dir.addUser("00ualice", alice.Email, "ACTIVE")
	eng, err := symbot.NewEngine(st, dir, &takeoverNotifier{fakeNotifier: &fakeNotifier{}, st: st}, []symbot.Flow{testFlow()})
	if err != nil {
		t.Fatal(err)
	}
	r, err := eng.Submit(t.Context(), alice, symbot.RequestInput{Target: "admin", Duration: time.Hour, Reason: "fix the outage"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eng.RunDueJobs(t.Context()); err != nil {
		t.Fatal(err)
	}
	var post *symbot.Job
	var got *symbot.Request
	err = st.View(t.Context(), func(tx symbot.Tx) error {
		js, err := tx.Jobs()
		if err != nil {
			return err
		}
		for _, j := range js {
			if j.Kind == symbot.JobPost {
				post = &j
			}
		}
		got, err = tx.Request(r.ID)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// The worker that lost its lease must leave the job and its outcome to
	// the worker that holds it now.
	if post == nil || post.LeaseOwner != "replica-b" {
		t.Fatalf("post job after a worker lost its lease: %+v; want it kept, leased to replica-b", post)
	}
	if got.Message.TS != "" {
		t.Errorf("the worker without the lease recorded the message %+v", got.Message)
	}
	if post.Attempts != 0 {
		t.Errorf("the worker without the lease recorded a failed attempt: %+v", post)
	}
}
