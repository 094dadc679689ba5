package symbot_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/store/memstore"
)

func driftActions(rep *symbot.ReconcileReport, k symbot.DriftKind) []string {
	var out []string
	for _, d := range rep.Drift {
		if d.Kind == k {
			out = append(out, d.UserID+":"+d.Action)
		}
	}
	return out
}

func mustReconcile(t *testing.T, h *harness, dry bool) *symbot.ReconcileReport {
	t.Helper()
	rep, err := h.eng.Reconcile(t.Context(), dry)
	if err != nil {
		t.Fatalf("Reconcile: %v", err)
	}
	synctest.Wait()
	return rep
}

func hasAudit(t *testing.T, h *harness, action string) bool {
	t.Helper()
	for _, e := range verifyAudit(t, h.st) {
		if e.Action == action {
			return true
		}
	}
	return false
}

// TestReconcileStandingThenUnmanaged: the first pass records members as
// standing with one summary alert; a member added by hand later is alerted
// once (audited), and never removed under the default policy.
func TestReconcileStandingThenUnmanaged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, nil)
		h.start(t)
		h.dir.setMember("00udave", "GADMIN", true)
		h.dir.setMember("00ucarol", "GADMIN", true)

		rep := mustReconcile(t, h, false)
		if got := driftActions(rep, symbot.DriftStanding); len(got) != 2 {
			t.Fatalf("standing drift = %v, want carol and dave", got)
		}
		if rep.Groups != 2 || rep.MembersChecked != 2 {
			t.Errorf("groups %d members %d, want 2 and 2", rep.Groups, rep.MembersChecked)
		}
		alerts := h.notes.find("alert", "", symbot.EventDrift)
		if len(alerts) != 1 || !strings.Contains(alerts[0].Text, "standing") || !strings.Contains(alerts[0].Text, "dave@example.com") {
			t.Fatalf("alerts after the first pass = %+v, want one standing summary", alerts)
		}
		st, err := h.eng.Standing(t.Context())
		if err != nil || len(st) != 2 || st[0].Login != "carol@example.com" || st[1].GroupID != "GADMIN" {
			t.Fatalf("Standing = %+v, %v", st, err)
		}

		// Someone adds alice by hand.
		h.dir.setMember("00ualice", "GADMIN", true)
		dry := mustReconcile(t, h, true)
		if got := driftActions(dry, symbot.DriftUnmanaged); len(got) != 1 || got[0] != "00ualice:would alert" {
			t.Fatalf("dry run unmanaged = %v", got)
		}
		if n := len(h.notes.find("alert", "", symbot.EventDrift)); n != 1 {
			t.Fatalf("a dry run alerted (%d alerts)", n)
		}
		rep = mustReconcile(t, h, false)
		if got := driftActions(rep, symbot.DriftUnmanaged); len(got) != 1 || got[0] != "00ualice:alert" {
			t.Fatalf("unmanaged = %v", got)
		}
		alerts = h.notes.find("alert", "", symbot.EventDrift)
		if len(alerts) != 2 || !strings.Contains(alerts[1].Text, "alice@example.com") || !strings.Contains(alerts[1].Text, "GADMIN") {
			t.Fatalf("alerts = %+v, want the unmanaged alice alert", alerts)
		}
		if !h.dir.isMember("00ualice", "GADMIN") {
			t.Fatal("alert policy removed the member")
		}
		if !hasAudit(t, h, "reconcile:unmanaged") {
			t.Error("no reconcile:unmanaged audit entry")
		}
		// Alerted once only.
		rep = mustReconcile(t, h, false)
		if got := driftActions(rep, symbot.DriftUnmanaged); len(got) != 1 || got[0] != "00ualice:already alerted" {
			t.Fatalf("second pass unmanaged = %v", got)
		}
		if n := len(h.notes.find("alert", "", symbot.EventDrift)); n != 2 {
			t.Fatalf("alerted again: %d alerts", n)
		}
	})
}

func TestReconcileUnmanagedPolicies(t *testing.T) {
	tests := []struct {
		name       string
		flow, tgt  symbot.UnmanagedPolicy
		wantMember bool
		wantAlerts int
		wantAction string
	}{
		{"flow remove", symbot.UnmanagedRemove, "", false, 1, "remove"},
		{"target overrides flow", symbot.UnmanagedRemove, symbot.UnmanagedIgnore, true, 0, "ignored"},
		{"target remove", "", symbot.UnmanagedRemove, false, 1, "remove"},
		{"default alert", "", "", true, 1, "alert"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := testFlow()
				f.UnmanagedMembers = tt.flow
				f.Targets[0].UnmanagedMembers = tt.tgt
				h := newHarness(t, nil, f)
				h.start(t)
				mustReconcile(t, h, false) // empty groups: nothing standing
				h.dir.setMember("00ualice", "GADMIN", true)
				rep := mustReconcile(t, h, false)
				if got := driftActions(rep, symbot.DriftUnmanaged); len(got) != 1 || got[0] != "00ualice:"+tt.wantAction {
					t.Fatalf("unmanaged = %v, want 00ualice:%s", got, tt.wantAction)
				}
				if got := h.dir.isMember("00ualice", "GADMIN"); got != tt.wantMember {
					t.Errorf("member after the pass = %t, want %t", got, tt.wantMember)
				}
				if n := len(h.notes.find("alert", "", symbot.EventDrift)); n != tt.wantAlerts {
					t.Errorf("alerts = %d, want %d", n, tt.wantAlerts)
				}
				// The person removed is told; nobody else is.
				told := h.notes.find("member", "", "")
				if !tt.wantMember {
					if len(told) != 1 || told[0].To != "alice@example.com" || told[0].Event != symbot.EventUnmanagedRemoved || told[0].Text != "prod/admin" {
						t.Errorf("DMs about the removal = %+v, want one to alice@example.com about prod/admin", told)
					}
				} else if len(told) != 0 {
					t.Errorf("DMs about a removal that did not happen: %+v", told)
				}
			})
		})
	}
}

// TestReconcileRemovedMemberNotInSlack: a person the reconciler removed
// who has no Slack account is not told, and the job ends instead of
// retrying.
func TestReconcileRemovedMemberNotInSlack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := testFlow()
		f.UnmanagedMembers = symbot.UnmanagedRemove
		h := newHarness(t, nil, f)
		h.notes.failNext("member", fmt.Errorf("lookup: %w", symbot.ErrUserNotFound))
		h.start(t)
		mustReconcile(t, h, false)
		h.dir.setMember("00ualice", "GADMIN", true)
		mustReconcile(t, h, false)
		time.Sleep(time.Minute)
		synctest.Wait()
		if h.dir.isMember("00ualice", "GADMIN") {
			t.Fatal("not removed")
		}
		if !hasAudit(t, h, "job:notify:ok") {
			t.Error("the notify job did not end")
		}
		if n := len(h.notes.find("member", "", "")); n != 0 {
			t.Errorf("told %d times, want 0 (no Slack account)", n)
		}
	})
}

// TestReconcileVanishedGrant: a membership removed by hand during an active
// grant ends the grant as removed outside symbot, with a DM, a message
// update and an audit entry; nothing is removed again at expiry.
func TestReconcileVanishedGrant(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, nil)
		h.start(t)
		mustReconcile(t, h, false)
		r := h.mustGrant(t, alice, "admin", time.Hour)
		time.Sleep(time.Minute)
		if rep := mustReconcile(t, h, false); len(rep.Drift) != 0 {
			t.Fatalf("drift with the grant in place: %+v", rep.Drift)
		}
		h.dir.setMember("00ualice", "GADMIN", false)
		rep := mustReconcile(t, h, false)
		if got := driftActions(rep, symbot.DriftVanished); len(got) != 1 {
			t.Fatalf("vanished = %v", got)
		}
		got := h.wantState(t, r.ID, symbot.StateRemovedOutside)
		if !got.Removed || !got.State.Final() {
			t.Errorf("request = %+v, want removed and final", got)
		}
		if n := len(h.notes.find("dm", "UALICE", symbot.EventRemovedOutside)); n != 1 {
			t.Errorf("removed-outside DMs = %d, want 1", n)
		}
		if n := len(h.notes.find("update", "", symbot.EventRemovedOutside)); n != 1 {
			t.Errorf("removed-outside message updates = %d, want 1", n)
		}
		if !hasAudit(t, h, "state:removed_outside") {
			t.Error("no state:removed_outside audit entry")
		}
		time.Sleep(2 * time.Hour)
		synctest.Wait()
		if _, removes := h.dir.counts("00ualice", "GADMIN"); removes != 0 {
			t.Errorf("okta removes = %d, want 0", removes)
		}
		if jobs := h.pendingJobs(t); len(jobs) != 0 {
			t.Errorf("jobs left: %+v", jobs)
		}
	})
}

// TestReconcileSurvivedRemoval: a grant that ended and was removed, whose
// membership is back (or never went), gets its removal queued again with an
// alert, and the removal runs.
func TestReconcileSurvivedRemoval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, nil)
		h.start(t)
		mustReconcile(t, h, false)
		r := h.mustGrant(t, alice, "admin", 15*time.Minute)
		time.Sleep(time.Minute)
		mustReconcile(t, h, false) // records that r holds alice's membership
		time.Sleep(15 * time.Minute)
		synctest.Wait()
		if got := h.wantState(t, r.ID, symbot.StateExpired); !got.Removed {
			t.Fatal("not removed at expiry")
		}
		h.dir.setMember("00ualice", "GADMIN", true) // the membership survived
		time.Sleep(time.Minute)
		rep := mustReconcile(t, h, false)
		if got := driftActions(rep, symbot.DriftSurvived); len(got) != 1 {
			t.Fatalf("survived = %v (drift %+v)", got, rep.Drift)
		}
		synctest.Wait()
		if h.dir.isMember("00ualice", "GADMIN") {
			t.Fatal("the requeued removal did not run")
		}
		alerts := h.notes.find("alert", "", symbot.EventDrift)
		if len(alerts) != 1 || !strings.Contains(alerts[0].Text, r.ID) {
			t.Errorf("alerts = %+v, want one naming %s", alerts, r.ID)
		}
		if !hasAudit(t, h, "reconcile:removal-requeued") {
			t.Error("no reconcile:removal-requeued audit entry")
		}
	})
}

// TestReconcileRunsPeriodically: with ReconcileInterval set, Run
// reconciles at start and then every interval.
func TestReconcileRunsPeriodically(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, nil)
		h.eng.ReconcileInterval = 10 * time.Minute
		h.dir.setMember("00udave", "GADMIN", true)
		h.start(t)
		synctest.Wait()
		if n := len(h.notes.find("alert", "", symbot.EventDrift)); n != 1 {
			t.Fatalf("alerts after start = %d, want the standing summary", n)
		}
		h.dir.setMember("00ualice", "GRO", true)
		time.Sleep(10*time.Minute + time.Second)
		synctest.Wait()
		alerts := h.notes.find("alert", "", symbot.EventDrift)
		if len(alerts) != 2 || !strings.Contains(alerts[1].Text, "alice") {
			t.Fatalf("alerts after one interval = %+v", alerts)
		}
	})
}

func TestAfterRestoreReconcilesOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, nil)
		if _, done, err := h.eng.AfterRestore(t.Context()); done || err != nil {
			t.Fatalf("AfterRestore without a restore = %t, %v", done, err)
		}
		if err := h.eng.MarkRestored(t.Context(), "backup.db", time.Now()); err != nil {
			t.Fatal(err)
		}
		h.dir.setMember("00udave", "GADMIN", true)
		rep, done, err := h.eng.AfterRestore(t.Context())
		if !done || err != nil || rep.Groups != 2 {
			t.Fatalf("AfterRestore = %+v, %t, %v", rep, done, err)
		}
		h.start(t)
		synctest.Wait()
		var summary bool
		for _, a := range h.notes.find("alert", "", symbot.EventDrift) {
			summary = summary || strings.Contains(a.Text, "restored from backup.db")
		}
		if !summary {
			t.Errorf("no restore summary alert: %+v", h.notes.find("alert", "", ""))
		}
		if _, done, _ := h.eng.AfterRestore(t.Context()); done {
			t.Error("AfterRestore ran twice for one restore")
		}
		if !hasAudit(t, h, "restore") || !hasAudit(t, h, "restore:reconciled") {
			t.Error("restore not audited")
		}
	})
}

// TestFlowNoLongerConfigured: a request whose flow or target left the
// configuration is listed by Unconfigured, and deciding on it says exactly
// that (a *NotConfiguredError, still an ErrNotFound).
func TestFlowNoLongerConfigured(t *testing.T) {
	st := memstore.New()
	h := newHarness(t, st)
	r := h.mustSubmit(t, alice, "admin", time.Hour)
	ro := h.mustSubmit(t, bob, "ro", time.Hour)

	f := testFlow()
	f.Targets = f.Targets[:1] // "ro" removed
	other := testFlow()
	other.Name = "staging"
	tests := []struct {
		name       string
		flows      []symbot.Flow
		id         string
		targetOnly bool
	}{
		{"flow removed", []symbot.Flow{other}, r.ID, false},
		{"target removed", []symbot.Flow{f}, ro.ID, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h2 := newHarness(t, st, tt.flows...)
			got, err := h2.eng.Unconfigured(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, x := range got {
				found = found || x.ID == tt.id
			}
			if !found {
				t.Errorf("Unconfigured = %d requests, missing %s", len(got), tt.id)
			}
			_, err = h2.eng.Approve(t.Context(), tt.id, carol, "")
			var nc *symbot.NotConfiguredError
			if !errors.As(err, &nc) || nc.TargetOnly != tt.targetOnly || !errors.Is(err, symbot.ErrNotFound) || !strings.Contains(err.Error(), "no longer configured") {
				t.Fatalf("Approve = %v, want a NotConfiguredError (target only %t)", err, tt.targetOnly)
			}
			if got := h2.get(t, tt.id); got.State != symbot.StatePending {
				t.Errorf("state = %s after the refused decision", got.State)
			}
		})
	}
}
