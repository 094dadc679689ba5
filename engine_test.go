package symbot_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/store/memstore"
	"github.com/symbot/symbot/store/storetest"
)

func TestLifecycle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, nil)
		h.start(t)
		start := time.Now()
		r := h.mustSubmit(t, alice, "admin", time.Hour)
		if r.ID == "" || r.State != symbot.StatePending {
			t.Fatalf("submitted = %+v", r)
		}
		synctest.Wait()
		if got := h.notes.find("post", "CACCESS", ""); len(got) != 1 {
			t.Fatalf("posts = %v, want 1", got)
		}
		// The approver waits 5 minutes: access time starts at the grant.
		time.Sleep(5 * time.Minute)
		h.mustApprove(t, r.ID, bob)
		synctest.Wait()
		got := h.wantState(t, r.ID, symbot.StateActive)
		if want := start.Add(5*time.Minute + time.Hour); !got.ExpiresAt.Equal(want) {
			t.Errorf("ExpiresAt = %v, want %v (an hour from the grant)", got.ExpiresAt, want)
		}
		if !h.dir.isMember("00ualice", "GADMIN") {
			t.Fatal("alice is not in GADMIN after the grant")
		}
		// Warning 10 minutes before expiry.
		time.Sleep(49 * time.Minute)
		synctest.Wait()
		if n := len(h.notes.find("dm", "UALICE", symbot.EventWarning)); n != 0 {
			t.Fatalf("warning sent %d times before it was due", n)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if n := len(h.notes.find("dm", "UALICE", symbot.EventWarning)); n != 1 {
			t.Fatalf("warnings = %d, want 1", n)
		}
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		got = h.wantState(t, r.ID, symbot.StateExpired)
		if !got.Removed || h.dir.isMember("00ualice", "GADMIN") {
			t.Fatalf("membership not removed at expiry: removed=%t member=%t", got.Removed, h.dir.isMember("00ualice", "GADMIN"))
		}
		adds, removes := h.dir.counts("00ualice", "GADMIN")
		if adds != 1 || removes != 1 {
			t.Errorf("okta adds=%d removes=%d, want 1 and 1", adds, removes)
		}
		if got := h.notes.events("dm", "UALICE"); !eventsEqual(got, symbot.EventApproved, symbot.EventGranted, symbot.EventWarning, symbot.EventRemoved) {
			t.Errorf("DMs to alice = %v", got)
		}
		if got := h.notes.events("update", ""); !eventsEqual(got, symbot.EventApproved, symbot.EventGranted, symbot.EventExpired, symbot.EventRemoved) {
			t.Errorf("message updates = %v", got)
		}
		if jobs := h.pendingJobs(t); len(jobs) != 0 {
			t.Errorf("jobs left: %+v", jobs)
		}
		verifyAudit(t, h.st)
	})
}

func verifyAudit(t *testing.T, st symbot.Store) []symbot.AuditEntry {
	t.Helper()
	var entries []symbot.AuditEntry
	var seq uint64
	var hash string
	if err := st.View(t.Context(), func(tx symbot.Tx) error {
		var err error
		if entries, err = tx.Audit(0, storetest.AllAudit); err != nil {
			return err
		}
		seq, hash, err = tx.AuditHead()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := symbot.VerifyAudit(entries, seq, hash); err != nil {
		t.Fatalf("audit chain: %v", err)
	}
	return entries
}

func TestTransitions(t *testing.T) {
	all := []symbot.State{symbot.StatePending, symbot.StateApproved, symbot.StateActive, symbot.StateExpired, symbot.StateRevoked,
		symbot.StateDenied, symbot.StateCancelled, symbot.StateTimedOut, symbot.StateFailed, symbot.StateExtended}
	legal := map[[2]symbot.State]bool{
		{symbot.StatePending, symbot.StateApproved}:  true,
		{symbot.StatePending, symbot.StateDenied}:    true,
		{symbot.StatePending, symbot.StateCancelled}: true,
		{symbot.StatePending, symbot.StateTimedOut}:  true,
		{symbot.StateApproved, symbot.StateActive}:   true,
		{symbot.StateApproved, symbot.StateFailed}:   true,
		{symbot.StateApproved, symbot.StateExtended}: true,
		{symbot.StateApproved, symbot.StateRevoked}:  true,
		{symbot.StateActive, symbot.StateExpired}:    true,
		{symbot.StateActive, symbot.StateRevoked}:    true,
	}
	for _, from := range all {
		for _, to := range all {
			if got, want := symbot.CanTransition(from, to), legal[[2]symbot.State{from, to}]; got != want {
				t.Errorf("CanTransition(%s, %s) = %t, want %t", from, to, got, want)
			}
		}
	}
	for _, s := range []symbot.State{symbot.StateExpired, symbot.StateRevoked, symbot.StateDenied, symbot.StateCancelled, symbot.StateTimedOut, symbot.StateFailed, symbot.StateExtended} {
		if !s.Final() {
			t.Errorf("%s.Final() = false", s)
		}
	}
}

func TestDecisionPolicy(t *testing.T) {
	anyone := testFlow()
	anyone.Approvers = symbot.Approvers{Anyone: true}
	self := testFlow()
	self.AllowSelfApproval = true
	guests := testFlow()
	guests.AllowGuests = true
	guests.Approvers = symbot.Approvers{Anyone: true}
	oktaGroup := testFlow()
	oktaGroup.Approvers = symbot.Approvers{OktaGroup: "GAPPROVERS"}
	tests := []struct {
		name      string
		flow      symbot.Flow
		requester symbot.Actor
		approver  symbot.Actor
		deny      bool
		wantErr   bool // a *PolicyError
	}{
		{name: "listed approver", flow: testFlow(), requester: alice, approver: bob},
		{name: "not an approver", flow: testFlow(), requester: alice, approver: dave, wantErr: true},
		{name: "not an approver may not deny", flow: testFlow(), requester: alice, approver: dave, deny: true, wantErr: true},
		{name: "self approval refused", flow: testFlow(), requester: bob, approver: bob, wantErr: true},
		{name: "self approval allowed by flow", flow: self, requester: bob, approver: bob},
		{name: "anyone", flow: anyone, requester: alice, approver: dave},
		{name: "anyone is never the requester", flow: anyone, requester: alice, approver: alice, wantErr: true},
		{name: "guest approver refused", flow: anyone, requester: alice, approver: guest, wantErr: true},
		{name: "guest approver allowed by flow", flow: guests, requester: alice, approver: guest},
		{name: "bot refused", flow: anyone, requester: alice, approver: botUser, wantErr: true},
		{name: "okta group member", flow: oktaGroup, requester: alice, approver: carol},
		{name: "not in okta group", flow: oktaGroup, requester: alice, approver: dave, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil, tt.flow)
			h.dir.setMember("00ucarol", "GAPPROVERS", true)
			r := h.mustSubmit(t, tt.requester, "admin", time.Hour)
			var err error
			if tt.deny {
				_, err = h.eng.Deny(t.Context(), r.ID, tt.approver, "no")
			} else {
				_, err = h.eng.Approve(t.Context(), r.ID, tt.approver, "")
			}
			var pe *symbot.PolicyError
			if got := errors.As(err, &pe); got != tt.wantErr {
				t.Fatalf("decision error = %v, want policy error: %t", err, tt.wantErr)
			}
			want := symbot.StateApproved
			if tt.deny {
				want = symbot.StateDenied
			}
			if tt.wantErr {
				want = symbot.StatePending
			}
			h.wantState(t, r.ID, want)
		})
	}
}

func TestGuestsAndBotsCannotRequest(t *testing.T) {
	h := newHarness(t, nil)
	for _, a := range []symbot.Actor{guest, botUser} {
		_, err := h.eng.Submit(t.Context(), a, symbot.RequestInput{Target: "admin", Duration: time.Hour, Reason: "x"})
		var pe *symbot.PolicyError
		if !errors.As(err, &pe) {
			t.Errorf("Submit by %s: err = %v, want *PolicyError", a.Name, err)
		}
	}
	g := testFlow()
	g.AllowGuests = true
	h = newHarness(t, nil, g)
	if _, err := h.eng.Submit(t.Context(), guest, symbot.RequestInput{Target: "admin", Duration: time.Hour, Reason: "x"}); err != nil {
		t.Errorf("guest in a flow that allows guests: %v", err)
	}
}

func TestSubmitInputErrors(t *testing.T) {
	other := testFlow()
	other.Name = "staging"
	other.Targets = []symbot.Target{{Name: "admin", GroupID: "GSTAGEADMIN"}, {Name: "deploy", GroupID: "GDEPLOY"}}
	h := newHarness(t, nil, testFlow(), other)
	tests := []struct {
		name  string
		in    symbot.RequestInput
		field string
	}{
		{"unknown target", symbot.RequestInput{Target: "nope", Duration: time.Hour, Reason: "x"}, "target"},
		{"ambiguous target", symbot.RequestInput{Target: "admin", Duration: time.Hour, Reason: "x"}, "target"},
		{"unknown flow", symbot.RequestInput{Target: "dev/admin", Duration: time.Hour, Reason: "x"}, "flow"},
		{"duration not offered", symbot.RequestInput{Target: "prod/admin", Duration: 2 * time.Hour, Reason: "x"}, "duration"},
		{"empty reason", symbot.RequestInput{Target: "ro", Duration: time.Hour, Reason: "  "}, "reason"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := h.eng.Submit(t.Context(), alice, tt.in)
			var ie *symbot.InputError
			if !errors.As(err, &ie) || ie.Field != tt.field {
				t.Fatalf("err = %v, want InputError on %s", err, tt.field)
			}
		})
	}
	if r, err := h.eng.Submit(t.Context(), alice, symbot.RequestInput{Target: "staging/admin", Duration: time.Hour, Reason: "x"}); err != nil || r.GroupID != "GSTAGEADMIN" {
		t.Fatalf("flow/target: %v %+v", err, r)
	}
	if r, err := h.eng.Submit(t.Context(), alice, symbot.RequestInput{Target: "deploy", Duration: time.Hour, Reason: "x"}); err != nil || r.Flow != "staging" {
		t.Fatalf("inferred flow: %v %+v", err, r)
	}
}

func TestQuorum(t *testing.T) {
	f := testFlow()
	f.ApprovalsRequired = 2
	h := newHarness(t, nil, f)
	r := h.mustSubmit(t, alice, "admin", time.Hour)
	h.mustApprove(t, r.ID, bob)
	h.wantState(t, r.ID, symbot.StatePending)
	if _, err := h.eng.Approve(t.Context(), r.ID, bob, ""); err == nil {
		t.Fatal("the same approver counted twice")
	}
	h.wantState(t, r.ID, symbot.StatePending)
	h.mustApprove(t, r.ID, carol)
	got := h.wantState(t, r.ID, symbot.StateApproved)
	if len(got.Approvals) != 2 {
		t.Errorf("approvals = %+v", got.Approvals)
	}
}

func TestDenyEndsAndSecondClickSaysWhoDecided(t *testing.T) {
	f := testFlow()
	f.ApprovalsRequired = 2
	h := newHarness(t, nil, f)
	r := h.mustSubmit(t, alice, "admin", time.Hour)
	h.mustApprove(t, r.ID, bob)
	if _, err := h.eng.Deny(t.Context(), r.ID, carol, "not during the freeze"); err != nil {
		t.Fatal(err)
	}
	got := h.wantState(t, r.ID, symbot.StateDenied)
	if tr, _ := got.LastTransition(); tr.By != "UCAROL" || tr.Note != "not during the freeze" {
		t.Errorf("transition = %+v", tr)
	}
	_, err := h.eng.Approve(t.Context(), r.ID, bob, "")
	var de *symbot.DecidedError
	if !errors.As(err, &de) || de.By != "UCAROL" || de.State != symbot.StateDenied {
		t.Fatalf("second click: err = %v, want DecidedError by UCAROL", err)
	}
	h.wantState(t, r.ID, symbot.StateDenied)
}

func TestConcurrentApprovers(t *testing.T) {
	h := newHarness(t, nil)
	r := h.mustSubmit(t, alice, "admin", time.Hour)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, a := range []symbot.Actor{bob, carol} {
		wg.Go(func() { _, errs[i] = h.eng.Approve(t.Context(), r.ID, a, "") })
	}
	wg.Wait()
	ok, decided := 0, 0
	for _, err := range errs {
		var de *symbot.DecidedError
		switch {
		case err == nil:
			ok++
		case errors.As(err, &de):
			decided++
		default:
			t.Errorf("unexpected error %v", err)
		}
	}
	if ok != 1 || decided != 1 {
		t.Fatalf("ok=%d decided=%d, want one of each", ok, decided)
	}
	jobs := h.pendingJobs(t)
	grants := 0
	for _, j := range jobs {
		if j.Kind == symbot.JobGrant {
			grants++
		}
	}
	if grants != 1 {
		t.Errorf("grant jobs = %d, want 1", grants)
	}
}

func TestDuplicatePending(t *testing.T) {
	h := newHarness(t, nil)
	r := h.mustSubmit(t, alice, "admin", time.Hour)
	_, err := h.eng.Submit(t.Context(), alice, symbot.RequestInput{Target: "admin", Duration: time.Hour, Reason: "again"})
	var de *symbot.DuplicateError
	if !errors.As(err, &de) || de.ExistingID != r.ID {
		t.Fatalf("err = %v, want DuplicateError pointing at %s", err, r.ID)
	}
	// Another target is fine.
	h.mustSubmit(t, alice, "ro", time.Hour)
}

func TestCancelAndTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, nil)
		h.start(t)
		r := h.mustSubmit(t, alice, "admin", time.Hour)
		if _, err := h.eng.Cancel(t.Context(), r.ID, bob); err == nil {
			t.Fatal("bob cancelled alice's request")
		}
		if _, err := h.eng.Cancel(t.Context(), r.ID, alice); err != nil {
			t.Fatal(err)
		}
		h.wantState(t, r.ID, symbot.StateCancelled)

		r2 := h.mustSubmit(t, alice, "ro", time.Hour)
		time.Sleep(24*time.Hour - time.Second)
		synctest.Wait()
		h.wantState(t, r2.ID, symbot.StatePending)
		time.Sleep(time.Second)
		synctest.Wait()
		h.wantState(t, r2.ID, symbot.StateTimedOut)
		if n := len(h.notes.find("dm", "UALICE", symbot.EventTimedOut)); n != 1 {
			t.Errorf("timed-out DMs = %d, want 1", n)
		}
		// A late click changes nothing.
		if _, err := h.eng.Approve(t.Context(), r2.ID, bob, ""); err == nil {
			t.Fatal("approved a timed-out request")
		}
	})
}

func TestRevokeAndRelinquish(t *testing.T) {
	noRevoke := testFlow()
	noRevoke.AllowRevoke = false
	tests := []struct {
		name    string
		flow    symbot.Flow
		by      symbot.Actor
		wantErr bool
	}{
		{"approver revokes", testFlow(), bob, false},
		{"requester relinquishes", testFlow(), alice, false},
		{"non-approver refused", testFlow(), dave, true},
		{"flow forbids approver revoke", noRevoke, bob, true},
		{"requester relinquishes when revoke is off", noRevoke, alice, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t, nil, tt.flow)
				h.start(t)
				r := h.mustSubmit(t, alice, "admin", time.Hour)
				h.mustApprove(t, r.ID, carol)
				synctest.Wait()
				h.wantState(t, r.ID, symbot.StateActive)
				_, err := h.eng.Revoke(t.Context(), r.ID, tt.by, "done")
				if (err != nil) != tt.wantErr {
					t.Fatalf("Revoke: %v, want error %t", err, tt.wantErr)
				}
				synctest.Wait()
				if tt.wantErr {
					h.wantState(t, r.ID, symbot.StateActive)
					return
				}
				got := h.wantState(t, r.ID, symbot.StateRevoked)
				if !got.Removed || h.dir.isMember("00ualice", "GADMIN") {
					t.Fatal("membership not removed after revoke")
				}
				// Expiry later does nothing more.
				time.Sleep(2 * time.Hour)
				synctest.Wait()
				if _, removes := h.dir.counts("00ualice", "GADMIN"); removes != 1 {
					t.Errorf("removes = %d, want 1", removes)
				}
			})
		})
	}
}

func TestExtension(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, nil)
		h.start(t)
		r := h.mustGrant(t, alice, "admin", time.Hour)
		time.Sleep(50 * time.Minute)
		ext, err := h.eng.Extend(t.Context(), r.ID, alice, time.Hour, "still fixing")
		if err != nil {
			t.Fatal(err)
		}
		if ext.ExtensionOf != r.ID {
			t.Fatalf("ExtensionOf = %q, want %q", ext.ExtensionOf, r.ID)
		}
		h.mustApprove(t, ext.ID, carol)
		synctest.Wait()
		h.wantState(t, ext.ID, symbot.StateExtended)
		got := h.wantState(t, r.ID, symbot.StateActive)
		if want := r.ExpiresAt.Add(time.Hour); !got.ExpiresAt.Equal(want) {
			t.Errorf("extended expiry = %v, want %v", got.ExpiresAt, want)
		}
		// Past the original expiry: still a member, no gap, no second add.
		time.Sleep(30 * time.Minute)
		synctest.Wait()
		if !h.dir.isMember("00ualice", "GADMIN") {
			t.Fatal("membership gone at the original expiry")
		}
		time.Sleep(40 * time.Minute)
		synctest.Wait()
		h.wantState(t, r.ID, symbot.StateExpired)
		adds, removes := h.dir.counts("00ualice", "GADMIN")
		if adds != 1 || removes != 1 {
			t.Errorf("adds=%d removes=%d, want 1 and 1", adds, removes)
		}
	})
}

// TestSharedMembership runs on a store read with View and on one with a
// RequestReader (each removal's check of who else needs the membership
// is then one read of its own).
func TestSharedMembership(t *testing.T) {
	for _, tc := range []struct {
		name string
		open func() symbot.Store // nil: the harness's memstore
	}{
		{"View", func() symbot.Store { return nil }},
		{"RequestReader", func() symbot.Store { return newReaderStore() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Run("member before symbot is never removed", func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					h := newHarness(t, tc.open())
					h.dir.setMember("00ualice", "GADMIN", true)
					h.start(t)
					r := h.mustSubmit(t, alice, "admin", time.Hour)
					h.mustApprove(t, r.ID, bob)
					synctest.Wait()
					if got := h.wantState(t, r.ID, symbot.StateActive); !got.Preexisting {
						t.Fatal("prior membership not recorded")
					}
					time.Sleep(2 * time.Hour)
					synctest.Wait()
					got := h.wantState(t, r.ID, symbot.StateExpired)
					if !got.Removed || !got.Kept {
						t.Errorf("removed=%t kept=%t, want both (note %q)", got.Removed, got.Kept, got.RemovalNote)
					}
					if !h.dir.isMember("00ualice", "GADMIN") {
						t.Fatal("removed a membership alice had before symbot")
					}
					if adds, removes := h.dir.counts("00ualice", "GADMIN"); adds != 0 || removes != 0 {
						t.Errorf("adds=%d removes=%d, want 0 and 0", adds, removes)
					}
				})
			})
			t.Run("two grants of one group", func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					other := testFlow()
					other.Name = "oncall"
					other.Targets = []symbot.Target{{Name: "prod-admin", GroupID: "GADMIN"}}
					h := newHarness(t, tc.open(), testFlow(), other)
					h.start(t)
					r1 := h.mustSubmit(t, alice, "admin", time.Hour)
					h.mustApprove(t, r1.ID, bob)
					synctest.Wait()
					r2 := h.mustGrant(t, alice, "prod-admin", 4*time.Hour)
					time.Sleep(2 * time.Hour)
					synctest.Wait()
					got := h.wantState(t, r1.ID, symbot.StateExpired)
					if !h.dir.isMember("00ualice", "GADMIN") {
						t.Fatalf("membership removed while another grant needs it (%s)", got.RemovalNote)
					}
					time.Sleep(3 * time.Hour)
					synctest.Wait()
					h.wantState(t, r2.ID, symbot.StateExpired)
					if h.dir.isMember("00ualice", "GADMIN") {
						t.Fatal("membership left behind after both grants ended")
					}
				})
			})
		})
	}
}

func TestGrantFailures(t *testing.T) {
	t.Run("no okta user fails at once and tells everyone", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h := newHarness(t, nil)
			h.start(t)
			ghost := symbot.Actor{Person: symbot.Person{SlackID: "UGHOST", Name: "ghost", Email: "ghost@example.com"}}
			r := h.mustSubmit(t, ghost, "admin", time.Hour)
			h.mustApprove(t, r.ID, bob)
			synctest.Wait()
			got := h.wantState(t, r.ID, symbot.StateFailed)
			if got.FailReason == "" {
				t.Fatal("no fail reason")
			}
			if n := len(h.notes.find("dm", "UGHOST", symbot.EventFailed)); n != 1 {
				t.Errorf("requester failure DMs = %d", n)
			}
			if n := len(h.notes.find("dm", "UBOB", symbot.EventFailed)); n != 1 {
				t.Errorf("approver failure DMs = %d", n)
			}
		})
	})
	t.Run("transient errors are retried", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h := newHarness(t, nil)
			h.dir.failNext("add", symbot.ErrUnavailable, symbot.ErrRateLimited, symbot.ErrUnavailable)
			h.start(t)
			r := h.mustSubmit(t, alice, "admin", time.Hour)
			h.mustApprove(t, r.ID, bob)
			time.Sleep(time.Minute)
			synctest.Wait()
			h.wantState(t, r.ID, symbot.StateActive)
		})
	})
	t.Run("bounded attempts then failed and cleaned up", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h := newHarness(t, nil)
			errs := make([]error, 20)
			for i := range errs {
				errs[i] = fmt.Errorf("okta: %w", symbot.ErrUnavailable)
			}
			h.dir.failNext("add", errs...)
			h.start(t)
			r := h.mustSubmit(t, alice, "admin", time.Hour)
			h.mustApprove(t, r.ID, bob)
			time.Sleep(10 * time.Minute)
			synctest.Wait()
			got := h.wantState(t, r.ID, symbot.StateFailed)
			if !got.Removed {
				t.Error("a failed grant was not cleaned up")
			}
			if _, removes := h.dir.counts("00ualice", "GADMIN"); removes != 1 {
				t.Errorf("cleanup removes = %d, want 1", removes)
			}
		})
	})
}

func TestRevokeNeverGivesUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, nil)
		h.eng.Runtime.RevokeAlertAfter = 3
		// The longest delays (1s, 2s, 4s, 8s, then 10s): the 12 failures
		// then span 85s, so at 60s after the expiry some are still to
		// come. Random jitter could fit all 12 (and the success) in 48s.
		h.eng.Runtime.Jitter = func(top time.Duration) time.Duration { return top }
		errs := make([]error, 12)
		for i := range errs {
			errs[i] = symbot.ErrUnavailable
		}
		h.dir.failNext("remove", errs...)
		h.start(t)
		r := h.mustSubmit(t, alice, "admin", 15*time.Minute)
		h.mustApprove(t, r.ID, bob)
		time.Sleep(16 * time.Minute)
		synctest.Wait()
		if h.get(t, r.ID).Removed {
			t.Fatal("removed despite failures")
		}
		st, _ := h.eng.Stats(t.Context())
		if st.FailingRevokes != 1 {
			t.Errorf("FailingRevokes = %d, want 1", st.FailingRevokes)
		}
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		got := h.get(t, r.ID)
		if !got.Removed || h.dir.isMember("00ualice", "GADMIN") {
			t.Fatal("revocation gave up")
		}
		if n := len(h.notes.find("alert", "", symbot.EventRevokeStuck)); n != 1 {
			t.Errorf("alerts = %d, want exactly 1", n)
		}
		// The alerted removal recovered: the operators get an all-clear.
		if ok := h.notes.find("alert", "", symbot.EventRevokeOK); len(ok) != 1 || !strings.Contains(ok[0].Text, "All clear") || !strings.Contains(ok[0].Text, r.ID) {
			t.Errorf("all-clear alerts = %+v, want one naming %s", ok, r.ID)
		}
		st, _ = h.eng.Stats(t.Context())
		if st.RevokeAlerts != 1 || st.FailingRevokes != 0 {
			t.Errorf("stats = %+v", st)
		}
	})
}

func TestSchedulerSoonerDeadlineResetsTimer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, nil)
		h.start(t)
		long := h.mustSubmit(t, alice, "admin", 4*time.Hour)
		h.mustApprove(t, long.ID, bob)
		synctest.Wait()
		short := h.mustSubmit(t, dave, "admin", 15*time.Minute)
		h.mustApprove(t, short.ID, bob)
		synctest.Wait()
		time.Sleep(15 * time.Minute)
		synctest.Wait()
		h.wantState(t, short.ID, symbot.StateExpired)
		h.wantState(t, long.ID, symbot.StateActive)
	})
}

func TestStartRunsWhatIsAlreadyDue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, nil)
		r := h.mustSubmit(t, alice, "admin", 15*time.Minute)
		h.mustApprove(t, r.ID, bob)
		// Nothing runs until the engine starts.
		time.Sleep(time.Hour)
		h.wantState(t, r.ID, symbot.StateApproved)
		h.start(t)
		synctest.Wait()
		h.wantState(t, r.ID, symbot.StateActive)
	})
}

func TestSlackFailuresDoNotBlockAccess(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, nil)
		// The bot is not in the channel until someone invites it: the
		// approval message keeps trying, access is not blocked, and nothing
		// is lost.
		errs := make([]error, 15)
		for i := range errs {
			errs[i] = fmt.Errorf("post: %w", symbot.ErrNotInChannel)
		}
		h.notes.failNext("post", errs...)
		h.start(t)
		r := h.mustSubmit(t, alice, "admin", time.Hour)
		synctest.Wait()
		h.mustApprove(t, r.ID, bob)
		synctest.Wait()
		h.wantState(t, r.ID, symbot.StateActive)
		if n := len(h.notes.find("dm", "UALICE", symbot.EventGranted)); n != 1 {
			t.Errorf("granted DMs = %d", n)
		}
		if n := len(h.notes.find("post", "", "")); n != 0 {
			t.Fatalf("posted %d times while the channel refused", n)
		}
		time.Sleep(50 * time.Minute) // the bot is invited meanwhile
		synctest.Wait()
		posts := h.notes.find("post", "", "")
		if len(posts) != 1 || posts[0].State != symbot.StateActive {
			t.Fatalf("posts = %+v, want one, showing the active grant", posts)
		}
		if jobs := h.pendingJobs(t); len(jobs) != 0 {
			t.Errorf("jobs left: %+v", jobs)
		}
	})
}

func TestRevokeWhileGrantFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, nil)
		errs := make([]error, 5)
		for i := range errs {
			errs[i] = symbot.ErrUnavailable
		}
		h.dir.failNext("add", errs...)
		h.start(t)
		r := h.mustSubmit(t, alice, "admin", time.Hour)
		h.mustApprove(t, r.ID, bob)
		time.Sleep(3 * time.Second)
		synctest.Wait()
		h.wantState(t, r.ID, symbot.StateApproved)
		if _, err := h.eng.Revoke(t.Context(), r.ID, carol, "stop"); err != nil {
			t.Fatalf("revoke of an approved request: %v", err)
		}
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		got := h.wantState(t, r.ID, symbot.StateRevoked)
		if !got.Removed || h.dir.isMember("00ualice", "GADMIN") {
			t.Fatalf("membership after revoking an in-flight grant: removed=%t member=%t", got.Removed, h.dir.isMember("00ualice", "GADMIN"))
		}
		if jobs := h.pendingJobs(t); len(jobs) != 0 {
			t.Errorf("jobs left: %+v", jobs)
		}
	})
}

func TestFailReasonIsForPeople(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, nil)
		h.dir.failNext("add", fmt.Errorf("okta PUT https://acme.okta.com/api/v1/groups/GADMIN: %w", symbot.ErrGroupNotFound))
		h.start(t)
		r := h.mustSubmit(t, alice, "admin", time.Hour)
		h.mustApprove(t, r.ID, bob)
		synctest.Wait()
		got := h.wantState(t, r.ID, symbot.StateFailed)
		if strings.Contains(got.FailReason, "acme.okta.com") {
			t.Errorf("fail reason shows internal details: %q", got.FailReason)
		}
		if n := len(h.notes.find("alert", "", symbot.EventFailed)); n != 1 {
			t.Errorf("operator alerts = %d, want 1", n)
		}
		ghost := symbot.Actor{Person: symbot.Person{SlackID: "UGHOST", Name: "ghost", Email: "ghost@example.com"}}
		r2 := h.mustSubmit(t, ghost, "admin", time.Hour)
		h.mustApprove(t, r2.ID, bob)
		synctest.Wait()
		got = h.wantState(t, r2.ID, symbot.StateFailed)
		if want := "no active Okta user with the email ghost@example.com"; got.FailReason != want {
			t.Errorf("fail reason = %q, want %q", got.FailReason, want)
		}
	})
}

// TestShortLeasesAreRenewed runs a lifecycle with leases far shorter than a
// job's timeout: every job renews its lease before running, and each side
// effect still happens exactly once.
func TestShortLeasesAreRenewed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, nil)
		h.eng.Runtime.Lease = 50 * time.Millisecond
		h.start(t)
		r := h.mustSubmit(t, alice, "admin", 15*time.Minute)
		synctest.Wait()
		h.mustApprove(t, r.ID, bob)
		synctest.Wait()
		h.wantState(t, r.ID, symbot.StateActive)
		time.Sleep(16 * time.Minute)
		synctest.Wait()
		got := h.wantState(t, r.ID, symbot.StateExpired)
		if !got.Removed {
			t.Fatal("not removed")
		}
		adds, removes := h.dir.counts("00ualice", "GADMIN")
		if adds != 1 || removes != 1 {
			t.Errorf("adds=%d removes=%d, want 1 and 1", adds, removes)
		}
		if got := h.notes.events("dm", "UALICE"); !eventsEqual(got, symbot.EventApproved, symbot.EventGranted, symbot.EventWarning, symbot.EventRemoved) {
			t.Errorf("DMs = %v", got)
		}
	})
}

// TestQueuedJobTakenOverIsSkipped: engine A claims two DM jobs ahead of its
// single worker and is stuck on the first; meanwhile another owner (as
// another replica would, once A's lease lapsed) takes the second and
// finishes it. When A's worker gets to it, A must skip it rather than send
// the DM again.
func TestQueuedJobTakenOverIsSkipped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := memstore.New()
		notesA := &fakeNotifier{gate: make(chan struct{})}
		a, err := symbot.NewEngine(st, newFakeDir(), notesA, []symbot.Flow{testFlow()})
		if err != nil {
			t.Fatal(err)
		}
		a.Runtime.Owner, a.Runtime.Workers, a.Runtime.Lease = "A", 1, time.Second
		var ids []uint64
		for _, p := range []symbot.Actor{alice, dave} {
			r, err := a.Submit(t.Context(), p, symbot.RequestInput{Target: "admin", Duration: time.Hour, Reason: "x"})
			if err != nil {
				t.Fatal(err)
			}
			if err := st.Update(t.Context(), func(tx symbot.Tx) error {
				js, err := tx.Jobs()
				for _, j := range js {
					if j.Kind == symbot.JobPost { // only the DM jobs matter here
						if err := tx.DeleteJob(j.ID); err != nil {
							return err
						}
					}
				}
				if err != nil {
					return err
				}
				j := &symbot.Job{Kind: symbot.JobNotify, RequestID: r.ID, Event: symbot.EventApproved, To: p.SlackID, Lane: "test:" + p.SlackID}
				if err := tx.AddJob(j); err != nil {
					return err
				}
				ids = append(ids, j.ID)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
		ctx, cancel := context.WithCancel(context.Background())
		doneA := make(chan struct{})
		go func() { defer close(doneA); _ = a.Run(ctx) }()
		synctest.Wait() // A has claimed both; its one worker waits in the first DM
		// A's lease on the queued job lapses; another owner takes it over
		// and finishes it.
		time.Sleep(2 * time.Second)
		if err := st.Update(t.Context(), func(tx symbot.Tx) error { return tx.DeleteJob(ids[1]) }); err != nil {
			t.Fatal(err)
		}
		close(notesA.gate)
		synctest.Wait()
		cancel()
		<-doneA
		if got := notesA.find("dm", "", ""); len(got) != 1 || got[0].To != alice.SlackID {
			t.Errorf("A sent DMs %+v, want only alice's (dave's was taken over and must be skipped)", got)
		}
	})
}

func TestRevokeCancelsPendingExtension(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, nil)
		h.start(t)
		r := h.mustGrant(t, alice, "admin", time.Hour)
		ext, err := h.eng.Extend(t.Context(), r.ID, alice, time.Hour, "more")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.eng.Revoke(t.Context(), r.ID, bob, "misuse"); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		h.wantState(t, ext.ID, symbot.StateCancelled)
		if _, err := h.eng.Approve(t.Context(), ext.ID, carol, ""); err == nil {
			t.Fatal("approved an extension of revoked access")
		}
		synctest.Wait()
		if h.dir.isMember("00ualice", "GADMIN") {
			t.Fatal("revoked access came back")
		}
	})
}

// badStore fails every write of one request, like a damaged record.
type badStore struct {
	symbot.Store
	bad atomic.Value // string
}

type badTx struct {
	symbot.Tx
	bad string
}

func (t badTx) PutRequest(r *symbot.Request) error {
	if r.ID == t.bad {
		return fmt.Errorf("request %s: record damaged", r.ID)
	}
	return t.Tx.PutRequest(r)
}

func (s *badStore) Update(ctx context.Context, fn func(symbot.Tx) error) error {
	bad, _ := s.bad.Load().(string)
	return s.Store.Update(ctx, func(tx symbot.Tx) error { return fn(badTx{tx, bad}) })
}

// TestBadRequestDoesNotStopExpiries: one request that cannot be written
// must not hold up the other expiries due at the same moment.
func TestBadRequestDoesNotStopExpiries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ms := memstore.New()
		bs := &badStore{Store: ms}
		h := newHarness(t, bs)
		h.start(t)
		var ids []string
		for _, p := range []symbot.Actor{alice, dave, carol} {
			r := h.mustSubmit(t, p, "admin", 15*time.Minute)
			h.mustApprove(t, r.ID, bob)
			ids = append(ids, r.ID)
		}
		synctest.Wait()
		for _, id := range ids {
			h.wantState(t, id, symbot.StateActive)
		}
		bs.bad.Store(ids[1]) // dave's record is damaged from now on
		time.Sleep(16 * time.Minute)
		synctest.Wait()
		for _, id := range []string{ids[0], ids[2]} {
			if got := h.wantState(t, id, symbot.StateExpired); !got.Removed {
				t.Errorf("%s not removed", id)
			}
		}
		if h.get(t, ids[1]).State != symbot.StateActive {
			t.Errorf("the damaged request changed")
		}
	})
}
