package pagerduty_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/pagerduty"
	"github.com/symbot/symbot/pagerduty/pdtest"
)

// world: alice and bob are on call in PSRE (in policy PPROD at level 1);
// carol is level 2 of PPROD; dave is on call in PDB, which is in no policy.
func world(t *testing.T) *pdtest.Server {
	t.Helper()
	s := pdtest.New("pd-token-1")
	t.Cleanup(s.Close)
	s.AddUser("PALICE", "Alice", "Alice@Example.com")
	s.AddUser("PBOB", "Bob", "bob@example.com")
	s.AddUser("PCAROL", "Carol", "carol@example.com")
	s.AddUser("PDAVE", "Dave", "dave@example.com")
	s.SetSchedule("PSRE", "SRE primary", "PALICE", "PBOB")
	s.SetSchedule("PDB", "DBA", "PDAVE")
	s.AddEscalationPolicy("PPROD", "Production", []string{"PSRE"}, []string{"PCAROL"})
	return s
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func client(s *pdtest.Server, cfg pagerduty.Config, tok *string) *pagerduty.Client {
	cfg.BaseURL = s.URL()
	return pagerduty.New(cfg, func(context.Context) (string, error) { return *tok, nil })
}

func TestOnCallMatchesByEmail(t *testing.T) {
	s := world(t)
	tok := s.Token()
	c := client(s, pagerduty.Config{Schedules: []string{"PSRE"}, PageSize: 1}, &tok)
	tests := []struct {
		email string
		want  bool
	}{
		{"alice@example.com", true}, // case-insensitive
		{"BOB@example.com", true},
		{"carol@example.com", false},
		{"dave@example.com", false},
	}
	for _, tc := range tests {
		got, err := c.OnCall(t.Context(), tc.email)
		if err != nil || got != tc.want {
			t.Errorf("OnCall(%s) = %v, %v; want %v", tc.email, got, err, tc.want)
		}
	}
	// Page size 1: two pages, fetched once, then served from the cache.
	if got := len(s.Calls()); got != 2 {
		t.Errorf("%d requests (%v), want 2 (paged once, then cached)", got, s.Calls())
	}
	for _, call := range s.Calls() {
		if !strings.Contains(call, "schedule_ids%5B%5D=PSRE") || !strings.Contains(call, "include%5B%5D=users") {
			t.Errorf("request %s lacks the schedule filter or include[]=users", call)
		}
	}
}

func TestEscalationPolicyCountsLevelOneOnly(t *testing.T) {
	s := world(t)
	tok := s.Token()
	c := client(s, pagerduty.Config{EscalationPolicies: []string{"PPROD"}}, &tok)
	for email, want := range map[string]bool{"alice@example.com": true, "carol@example.com": false} {
		if got, err := c.OnCall(t.Context(), email); err != nil || got != want {
			t.Errorf("OnCall(%s) = %v, %v; want %v", email, got, err, want)
		}
	}
	if on, err := c.OnCallIn(t.Context(), "dave@example.com", "PDB"); err != nil || on {
		t.Errorf("OnCallIn(dave, PDB) = %v, %v: a schedule in no escalation policy has no on-calls", on, err)
	}
}

func TestCacheExpires(t *testing.T) {
	s := world(t)
	tok := s.Token()
	clk := &clock{t: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}
	c := client(s, pagerduty.Config{Schedules: []string{"PSRE"}, CacheTTL: time.Minute, Now: clk.Now}, &tok)
	if on, _ := c.OnCall(t.Context(), "alice@example.com"); !on {
		t.Fatal("alice not on call")
	}
	s.SetSchedule("PSRE", "SRE primary", "PBOB") // the rotation moves on
	if on, _ := c.OnCall(t.Context(), "alice@example.com"); !on {
		t.Fatal("within the TTL the cached answer is used")
	}
	clk.Add(time.Minute)
	if on, _ := c.OnCall(t.Context(), "alice@example.com"); on {
		t.Fatal("after the TTL alice is asked about again, and is off call")
	}
}

func TestFailuresAreErrorsNeverAnswers(t *testing.T) {
	s := world(t)
	tok := s.Token()
	c := client(s, pagerduty.Config{Schedules: []string{"PSRE"}}, &tok)
	for _, tc := range []struct {
		status int
		is     error
	}{{503, symbot.ErrUnavailable}, {429, symbot.ErrRateLimited}, {500, symbot.ErrUnavailable}} {
		s.FailNext(tc.status)
		on, err := c.OnCall(t.Context(), "alice@example.com")
		if on || !errors.Is(err, tc.is) {
			t.Errorf("HTTP %d: OnCall = %v, %v; want an error matching %v", tc.status, on, err, tc.is)
		}
	}
	if on, err := c.OnCall(t.Context(), "alice@example.com"); !on || err != nil {
		t.Errorf("after the faults: %v, %v (a failure must not be cached)", on, err)
	}
}

func TestRejectedTokenIsReadAgain(t *testing.T) {
	s := world(t)
	tok := "stale-token"
	reads := 0
	c := pagerduty.New(pagerduty.Config{BaseURL: s.URL(), Schedules: []string{"PSRE"}}, func(context.Context) (string, error) {
		reads++
		if reads > 1 {
			tok = s.Token() // rotated in Secrets Manager
		}
		return tok, nil
	})
	if on, err := c.OnCall(t.Context(), "alice@example.com"); !on || err != nil {
		t.Fatalf("OnCall = %v, %v; want the token read again after the 401", on, err)
	}
	// Still wrong after a re-read: a clear error, without the token.
	bad := "wrong-token-value"
	c = client(s, pagerduty.Config{Schedules: []string{"PSRE"}}, &bad)
	_, err := c.OnCall(t.Context(), "alice@example.com")
	if !errors.Is(err, symbot.ErrTokenRejected) || !strings.Contains(err.Error(), "pagerduty.token_secret") || strings.Contains(err.Error(), bad) {
		t.Fatalf("err = %v", err)
	}
}

func TestScheduleThatDoesNotExist(t *testing.T) {
	s := world(t)
	tok := s.Token()
	c := client(s, pagerduty.Config{}, &tok)
	if name, err := c.Schedule(t.Context(), "PSRE"); err != nil || name != "SRE primary" {
		t.Fatalf("Schedule(PSRE) = %q, %v", name, err)
	}
	if _, err := c.Schedule(t.Context(), "PNOPE"); !errors.Is(err, symbot.ErrNotFound) {
		t.Fatalf("Schedule(PNOPE) err = %v, want not found", err)
	}
	// At run time an unknown schedule has nobody on call: manual approval.
	if on, err := c.OnCallIn(t.Context(), "alice@example.com", "PNOPE"); on || err != nil {
		t.Fatalf("OnCallIn(PNOPE) = %v, %v", on, err)
	}
}
