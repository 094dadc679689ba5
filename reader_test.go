package symbot_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/store/memstore"
	"github.com/symbot/symbot/store/storetest"
)

// readerStore is a memstore that implements symbot.RequestReader (each
// read in a View of the memstore's own) and counts the engine's Views
// and reads.
type readerStore struct {
	symbot.Store
	views, requestReads, openReads atomic.Int64
}

func newReaderStore() *readerStore {
	ms := memstore.New()
	ms.RerunUpdates = true
	return &readerStore{Store: ms}
}

func (s *readerStore) View(ctx context.Context, fn func(symbot.Tx) error) error {
	s.views.Add(1)
	return s.Store.View(ctx, fn)
}

func (s *readerStore) ReadRequest(ctx context.Context, id string) (r *symbot.Request, err error) {
	s.requestReads.Add(1)
	err = s.Store.View(ctx, func(tx symbot.Tx) error {
		r, err = tx.Request(id)
		return err
	})
	return r, err
}

func (s *readerStore) ReadOpenRequests(ctx context.Context, slackID string) (rs []*symbot.Request, err error) {
	s.openReads.Add(1)
	err = s.Store.View(ctx, func(tx symbot.Tx) error {
		rs, err = tx.OpenRequests(slackID)
		return err
	})
	return rs, err
}

func (s *readerStore) resetCounts() {
	s.views.Store(0)
	s.requestReads.Store(0)
	s.openReads.Store(0)
}

// claimerStore is a readerStore that also implements
// symbot.RequestClaimer: it reads the requests after the claim (the
// memstore's reads are not round trips).
type claimerStore struct{ *readerStore }

func (s claimerStore) ClaimJobsWithRequests(ctx context.Context, owner string, now time.Time, lease time.Duration, max int, kinds []symbot.JobKind) ([]symbot.Job, []*symbot.Request, error) {
	js, err := s.Store.ClaimJobs(ctx, owner, now, lease, max)
	if err != nil {
		return nil, nil, err
	}
	reqs := make([]*symbot.Request, len(js))
	err = s.Store.View(ctx, func(tx symbot.Tx) error {
		for i, j := range js {
			for _, k := range kinds {
				if j.Kind == k {
					reqs[i], _ = tx.Request(j.RequestID)
				}
			}
		}
		return nil
	})
	return js, reqs, err
}

// expireOne grants alice a membership and has it expire: the revoke job
// and the message update of the expiry are queued.
func expireOne(t *testing.T, h *harness) (*symbot.Request, *fakeClock) {
	t.Helper()
	clk := newFakeClock()
	h.eng.Now = clk.Now
	r := h.mustSubmit(t, alice, "admin", 15*time.Minute)
	h.mustApprove(t, r.ID, bob)
	if _, err := h.eng.RunDueJobs(t.Context()); err != nil {
		t.Fatal(err)
	}
	h.wantState(t, r.ID, symbot.StateActive)
	clk.Advance(time.Hour)
	if err := h.eng.FireDue(t.Context()); err != nil {
		t.Fatal(err)
	}
	return r, clk
}

// wantRemoved checks that r's membership was removed, once.
func wantRemoved(t *testing.T, h *harness, r *symbot.Request) {
	t.Helper()
	if got := h.wantState(t, r.ID, symbot.StateExpired); !got.Removed || got.Kept {
		t.Fatalf("removed=%t kept=%t (note %q), want removed", got.Removed, got.Kept, got.RemovalNote)
	}
	if _, removes := h.dir.counts("00ualice", "GADMIN"); removes != 1 {
		t.Errorf("removes = %d, want 1", removes)
	}
}

// TestRevokeReadsWithoutView: on a store that can read one statement
// without a transaction block (symbot.RequestReader, PostgreSQL), a
// removal and the Slack jobs it causes make their reads with it and open
// no View: each of their reads is one round trip, not a BEGIN, the read
// and a ROLLBACK.
func TestRevokeReadsWithoutView(t *testing.T) {
	st := newReaderStore()
	h := newHarness(t, st)
	r, _ := expireOne(t, h)
	st.resetCounts()
	n, err := h.eng.RunDueJobs(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	views, requestReads, openReads := st.views.Load(), st.requestReads.Load(), st.openReads.Load()
	wantRemoved(t, h, r)
	// The revoke job and the message update the expiry queued, then the
	// message update and the DM the removal queues.
	if n != 4 {
		t.Errorf("ran %d jobs, want 4 (revoke, update, update, notify)", n)
	}
	if views != 0 {
		t.Errorf("the removal and its Slack jobs opened %d Views, want 0", views)
	}
	// The revoke job and each of the 3 Slack jobs read the request; the
	// revoke job reads the requester's open requests.
	if requestReads != 4 || openReads != 1 {
		t.Errorf("the removal and its Slack jobs read a request %d times and open requests %d times, want 4 and 1", requestReads, openReads)
	}
}

// TestRevokeReadsRequestWithClaim: on a store whose claim can read the
// claimed jobs' requests along (symbot.RequestClaimer), a removal does
// not read its request again, whether the executor (Run) or RunDueJobs
// runs it; under the membership lock it still reads who else needs the
// membership.
func TestRevokeReadsRequestWithClaim(t *testing.T) {
	for _, run := range []string{"RunDueJobs", "Run"} {
		t.Run(run, func(t *testing.T) {
			st := claimerStore{newReaderStore()}
			h := newHarness(t, st)
			r, _ := expireOne(t, h)
			st.resetCounts()
			if run == "Run" {
				h.start(t)
				// Read past the counting wrapper.
				storetest.WaitFor(t, 30*time.Second, "the removal and its Slack jobs", func() bool {
					var left []symbot.Job
					storetest.MustView(t, st.Store, func(tx symbot.Tx) (err error) { left, err = tx.Jobs(); return err })
					return storetest.MustGet(t, st.Store, r.ID).Removed && len(left) == 0
				})
			} else if _, err := h.eng.RunDueJobs(t.Context()); err != nil {
				t.Fatal(err)
			}
			requestReads, openReads := st.requestReads.Load(), st.openReads.Load()
			wantRemoved(t, h, r)
			// Only the 3 Slack jobs read the request.
			if requestReads != 3 || openReads != 1 {
				t.Errorf("the removal and its Slack jobs read a request %d times and open requests %d times, want 3 and 1", requestReads, openReads)
			}
		})
	}
}
