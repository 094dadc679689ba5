package symbot_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/store/postgres"
	"github.com/symbot/symbot/store/postgres/pgtest"
)

// TestNewDeadlinesFireOnceAcrossPostgresReplicas: a scheduled start, an
// escalation step and a break-glass review reminder, all due at once, are
// fired by three replicas on one PostgreSQL database at the same moment;
// each happens exactly once.
func TestNewDeadlinesFireOnceAcrossPostgresReplicas(t *testing.T) {
	url := pgtest.NewDatabase(t)
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	var now atomic.Int64
	now.Store(t0.UnixNano())
	flow := testFlow()
	flow.Escalation = &symbot.Escalation{Steps: []symbot.EscalationStep{{After: time.Hour, Approvers: []string{"UDAVE"}, Channel: "CLEADS"}}}
	flow.BreakGlass = &symbot.BreakGlass{MaxDuration: 4 * time.Hour, ReviewWithin: time.Hour}
	dir := newFakeDir()
	for _, a := range []symbot.Actor{alice, bob, carol} {
		dir.addUser("00u"+a.Name, a.Email, "ACTIVE")
	}
	var engs []*symbot.Engine
	var stores []*postgres.Store
	for range 3 {
		st, err := postgres.Open(t.Context(), url, postgres.Config{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		eng, err := symbot.NewEngine(st, dir, &fakeNotifier{}, []symbot.Flow{flow})
		if err != nil {
			t.Fatal(err)
		}
		eng.Now = func() time.Time { return time.Unix(0, now.Load()).UTC() }
		engs, stores = append(engs, eng), append(stores, st)
	}
	ctx := t.Context()
	e := engs[0]
	sched, err := e.Submit(ctx, alice, symbot.RequestInput{Target: "admin", Duration: time.Hour, Reason: "later", StartAt: t0.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Approve(ctx, sched.ID, bob, ""); err != nil {
		t.Fatal(err)
	}
	waiting, err := e.Submit(ctx, carol, symbot.RequestInput{Target: "ro", Duration: time.Hour, Reason: "waits"})
	if err != nil {
		t.Fatal(err)
	}
	glass, err := e.BreakGlass(ctx, bob, symbot.RequestInput{Target: "ro", Duration: 4 * time.Hour, Reason: "emergency"})
	if err != nil {
		t.Fatal(err)
	}
	before := jobCounts(t, stores[0])

	now.Store(t0.Add(time.Hour).UnixNano())
	var wg sync.WaitGroup
	for _, eng := range engs {
		wg.Go(func() {
			if err := eng.FireDue(context.Background()); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	after := jobCounts(t, stores[1])
	for _, c := range []struct {
		what string
		key  jobKey
		want int
	}{
		{"grant of the scheduled request", jobKey{sched.ID, symbot.JobGrant, ""}, 1},
		{"DMs to the backup approver and the requester", jobKey{waiting.ID, symbot.JobNotify, symbot.EventEscalated}, 2},
		{"re-post of the waiting request", jobKey{waiting.ID, symbot.JobRepost, symbot.EventEscalated}, 1},
		{"review reminder", jobKey{glass.ID, symbot.JobAlert, symbot.EventReviewOverdue}, 1},
	} {
		if got := after[c.key] - before[c.key]; got != c.want {
			t.Errorf("%s: %d new jobs, want %d", c.what, got, c.want)
		}
	}
	if r, _ := engs[2].Get(ctx, sched.ID); r.State != symbot.StateApproved {
		t.Errorf("scheduled request: %s, want approved (granting)", r.State)
	}
	if r, _ := engs[2].Get(ctx, glass.ID); r.ReviewAlerts != 1 {
		t.Errorf("break-glass reminders: %d, want 1", r.ReviewAlerts)
	}
}

type jobKey struct {
	id   string
	kind symbot.JobKind
	ev   symbot.Event
}

func jobCounts(t *testing.T, st symbot.Store) map[jobKey]int {
	t.Helper()
	out := map[jobKey]int{}
	if err := st.View(context.Background(), func(tx symbot.Tx) error {
		js, err := tx.Jobs()
		for _, j := range js {
			ev := j.Event
			if j.Kind == symbot.JobGrant {
				ev = ""
			}
			out[jobKey{j.RequestID, j.Kind, ev}]++
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return out
}
