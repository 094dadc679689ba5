package symbot_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/store/memstore"
)

// TestEscalationFiresOnceAcrossReplicas: two engines sharing a store both
// fire the same escalation deadline; the step happens once.
func TestEscalationFiresOnceAcrossReplicas(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	st.RerunUpdates = true
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	now := t0
	flow := testFlow()
	flow.Escalation = &symbot.Escalation{Steps: []symbot.EscalationStep{{After: 30 * time.Minute, Approvers: []string{"UDAVE"}}}}
	engine := func() *symbot.Engine {
		e, err := symbot.NewEngine(st, newFakeDir(), &fakeNotifier{}, []symbot.Flow{flow})
		if err != nil {
			t.Fatal(err)
		}
		e.Now = func() time.Time { return now }
		return e
	}
	a, b := engine(), engine()
	r, err := a.Submit(ctx, alice, symbot.RequestInput{Target: "admin", Duration: time.Hour, Reason: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if !r.NudgeAt.Equal(t0.Add(30 * time.Minute)) {
		t.Fatalf("NudgeAt = %v, want the step's time", r.NudgeAt)
	}
	now = t0.Add(30 * time.Minute)
	for _, e := range []*symbot.Engine{a, b, a} {
		if err := e.FireDue(ctx); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := b.Get(ctx, r.ID)
	if got.Escalated != 1 || len(got.BackupApprovers) != 1 || !got.NudgeAt.IsZero() {
		t.Errorf("after the step: escalated %d, backups %v, next %v; want 1, [UDAVE], none", got.Escalated, got.BackupApprovers, got.NudgeAt)
	}
	dms := 0
	if err := st.View(ctx, func(tx symbot.Tx) error {
		js, err := tx.Jobs()
		for _, j := range js {
			if j.Kind == symbot.JobNotify && j.Event == symbot.EventEscalated {
				dms++
			}
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if dms != 2 {
		t.Errorf("escalation DMs queued = %d, want 2 (the backup approver and the requester)", dms)
	}
	// dave may now decide it.
	if err := a.MayDecide(ctx, r.ID, dave, symbot.VerbApprove); err != nil {
		t.Errorf("backup approver: MayDecide = %v, want nil", err)
	}
}

func TestEscalationValidation(t *testing.T) {
	flow := testFlow()
	flow.ApprovalTimeout = 2 * time.Hour
	flow.Escalation = &symbot.Escalation{Remind: time.Second, Steps: []symbot.EscalationStep{
		{After: time.Hour, Approvers: []string{"UDAVE"}},
		{After: 30 * time.Minute, Channel: "C1"},
		{After: 3 * time.Hour, Approvers: []string{"dave"}},
		{After: 90 * time.Minute},
	}}
	_, err := symbot.NewEngine(memstore.New(), newFakeDir(), &fakeNotifier{}, []symbot.Flow{flow})
	for _, want := range []string{
		"escalation.remind: 1s is too often",
		"escalation.steps[1].after: 30m is not later than the step before (1h)",
		"escalation.steps[2].after: 3h never fires: requests time out after 2h",
		`escalation.steps[2].approvers[0]: "dave" is not a Slack user id`,
		"escalation.steps[3]: does nothing",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("NewEngine error = %v, want it to contain %q", err, want)
		}
	}
}
