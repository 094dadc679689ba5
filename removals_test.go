package symbot_test

import (
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/symbot/symbot"
)

// TestPendingRemovalsAndStory: while a removal keeps failing the grant is
// listed as removal pending with its attempts and last error; its story
// has the transitions, the job and the audit entries; once it succeeds it
// is no longer pending.
func TestPendingRemovalsAndStory(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, nil)
		h.eng.Runtime.Jitter = func(top time.Duration) time.Duration { return top }
		h.dir.failNext("remove", symbot.ErrUnavailable, symbot.ErrUnavailable, symbot.ErrUnavailable)
		h.start(t)
		r := h.mustGrant(t, alice, "admin", 15*time.Minute)
		time.Sleep(15*time.Minute + 2*time.Second)
		synctest.Wait()
		prs, err := h.eng.PendingRemovals(t.Context())
		if err != nil || len(prs) != 1 {
			t.Fatalf("PendingRemovals = %+v, %v; want one", prs, err)
		}
		pr := prs[0]
		if pr.Request.ID != r.ID || pr.Attempts < 1 || !strings.Contains(pr.LastError, "unavailable") || pr.Since.IsZero() {
			t.Errorf("pending removal = %+v (attempts %d, error %q)", pr.Request.ID, pr.Attempts, pr.LastError)
		}
		active, _ := h.eng.ListByState(t.Context(), symbot.StateActive)
		if len(active) != 0 {
			t.Errorf("active grants = %d, want 0 (it expired)", len(active))
		}

		s, err := h.eng.Story(t.Context(), strings.ToLower(r.ID))
		if err != nil {
			t.Fatalf("Story: %v", err)
		}
		if s.Request.ID != r.ID || len(s.Request.Transitions) < 3 {
			t.Errorf("story request = %s with %d transitions", s.Request.ID, len(s.Request.Transitions))
		}
		var revokeJob bool
		for _, j := range s.Jobs {
			revokeJob = revokeJob || (j.Kind == symbot.JobRevoke && j.Attempts >= 1 && j.LastError != "")
		}
		if !revokeJob {
			t.Errorf("story jobs = %+v, want the failing revoke job", s.Jobs)
		}
		var sawRequest, sawError bool
		for _, a := range s.Audit {
			if a.RequestID != r.ID {
				t.Errorf("story audit has an entry of %s", a.RequestID)
			}
			sawRequest = sawRequest || a.Action == "request"
			sawError = sawError || a.Action == "job:revoke:error"
		}
		if !sawRequest || !sawError {
			t.Errorf("story audit = %+v, want the request and the revoke errors", s.Audit)
		}

		time.Sleep(time.Minute)
		synctest.Wait()
		if prs, _ := h.eng.PendingRemovals(t.Context()); len(prs) != 0 {
			t.Errorf("still pending after recovery: %+v", prs)
		}
		if _, err := h.eng.Story(t.Context(), "SYM-404-ABCD"); err == nil {
			t.Error("Story of an unknown id did not fail")
		}
	})
}
