package symbot_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/store/memstore"
)

func TestParseStartTime(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC) // Wednesday, 11:00 in Berlin
	at := func(d, h, m int) time.Time { return time.Date(2026, 12, d, h, m, 0, 0, berlin) }
	tests := []struct {
		in   string
		want time.Time
	}{
		{"18:30", at(2, 18, 30)},
		{"9:05", at(3, 9, 5)}, // passed today: tomorrow
		{"11:00", at(3, 11, 0)},
		{"6pm", at(2, 18, 0)},
		{"6:30 PM", at(2, 18, 30)},
		{"12am", at(3, 0, 0)},
		{"today 23:59", at(2, 23, 59)},
		{"tomorrow 09:00", at(3, 9, 0)},
		{"Fri 14:00", at(4, 14, 0)},
		{"wednesday 10:00", at(9, 10, 0)}, // today's has passed: next week
		{"wed 12:00", at(2, 12, 0)},
		{"2026-12-24 09:00", at(24, 9, 0)},
		{"2026-12-24T09:00", at(24, 9, 0)},
		{"2026-12-24T09:00:00Z", time.Date(2026, 12, 24, 9, 0, 0, 0, time.UTC)},
		{"2027-06-01 09:00", time.Date(2027, 6, 1, 9, 0, 0, 0, berlin)}, // summer time
	}
	for _, tt := range tests {
		got, err := symbot.ParseStartTime(tt.in, now, berlin)
		if err != nil || !got.Equal(tt.want) {
			t.Errorf("ParseStartTime(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	for _, tt := range []struct{ in, want string }{
		{"25:00", "the hour must be 00-23"},
		{"13pm", "with am or pm the hour must be 1-12"},
		{"10:7", "not a time of day"},
		{"noonish", "not a time of day"},
		{"someday 10:00", "the day must be today, tomorrow, a weekday or a date"},
		{"2026-13-01 10:00", "there is no such date"},
		{"", "missing"},
	} {
		_, err := symbot.ParseStartTime(tt.in, now, berlin)
		var ie *symbot.InputError
		if !errors.As(err, &ie) || ie.Field != "start" || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "tomorrow 09:00") && tt.in != "" {
			t.Errorf("ParseStartTime(%q) error = %v, want a start InputError saying %q and the formats", tt.in, err, tt.want)
		}
	}
}

// TestScheduledStartSurvivesRestartAndFiresOnce: a request approved ahead
// is granted at its start by a process started after the approval, once,
// though two engines (replicas) share the store and both fire.
func TestScheduledStartSurvivesRestartAndFiresOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "symbot.db")
	ctx := context.Background()
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	start := t0.Add(3 * time.Hour)
	now := t0
	clock := func() time.Time { return now }
	dir := newFakeDir()
	dir.addUser("00ualice", alice.Email, "ACTIVE")
	notes := &fakeNotifier{}
	engine := func(st symbot.Store) *symbot.Engine {
		eng, err := symbot.NewEngine(st, dir, notes, []symbot.Flow{testFlow()})
		if err != nil {
			t.Fatal(err)
		}
		eng.Now = clock
		return eng
	}

	st := mustOpen(t, path)
	eng := engine(st)
	if _, err := eng.Submit(ctx, alice, symbot.RequestInput{Target: "admin", Duration: time.Hour, Reason: "x", StartAt: t0.Add(-time.Minute)}); err == nil || !strings.Contains(err.Error(), "is in the past") {
		t.Errorf("start in the past: got %v", err)
	}
	if _, err := eng.Submit(ctx, alice, symbot.RequestInput{Target: "admin", Duration: time.Hour, Reason: "x", StartAt: t0.Add(15 * 24 * time.Hour)}); err == nil || !strings.Contains(err.Error(), "too far ahead") {
		t.Errorf("start beyond the horizon: got %v", err)
	}
	r, err := eng.Submit(ctx, alice, symbot.RequestInput{Target: "admin", Duration: time.Hour, Reason: "x", StartAt: start})
	if err != nil {
		t.Fatal(err)
	}
	if r, err = eng.Approve(ctx, r.ID, bob, ""); err != nil || r.State != symbot.StateScheduled {
		t.Fatalf("Approve: %v, state %v; want scheduled", err, r)
	}
	if _, err := eng.RunDueJobs(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil { // the process stops
		t.Fatal(err)
	}

	st = mustOpen(t, path)
	defer st.Close()
	a, b := engine(st), engine(st)
	now = start.Add(-time.Second)
	if err := a.FireDue(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := a.Get(ctx, r.ID); got.State != symbot.StateScheduled {
		t.Fatalf("before the start: %s, want scheduled", got.State)
	}
	now = start
	for _, e := range []*symbot.Engine{a, b, a} {
		if err := e.FireDue(ctx); err != nil {
			t.Fatal(err)
		}
	}
	grants := 0
	if err := st.View(ctx, func(tx symbot.Tx) error {
		js, err := tx.Jobs()
		for _, j := range js {
			if j.Kind == symbot.JobGrant {
				grants++
			}
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if grants != 1 {
		t.Fatalf("grant jobs after three firings = %d, want 1", grants)
	}
	if _, err := b.RunDueJobs(ctx); err != nil {
		t.Fatal(err)
	}
	got, _ := a.Get(ctx, r.ID)
	if got.State != symbot.StateActive || !got.ExpiresAt.Equal(start.Add(time.Hour)) {
		t.Errorf("after the start: %s expiring %v, want active until %v", got.State, got.ExpiresAt, start.Add(time.Hour))
	}
	if adds, _ := dir.counts("00ualice", "GADMIN"); adds != 1 {
		t.Errorf("Okta adds = %d, want 1", adds)
	}
}

// TestCancelAfterTheScheduledStartFired: the requester's Cancel that
// arrives after the scheduler already started the request (approved, then
// active) gets the same answer as one that arrives first and lapses the
// start itself: it started and can no longer be cancelled; relinquish it.
func TestCancelAfterTheScheduledStartFired(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	start := t0.Add(time.Hour)
	now := t0
	dir := newFakeDir()
	dir.addUser("00ualice", alice.Email, "ACTIVE")
	eng, err := symbot.NewEngine(memstore.New(), dir, &fakeNotifier{}, []symbot.Flow{testFlow()})
	if err != nil {
		t.Fatal(err)
	}
	eng.Now = func() time.Time { return now }
	r, err := eng.Submit(ctx, alice, symbot.RequestInput{Target: "admin", Duration: time.Hour, Reason: "x", StartAt: start})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eng.Approve(ctx, r.ID, bob, ""); err != nil {
		t.Fatal(err)
	}
	now = start
	if err := eng.FireDue(ctx); err != nil {
		t.Fatal(err)
	}
	for _, step := range []string{"approved", "active"} {
		got, err := eng.Get(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if step == "active" {
			if _, err := eng.RunDueJobs(ctx); err != nil {
				t.Fatal(err)
			}
			if got, _ = eng.Get(ctx, r.ID); got.State != symbot.StateActive {
				t.Fatalf("after the grant job: %s, want active", got.State)
			}
		}
		_, err = eng.Cancel(ctx, r.ID, alice)
		if err == nil || !strings.Contains(err.Error(), "can no longer be cancelled; relinquish the access instead") {
			t.Errorf("cancel while %s (%s): %v, want it started and can no longer be cancelled", step, got.State, err)
		}
	}
}
