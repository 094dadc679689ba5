package symbot_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/symbot/symbot"
)

// reuseEmail gives email to another Okta user: the old owner was renamed
// and the address re-used, or someone took it over.
func (d *fakeDir) reuseEmail(email, newID string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.users[email] = symbot.DirUser{ID: newID, Login: newID + "-login", Email: email, Status: "ACTIVE"}
}

func (d *fakeDir) resolves() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.resolveCalls
}

func (h *harness) binding(t testing.TB, slackID string) (symbot.Identity, bool) {
	t.Helper()
	var id symbot.Identity
	var ok bool
	if err := h.st.View(context.Background(), func(tx symbot.Tx) error {
		var err error
		id, ok, err = tx.Identity(slackID)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return id, ok
}

func (h *harness) auditActions(t testing.TB, prefix string) []symbot.AuditEntry {
	t.Helper()
	var out []symbot.AuditEntry
	if err := h.st.View(context.Background(), func(tx symbot.Tx) error {
		es, err := tx.Audit(0, 100000)
		for _, e := range es {
			if strings.HasPrefix(e.Action, prefix) {
				out = append(out, e)
			}
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// A Slack account's email that comes to find another Okta user (renamed
// and re-used, or taken over) must not move the account's access to that
// user: the grant is refused, the operators are alerted once, it is
// audited, and every later action of the account is refused, even if the
// email finds the old user again, until an operator resets the binding.
func TestReusedEmailCannotTakeOverBinding(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, nil)
		h.start(t)
		first := h.mustGrant(t, alice, "ro", time.Hour)
		b, ok := h.binding(t, alice.SlackID)
		if !ok || b.OktaUserID != "00ualice" || b.BoundAt.IsZero() || b.Conflicted() {
			t.Fatalf("binding after the first grant = %+v, %v; want bound to 00ualice", b, ok)
		}
		var bound []string
		for _, e := range h.auditActions(t, symbot.ActionIdentityBound) {
			bound = append(bound, e.Detail)
		}
		if want := "slack_user=UALICE okta_user=00ualice login=alice@example.com via=email"; !slices.Contains(bound, want) {
			t.Errorf("identity:bound audit entries = %q, want %q", bound, want)
		}

		// The address is re-used for another Okta user, and the cached
		// binding grows old: approving alice's next request resolves her
		// again and finds the other user.
		h.dir.reuseEmail(alice.Email, "00umallory")
		time.Sleep(11 * time.Minute) // past IdentityTTL, in the bubble
		r := h.mustSubmit(t, alice, "admin", time.Hour)
		_, err := h.eng.Approve(t.Context(), r.ID, bob, "")
		var pe *symbot.PolicyError
		if !errors.As(err, &pe) || !strings.Contains(pe.Reason, "requester's Slack account is bound to Okta user alice@example.com") {
			t.Fatalf("Approve of a request whose requester's email moved: %v, want refused naming the binding", err)
		}
		synctest.Wait()
		h.wantState(t, r.ID, symbot.StatePending)
		if h.dir.isMember("00umallory", "GADMIN") || h.dir.isMember("00ualice", "GADMIN") {
			t.Fatalf("a grant was made after the email moved to another Okta user")
		}
		b, _ = h.binding(t, alice.SlackID)
		if b.OktaUserID != "00ualice" || b.ConflictOktaUserID != "00umallory" || b.ConflictEmail != alice.Email {
			t.Fatalf("binding after the conflict = %+v; want still 00ualice, conflict 00umallory", b)
		}
		if n := len(h.notes.find("alert", "", symbot.EventIdentityConflict)); n != 1 {
			t.Errorf("identity conflict alerts = %d, want 1", n)
		}
		if got := h.auditActions(t, symbot.ActionIdentityConflict); len(got) != 1 || !strings.Contains(got[0].Detail, "found_okta_user=00umallory") {
			t.Errorf("identity:conflict audit entries = %+v, want one naming 00umallory", got)
		}

		// Refused from now on, without re-resolving into acceptance: even
		// when the email finds alice's Okta user again.
		h.dir.reuseEmail(alice.Email, "00ualice")
		calls := h.dir.resolves()
		var ce *symbot.IdentityConflictError
		if _, err := h.eng.ResolveUser(t.Context(), alice.Person); !errors.As(err, &ce) {
			t.Errorf("ResolveUser after the conflict: %v, want an IdentityConflictError", err)
		}
		if _, err := h.eng.Submit(t.Context(), alice, symbot.RequestInput{Target: "admin", Duration: time.Hour, Reason: "again"}); !errors.As(err, &ce) || !errors.Is(err, symbot.ErrNotAllowed) {
			t.Errorf("Submit after the conflict: %v, want an IdentityConflictError", err)
		}
		if _, err := h.eng.Extend(t.Context(), first.ID, alice, time.Hour, "more"); !errors.As(err, &ce) {
			t.Errorf("Extend after the conflict: %v, want an IdentityConflictError", err)
		}
		if n := h.dir.resolves(); n != calls {
			t.Errorf("the directory was asked %d more times after the conflict was recorded", n-calls)
		}
		synctest.Wait()
		if n := len(h.notes.find("alert", "", symbot.EventIdentityConflict)); n != 1 {
			t.Errorf("identity conflict alerts after more attempts = %d, want still 1", n)
		}
		if got := h.auditActions(t, symbot.ActionRefusedPrefix+"request"); len(got) == 0 || !strings.Contains(got[0].Detail, "identity reset") {
			t.Errorf("refused requests audited = %+v, want the conflict refusal", got)
		}

		// The operator checks and resets: the next resolution binds anew.
		ctx := symbot.WithOperator(t.Context(), symbot.Operator{User: "root", UID: 0, PID: 7})
		h.dir.reuseEmail(alice.Email, "00umallory")
		old, err := h.eng.ResetIdentity(ctx, alice.SlackID)
		if err != nil || old.ConflictOktaUserID != "00umallory" {
			t.Fatalf("ResetIdentity = %+v, %v", old, err)
		}
		if got := h.auditActions(t, symbot.ActionIdentityReset); len(got) != 1 || got[0].Actor != "admin:root(uid=0,pid=7)" || !strings.Contains(got[0].Detail, "okta_user=00ualice") {
			t.Errorf("reset audit entries = %+v, want one by admin:root naming the old binding", got)
		}
		if _, ok := h.binding(t, alice.SlackID); ok {
			t.Errorf("binding still there after the reset")
		}
		if u, err := h.eng.ResolveUser(t.Context(), alice.Person); err != nil || u.ID != "00umallory" {
			t.Errorf("ResolveUser after the reset = %+v, %v; want bound anew to 00umallory", u, err)
		}
		if _, err := h.eng.ResetIdentity(ctx, "UNOBODY"); !errors.Is(err, symbot.ErrNotFound) {
			t.Errorf("ResetIdentity of an unbound account: %v, want ErrNotFound", err)
		}
	})
}

// An approver of an okta_group flow is checked through the binding: an
// approver account whose email now finds another Okta user is refused,
// even when that user is in the approvers' group too.
func TestReusedEmailApproverCannotApproveThroughBinding(t *testing.T) {
	f := testFlow()
	f.Approvers = symbot.Approvers{OktaGroup: "GAPPROVERS"}
	h := newHarness(t, nil, f)
	h.dir.setMember("00ubob", "GAPPROVERS", true)
	h.dir.setMember("00umallory", "GAPPROVERS", true)
	r1 := h.mustSubmit(t, alice, "admin", time.Hour)
	h.mustApprove(t, r1.ID, bob) // binds bob to 00ubob

	h.dir.reuseEmail(bob.Email, "00umallory")
	r2 := h.mustSubmit(t, carol, "admin", time.Hour)
	_, err := h.eng.Approve(t.Context(), r2.ID, bob, "")
	var ce *symbot.IdentityConflictError
	if !errors.As(err, &ce) || ce.BoundID != "00ubob" || ce.FoundID != "00umallory" {
		t.Fatalf("Approve by an approver whose email moved: %v, want an IdentityConflictError 00ubob -> 00umallory", err)
	}
	if got := h.wantState(t, r2.ID, symbot.StatePending); len(got.Approvals) != 0 {
		t.Errorf("approvals recorded: %+v", got.Approvals)
	}
	// Deny is a decision too.
	if _, err := h.eng.Deny(t.Context(), r2.ID, bob, ""); !errors.As(err, &ce) {
		t.Errorf("Deny: %v, want an IdentityConflictError", err)
	}
}

// Two Slack accounts bound to one Okta user are one person: the second
// account cannot approve the first one's request.
func TestTwoSlackAccountsOfOnePersonCannotSelfApprove(t *testing.T) {
	alice2 := symbot.Actor{Person: symbot.Person{SlackID: "UALICE2", Name: "alice (2nd)", Email: "alice@example.com"}}
	for _, tc := range []struct {
		name string
		a    symbot.Approvers
	}{
		{"listed approver", symbot.Approvers{Users: []string{"UBOB", "UALICE2"}}},
		{"anyone", symbot.Approvers{Anyone: true}},
		{"okta group", symbot.Approvers{OktaGroup: "GAPPROVERS"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := testFlow()
			f.Approvers = tc.a
			h := newHarness(t, nil, f)
			h.dir.setMember("00ualice", "GAPPROVERS", true)
			h.dir.setMember("00ubob", "GAPPROVERS", true)
			r := h.mustSubmit(t, alice, "admin", time.Hour)
			for _, verb := range []string{"approve", "deny"} {
				var err error
				if verb == "approve" {
					_, err = h.eng.Approve(t.Context(), r.ID, alice2, "")
				} else {
					_, err = h.eng.Deny(t.Context(), r.ID, alice2, "")
				}
				var pe *symbot.PolicyError
				if !errors.As(err, &pe) || !strings.Contains(pe.Reason, "your own request") {
					t.Fatalf("%s by the requester's second account: %v, want a PolicyError about one's own request", verb, err)
				}
			}
			if got := h.wantState(t, r.ID, symbot.StatePending); len(got.Approvals) != 0 {
				t.Errorf("approvals recorded: %+v", got.Approvals)
			}
			h.mustApprove(t, r.ID, bob) // someone else still can
		})
	}
}

// A quorum counts people: two Slack accounts of one Okta user approve
// once, whichever order and however the approvals were recorded.
func TestTwoAccountsOfOnePersonCountOnceInQuorum(t *testing.T) {
	bob2 := symbot.Actor{Person: symbot.Person{SlackID: "UBOB2", Name: "bob (2nd)", Email: "bob@example.com"}}
	f := testFlow()
	f.Approvers = symbot.Approvers{Users: []string{"UBOB", "UBOB2", "UCAROL"}}
	f.ApprovalsRequired = 2
	f.AllowSelfApproval = true // counting people must not depend on it
	h := newHarness(t, nil, f)
	r := h.mustSubmit(t, alice, "admin", time.Hour)
	h.mustApprove(t, r.ID, bob)
	_, err := h.eng.Approve(t.Context(), r.ID, bob2, "")
	var pe *symbot.PolicyError
	if !errors.As(err, &pe) || !strings.Contains(pe.Reason, "already approved") {
		t.Fatalf("second approval by bob's other account: %v, want refused as already approved", err)
	}
	if got := h.wantState(t, r.ID, symbot.StatePending); len(got.Approvals) != 1 || got.Approvals[0].OktaUserID != "00ubob" {
		t.Fatalf("approvals = %+v, want bob's one, recorded as Okta user 00ubob", got.Approvals)
	}
	h.mustApprove(t, r.ID, carol)
	h.wantState(t, r.ID, symbot.StateApproved)
}

// Under "anyone may approve", an account symbot cannot find in Okta could
// be the requester's second account: it may not approve.
func TestAccountNotInOktaCannotApproveAnyoneFlow(t *testing.T) {
	f := testFlow()
	f.Approvers = symbot.Approvers{Anyone: true}
	h := newHarness(t, nil, f)
	ghost := symbot.Actor{Person: symbot.Person{SlackID: "UGHOST", Name: "ghost", Email: "ghost@elsewhere.example"}}
	r := h.mustSubmit(t, alice, "admin", time.Hour)
	_, err := h.eng.Approve(t.Context(), r.ID, ghost, "")
	var pe *symbot.PolicyError
	if !errors.As(err, &pe) || !strings.Contains(pe.Reason, "could not find your Okta account") {
		t.Fatalf("Approve by an account not in Okta: %v, want refused", err)
	}
	h.mustApprove(t, r.ID, bob)
}

// The binding, its conflict included, is stored: a restart does not make
// symbot forget a conflict and accept the account again.
func TestIdentityConflictSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "symbot.db")
	st := mustOpen(t, path)
	h := newHarness(t, st)
	if _, err := h.eng.ResolveUser(t.Context(), alice.Person); err != nil {
		t.Fatal(err)
	}
	h.dir.reuseEmail(alice.Email, "00umallory")
	h.eng.IdentityTTL = time.Nanosecond
	var ce *symbot.IdentityConflictError
	if _, err := h.eng.ResolveUser(t.Context(), alice.Person); !errors.As(err, &ce) {
		t.Fatalf("ResolveUser after the email moved: %v, want a conflict", err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st2 := mustOpen(t, path)
	t.Cleanup(func() { st2.Close() })
	h2 := newHarness(t, st2)
	h2.dir.reuseEmail(alice.Email, "00ualice")
	if _, err := h2.eng.Submit(t.Context(), alice, symbot.RequestInput{Target: "admin", Duration: time.Hour, Reason: "after restart"}); !errors.As(err, &ce) {
		t.Fatalf("Submit after a restart: %v, want the stored conflict to refuse it", err)
	}
	ids, err := h2.eng.Identities(t.Context())
	if err != nil || len(ids) != 1 || !ids[0].Conflicted() || ids[0].OktaUserID != "00ualice" {
		t.Fatalf("Identities after a restart = %+v, %v", ids, err)
	}
}

// A request approved before the requester's email moved is not granted to
// the Okta user the email finds at grant time: the grant asks the
// directory through the binding and fails, with the way out in its reason.
func TestReusedEmailAtGrantTimeIsNotGranted(t *testing.T) {
	h := newHarness(t, nil) // jobs run by hand
	r := h.mustSubmit(t, alice, "admin", time.Hour)
	h.mustApprove(t, r.ID, bob) // binds alice (the requester) and bob
	h.dir.reuseEmail(alice.Email, "00umallory")
	if _, err := h.eng.RunDueJobs(t.Context()); err != nil {
		t.Fatal(err)
	}
	got := h.wantState(t, r.ID, symbot.StateFailed)
	if !strings.Contains(got.FailReason, "symbot identity reset UALICE") {
		t.Errorf("fail reason %q does not say how to clear it", got.FailReason)
	}
	if h.dir.isMember("00umallory", "GADMIN") || h.dir.isMember("00ualice", "GADMIN") {
		t.Fatalf("granted after the requester's email moved to another Okta user")
	}
	if _, err := h.eng.RunDueJobs(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := len(h.notes.find("alert", "", symbot.EventIdentityConflict)); n != 1 {
		t.Errorf("identity conflict alerts = %d, want 1", n)
	}
}
