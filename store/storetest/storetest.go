// Package storetest is the contract test suite every symbot.Store
// implementation runs:
//
//	func TestContract(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) symbot.Store { return memstore.New() })
//	}
//
// open must return a new, empty store for each call; Run closes it.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/symbot/symbot"
)

// T0 is the base time of the suite's fixtures (UTC, no monotonic reading,
// so stored and returned values compare equal with reflect.DeepEqual).
var T0 = time.Date(2030, 1, 2, 3, 4, 5, 6000, time.UTC)

// Run runs the whole contract suite against stores made by open.
func Run(t *testing.T, open func(t *testing.T) symbot.Store) {
	mk := func(t *testing.T) symbot.Store {
		t.Helper()
		st := open(t)
		t.Cleanup(func() { st.Close() })
		return st
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, st symbot.Store)
	}{
		{"RequestRoundTrip", testRequestRoundTrip},
		{"RequestCopies", testRequestCopies},
		{"RequestNotFound", testRequestNotFound},
		{"Indexes", testIndexes},
		{"OpenRequests", testOpenRequests},
		{"RequestReader", testRequestReader},
		{"DeadlineOrder", testDeadlineOrder},
		{"Scheduled", testScheduled},
		{"ReviewDeadline", testReviewDeadline},
		{"DueRequestsLimit", testDueRequestsLimit},
		{"NextSeq", testNextSeq},
		{"Jobs", testJobs},
		{"ManyRowsInOneUpdate", testManyRowsInOneUpdate},
		{"JobStats", testJobStats},
		{"ClaimJobs", testClaimJobs},
		{"ClaimJobsLanes", testClaimJobsLanes},
		{"ClaimJobsRank", testClaimJobsRank},
		{"ClaimJobsWithRequests", testClaimJobsWithRequests},
		{"NextJobTime", testNextJobTime},
		{"ClaimJobsConcurrent", testClaimJobsConcurrent},
		{"UpdateRollback", testUpdateRollback},
		{"UpdatePanicRollback", testUpdatePanicRollback},
		{"ViewRefusesWrites", testViewRefusesWrites},
		{"Audit", testAudit},
		{"AuditRejectsUnlinked", testAuditRejectsUnlinked},
		{"SinkCursor", testSinkCursor},
		{"Records", testRecords},
		{"Identity", testIdentity},
		{"Backup", testBackup},
		{"CancelledContext", testCancelledContext},
		{"BadArguments", testBadArguments},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, mk(t)) })
	}
}

// MustUpdate runs fn in st.Update and fails the test on error.
func MustUpdate(tb testing.TB, st symbot.Store, fn func(symbot.Tx) error) {
	tb.Helper()
	if err := st.Update(context.Background(), fn); err != nil {
		tb.Fatalf("Update: %v", err)
	}
}

// MustView runs fn in st.View and fails the test on error.
func MustView(tb testing.TB, st symbot.Store, fn func(symbot.Tx) error) {
	tb.Helper()
	if err := st.View(context.Background(), fn); err != nil {
		tb.Fatalf("View: %v", err)
	}
}

// MustPut stores the requests in one transaction.
func MustPut(tb testing.TB, st symbot.Store, rs ...*symbot.Request) {
	tb.Helper()
	MustUpdate(tb, st, func(tx symbot.Tx) error {
		for _, r := range rs {
			if err := tx.PutRequest(r); err != nil {
				return err
			}
		}
		return nil
	})
}

// MustGet returns the stored request id.
func MustGet(tb testing.TB, st symbot.Store, id string) *symbot.Request {
	tb.Helper()
	var r *symbot.Request
	MustView(tb, st, func(tx symbot.Tx) (err error) {
		r, err = tx.Request(id)
		return err
	})
	return r
}

// WaitFor waits until cond holds, checking it every millisecond, and fails
// the test when it still does not hold after within. It is the one polling
// wait of the tests that cannot wait on a channel or a synctest bubble.
func WaitFor(tb testing.TB, within time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %s waiting for %s", within, what)
		}
		<-tick.C
	}
}

// AllAudit is a page size that holds every entry a test writes: Tx.Audit
// has no "all".
const AllAudit = 1 << 20

// MustAddJobs adds the jobs in one transaction and returns their ids.
func MustAddJobs(tb testing.TB, st symbot.Store, js ...symbot.Job) []uint64 {
	tb.Helper()
	var ids []uint64
	MustUpdate(tb, st, func(tx symbot.Tx) error {
		ids = nil // Update may run fn more than once
		for i := range js {
			if err := tx.AddJob(&js[i]); err != nil {
				return err
			}
			ids = append(ids, js[i].ID)
		}
		return nil
	})
	return ids
}

// FullRequest returns a request with every field set to a non-zero value.
func FullRequest(id string) *symbot.Request {
	return &symbot.Request{
		ID:        id,
		Flow:      "prod",
		Target:    "admins",
		GroupID:   "00g1",
		Requester: symbot.Person{SlackID: "U1", Name: "Ann", Email: "ann@example.com"},
		Duration:  90 * time.Minute,
		Reason:    "incident 42",
		StartAt:   T0.Add(10 * time.Second),
		State:     symbot.StateActive,
		CreatedAt: T0,
		UpdatedAt: T0.Add(time.Minute),
		Approvals: []symbot.Decision{{By: "U2", Name: "Bob", At: T0.Add(30 * time.Second), Note: "ok", OktaUserID: "00u2"}},
		Transitions: []symbot.Transition{
			{From: symbot.StatePending, To: symbot.StateApproved, By: "U2", At: T0.Add(30 * time.Second), Note: "ok"},
			{From: symbot.StateApproved, To: symbot.StateActive, By: symbot.System, At: T0.Add(time.Minute), Note: "granted"},
		},
		ExtensionOf:     "R0",
		ExtendedBy:      []string{"R8", "R9"},
		TimeoutAt:       T0.Add(time.Hour),
		WarnAt:          T0.Add(80 * time.Minute),
		Warned:          true,
		ExpiresAt:       T0.Add(91 * time.Minute),
		GrantedAt:       T0.Add(time.Minute),
		OktaUserID:      "00u1",
		OktaLogin:       "ann@example.com",
		GrantChecked:    true,
		Preexisting:     true,
		Removed:         true,
		Kept:            true,
		RemovalNote:     "kept: preexisting",
		PrecheckedAt:    T0.Add(20 * time.Second),
		PreOktaUserID:   "00u1",
		PreOktaLogin:    "ann@example.com",
		PreMember:       true,
		FailReason:      "none",
		Message:         symbot.MessageRef{Channel: "C1", TS: "1700000000.000100"},
		Rule:            "oncall",
		RuleApprovals:   2,
		RuleApprovers:   &symbot.Approvers{Users: []string{"U7"}, OktaGroup: "00g7", Anyone: true},
		RuleNote:        "pagerduty unavailable",
		NudgeAt:         T0.Add(20 * time.Minute),
		Escalated:       1,
		Reminders:       2,
		BackupApprovers: []string{"U5"},
		Reposts:         []symbot.MessageRef{{Channel: "C2", TS: "1700000000.000200"}},
		BreakGlass:      true,
		ReviewDue:       T0.Add(2 * time.Hour),
		ReviewAlerts:    3,
		ReviewedBy:      "U3",
		ReviewedAt:      T0.Add(3 * time.Hour),
		ReviewNote:      "seen",
		Nonce:           "0123456789abcdef0123456789abcdef",
	}
}

// zeroFields lists the paths of zero-valued fields in v, recursively.
func zeroFields(v reflect.Value, path string) []string {
	switch v.Kind() {
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(time.Time{}) {
			if v.Interface().(time.Time).IsZero() {
				return []string{path}
			}
			return nil
		}
		var out []string
		for i := range v.NumField() {
			out = append(out, zeroFields(v.Field(i), path+"."+v.Type().Field(i).Name)...)
		}
		return out
	case reflect.Slice:
		if v.Len() == 0 {
			return []string{path}
		}
		var out []string
		for i := range v.Len() {
			out = append(out, zeroFields(v.Index(i), fmt.Sprintf("%s[%d]", path, i))...)
		}
		return out
	}
	if v.IsZero() {
		return []string{path}
	}
	return nil
}

func testRequestRoundTrip(t *testing.T, st symbot.Store) {
	want := FullRequest("R1")
	if z := zeroFields(reflect.ValueOf(*want), "Request"); len(z) > 0 {
		t.Fatalf("FullRequest leaves fields zero, so the round trip would not cover them: %v", z)
	}
	MustPut(t, st, want)
	got := MustGet(t, st, "R1")
	if !reflect.DeepEqual(got, want) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, want)
	}

	// Replace it with a sparse version: no stale field may survive.
	sparse := &symbot.Request{ID: "R1", State: symbot.StateDenied, Requester: symbot.Person{SlackID: "U1"}}
	MustPut(t, st, sparse)
	if got := MustGet(t, st, "R1"); !reflect.DeepEqual(got, sparse) {
		t.Errorf("after replace:\n got %+v\nwant %+v", got, sparse)
	}
	// Jobs and audit entries carry times in a non-UTC zone: stored values must
	// be the same instants.
	zone := time.FixedZone("X", 5*3600)
	ids := MustAddJobs(t, st, symbot.Job{Kind: symbot.JobNotify, RequestID: "R1", Event: symbot.EventGranted,
		To: "U1", Text: "t", Lane: "R1", Attempts: 3, NotBefore: T0.In(zone), LastError: "boom",
		Alerted: true, CreatedAt: T0.In(zone)})
	MustView(t, st, func(tx symbot.Tx) error {
		j, err := tx.Job(ids[0])
		if err != nil {
			return err
		}
		if !j.NotBefore.Equal(T0) || !j.CreatedAt.Equal(T0) {
			t.Errorf("job times: got %v, %v, want %v", j.NotBefore, j.CreatedAt, T0)
		}
		if j.Kind != symbot.JobNotify || j.RequestID != "R1" || j.Event != symbot.EventGranted || j.To != "U1" ||
			j.Text != "t" || j.Lane != "R1" || j.Attempts != 3 || j.LastError != "boom" || !j.Alerted {
			t.Errorf("job round trip: got %+v", j)
		}
		return nil
	})
}

func testRequestCopies(t *testing.T, st symbot.Store) {
	r := FullRequest("R1")
	MustPut(t, st, r)
	r.Approvals[0].Note = "changed by caller"
	r.ExtendedBy[0] = "changed"
	r.Reason = "changed"
	got := MustGet(t, st, "R1")
	if got.Approvals[0].Note != "ok" || got.ExtendedBy[0] != "R8" || got.Reason != "incident 42" {
		t.Errorf("stored request aliases the caller's: got %+v", got)
	}
	got.Transitions[0].Note = "changed by reader"
	got.ExtendedBy[1] = "changed"
	again := MustGet(t, st, "R1")
	if again.Transitions[0].Note != "ok" || again.ExtendedBy[1] != "R9" {
		t.Errorf("returned request aliases the stored one: got %+v", again)
	}
}

func testRequestNotFound(t *testing.T, st symbot.Store) {
	err := st.View(context.Background(), func(tx symbot.Tx) error {
		_, err := tx.Request("nope")
		return err
	})
	if !errors.Is(err, symbot.ErrNotFound) {
		t.Errorf("Request(nope): got %v, want ErrNotFound", err)
	}
	err = st.View(context.Background(), func(tx symbot.Tx) error {
		_, err := tx.Job(12345)
		return err
	})
	if !errors.Is(err, symbot.ErrNotFound) {
		t.Errorf("Job(12345): got %v, want ErrNotFound", err)
	}
	err = st.Update(context.Background(), func(tx symbot.Tx) error {
		return tx.PutRequest(&symbot.Request{})
	})
	if err == nil {
		t.Errorf("PutRequest without ID: got nil error")
	}
}

func ids(rs []*symbot.Request) []string {
	out := []string{}
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return out
}

func req(id, user string, s symbot.State) *symbot.Request {
	return &symbot.Request{ID: id, Requester: symbot.Person{SlackID: user}, State: s}
}

func testIndexes(t *testing.T, st symbot.Store) {
	MustPut(t, st,
		req("R1", "U1", symbot.StatePending),
		req("R2", "U1", symbot.StateActive),
		req("R3", "U2", symbot.StatePending),
		req("R4", "U10", symbot.StatePending), // U1 must not match U10
	)
	check := func(step string, wantUser map[string][]string, wantState map[symbot.State][]string) {
		t.Helper()
		MustView(t, st, func(tx symbot.Tx) error {
			for u, want := range wantUser {
				rs, err := tx.RequestsByRequester(u)
				if err != nil {
					return err
				}
				if got := ids(rs); !slices.Equal(got, want) {
					t.Errorf("%s: RequestsByRequester(%s) = %v, want %v", step, u, got, want)
				}
			}
			for s, want := range wantState {
				rs, err := tx.RequestsByState(s)
				if err != nil {
					return err
				}
				if got := ids(rs); !slices.Equal(got, want) {
					t.Errorf("%s: RequestsByState(%s) = %v, want %v", step, s, got, want)
				}
			}
			return nil
		})
	}
	check("initial",
		map[string][]string{"U1": {"R1", "R2"}, "U2": {"R3"}, "U10": {"R4"}, "U3": {}},
		map[symbot.State][]string{symbot.StatePending: {"R1", "R3", "R4"}, symbot.StateActive: {"R2"}, symbot.StateDenied: {}})

	MustPut(t, st, req("R1", "U1", symbot.StateDenied), req("R3", "U3", symbot.StateActive))
	check("after changes",
		map[string][]string{"U1": {"R1", "R2"}, "U2": {}, "U3": {"R3"}},
		map[symbot.State][]string{symbot.StatePending: {"R4"}, symbot.StateActive: {"R2", "R3"}, symbot.StateDenied: {"R1"}})
	got := MustGet(t, st, "R3")
	if got.Requester.SlackID != "U3" || got.State != symbot.StateActive {
		t.Errorf("R3 after change: got %+v", got)
	}
}

func pending(id string, timeout time.Time) *symbot.Request {
	return &symbot.Request{ID: id, Requester: symbot.Person{SlackID: "U1"}, State: symbot.StatePending, TimeoutAt: timeout}
}

func mustDue(t *testing.T, st symbot.Store, now time.Time, limit int) []string {
	t.Helper()
	var got []string
	MustView(t, st, func(tx symbot.Tx) (err error) {
		got, err = tx.DueRequests(now, limit)
		return err
	})
	return got
}

func mustNext(t *testing.T, st symbot.Store) (string, time.Time, bool) {
	t.Helper()
	var (
		id string
		at time.Time
		ok bool
	)
	MustView(t, st, func(tx symbot.Tx) (err error) {
		id, at, ok, err = tx.NextDeadline()
		return err
	})
	return id, at, ok
}

func testDeadlineOrder(t *testing.T, st symbot.Store) {
	if id, _, ok := mustNext(t, st); ok {
		t.Fatalf("NextDeadline on empty store: got %s, want none", id)
	}
	active := &symbot.Request{ID: "A", Requester: symbot.Person{SlackID: "U1"}, State: symbot.StateActive,
		WarnAt: T0.Add(2 * time.Minute), ExpiresAt: T0.Add(5 * time.Minute)}
	MustPut(t, st,
		pending("P3", T0.Add(3*time.Minute)),
		pending("P2b", T0.Add(2*time.Minute)), // tie with A's warning: ordered by id
		pending("P2a", T0.Add(2*time.Minute)),
		active,
		pending("P0", time.Time{}), // no deadline: not indexed
		&symbot.Request{ID: "D", State: symbot.StateDenied, TimeoutAt: T0}, // final: not indexed
		pending("Pearly", T0.Add(-time.Hour)),
	)
	id, at, ok := mustNext(t, st)
	if !ok || id != "Pearly" || !at.Equal(T0.Add(-time.Hour)) {
		t.Errorf("NextDeadline = %s %v %v, want Pearly %v", id, at, ok, T0.Add(-time.Hour))
	}
	if got, want := mustDue(t, st, T0.Add(10*time.Minute), 0), []string{"Pearly", "A", "P2a", "P2b", "P3"}; !slices.Equal(got, want) {
		t.Errorf("DueRequests(+10m) = %v, want %v", got, want)
	}
	if got, want := mustDue(t, st, T0.Add(2*time.Minute), 0), []string{"Pearly", "A", "P2a", "P2b"}; !slices.Equal(got, want) {
		t.Errorf("DueRequests(+2m, inclusive) = %v, want %v", got, want)
	}
	if got := mustDue(t, st, T0.Add(-2*time.Hour), 0); len(got) != 0 {
		t.Errorf("DueRequests(-2h) = %v, want none", got)
	}

	// Moving deadlines re-keys the index: the old key must be gone.
	active.Warned = true // next deadline is now the expiry
	p := pending("Pearly", T0.Add(4*time.Minute))
	MustPut(t, st, active, p)
	if got, want := mustDue(t, st, T0.Add(10*time.Minute), 0), []string{"P2a", "P2b", "P3", "Pearly", "A"}; !slices.Equal(got, want) {
		t.Errorf("DueRequests after re-key = %v, want %v", got, want)
	}
	// Leaving a state with a deadline removes the request from the index.
	MustPut(t, st, &symbot.Request{ID: "P2a", State: symbot.StateDenied, TimeoutAt: T0.Add(2 * time.Minute)})
	MustPut(t, st, &symbot.Request{ID: "A", State: symbot.StateExpired, ExpiresAt: T0.Add(5 * time.Minute)})
	if got, want := mustDue(t, st, T0.Add(10*time.Minute), 0), []string{"P2b", "P3", "Pearly"}; !slices.Equal(got, want) {
		t.Errorf("DueRequests after final states = %v, want %v", got, want)
	}
	id, at, ok = mustNext(t, st)
	if !ok || id != "P2b" || !at.Equal(T0.Add(2*time.Minute)) {
		t.Errorf("NextDeadline = %s %v %v, want P2b %v", id, at, ok, T0.Add(2*time.Minute))
	}
}

// testScheduled: a request approved ahead of its start is open, and its
// deadline is the start time until it leaves the state.
func testScheduled(t *testing.T, st symbot.Store) {
	s := req("S1", "U1", symbot.StateScheduled)
	s.StartAt = T0.Add(3 * time.Hour)
	MustPut(t, st, s, pending("P1", T0.Add(time.Hour)))
	MustView(t, st, func(tx symbot.Tx) error { mustOpen(t, tx, "scheduled", "U1", "P1", "S1"); return nil })
	if got, want := mustDue(t, st, T0.Add(3*time.Hour), 0), []string{"P1", "S1"}; !slices.Equal(got, want) {
		t.Errorf("DueRequests(start) = %v, want %v", got, want)
	}
	if got := mustDue(t, st, T0.Add(3*time.Hour-time.Nanosecond), 0); slices.Contains(got, "S1") {
		t.Errorf("DueRequests(before the start) = %v, want no S1", got)
	}
	// At the start it is approved (the grant job takes over): no deadline.
	s.State = symbot.StateApproved
	MustPut(t, st, s)
	if got, want := mustDue(t, st, T0.Add(4*time.Hour), 0), []string{"P1"}; !slices.Equal(got, want) {
		t.Errorf("DueRequests after the start = %v, want %v", got, want)
	}
	MustView(t, st, func(tx symbot.Tx) error { mustOpen(t, tx, "started", "U1", "P1", "S1"); return nil })
	s.State = symbot.StateCancelled
	MustPut(t, st, s)
	MustView(t, st, func(tx symbot.Tx) error { mustOpen(t, tx, "cancelled", "U1", "P1"); return nil })
}

// testReviewDeadline: unreviewed break-glass access stays in the deadline
// index at its review time, in a final state too, until it is reviewed.
func testReviewDeadline(t *testing.T, st symbot.Store) {
	r := req("B1", "U1", symbot.StateExpired)
	r.BreakGlass, r.ReviewDue = true, T0.Add(time.Hour)
	MustPut(t, st, r)
	if got, want := mustDue(t, st, T0.Add(time.Hour), 0), []string{"B1"}; !slices.Equal(got, want) {
		t.Errorf("DueRequests(review due) = %v, want %v", got, want)
	}
	r.ReviewDue = T0.Add(2 * time.Hour) // alerted again: the next reminder
	MustPut(t, st, r)
	if got := mustDue(t, st, T0.Add(time.Hour), 0); len(got) != 0 {
		t.Errorf("DueRequests after the reminder = %v, want none", got)
	}
	r.ReviewedBy, r.ReviewDue = "U2", time.Time{}
	MustPut(t, st, r)
	if got := mustDue(t, st, T0.Add(24*time.Hour), 0); len(got) != 0 {
		t.Errorf("DueRequests after the review = %v, want none", got)
	}
}

func testDueRequestsLimit(t *testing.T, st symbot.Store) {
	var rs []*symbot.Request
	var want []string
	for i := range 25 {
		id := fmt.Sprintf("R%02d", i)
		rs = append(rs, pending(id, T0.Add(time.Duration(i)*time.Second)))
		want = append(want, id)
	}
	MustPut(t, st, rs...)
	if got := mustDue(t, st, T0.Add(time.Hour), 10); !slices.Equal(got, want[:10]) {
		t.Errorf("DueRequests limit 10 = %v, want %v", got, want[:10])
	}
	if got := mustDue(t, st, T0.Add(time.Hour), 0); !slices.Equal(got, want) {
		t.Errorf("DueRequests limit 0 = %v, want all %v", got, want)
	}
	if got := mustDue(t, st, T0.Add(4*time.Second), 10); !slices.Equal(got, want[:5]) {
		t.Errorf("DueRequests(+4s) = %v, want %v", got, want[:5])
	}
}

func testNextSeq(t *testing.T, st symbot.Store) {
	var got []uint64
	MustUpdate(t, st, func(tx symbot.Tx) error {
		got = nil // Update may run fn more than once
		for _, name := range []string{"a", "a", "b", "a"} {
			n, err := tx.NextSeq(name)
			if err != nil {
				return err
			}
			got = append(got, n)
		}
		return nil
	})
	if want := []uint64{1, 2, 1, 3}; !slices.Equal(got, want) {
		t.Errorf("NextSeq = %v, want %v", got, want)
	}
	MustUpdate(t, st, func(tx symbot.Tx) error {
		n, err := tx.NextSeq("b")
		if n != 2 {
			t.Errorf("NextSeq(b) in a new transaction = %d, want 2", n)
		}
		return err
	})
}

func mustJobs(t *testing.T, st symbot.Store) []symbot.Job {
	t.Helper()
	var js []symbot.Job
	MustView(t, st, func(tx symbot.Tx) (err error) {
		js, err = tx.Jobs()
		return err
	})
	return js
}

func jobIDs(js []symbot.Job) []uint64 {
	out := []uint64{}
	for _, j := range js {
		out = append(out, j.ID)
	}
	return out
}

func testJobs(t *testing.T, st symbot.Store) {
	got := MustAddJobs(t, st, symbot.Job{Kind: symbot.JobPost}, symbot.Job{Kind: symbot.JobGrant}, symbot.Job{Kind: symbot.JobNotify})
	if want := []uint64{1, 2, 3}; !slices.Equal(got, want) {
		t.Fatalf("AddJob ids = %v, want %v", got, want)
	}
	MustUpdate(t, st, func(tx symbot.Tx) error { return tx.DeleteJob(3) })
	if got := MustAddJobs(t, st, symbot.Job{Kind: symbot.JobAlert}); got[0] != 4 {
		t.Errorf("AddJob after deleting the last job: id %d, want 4 (ids are never reused)", got[0])
	}
	MustUpdate(t, st, func(tx symbot.Tx) error {
		j, err := tx.Job(2)
		if err != nil {
			return err
		}
		j.Attempts = 7
		j.LastError = "timeout"
		j.NotBefore = T0
		return tx.UpdateJob(j)
	})
	js := mustJobs(t, st)
	if got, want := jobIDs(js), []uint64{1, 2, 4}; !slices.Equal(got, want) {
		t.Fatalf("Jobs ids = %v, want %v", got, want)
	}
	if j := js[1]; j.Kind != symbot.JobGrant || j.Attempts != 7 || j.LastError != "timeout" || !j.NotBefore.Equal(T0) {
		t.Errorf("updated job = %+v", j)
	}
	err := st.Update(context.Background(), func(tx symbot.Tx) error { return tx.UpdateJob(&symbot.Job{ID: 99, Kind: symbot.JobPost}) })
	if !errors.Is(err, symbot.ErrNotFound) {
		t.Errorf("UpdateJob(99): got %v, want ErrNotFound", err)
	}
	err = st.Update(context.Background(), func(tx symbot.Tx) error { return tx.DeleteJob(99) })
	if !errors.Is(err, symbot.ErrNotFound) {
		t.Errorf("DeleteJob(99): got %v, want ErrNotFound", err)
	}
	if got := jobIDs(mustJobs(t, st)); !slices.Equal(got, []uint64{1, 2, 4}) {
		t.Errorf("after failed updates: Jobs ids = %v", got)
	}
}

// testManyRowsInOneUpdate: one transaction that writes many rows of each
// kind (a store may send them as one statement per kind) keeps every row's
// writes in their order and every field of every row, NULL times included.
func testManyRowsInOneUpdate(t *testing.T, st symbot.Store) {
	zone := time.FixedZone("X", 5*3600)
	full := func(i int) symbot.Job {
		return symbot.Job{Kind: symbot.JobNotify, RequestID: fmt.Sprintf("R%d", i), Event: symbot.EventGranted, To: "U1", Text: fmt.Sprintf("t%d", i),
			Lane: fmt.Sprintf("L%d", i), Attempts: i, NotBefore: T0.Add(time.Duration(i) * time.Second).In(zone), LastError: "boom", Alerted: true,
			CreatedAt: T0.In(zone), LeaseOwner: "w1", LeaseUntil: T0.Add(time.Minute), LeaseToken: uint64(i)}
	}
	old := MustAddJobs(t, st, full(1), full(2), symbot.Job{Kind: symbot.JobPost})
	key := TestAuditKey(t)
	var want []*symbot.Request
	var wantJobs []symbot.Job
	var entries []symbot.AuditEntry
	MustUpdate(t, st, func(tx symbot.Tx) error {
		want, wantJobs, entries = nil, nil, nil // Update may run fn more than once
		for i := range 4 {
			r := FullRequest(fmt.Sprintf("R%d", i))
			if i%2 == 1 {
				r.State, r.ExpiresAt = symbot.StateExpired, time.Time{} // no deadline
			}
			if err := tx.PutRequest(r); err != nil {
				return err
			}
			want = append(want, r)
		}
		for i := range 3 {
			j := full(10 + i)
			if i == 1 {
				j = symbot.Job{Kind: symbot.JobRevoke, RequestID: "R1"} // zero times: NULL
			}
			if err := tx.AddJob(&j); err != nil {
				return err
			}
			wantJobs = append(wantJobs, j)
			e := symbot.AuditEntry{At: T0.Add(time.Duration(i) * time.Second), RequestID: j.RequestID, Actor: "U1", Action: "add", Detail: fmt.Sprint(i)}
			if err := symbot.AppendAudit(tx, key, &e); err != nil {
				return err
			}
			entries = append(entries, e)
		}
		// Change a request again, update a job added above and an older
		// one, delete one of each, after the other writes of their rows.
		want[0].Reason = "changed"
		if err := tx.PutRequest(want[0]); err != nil {
			return err
		}
		var upd []*symbot.Job
		for _, id := range []uint64{wantJobs[0].ID, old[0]} {
			j, err := tx.Job(id)
			if err != nil {
				return err
			}
			upd = append(upd, j)
		}
		for _, j := range upd {
			id := j.ID
			j.Attempts, j.LastError, j.NotBefore, j.LeaseUntil = 99, "again", time.Time{}, T0.Add(time.Hour)
			if err := tx.UpdateJob(j); err != nil {
				return err
			}
			if id == wantJobs[0].ID {
				wantJobs[0] = *j
			}
		}
		if err := tx.DeleteJob(wantJobs[2].ID); err != nil {
			return err
		}
		if err := tx.DeleteJob(old[1]); err != nil {
			return err
		}
		wantJobs = wantJobs[:2]
		return nil
	})
	for _, r := range want {
		if got := MustGet(t, st, r.ID); !reflect.DeepEqual(got, r) {
			t.Errorf("request %s:\n got %+v\nwant %+v", r.ID, got, r)
		}
	}
	js := mustJobs(t, st)
	if got, want := jobIDs(js), []uint64{old[0], old[2], wantJobs[0].ID, wantJobs[1].ID}; !slices.Equal(got, want) {
		t.Fatalf("job ids = %v, want %v", got, want)
	}
	if j := js[0]; j.Attempts != 99 || j.LastError != "again" || !j.NotBefore.IsZero() || !j.LeaseUntil.Equal(T0.Add(time.Hour)) || j.Text != "t1" {
		t.Errorf("older job after the update: %+v", j)
	}
	for i, w := range wantJobs {
		if got := js[2+i]; !reflect.DeepEqual(utcTimes(got), utcTimes(w)) {
			t.Errorf("job %d:\n got %+v\nwant %+v", w.ID, got, w)
		}
	}
	var got []symbot.AuditEntry
	MustView(t, st, func(tx symbot.Tx) (err error) {
		got, err = tx.Audit(0, AllAudit)
		return err
	})
	for i := range got {
		if i < len(entries) && got[i].At.Equal(entries[i].At) {
			got[i].At = entries[i].At
		}
	}
	if !reflect.DeepEqual(got, entries) {
		t.Errorf("audit:\n got %+v\nwant %+v", got, entries)
	}
}

// utcTimes returns j with its times in UTC (stores may keep the zone
// given or not; the instants must be the same).
func utcTimes(j symbot.Job) symbot.Job {
	for _, t := range []*time.Time{&j.NotBefore, &j.CreatedAt, &j.LeaseUntil} {
		if !t.IsZero() {
			*t = t.UTC()
		}
	}
	return j
}

func mustClaim(t *testing.T, st symbot.Store, owner string, now time.Time, lease time.Duration, max int) []uint64 {
	t.Helper()
	js, err := st.ClaimJobs(context.Background(), owner, now, lease, max)
	if err != nil {
		t.Fatalf("ClaimJobs: %v", err)
	}
	for _, j := range js {
		if j.LeaseOwner != owner || !j.LeaseUntil.Equal(now.Add(lease)) {
			t.Errorf("claimed job %d: lease %q until %v, want %q until %v", j.ID, j.LeaseOwner, j.LeaseUntil, owner, now.Add(lease))
		}
	}
	return jobIDs(js)
}

// testClaimJobsWithRequests: a store that implements
// symbot.RequestClaimer claims as ClaimJobs does (rank and ID order,
// leases, skipped leased jobs) and returns, for the claimed jobs of the
// kinds asked for, their requests as stored, nil for the others and for
// requests it does not find.
func testClaimJobsWithRequests(t *testing.T, st symbot.Store) {
	rc, ok := st.(symbot.RequestClaimer)
	if !ok {
		t.Skipf("%T does not implement symbot.RequestClaimer", st)
	}
	r1 := req("R1", "U1", symbot.StateExpired)
	r1.GroupID, r1.OktaUserID, r1.GrantChecked = "G1", "00u1", true
	MustPut(t, st, r1, req("R2", "U2", symbot.StateRevoked))
	MustAddJobs(t, st,
		symbot.Job{Kind: symbot.JobUpdate, RequestID: "R1", NotBefore: T0},                // 1
		symbot.Job{Kind: symbot.JobRevoke, RequestID: "R1", NotBefore: T0},                // 2
		symbot.Job{Kind: symbot.JobRevoke, RequestID: "R404"},                             // 3: no such request
		symbot.Job{Kind: symbot.JobGrant, RequestID: "R2"},                                // 4: not asked for
		symbot.Job{Kind: symbot.JobRevoke, RequestID: "R2"},                               // 5
		symbot.Job{Kind: symbot.JobRevoke, RequestID: "R2", NotBefore: T0.Add(time.Hour)}, // 6: not due
	)
	kinds := []symbot.JobKind{symbot.JobRevoke}
	js, reqs, err := rc.ClaimJobsWithRequests(t.Context(), "w1", T0, time.Minute, 3, kinds)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := jobIDs(js), []uint64{2, 3, 5}; !slices.Equal(got, want) {
		t.Fatalf("first claim = %v, want %v (revocations first, max 3)", got, want)
	}
	if len(reqs) != len(js) {
		t.Fatalf("first claim: %d requests for %d jobs", len(reqs), len(js))
	}
	for i, want := range []*symbot.Request{MustGet(t, st, "R1"), nil, MustGet(t, st, "R2")} {
		if !reflect.DeepEqual(reqs[i], want) {
			t.Errorf("request of job %d = %+v, want %+v", js[i].ID, reqs[i], want)
		}
		if js[i].LeaseOwner != "w1" || !js[i].LeaseUntil.Equal(T0.Add(time.Minute)) || js[i].LeaseToken == 0 {
			t.Errorf("job %d lease = %q until %v token %d, want w1 until %v and a token", js[i].ID, js[i].LeaseOwner, js[i].LeaseUntil, js[i].LeaseToken, T0.Add(time.Minute))
		}
	}
	js, reqs, err = rc.ClaimJobsWithRequests(t.Context(), "w2", T0, time.Minute, 10, kinds)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := jobIDs(js), []uint64{4, 1}; !slices.Equal(got, want) {
		t.Fatalf("second claim = %v, want %v (leased jobs skipped, grants before Slack jobs)", got, want)
	}
	if len(reqs) != 2 || reqs[0] != nil || reqs[1] != nil {
		t.Errorf("second claim read requests %v, want none (no revocation)", reqs)
	}
	if js, reqs, err := rc.ClaimJobsWithRequests(t.Context(), "w2", T0, time.Minute, 10, kinds); err != nil || len(js) != 0 || len(reqs) != 0 {
		t.Errorf("third claim = %v, %v, %v; want nothing", jobIDs(js), reqs, err)
	}
}

func testClaimJobs(t *testing.T, st symbot.Store) {
	if got := mustClaim(t, st, "w1", T0, time.Minute, 10); len(got) != 0 {
		t.Errorf("ClaimJobs on empty store = %v", got)
	}
	MustAddJobs(t, st,
		symbot.Job{Kind: symbot.JobPost, NotBefore: T0},                     // 1 due
		symbot.Job{Kind: symbot.JobPost, NotBefore: T0.Add(time.Hour)},      // 2 later
		symbot.Job{Kind: symbot.JobPost},                                    // 3 due (zero NotBefore)
		symbot.Job{Kind: symbot.JobPost, NotBefore: T0.Add(-time.Hour)},     // 4 due
		symbot.Job{Kind: symbot.JobPost, NotBefore: T0.Add(-2 * time.Hour)}, // 5 due
	)
	if got, want := mustClaim(t, st, "w1", T0, time.Minute, 2), []uint64{1, 3}; !slices.Equal(got, want) {
		t.Errorf("first claim = %v, want %v (ID order, max 2)", got, want)
	}
	if got, want := mustClaim(t, st, "w2", T0, time.Minute, 10), []uint64{4, 5}; !slices.Equal(got, want) {
		t.Errorf("second claim = %v, want %v (leased jobs skipped)", got, want)
	}
	// The lease is persisted.
	MustView(t, st, func(tx symbot.Tx) error {
		j, err := tx.Job(1)
		if err != nil {
			return err
		}
		if j.LeaseOwner != "w1" || !j.LeaseUntil.Equal(T0.Add(time.Minute)) {
			t.Errorf("stored job 1 lease = %q until %v", j.LeaseOwner, j.LeaseUntil)
		}
		return nil
	})
	if got := mustClaim(t, st, "w2", T0.Add(59*time.Second), time.Minute, 10); len(got) != 0 {
		t.Errorf("claim before leases end = %v, want none", got)
	}
	// Expired leases may be claimed again, with a new fencing token.
	tokens := func() map[uint64]uint64 {
		out := map[uint64]uint64{}
		for _, j := range mustJobs(t, st) {
			out[j.ID] = j.LeaseToken
		}
		return out
	}
	before := tokens()
	if got, want := mustClaim(t, st, "w3", T0.Add(time.Minute), time.Minute, 10), []uint64{1, 3, 4, 5}; !slices.Equal(got, want) {
		t.Errorf("claim after leases end = %v, want %v", got, want)
	}
	after := tokens()
	for _, id := range []uint64{1, 3, 4, 5} {
		if after[id] <= before[id] || before[id] == 0 {
			t.Errorf("job %d lease token %d after its first claim and %d after the second: want a non-zero token that grows with each claim", id, before[id], after[id])
		}
	}
	if after[2] != 0 {
		t.Errorf("job 2 was never claimed but has lease token %d", after[2])
	}
	// Releasing a lease with UpdateJob (reschedule) makes it claimable at NotBefore.
	MustUpdate(t, st, func(tx symbot.Tx) error {
		j, err := tx.Job(4)
		if err != nil {
			return err
		}
		j.LeaseOwner, j.LeaseUntil = "", time.Time{}
		j.NotBefore = T0.Add(90 * time.Second)
		return tx.UpdateJob(j)
	})
	if got := mustClaim(t, st, "w4", T0.Add(80*time.Second), time.Minute, 10); len(got) != 0 {
		t.Errorf("claim before rescheduled time = %v, want none", got)
	}
	if got, want := mustClaim(t, st, "w4", T0.Add(90*time.Second), time.Minute, 10), []uint64{4}; !slices.Equal(got, want) {
		t.Errorf("claim at rescheduled time = %v, want %v", got, want)
	}
	// Deleted jobs are never claimed.
	MustUpdate(t, st, func(tx symbot.Tx) error { return tx.DeleteJob(2) })
	if got, want := mustClaim(t, st, "w5", T0.Add(2*time.Hour), time.Minute, 10), []uint64{1, 3, 4, 5}; !slices.Equal(got, want) {
		t.Errorf("claim after delete = %v, want %v", got, want)
	}
	if _, err := st.ClaimJobs(context.Background(), "", T0, time.Minute, 1); err == nil {
		t.Errorf("ClaimJobs with empty owner: got nil error")
	}
	if _, err := st.ClaimJobs(context.Background(), "w", T0, 0, 1); err == nil {
		t.Errorf("ClaimJobs with zero lease: got nil error")
	}
	// max 0 claims nothing: the due jobs stay claimable.
	if js, err := st.ClaimJobs(t.Context(), "w6", T0.Add(3*time.Hour), time.Minute, 0); err != nil || len(js) != 0 {
		t.Errorf("ClaimJobs with max 0 = %v, %v; want none and no error", jobIDs(js), err)
	}
	if got, want := mustClaim(t, st, "w7", T0.Add(3*time.Hour), time.Minute, 10), []uint64{1, 3, 4, 5}; !slices.Equal(got, want) {
		t.Errorf("claim after a claim of max 0 = %v, want %v", got, want)
	}
}

// testClaimJobsRank: due jobs are claimed in symbot.ClaimRank order of
// their kinds (revocations, then grants, then Slack jobs) and in ID order
// within a rank, and returned in that order; a lane still yields only its
// lowest ID, whatever its rank. Without the ranks, removals of expired
// access wait behind every Slack job queued before them.
func testClaimJobsRank(t *testing.T, st symbot.Store) {
	MustAddJobs(t, st,
		symbot.Job{Kind: symbot.JobNotify, Lane: "dm:R1"},                     // 1
		symbot.Job{Kind: symbot.JobUpdate, Lane: "msg:R1"},                    // 2
		symbot.Job{Kind: symbot.JobGrant},                                     // 3
		symbot.Job{Kind: symbot.JobAlert},                                     // 4
		symbot.Job{Kind: symbot.JobRevoke},                                    // 5
		symbot.Job{Kind: symbot.JobPost},                                      // 6
		symbot.Job{Kind: symbot.JobGrant},                                     // 7
		symbot.Job{Kind: symbot.JobRevoke},                                    // 8
		symbot.Job{Kind: symbot.JobRevoke, NotBefore: T0.Add(time.Hour)},      // 9: not due
		symbot.Job{Kind: symbot.JobNotify, Lane: "L"},                         // 10: heads lane L
		symbot.Job{Kind: symbot.JobRevoke, Lane: "L"},                         // 11: behind 10 in its lane
		symbot.Job{Kind: symbot.JobRepost, Lane: "msg:R1"},                    // 12: behind 2
		symbot.Job{Kind: symbot.JobRevoke, NotBefore: T0.Add(-time.Hour)},     // 13
		symbot.Job{Kind: symbot.JobUpdate, NotBefore: T0.Add(-2 * time.Hour)}, // 14
	)
	if got, want := mustClaim(t, st, "w1", T0, time.Minute, 3), []uint64{5, 8, 13}; !slices.Equal(got, want) {
		t.Errorf("first claim = %v, want %v (revocations first, in ID order)", got, want)
	}
	if got, want := mustClaim(t, st, "w1", T0, time.Minute, 4), []uint64{3, 7, 1, 2}; !slices.Equal(got, want) {
		t.Errorf("second claim = %v, want %v (grants next, then the rest in ID order)", got, want)
	}
	if got, want := mustClaim(t, st, "w1", T0, time.Minute, 10), []uint64{4, 6, 10, 14}; !slices.Equal(got, want) {
		t.Errorf("third claim = %v, want %v (lanes yield only their lowest ID, whatever the rank)", got, want)
	}
	// Once the lane heads are done, the jobs behind them come by rank.
	MustUpdate(t, st, func(tx symbot.Tx) error {
		for _, id := range []uint64{2, 10} {
			if err := tx.DeleteJob(id); err != nil {
				return err
			}
		}
		return nil
	})
	if got, want := mustClaim(t, st, "w2", T0, time.Minute, 10), []uint64{11, 12}; !slices.Equal(got, want) {
		t.Errorf("claim after lane heads done = %v, want %v", got, want)
	}
	// A leased revocation is not claimed ahead of anything; when its lease
	// ends it goes first again.
	if got, want := mustClaim(t, st, "w3", T0.Add(2*time.Hour), time.Minute, 2), []uint64{5, 8}; !slices.Equal(got, want) {
		t.Errorf("claim after leases end = %v, want %v", got, want)
	}
}

func testClaimJobsLanes(t *testing.T, st symbot.Store) {
	MustAddJobs(t, st,
		symbot.Job{Kind: symbot.JobGrant, Lane: "R1", NotBefore: T0.Add(time.Hour)},  // 1: lane head, not due: blocks 2
		symbot.Job{Kind: symbot.JobNotify, Lane: "R1"},                               // 2
		symbot.Job{Kind: symbot.JobGrant, Lane: "R2"},                                // 3: lane head
		symbot.Job{Kind: symbot.JobNotify, Lane: "R2"},                               // 4: behind 3
		symbot.Job{Kind: symbot.JobNotify},                                           // 5: no lane
		symbot.Job{Kind: symbot.JobNotify, Lane: "R3", NotBefore: T0.Add(time.Hour)}, // 6
		symbot.Job{Kind: symbot.JobNotify, Lane: "R3"},                               // 7: behind 6
	)
	if got, want := mustClaim(t, st, "w1", T0, time.Minute, 10), []uint64{3, 5}; !slices.Equal(got, want) {
		t.Errorf("claim = %v, want %v", got, want)
	}
	// 3 is leased: it still blocks 4, even after time passes but before the lease ends.
	if got := mustClaim(t, st, "w1", T0.Add(30*time.Second), time.Minute, 10); len(got) != 0 {
		t.Errorf("claim while lane head leased = %v, want none", got)
	}
	MustUpdate(t, st, func(tx symbot.Tx) error { return tx.DeleteJob(3) })
	if got, want := mustClaim(t, st, "w1", T0.Add(30*time.Second), time.Minute, 10), []uint64{4}; !slices.Equal(got, want) {
		t.Errorf("claim after lane head done = %v, want %v", got, want)
	}
	// One job per lane per claim even when several are due; expired leases
	// (4 and 5) are claimable again.
	if got, want := mustClaim(t, st, "w1", T0.Add(2*time.Hour), time.Minute, 10), []uint64{1, 4, 5, 6}; !slices.Equal(got, want) {
		t.Errorf("claim with whole lanes due = %v, want %v", got, want)
	}
}

func mustNextJob(t *testing.T, st symbot.Store) (time.Time, bool) {
	t.Helper()
	at, ok, err := st.NextJobTime(context.Background())
	if err != nil {
		t.Fatalf("NextJobTime: %v", err)
	}
	return at, ok
}

func testNextJobTime(t *testing.T, st symbot.Store) {
	if at, ok := mustNextJob(t, st); ok {
		t.Fatalf("NextJobTime on empty store = %v, want none", at)
	}
	MustAddJobs(t, st,
		symbot.Job{Kind: symbot.JobPost, NotBefore: T0.Add(time.Hour)},               // 1
		symbot.Job{Kind: symbot.JobPost, NotBefore: T0.Add(10 * time.Minute)},        // 2
		symbot.Job{Kind: symbot.JobGrant, Lane: "L", NotBefore: T0.Add(time.Minute)}, // 3
		symbot.Job{Kind: symbot.JobNotify, Lane: "L", NotBefore: T0},                 // 4: behind 3
	)
	// 4 is blocked behind 3, so the earliest claimable time is 3's (a store
	// may report 4's earlier time too: an early wake-up is harmless).
	if at, ok := mustNextJob(t, st); !ok || at.After(T0.Add(time.Minute)) {
		t.Errorf("NextJobTime = %v %v, want at most %v", at, ok, T0.Add(time.Minute))
	}
	MustUpdate(t, st, func(tx symbot.Tx) error { return tx.DeleteJob(3) })
	if at, ok := mustNextJob(t, st); !ok || !at.Equal(T0) {
		t.Errorf("NextJobTime after lane head done = %v %v, want %v", at, ok, T0)
	}
	if got, want := mustClaim(t, st, "w", T0, 15*time.Minute, 10), []uint64{4}; !slices.Equal(got, want) {
		t.Fatalf("claim = %v, want %v", got, want)
	}
	// 4 is leased until +15m; 2 is due at +10m.
	if at, ok := mustNextJob(t, st); !ok || !at.Equal(T0.Add(10*time.Minute)) {
		t.Errorf("NextJobTime after claim = %v %v, want %v", at, ok, T0.Add(10*time.Minute))
	}
	MustUpdate(t, st, func(tx symbot.Tx) error { return tx.DeleteJob(2) })
	if at, ok := mustNextJob(t, st); !ok || !at.Equal(T0.Add(15*time.Minute)) {
		t.Errorf("NextJobTime = %v %v, want the lease end %v", at, ok, T0.Add(15*time.Minute))
	}
}

func testClaimJobsConcurrent(t *testing.T, st symbot.Store) {
	const n, workers = 200, 6
	js := make([]symbot.Job, n)
	for i := range js {
		js[i] = symbot.Job{Kind: symbot.JobNotify}
		if i%4 == 0 {
			js[i].Lane = fmt.Sprintf("L%d", i%3)
		}
	}
	MustAddJobs(t, st, js...)
	var (
		mu     sync.Mutex
		owners = map[uint64]string{}
		wg     sync.WaitGroup
	)
	for w := range workers {
		wg.Go(func() {
			owner := fmt.Sprintf("w%d", w)
			for {
				got, err := st.ClaimJobs(t.Context(), owner, T0, time.Hour, 3)
				if err != nil {
					t.Errorf("ClaimJobs by %s: %v", owner, err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, j := range got {
					if prev, dup := owners[j.ID]; dup {
						t.Errorf("job %d handed to %s and %s", j.ID, prev, owner)
					}
					owners[j.ID] = owner
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	// Every job without a lane plus the head of each lane: lanes L0, L1, L2.
	want := 0
	for i := range js {
		if i%4 != 0 {
			want++
		}
	}
	want += 3
	if len(owners) != want {
		t.Errorf("claimed %d distinct jobs, want %d", len(owners), want)
	}
}

var errBoom = errors.New("boom")

func mustJobStats(t *testing.T, st symbot.Store) symbot.JobStats {
	t.Helper()
	var js symbot.JobStats
	MustView(t, st, func(tx symbot.Tx) (err error) {
		js, err = tx.JobStats()
		return err
	})
	return js
}

// testJobStats checks JobStats against the jobs as they are added, fail,
// are claimed and are deleted, both in later views and inside the writing
// transaction itself.
func testJobStats(t *testing.T, st symbot.Store) {
	if got, want := mustJobStats(t, st), (symbot.JobStats{}); got != want {
		t.Errorf("empty store: JobStats = %+v, want %+v", got, want)
	}
	MustAddJobs(t, st,
		symbot.Job{Kind: symbot.JobRevoke},              // 1: not failed yet
		symbot.Job{Kind: symbot.JobRevoke, Attempts: 2}, // 2: failing
		symbot.Job{Kind: symbot.JobGrant, Attempts: 3},  // 3: failing, but not a revoke
		symbot.Job{Kind: symbot.JobNotify, To: "U1"},    // 4
		symbot.Job{Kind: symbot.JobRevoke, Lane: "l"},   // 5
	)
	if got, want := mustJobStats(t, st), (symbot.JobStats{Pending: 5, FailingRevokes: 1}); got != want {
		t.Errorf("after adding: JobStats = %+v, want %+v", got, want)
	}
	steps := []struct {
		name string
		fn   func(tx symbot.Tx) error
		want symbot.JobStats
	}{
		{"a revoke fails", func(tx symbot.Tx) error {
			j, err := tx.Job(1)
			if err != nil {
				return err
			}
			j.Attempts, j.NotBefore = 1, T0.Add(time.Minute)
			return tx.UpdateJob(j)
		}, symbot.JobStats{Pending: 5, FailingRevokes: 2}},
		{"a failing revoke is done", func(tx symbot.Tx) error { return tx.DeleteJob(2) },
			symbot.JobStats{Pending: 4, FailingRevokes: 1}},
		{"other jobs come and go", func(tx symbot.Tx) error {
			if err := tx.DeleteJob(4); err != nil {
				return err
			}
			return tx.AddJob(&symbot.Job{Kind: symbot.JobAlert})
		}, symbot.JobStats{Pending: 4, FailingRevokes: 1}},
	}
	for _, s := range steps {
		MustUpdate(t, st, func(tx symbot.Tx) error {
			if err := s.fn(tx); err != nil {
				return err
			}
			got, err := tx.JobStats()
			if err != nil {
				return err
			}
			if got != s.want {
				t.Errorf("%s: JobStats in the writing transaction = %+v, want %+v", s.name, got, s.want)
			}
			return nil
		})
		if got := mustJobStats(t, st); got != s.want {
			t.Errorf("%s: JobStats = %+v, want %+v", s.name, got, s.want)
		}
	}
	// A claim changes no count.
	mustClaim(t, st, "w1", T0.Add(time.Hour), time.Minute, 10)
	if got, want := mustJobStats(t, st), (symbot.JobStats{Pending: 4, FailingRevokes: 1}); got != want {
		t.Errorf("after a claim: JobStats = %+v, want %+v", got, want)
	}
	// A rolled-back failure changes nothing.
	err := st.Update(context.Background(), func(tx symbot.Tx) error {
		if err := tx.DeleteJob(1); err != nil {
			return err
		}
		return errors.New("roll back")
	})
	if err == nil {
		t.Fatal("Update that returns an error: got nil")
	}
	if got, want := mustJobStats(t, st), (symbot.JobStats{Pending: 4, FailingRevokes: 1}); got != want {
		t.Errorf("after a rollback: JobStats = %+v, want %+v", got, want)
	}
}

// allStates is every request state, final or not, but scheduled (see
// testScheduled).
var allStates = []symbot.State{
	symbot.StatePending, symbot.StateApproved, symbot.StateActive,
	symbot.StateExpired, symbot.StateRevoked, symbot.StateDenied, symbot.StateCancelled,
	symbot.StateTimedOut, symbot.StateFailed, symbot.StateExtended, symbot.StateRemovedOutside,
}

func mustOpen(t *testing.T, tx symbot.Tx, step, user string, want ...string) {
	t.Helper()
	rs, err := tx.OpenRequests(user)
	if err != nil {
		t.Fatalf("%s: OpenRequests(%s): %v", step, user, err)
	}
	if want == nil {
		want = []string{}
	}
	if got := ids(rs); !slices.Equal(got, want) {
		t.Errorf("%s: OpenRequests(%s) = %v, want %v", step, user, got, want)
	}
	for _, r := range rs {
		if r.State.Final() || r.Requester.SlackID != user {
			t.Errorf("%s: OpenRequests(%s) returned %s in state %s of %s", step, user, r.ID, r.State, r.Requester.SlackID)
		}
	}
}

// testOpenRequests: OpenRequests returns exactly the person's non-final
// requests in ID order, follows every state change and change of requester
// (inside the writing transaction too), and is rolled back with it.
func testOpenRequests(t *testing.T, st symbot.Store) {
	var wantU1 []string
	for i, s := range allStates {
		id := fmt.Sprintf("R%02d", i)
		MustPut(t, st, req(id, "U1", s))
		if !s.Final() {
			wantU1 = append(wantU1, id)
		}
	}
	if len(wantU1) != 3 {
		t.Fatalf("non-final states: %v, want pending, approved and active", wantU1)
	}
	MustPut(t, st, req("X1", "U10", symbot.StatePending)) // U1 must not match U10
	MustView(t, st, func(tx symbot.Tx) error {
		mustOpen(t, tx, "initial", "U1", wantU1...)
		mustOpen(t, tx, "initial", "U10", "X1")
		mustOpen(t, tx, "initial", "U2")
		return nil
	})

	// R00 pending -> approved -> active -> expired; R01 moves to U2.
	MustPut(t, st, req("R00", "U1", symbot.StateApproved))
	MustView(t, st, func(tx symbot.Tx) error { mustOpen(t, tx, "approved", "U1", wantU1...); return nil })
	MustPut(t, st, req("R00", "U1", symbot.StateExpired), req("R01", "U2", symbot.StateApproved))
	MustView(t, st, func(tx symbot.Tx) error {
		mustOpen(t, tx, "after changes", "U1", "R02")
		mustOpen(t, tx, "after changes", "U2", "R01")
		return nil
	})

	// Read-your-writes inside the transaction; then roll it back.
	errBack := errors.New("roll back")
	err := st.Update(context.Background(), func(tx symbot.Tx) error {
		if err := tx.PutRequest(req("R02", "U1", symbot.StateRevoked)); err != nil {
			return err
		}
		if err := tx.PutRequest(req("R09", "U1", symbot.StatePending)); err != nil {
			return err
		}
		mustOpen(t, tx, "inside the transaction", "U1", "R09")
		return errBack
	})
	if !errors.Is(err, errBack) {
		t.Fatalf("Update: got %v, want the fn's error", err)
	}
	MustView(t, st, func(tx symbot.Tx) error { mustOpen(t, tx, "after rollback", "U1", "R02"); return nil })
}

// testRequestReader: a store that implements symbot.RequestReader reads
// with it what Tx.Request and Tx.OpenRequests read in a View, as
// committed when the read is made: never a write still in a
// transaction, and every write committed before.
func testRequestReader(t *testing.T, st symbot.Store) {
	rr, ok := st.(symbot.RequestReader)
	if !ok {
		t.Skipf("%T does not implement symbot.RequestReader", st)
	}
	ctx := t.Context()
	full := req("R00", "U1", symbot.StateActive)
	full.GroupID, full.OktaUserID, full.GrantChecked = "G1", "00u1", true
	full.ExpiresAt = T0.Add(time.Hour)
	MustPut(t, st, full, req("R01", "U1", symbot.StateExpired), req("R02", "U1", symbot.StatePending), req("X1", "U10", symbot.StateActive))
	check := func(step string, wantU1 ...string) {
		t.Helper()
		for _, id := range []string{"R00", "R01", "R02", "X1"} {
			got, err := rr.ReadRequest(ctx, id)
			if err != nil {
				t.Fatalf("%s: ReadRequest(%s): %v", step, id, err)
			}
			if want := MustGet(t, st, id); !reflect.DeepEqual(got, want) {
				t.Errorf("%s: ReadRequest(%s) = %+v, want %+v (View)", step, id, got, want)
			}
		}
		got, err := rr.ReadOpenRequests(ctx, "U1")
		if err != nil {
			t.Fatalf("%s: ReadOpenRequests(U1): %v", step, err)
		}
		if !slices.Equal(ids(got), append([]string{}, wantU1...)) {
			t.Errorf("%s: ReadOpenRequests(U1) = %v, want %v", step, ids(got), wantU1)
		}
		MustView(t, st, func(tx symbot.Tx) error { mustOpen(t, tx, step+" (View)", "U1", wantU1...); return nil })
	}
	check("initial", "R00", "R02")
	if _, err := rr.ReadRequest(ctx, "nope"); !errors.Is(err, symbot.ErrNotFound) {
		t.Errorf("ReadRequest(nope): got %v, want ErrNotFound", err)
	}
	for _, u := range []string{"U10", "U2"} {
		want := map[string][]string{"U10": {"X1"}, "U2": {}}[u]
		if got, err := rr.ReadOpenRequests(ctx, u); err != nil || !slices.Equal(ids(got), want) {
			t.Errorf("ReadOpenRequests(%s) = %v, %v; want %v", u, ids(got), err, want)
		}
	}

	// Inside a transaction, its writes are not read yet; once it has
	// committed, they are.
	var inside []string
	var insideState symbot.State
	MustUpdate(t, st, func(tx symbot.Tx) error {
		if err := tx.PutRequest(req("R00", "U1", symbot.StateExpired)); err != nil {
			return err
		}
		if err := tx.PutRequest(req("R09", "U1", symbot.StateApproved)); err != nil {
			return err
		}
		r, err := rr.ReadRequest(ctx, "R00")
		if err != nil {
			return err
		}
		rs, err := rr.ReadOpenRequests(ctx, "U1")
		insideState, inside = r.State, ids(rs)
		return err
	})
	if want := []string{"R00", "R02"}; insideState != symbot.StateActive || !slices.Equal(inside, want) {
		t.Errorf("reads during a transaction: R00 %s, open %v; want active and %v (the committed state)", insideState, inside, want)
	}
	check("after commit", "R02", "R09")

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := rr.ReadRequest(cctx, "R00"); !errors.Is(err, context.Canceled) {
		t.Errorf("ReadRequest with cancelled context: got %v, want context.Canceled", err)
	}
	if _, err := rr.ReadOpenRequests(cctx, "U1"); !errors.Is(err, context.Canceled) {
		t.Errorf("ReadOpenRequests with cancelled context: got %v, want context.Canceled", err)
	}
}

func mustBeEmpty(t *testing.T, st symbot.Store) {
	t.Helper()
	MustView(t, st, func(tx symbot.Tx) error {
		if _, err := tx.Request("R1"); !errors.Is(err, symbot.ErrNotFound) {
			t.Errorf("request after rollback: got %v, want ErrNotFound", err)
		}
		if rs, _ := tx.RequestsByRequester("U1"); len(rs) != 0 {
			t.Errorf("requester index after rollback: %v", ids(rs))
		}
		if rs, _ := tx.RequestsByState(symbot.StatePending); len(rs) != 0 {
			t.Errorf("state index after rollback: %v", ids(rs))
		}
		if rs, _ := tx.OpenRequests("U1"); len(rs) != 0 {
			t.Errorf("open-requests index after rollback: %v", ids(rs))
		}
		if _, _, ok, _ := tx.NextDeadline(); ok {
			t.Errorf("time index not empty after rollback")
		}
		if js, _ := tx.Jobs(); len(js) != 0 {
			t.Errorf("jobs after rollback: %v", jobIDs(js))
		}
		if es, _ := tx.Audit(0, AllAudit); len(es) != 0 {
			t.Errorf("audit after rollback: %d entries", len(es))
		}
		if seq, hash, _ := tx.AuditHead(); seq != 0 || hash != "" {
			t.Errorf("audit head after rollback: %d %q", seq, hash)
		}
		if _, ok, _ := tx.Identity("U1"); ok {
			t.Errorf("identity after rollback")
		}
		return nil
	})
	if _, ok := mustNextJob(t, st); ok {
		t.Errorf("NextJobTime after rollback: a job is still indexed")
	}
	MustUpdate(t, st, func(tx symbot.Tx) error {
		n, err := tx.NextSeq("req")
		if n != 1 {
			t.Errorf("NextSeq after rollback = %d, want 1", n)
		}
		return err
	})
}

func writeEverything(tx symbot.Tx) error {
	if _, err := tx.NextSeq("req"); err != nil {
		return err
	}
	if err := tx.PutRequest(pending("R1", T0)); err != nil {
		return err
	}
	if err := tx.AddJob(&symbot.Job{Kind: symbot.JobPost, RequestID: "R1"}); err != nil {
		return err
	}
	if err := symbot.AppendAudit(tx, nil, &symbot.AuditEntry{At: T0, RequestID: "R1", Actor: "U1", Action: "request"}); err != nil {
		return err
	}
	return tx.PutIdentity(symbot.Identity{SlackID: "U1", OktaUserID: "00u1", CachedAt: T0})
}

func testUpdateRollback(t *testing.T, st symbot.Store) {
	err := st.Update(context.Background(), func(tx symbot.Tx) error {
		if err := writeEverything(tx); err != nil {
			return err
		}
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("Update: got %v, want the fn's error", err)
	}
}

func testUpdatePanicRollback(t *testing.T, st symbot.Store) {
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Errorf("recovered %v, want the fn's panic", r)
			}
		}()
		st.Update(context.Background(), func(tx symbot.Tx) error {
			if err := writeEverything(tx); err != nil {
				return err
			}
			panic("boom")
		})
	}()
	mustBeEmpty(t, st)
}

func testViewRefusesWrites(t *testing.T, st symbot.Store) {
	MustPut(t, st, pending("R1", T0))
	MustAddJobs(t, st, symbot.Job{Kind: symbot.JobPost})
	MustUpdate(t, st, func(tx symbot.Tx) error { return tx.PutIdentity(symbot.Identity{SlackID: "U0", OktaUserID: "00u0"}) })
	writes := []struct {
		name string
		fn   func(tx symbot.Tx) error
	}{
		{"NextSeq", func(tx symbot.Tx) error { _, err := tx.NextSeq("x"); return err }},
		{"PutRequest", func(tx symbot.Tx) error { return tx.PutRequest(pending("R2", T0)) }},
		{"AddJob", func(tx symbot.Tx) error { return tx.AddJob(&symbot.Job{Kind: symbot.JobPost}) }},
		{"UpdateJob", func(tx symbot.Tx) error { return tx.UpdateJob(&symbot.Job{ID: 1, Kind: symbot.JobGrant}) }},
		{"DeleteJob", func(tx symbot.Tx) error { return tx.DeleteJob(1) }},
		{"AppendAudit", func(tx symbot.Tx) error { return symbot.AppendAudit(tx, nil, &symbot.AuditEntry{At: T0, Action: "x"}) }},
		{"SetSinkCursor", func(tx symbot.Tx) error { return tx.SetSinkCursor("file", 1) }},
		{"PutIdentity", func(tx symbot.Tx) error { return tx.PutIdentity(symbot.Identity{SlackID: "U1"}) }},
		{"DeleteIdentity", func(tx symbot.Tx) error { return tx.DeleteIdentity("U0") }},
	}
	for _, w := range writes {
		t.Run(w.name, func(t *testing.T) {
			var inner error
			err := st.View(context.Background(), func(tx symbot.Tx) error {
				inner = w.fn(tx)
				return nil
			})
			if err != nil {
				t.Fatalf("View: %v", err)
			}
			if inner == nil {
				t.Errorf("%s in View: got nil error, want a refusal", w.name)
			}
		})
	}
	if got := MustGet(t, st, "R1"); got.State != symbot.StatePending {
		t.Errorf("R1 changed by View: %+v", got)
	}
	if got := jobIDs(mustJobs(t, st)); !slices.Equal(got, []uint64{1}) {
		t.Errorf("jobs after View writes = %v, want [1]", got)
	}
	MustView(t, st, func(tx symbot.Tx) error {
		if _, ok, _ := tx.Identity("U1"); ok {
			t.Errorf("identity written in View")
		}
		if _, ok, _ := tx.Identity("U0"); !ok {
			t.Errorf("identity deleted in View")
		}
		if seq, _, _ := tx.AuditHead(); seq != 0 {
			t.Errorf("audit written in View: head %d", seq)
		}
		return nil
	})
}

func testAudit(t *testing.T, st symbot.Store) {
	MustView(t, st, func(tx symbot.Tx) error {
		seq, hash, err := tx.AuditHead()
		if seq != 0 || hash != "" {
			t.Errorf("AuditHead on empty store = %d %q", seq, hash)
		}
		return err
	})
	// The first half is unkeyed (as chains written before keys were), the
	// rest sealed with a key: the store keeps both exactly as given.
	const n = 12
	key := TestAuditKey(t)
	var appended []symbot.AuditEntry
	for i := range n {
		var e symbot.AuditEntry
		k := key
		if i < n/2 {
			k = nil
		}
		MustUpdate(t, st, func(tx symbot.Tx) error {
			e = symbot.AuditEntry{At: T0.Add(time.Duration(i) * time.Second), RequestID: fmt.Sprintf("R%d", i%3),
				Actor: "U1", Action: "approve", Detail: fmt.Sprintf("detail %d", i), Seq: 999, PrevHash: "forged", Hash: "forged"}
			return symbot.AppendAudit(tx, k, &e)
		})
		if e.Seq != uint64(i+1) {
			t.Errorf("AppendAudit assigned seq %d, want %d", e.Seq, i+1)
		}
		appended = append(appended, e)
	}
	var (
		all      []symbot.AuditEntry
		headSeq  uint64
		headHash string
	)
	MustView(t, st, func(tx symbot.Tx) (err error) {
		if all, err = tx.Audit(0, AllAudit); err != nil {
			return err
		}
		headSeq, headHash, err = tx.AuditHead()
		return err
	})
	if len(all) != n {
		t.Fatalf("Audit(0, AllAudit) returned %d entries, want %d", len(all), n)
	}
	for i := range all {
		if !all[i].At.Equal(appended[i].At) {
			t.Errorf("entry %d At = %v, want %v", i+1, all[i].At, appended[i].At)
		}
		all[i].At = appended[i].At
	}
	if !reflect.DeepEqual(all, appended) {
		t.Errorf("Audit(0, AllAudit) differs from what was appended:\n got %+v\nwant %+v", all, appended)
	}
	if all[0].PrevHash != "" {
		t.Errorf("first entry PrevHash = %q, want empty", all[0].PrevHash)
	}
	if headSeq != n || headHash != all[n-1].Hash {
		t.Errorf("AuditHead = %d %q, want %d %q", headSeq, headHash, n, all[n-1].Hash)
	}
	if err := symbot.VerifyAudit(all, headSeq, headHash, key); err != nil {
		t.Errorf("VerifyAudit: %v", err)
	}
	MustView(t, st, func(tx symbot.Tx) error {
		page, err := tx.Audit(5, 3)
		if err != nil {
			return err
		}
		var got []uint64
		for _, e := range page {
			got = append(got, e.Seq)
		}
		if want := []uint64{6, 7, 8}; !slices.Equal(got, want) {
			t.Errorf("Audit(5, 3) seqs = %v, want %v", got, want)
		}
		if page, _ := tx.Audit(n, 10); len(page) != 0 {
			t.Errorf("Audit(%d, 10) = %d entries, want none", n, len(page))
		}
		for _, limit := range []int{0, -1} {
			if page, err := tx.Audit(0, limit); !errors.Is(err, symbot.ErrInvalidRequest) || len(page) != 0 {
				t.Errorf("Audit(0, %d) = %d entries, %v; want none and ErrInvalidRequest (there is no \"all\")", limit, len(page), err)
			}
		}
		return nil
	})
	// A forged chain (an edited entry) fails verification: the suite's data is
	// what VerifyAudit sees.
	all[3].Detail = "edited"
	var ae *symbot.AuditError
	if err := symbot.VerifyAudit(all, headSeq, headHash, key); !errors.As(err, &ae) || ae.Seq != 4 {
		t.Errorf("VerifyAudit of an edited copy: got %v, want an AuditError at seq 4", err)
	}
}

// TestAuditKey returns a fixed audit key for tests.
func TestAuditKey(tb testing.TB) *symbot.AuditKey {
	tb.Helper()
	k, err := symbot.NewAuditKey([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// testAuditRejectsUnlinked: AppendAudit stores only an entry that extends
// the head; a rejected entry leaves the chain as it was.
func testAuditRejectsUnlinked(t *testing.T, st symbot.Store) {
	MustUpdate(t, st, func(tx symbot.Tx) error {
		return symbot.AppendAudit(tx, nil, &symbot.AuditEntry{At: T0, Action: "first"})
	})
	var head string
	MustView(t, st, func(tx symbot.Tx) (err error) { _, head, err = tx.AuditHead(); return err })
	tests := []struct {
		name string
		e    symbot.AuditEntry
	}{
		{"seq reused", symbot.AuditEntry{Seq: 1, PrevHash: head, Hash: "x"}},
		{"seq skips", symbot.AuditEntry{Seq: 3, PrevHash: head, Hash: "x"}},
		{"wrong prev", symbot.AuditEntry{Seq: 2, PrevHash: "other", Hash: "x"}},
		{"not sealed", symbot.AuditEntry{Seq: 2, PrevHash: head}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := tt.e
			if err := st.Update(t.Context(), func(tx symbot.Tx) error { return tx.AppendAudit(&e) }); err == nil {
				t.Errorf("AppendAudit(%+v) = nil, want an error", tt.e)
			}
		})
	}
	MustView(t, st, func(tx symbot.Tx) error {
		seq, h, err := tx.AuditHead()
		if seq != 1 || h != head {
			t.Errorf("head after rejected appends = %d %q, want 1 %q", seq, h, head)
		}
		return err
	})
}

// testSinkCursor: one durable cursor per sink name, starting at 0, that
// never moves back, and rolls back with its transaction.
func testSinkCursor(t *testing.T, st symbot.Store) {
	cursor := func(name string) uint64 {
		t.Helper()
		var got uint64
		MustView(t, st, func(tx symbot.Tx) (err error) { got, err = tx.SinkCursor(name); return err })
		return got
	}
	if got := cursor("file"); got != 0 {
		t.Errorf("SinkCursor(file) on empty store = %d, want 0", got)
	}
	MustUpdate(t, st, func(tx symbot.Tx) error { return tx.SetSinkCursor("file", 7) })
	MustUpdate(t, st, func(tx symbot.Tx) error { return tx.SetSinkCursor("s3", 2) })
	MustUpdate(t, st, func(tx symbot.Tx) error { return tx.SetSinkCursor("file", 3) }) // back: ignored
	if got := cursor("file"); got != 7 {
		t.Errorf("SinkCursor(file) after 7 then 3 = %d, want 7", got)
	}
	if got := cursor("s3"); got != 2 {
		t.Errorf("SinkCursor(s3) = %d, want 2", got)
	}
	err := st.Update(t.Context(), func(tx symbot.Tx) error {
		if err := tx.SetSinkCursor("file", 9); err != nil {
			return err
		}
		return errors.New("roll back")
	})
	if err == nil {
		t.Fatal("Update returning an error reported nil")
	}
	if got := cursor("file"); got != 7 {
		t.Errorf("SinkCursor(file) after a rolled-back set = %d, want 7", got)
	}
	if err := st.Update(t.Context(), func(tx symbot.Tx) error { return tx.SetSinkCursor("", 1) }); err == nil {
		t.Errorf("SetSinkCursor with an empty name: got nil error")
	}
}

// testRecords: every store keeps the reconciler's named records
// (symbot.RecordTx); a store without them would make Reconcile fail.
func testRecords(t *testing.T, st symbot.Store) {
	get := func(name string) ([]byte, bool) {
		t.Helper()
		var (
			v  []byte
			ok bool
		)
		MustView(t, st, func(tx symbot.Tx) error {
			rt, isRT := tx.(symbot.RecordTx)
			if !isRT {
				return fmt.Errorf("%T does not implement symbot.RecordTx", tx)
			}
			var err error
			v, ok, err = rt.Record(name)
			return err
		})
		return v, ok
	}
	put := func(tx symbot.Tx, name string, v []byte) error {
		rt, isRT := tx.(symbot.RecordTx)
		if !isRT {
			return fmt.Errorf("%T does not implement symbot.RecordTx", tx)
		}
		return rt.PutRecord(name, v)
	}
	if _, ok := get("group:G1"); ok {
		t.Error("Record on an empty store: ok = true")
	}
	MustUpdate(t, st, func(tx symbot.Tx) error { return put(tx, "group:G1", []byte(`{"a":1}`)) })
	MustUpdate(t, st, func(tx symbot.Tx) error { return put(tx, "group:G2", []byte("two")) })
	if v, ok := get("group:G1"); !ok || string(v) != `{"a":1}` {
		t.Errorf("Record(group:G1) = %q, %v; want {\"a\":1}, true", v, ok)
	}
	MustUpdate(t, st, func(tx symbot.Tx) error { return put(tx, "group:G1", []byte("replaced")) })
	if v, _ := get("group:G1"); string(v) != "replaced" {
		t.Errorf("Record(group:G1) after replace = %q, want replaced", v)
	}
	err := st.Update(t.Context(), func(tx symbot.Tx) error {
		if err := put(tx, "group:G2", []byte("lost")); err != nil {
			return err
		}
		return errors.New("roll back")
	})
	if err == nil {
		t.Fatal("Update returning an error reported nil")
	}
	if v, _ := get("group:G2"); string(v) != "two" {
		t.Errorf("Record(group:G2) after a rolled-back put = %q, want two", v)
	}
	MustUpdate(t, st, func(tx symbot.Tx) error { return put(tx, "group:G2", nil) })
	if _, ok := get("group:G2"); ok {
		t.Error("Record(group:G2) after PutRecord(nil): still there")
	}
	if err := st.Update(t.Context(), func(tx symbot.Tx) error { return put(tx, "", []byte("x")) }); err == nil {
		t.Error("PutRecord with an empty name: got nil error")
	}
	if err := st.View(t.Context(), func(tx symbot.Tx) error { return put(tx, "group:G3", []byte("x")) }); err == nil {
		t.Error("PutRecord in a View: got nil error")
	}
}

func testIdentity(t *testing.T, st symbot.Store) {
	MustView(t, st, func(tx symbot.Tx) error {
		if id, ok, err := tx.Identity("U1"); ok || err != nil {
			t.Errorf("Identity on empty store = %+v %v %v", id, ok, err)
		}
		return nil
	})
	a := symbot.Identity{SlackID: "U1", Email: "ann@example.com", OktaUserID: "00u1", OktaLogin: "ann", CachedAt: T0, BoundAt: T0, Via: symbot.ViaEmail}
	// b: a later resolution found another Okta user; every field is set.
	b := a
	b.CachedAt = T0.Add(time.Hour)
	b.ConflictOktaUserID, b.ConflictOktaLogin, b.ConflictEmail, b.ConflictAt = "00u2", "ann2", "ann@new.example.com", T0.Add(2*time.Hour)
	if f := zeroFields(reflect.ValueOf(b), "Identity"); len(f) > 0 {
		t.Fatalf("fixture leaves fields unset, so the round trip would not check them: %v", f)
	}
	MustUpdate(t, st, func(tx symbot.Tx) error { return tx.PutIdentity(a) })
	MustView(t, st, func(tx symbot.Tx) error {
		got, ok, err := tx.Identity("U1")
		if !ok || got != a {
			t.Errorf("Identity(U1) = %+v %v, want %+v", got, ok, a)
		}
		return err
	})
	MustUpdate(t, st, func(tx symbot.Tx) error { return tx.PutIdentity(b) })
	MustView(t, st, func(tx symbot.Tx) error {
		got, ok, err := tx.Identity("U1")
		if !ok || got != b || !got.Conflicted() {
			t.Errorf("Identity(U1) after replace = %+v %v, want %+v", got, ok, b)
		}
		return err
	})
	if err := st.Update(context.Background(), func(tx symbot.Tx) error { return tx.PutIdentity(symbot.Identity{}) }); err == nil {
		t.Errorf("PutIdentity without SlackID: got nil error")
	}

	// Identities pages in SlackID order, bytewise (W before a, 1 before A).
	for _, id := range []string{"W9", "U10", "U2", "Ua", "U0"} {
		MustUpdate(t, st, func(tx symbot.Tx) error {
			return tx.PutIdentity(symbot.Identity{SlackID: id, OktaUserID: "00u" + id, CachedAt: T0})
		})
	}
	var got []string
	for after := ""; ; {
		var page []symbot.Identity
		MustView(t, st, func(tx symbot.Tx) error {
			var err error
			page, err = tx.Identities(after, 2)
			return err
		})
		if len(page) > 2 {
			t.Fatalf("Identities(%q, 2) returned %d", after, len(page))
		}
		if len(page) == 0 {
			break
		}
		for _, id := range page {
			got = append(got, id.SlackID)
		}
		after = page[len(page)-1].SlackID
	}
	if want := []string{"U0", "U1", "U10", "U2", "Ua", "W9"}; !slices.Equal(got, want) {
		t.Errorf("Identities pages = %v, want %v", got, want)
	}
	if err := st.View(t.Context(), func(tx symbot.Tx) error { _, err := tx.Identities("", 0); return err }); !errors.Is(err, symbot.ErrInvalidRequest) {
		t.Errorf("Identities with limit 0: got %v, want ErrInvalidRequest", err)
	}

	// DeleteIdentity removes one binding (a reset), and deleting a missing
	// one is no error.
	MustUpdate(t, st, func(tx symbot.Tx) error { return tx.DeleteIdentity("U1") })
	MustUpdate(t, st, func(tx symbot.Tx) error { return tx.DeleteIdentity("UNOBODY") })
	MustView(t, st, func(tx symbot.Tx) error {
		if _, ok, err := tx.Identity("U1"); ok || err != nil {
			t.Errorf("Identity(U1) after DeleteIdentity: ok=%v err=%v", ok, err)
		}
		if _, ok, _ := tx.Identity("U10"); !ok {
			t.Errorf("DeleteIdentity(U1) removed U10 too")
		}
		return nil
	})
}

func testBackup(t *testing.T, st symbot.Store) {
	MustPut(t, st, FullRequest("R1"))
	MustUpdate(t, st, writeEverythingElse)
	var buf bytes.Buffer
	n, err := st.Backup(t.Context(), &buf)
	if err != nil {
		t.Fatalf("Backup: %v", err)
	}
	if n != int64(buf.Len()) || n == 0 {
		t.Errorf("Backup reported %d bytes, wrote %d", n, buf.Len())
	}
}

func writeEverythingElse(tx symbot.Tx) error {
	if err := tx.AddJob(&symbot.Job{Kind: symbot.JobPost, RequestID: "R1"}); err != nil {
		return err
	}
	if err := tx.SetSinkCursor("file", 1); err != nil {
		return err
	}
	return symbot.AppendAudit(tx, nil, &symbot.AuditEntry{At: T0, RequestID: "R1", Actor: "U1", Action: "request"})
}

func testCancelledContext(t *testing.T, st symbot.Store) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	called := false
	err := st.Update(ctx, func(tx symbot.Tx) error { called = true; return nil })
	if !errors.Is(err, context.Canceled) || called {
		t.Errorf("Update with cancelled context: err %v, fn called %v; want context.Canceled and no call", err, called)
	}
	err = st.View(ctx, func(tx symbot.Tx) error { called = true; return nil })
	if !errors.Is(err, context.Canceled) || called {
		t.Errorf("View with cancelled context: err %v, fn called %v; want context.Canceled and no call", err, called)
	}
	if _, err := st.ClaimJobs(ctx, "w", T0, time.Minute, 1); !errors.Is(err, context.Canceled) {
		t.Errorf("ClaimJobs with cancelled context: got %v, want context.Canceled", err)
	}
}

// testBadArguments: every store refuses the same bad arguments with the
// words of the shared checks (storecheck.go).
func testBadArguments(t *testing.T, st symbot.Store) {
	tests := []struct {
		name string
		call func(tx symbot.Tx) error
		want error
	}{
		{"NextSeq empty name", func(tx symbot.Tx) error { _, err := tx.NextSeq(""); return err }, symbot.CheckCounterName("")},
		{"PutRequest nil", func(tx symbot.Tx) error { return tx.PutRequest(nil) }, symbot.CheckPutRequest(nil)},
		{"PutRequest without ID", func(tx symbot.Tx) error { return tx.PutRequest(&symbot.Request{}) }, symbot.CheckPutRequest(&symbot.Request{})},
		{"UpdateJob nil", func(tx symbot.Tx) error { return tx.UpdateJob(nil) }, symbot.CheckJobUpdate(nil)},
		{"AddJob without kind", func(tx symbot.Tx) error { return tx.AddJob(&symbot.Job{}) }, symbot.CheckNewJob(&symbot.Job{})},
		{"SetSinkCursor empty name", func(tx symbot.Tx) error { return tx.SetSinkCursor("", 1) }, symbot.CheckSinkName("")},
		{"PutRecord empty name", func(tx symbot.Tx) error {
			rt, ok := tx.(symbot.RecordTx)
			if !ok {
				return fmt.Errorf("%T does not implement symbot.RecordTx", tx)
			}
			return rt.PutRecord("", []byte("x"))
		}, symbot.CheckRecordName("")},
		{"PutIdentity without SlackID", func(tx symbot.Tx) error { return tx.PutIdentity(symbot.Identity{}) }, symbot.CheckIdentity(symbot.Identity{})},
	}
	for _, tc := range tests {
		if tc.want == nil {
			t.Fatalf("%s: the shared check accepts the bad argument", tc.name)
		}
		err := st.Update(t.Context(), tc.call)
		if err == nil || err.Error() != tc.want.Error() {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
	}
}
