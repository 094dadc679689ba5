package okta_test

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/okta"
	"github.com/symbot/symbot/okta/oktatest"
)

func TestResolveUser(t *testing.T) {
	e := MustEnv(t, func(c *okta.Config) {
		c.Overrides = map[string]string{
			"U0OVR":             "carol.admin@corp.example",
			"Dave@Corp.Example": "dave.x@corp.example",
			"U0GHOST":           "ghost@corp.example",
		}
	})
	alice := e.sim.AddUser(oktatest.User{Login: "alice@corp.example", FirstName: "Alice"})
	bob := e.sim.AddUser(oktatest.User{Login: "bob.login", Email: "bob@corp.example"})
	carol := e.sim.AddUser(oktatest.User{Login: "carol.admin@corp.example", Email: "carol@corp.example"})
	dave := e.sim.AddUser(oktatest.User{Login: "dave.x@corp.example", Email: "other@corp.example"})
	e.sim.AddUser(oktatest.User{Login: "sus@corp.example", Status: "SUSPENDED"})
	e.sim.AddUser(oktatest.User{Login: "gone.login", Email: "gone@corp.example", Status: "DEPROVISIONED"})
	// A deprovisioned account owns the login; an active one has the email.
	e.sim.AddUser(oktatest.User{Login: "eve@corp.example", Status: "DEPROVISIONED"})
	eve := e.sim.AddUser(oktatest.User{Login: "eve2", Email: "eve@corp.example"})
	e.sim.AddUser(oktatest.User{Login: "twin1", Email: "twin@corp.example"})
	e.sim.AddUser(oktatest.User{Login: "twin2", Email: "twin@corp.example"})
	quote := e.sim.AddUser(oktatest.User{Login: "q.login", Email: `"odd\"@corp.example`})

	tests := []struct {
		name    string
		p       symbot.Person
		wantID  string
		wantVia string // symbot.ViaEmail when empty
		wantErr error
		inErr   string
	}{
		{name: "login is the email", p: symbot.Person{SlackID: "U1", Email: "Alice@corp.example"}, wantID: alice.ID},
		{name: "found by email search", p: symbot.Person{SlackID: "U2", Email: "bob@corp.example"}, wantID: bob.ID},
		{name: "override by slack id", p: symbot.Person{SlackID: "U0OVR", Email: "carol@corp.example"}, wantID: carol.ID, wantVia: symbot.ViaOverride},
		{name: "override by email", p: symbot.Person{SlackID: "U4", Email: "dave@corp.example"}, wantID: dave.ID, wantVia: symbot.ViaOverride},
		{name: "override to a missing login", p: symbot.Person{SlackID: "U0GHOST", Email: "x@corp.example"}, wantErr: symbot.ErrUserNotFound, inErr: `"ghost@corp.example"`},
		{name: "not found", p: symbot.Person{SlackID: "U5", Email: "nobody@corp.example"}, wantErr: symbot.ErrUserNotFound, inErr: "no active Okta user with the email nobody@corp.example"},
		{name: "suspended", p: symbot.Person{SlackID: "U6", Email: "sus@corp.example"}, wantErr: symbot.ErrUserNotActive, inErr: "SUSPENDED"},
		{name: "deprovisioned by search", p: symbot.Person{SlackID: "U7", Email: "gone@corp.example"}, wantErr: symbot.ErrUserNotActive, inErr: "DEPROVISIONED"},
		{name: "inactive login, active email owner", p: symbot.Person{SlackID: "U8", Email: "eve@corp.example"}, wantID: eve.ID},
		{name: "two active users share the email", p: symbot.Person{SlackID: "U9", Email: "twin@corp.example"}, wantErr: symbot.ErrUserNotFound, inErr: "twin1, twin2"},
		{name: "no email", p: symbot.Person{SlackID: "U10"}, wantErr: symbot.ErrUserNotFound, inErr: "override"},
		{name: "quotes in the email are escaped", p: symbot.Person{SlackID: "U11", Email: `"odd\"@corp.example`}, wantID: quote.ID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := e.dir.ResolveUser(t.Context(), tt.p)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("ResolveUser error = %v, want %v", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.inErr) {
					t.Errorf("error %q does not mention %q", err, tt.inErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ResolveUser: %v", err)
			}
			via := tt.wantVia
			if via == "" {
				via = symbot.ViaEmail
			}
			if got.ID != tt.wantID || got.Status != "ACTIVE" || got.Via != via {
				t.Errorf("got %+v, want id %s, ACTIVE, via %s (the binding records how)", got, tt.wantID, via)
			}
		})
	}
	if n := e.sim.CountStatus(http.StatusBadRequest); n != 0 {
		t.Errorf("simulator answered 400 %d times, want 0 (bad search expression?)", n)
	}
}

func TestResolveUserFieldsAndCalls(t *testing.T) {
	e := MustEnv(t, nil)
	u := e.sim.AddUser(oktatest.User{Login: "bob.login", Email: "bob@corp.example"})
	got, err := e.dir.ResolveUser(t.Context(), symbot.Person{SlackID: "U1", Email: "bob@corp.example"})
	if err != nil {
		t.Fatal(err)
	}
	want := symbot.DirUser{ID: u.ID, Login: "bob.login", Email: "bob@corp.example", Status: "ACTIVE", Via: symbot.ViaEmail}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	calls := e.sim.Calls()
	if len(calls) != 2 || calls[0].Op != oktatest.OpGetUser || calls[0].Status != 404 || calls[1].Op != oktatest.OpSearch {
		t.Fatalf("calls = %+v, want GET user (404) then search", calls)
	}
	if !strings.Contains(calls[1].Query, "search=profile.email+eq+%22bob%40corp.example%22") {
		t.Errorf("search query = %q", calls[1].Query)
	}
}

func TestMembershipIdempotent(t *testing.T) {
	e := MustEnv(t, nil)
	u := e.sim.AddUser(oktatest.User{Login: "a@corp.example"})
	g := e.sim.AddGroup(oktatest.Group{Name: "prod-admins"})
	ctx := t.Context()
	for i := range 2 {
		if err := e.dir.AddMember(ctx, u.ID, g.ID); err != nil {
			t.Fatalf("AddMember #%d: %v", i+1, err)
		}
		if !e.sim.IsMember(g.ID, u.ID) {
			t.Fatalf("after AddMember #%d the simulator has no membership", i+1)
		}
	}
	for i := range 2 {
		if err := e.dir.RemoveMember(ctx, u.ID, g.ID); err != nil {
			t.Fatalf("RemoveMember #%d: %v", i+1, err)
		}
		if e.sim.IsMember(g.ID, u.ID) {
			t.Fatalf("after RemoveMember #%d the membership remains", i+1)
		}
	}
	for _, c := range e.sim.Calls() {
		if c.Status != http.StatusNoContent {
			t.Errorf("%s %s answered %d, want 204", c.Method, c.Path, c.Status)
		}
	}
	if got, want := e.sim.CountCalls(http.MethodPut, "/api/v1/groups/"), 2; got != want {
		t.Errorf("PUTs = %d, want %d", got, want)
	}
	if got, want := e.sim.CountCalls(http.MethodDelete, "/api/v1/groups/"), 2; got != want {
		t.Errorf("DELETEs = %d, want %d", got, want)
	}
	if got := e.dir.Stats(); got["ok"] != 4 || got["attempts"] != 4 {
		t.Errorf("Stats = %v, want ok 4, attempts 4", got)
	}
}

func TestNotFound(t *testing.T) {
	e := MustEnv(t, nil)
	u := e.sim.AddUser(oktatest.User{Login: "a@corp.example"})
	g := e.sim.AddGroup(oktatest.Group{Name: "g"})
	ctx := t.Context()
	tests := []struct {
		name string
		call func() error
		want error
	}{
		{"add to missing group", func() error { return e.dir.AddMember(ctx, u.ID, "00gmissing") }, symbot.ErrGroupNotFound},
		{"remove from missing group", func() error { return e.dir.RemoveMember(ctx, u.ID, "00gmissing") }, symbot.ErrGroupNotFound},
		{"add missing user", func() error { return e.dir.AddMember(ctx, "00umissing", g.ID) }, symbot.ErrUserNotFound},
		{"get missing group", func() error { _, err := e.dir.Group(ctx, "00gmissing"); return err }, symbot.ErrGroupNotFound},
		{"list missing group", func() error { _, err := e.dir.ListMembers(ctx, "00gmissing"); return err }, symbot.ErrGroupNotFound},
		{"is member, missing user", func() error { _, err := e.dir.IsMember(ctx, "00umissing", g.ID); return err }, symbot.ErrUserNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if !errors.Is(err, tt.want) {
				t.Fatalf("error = %v, want %v", err, tt.want)
			}
		})
	}
	if n := e.dir.Stats()["attempts"]; n != int64(len(tests)) {
		t.Errorf("attempts = %d, want %d (404s are not retried)", n, len(tests))
	}
}

func TestGroupAndIsMember(t *testing.T) {
	e := MustEnv(t, nil)
	u := e.sim.AddUser(oktatest.User{Login: "a@corp.example"})
	g := e.sim.AddGroup(oktatest.Group{Name: "prod-admins", Description: "prod"})
	other := e.sim.AddGroup(oktatest.Group{Name: "other"})
	e.sim.AddMember(other.ID, u.ID)
	ctx := t.Context()

	got, err := e.dir.Group(ctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	if want := (okta.Group{ID: g.ID, Name: "prod-admins", Description: "prod", Type: "OKTA_GROUP"}); got != want {
		t.Errorf("Group = %+v, want %+v", got, want)
	}
	if is, err := e.dir.IsMember(ctx, u.ID, g.ID); err != nil || is {
		t.Fatalf("IsMember before add = %v, %v; want false", is, err)
	}
	e.sim.AddMember(g.ID, u.ID)
	if is, err := e.dir.IsMember(ctx, u.ID, g.ID); err != nil || !is {
		t.Fatalf("IsMember after add = %v, %v; want true", is, err)
	}
	if is, err := e.dir.IsMember(ctx, u.ID, "00gnosuchgroup"); err != nil || is {
		t.Fatalf("IsMember of a missing group = %v, %v; want false, nil", is, err)
	}
}

// A target's group type comes from Okta's own "type" field: check --live
// refuses BUILT_IN (Everyone) and warns on APP_GROUP by it.
func TestGroupType(t *testing.T) {
	e := MustEnv(t, nil)
	for _, typ := range []string{"OKTA_GROUP", "APP_GROUP", "BUILT_IN"} {
		t.Run(typ, func(t *testing.T) {
			g := e.sim.AddGroup(oktatest.Group{Name: "g-" + typ, Type: typ})
			got, err := e.dir.Group(t.Context(), g.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.Type != typ {
				t.Errorf("Group(%s).Type = %q, want %q", g.ID, got.Type, typ)
			}
		})
	}
}

func TestListMembersPaging(t *testing.T) {
	e := MustEnv(t, func(c *okta.Config) { c.PageSize = 200 })
	g := e.sim.AddGroup(oktatest.Group{Name: "big"})
	var want []string
	for i := range 1234 {
		u := e.sim.AddUser(oktatest.User{Login: fmt.Sprintf("u%04d@corp.example", i)})
		e.sim.AddMember(g.ID, u.ID)
		want = append(want, u.ID)
	}
	us, err := e.dir.ListMembers(t.Context(), g.ID)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]string, len(us))
	for i, u := range us {
		got[i] = u.ID
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("got %d members, want %d (first got %v)", len(got), len(want), got[:min(3, len(got))])
	}
	if n, want := e.sim.CountCalls(http.MethodGet, "/api/v1/groups/"+g.ID+"/users"), 7; n != want {
		t.Errorf("pages fetched = %d, want %d", n, want)
	}
	calls := e.sim.Calls()
	if !strings.Contains(calls[len(calls)-1].Query, "after=") {
		t.Errorf("last page query %q has no after cursor", calls[len(calls)-1].Query)
	}
}

func TestTokenRotated(t *testing.T) {
	e := MustEnv(t, nil)
	g := e.sim.AddGroup(oktatest.Group{Name: "g"})
	ctx := t.Context()
	if _, err := e.dir.Group(ctx, g.ID); err != nil {
		t.Fatal(err)
	}
	e.sim.SetToken("rotated-token-1")
	e.tokens.next = "rotated-token-1"
	if _, err := e.dir.Group(ctx, g.ID); err != nil {
		t.Fatalf("after rotation: %v", err)
	}
	if got := e.tokens.Refreshes(); got != 1 {
		t.Errorf("refreshes = %d, want 1", got)
	}
	if got := e.sim.CountStatus(http.StatusUnauthorized); got != 1 {
		t.Errorf("401s = %d, want 1", got)
	}
	// Later calls use the new token straight away.
	if _, err := e.dir.Group(ctx, g.ID); err != nil {
		t.Fatal(err)
	}
	if got := e.sim.CountStatus(http.StatusUnauthorized); got != 1 {
		t.Errorf("401s after the refresh = %d, want still 1", got)
	}
}

func TestTokenStillRejected(t *testing.T) {
	e := MustEnv(t, nil)
	g := e.sim.AddGroup(oktatest.Group{Name: "g"})
	e.sim.SetToken("the-real-one")
	e.tokens.next = "still-wrong"
	_, err := e.dir.Group(t.Context(), g.ID)
	if !errors.Is(err, symbot.ErrTokenRejected) {
		t.Fatalf("error = %v, want ErrTokenRejected", err)
	}
	if got := e.tokens.Refreshes(); got != 1 {
		t.Errorf("refreshes = %d, want exactly 1", got)
	}
	if got := e.sim.CountStatus(http.StatusUnauthorized); got != 2 {
		t.Errorf("401s = %d, want 2 (first try and one retry)", got)
	}

	// A refresh that yields the same token does not retry.
	e2 := MustEnv(t, nil)
	g2 := e2.sim.AddGroup(oktatest.Group{Name: "g"})
	e2.sim.SetToken("the-real-one")
	_, err = e2.dir.Group(t.Context(), g2.ID)
	if !errors.Is(err, symbot.ErrTokenRejected) || !strings.Contains(err.Error(), "same token") {
		t.Fatalf("error = %v, want ErrTokenRejected saying the secret holds the same token", err)
	}
	if got := e2.sim.CountStatus(http.StatusUnauthorized); got != 1 {
		t.Errorf("401s = %d, want 1", got)
	}
}

// A burst of 500 membership changes from 20 goroutines against a limit of
// 100 calls a second: the limiter keeps every call under the limit.
func TestBurstUnderRateLimit(t *testing.T) {
	e := MustEnv(t, nil)
	e.sim.SetRateLimit(100, time.Second)
	g := e.sim.AddGroup(oktatest.Group{Name: "g"})
	var users []string
	for i := range 250 {
		users = append(users, e.sim.AddUser(oktatest.User{Login: fmt.Sprintf("b%03d@corp.example", i)}).ID)
	}
	jobs := make(chan func() error)
	var wg sync.WaitGroup
	errs := make(chan error, 500)
	for range 20 {
		wg.Go(func() {
			for j := range jobs {
				if err := j(); err != nil {
					errs <- err
				}
			}
		})
	}
	ctx := t.Context()
	for _, uid := range users {
		jobs <- func() error { return e.dir.AddMember(ctx, uid, g.ID) }
	}
	for _, uid := range users[:250] {
		jobs <- func() error { return e.dir.RemoveMember(ctx, uid, g.ID) }
	}
	close(jobs)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("change failed: %v", err)
	}
	if got := e.sim.CountStatus(http.StatusTooManyRequests); got != 0 {
		t.Errorf("simulator answered 429 %d times, want 0", got)
	}
	if got := len(e.sim.Members(g.ID)); got != 0 {
		t.Errorf("members left = %d, want 0", got)
	}
	if got := e.dir.Stats(); got["ok"] != 500 || got["throttled"] == 0 {
		t.Errorf("Stats = %v, want ok 500 and some throttled waits", got)
	}
}

// 30% of membership changes fail with 5xx; every change still completes.
func TestServerErrorsRetried(t *testing.T) {
	e := MustEnv(t, func(c *okta.Config) { c.RetryBudget = 20 * time.Second })
	e.sim.Inject(oktatest.OpPutMembership, oktatest.Fault{ErrorRate: 0.3, Status: http.StatusServiceUnavailable})
	e.sim.Inject(oktatest.OpDelMembership, oktatest.Fault{ErrorRate: 0.3})
	g := e.sim.AddGroup(oktatest.Group{Name: "g"})
	var users []string
	for i := range 100 {
		users = append(users, e.sim.AddUser(oktatest.User{Login: fmt.Sprintf("f%03d@corp.example", i)}).ID)
	}
	ctx := t.Context()
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for _, uid := range users {
		wg.Go(func() {
			if err := e.dir.AddMember(ctx, uid, g.ID); err != nil {
				errs <- err
				return
			}
			if err := e.dir.RemoveMember(ctx, uid, g.ID); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("change failed: %v", err)
	}
	fails := e.sim.CountStatus(http.StatusServiceUnavailable) + e.sim.CountStatus(http.StatusInternalServerError)
	if fails == 0 {
		t.Fatal("no 5xx was injected; the test proves nothing")
	}
	if got := e.dir.Stats()["retries"]; got != int64(fails) {
		t.Errorf("retries = %d, want %d (one per 5xx)", got, fails)
	}
	if got := len(e.sim.Members(g.ID)); got != 0 {
		t.Errorf("members left = %d, want 0", got)
	}
}

func TestTimeoutAndDropRetried(t *testing.T) {
	e := MustEnv(t, func(c *okta.Config) { c.RequestTimeout = time.Second })
	g := e.sim.AddGroup(oktatest.Group{Name: "g"})
	u := e.sim.AddUser(oktatest.User{Login: "a@corp.example"})
	e.sim.Inject(oktatest.OpGetGroup, oktatest.Fault{Latency: 10 * time.Second, Count: 1})
	if _, err := e.dir.Group(t.Context(), g.ID); err != nil {
		t.Fatalf("Group after one slow answer: %v", err)
	}
	e.sim.Inject(oktatest.OpPutMembership, oktatest.Fault{Drop: true, Count: 2})
	if err := e.dir.AddMember(t.Context(), u.ID, g.ID); err != nil {
		t.Fatalf("AddMember after two dropped connections: %v", err)
	}
	if got := e.dir.Stats()["retries"]; got < 3 {
		t.Errorf("retries = %d, want at least 3", got)
	}
}

func TestUnavailable(t *testing.T) {
	e := MustEnv(t, func(c *okta.Config) { c.RetryBudget = 300 * time.Millisecond })
	g := e.sim.AddGroup(oktatest.Group{Name: "g"})
	e.sim.Inject(oktatest.OpGetGroup, oktatest.Fault{Status: http.StatusBadGateway})
	_, err := e.dir.Group(t.Context(), g.ID)
	if !errors.Is(err, symbot.ErrUnavailable) || !strings.Contains(err.Error(), "HTTP 502") {
		t.Fatalf("error = %v, want ErrUnavailable naming HTTP 502", err)
	}

	e.sim.Close() // connection refused from now on
	_, err = e.dir.Group(t.Context(), g.ID)
	if !errors.Is(err, symbot.ErrUnavailable) {
		t.Fatalf("error with the server gone = %v, want ErrUnavailable", err)
	}
}

func TestRateLimitedBeyondBudget(t *testing.T) {
	// The reset is at the end of the hour-long window: beyond the budget
	// unless the test runs in the last 300ms of an hour.
	e := MustEnv(t, func(c *okta.Config) { c.RetryBudget = 300 * time.Millisecond })
	e.sim.SetRateLimit(1000, time.Hour)
	g := e.sim.AddGroup(oktatest.Group{Name: "g"})
	u := e.sim.AddUser(oktatest.User{Login: "a@corp.example"})
	// Every PUT gets 429 with Remaining 0 and the reset at the end of the
	// window; the SDK returns "too many requests" with a nil *Response.
	e.sim.Inject(oktatest.OpPutMembership, oktatest.Fault{Status: http.StatusTooManyRequests})
	err := e.dir.AddMember(t.Context(), u.ID, g.ID)
	if !errors.Is(err, symbot.ErrRateLimited) {
		t.Fatalf("error = %v, want ErrRateLimited", err)
	}
	if got := e.sim.CountStatus(http.StatusTooManyRequests); got != 1 {
		t.Errorf("429s = %d, want 1 (the reset is beyond the budget, so no retry)", got)
	}
	if got := e.dir.Stats(); got["rate_limited"] != 1 || got["http_429"] != 1 {
		t.Errorf("Stats = %v, want rate_limited 1, http_429 1", got)
	}
}

func TestRateLimitedThenReset(t *testing.T) {
	e := MustEnv(t, nil)
	e.sim.SetRateLimit(1000, time.Second)
	g := e.sim.AddGroup(oktatest.Group{Name: "g"})
	u := e.sim.AddUser(oktatest.User{Login: "a@corp.example"})
	e.sim.Inject(oktatest.OpPutMembership, oktatest.Fault{Status: http.StatusTooManyRequests, Count: 1})
	if err := e.dir.AddMember(t.Context(), u.ID, g.ID); err != nil {
		t.Fatalf("AddMember after one 429: %v", err)
	}
	calls := e.sim.Calls()
	if len(calls) != 2 || calls[0].Status != 429 || calls[1].Status != 204 {
		t.Fatalf("calls = %+v, want 429 then 204", calls)
	}
	if calls[1].At.Unix() <= calls[0].At.Unix() {
		t.Errorf("retry at %v came before the reset after %v", calls[1].At, calls[0].At)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	isolate(t)
	tok := &fakeTokens{tok: "t"}
	tests := []struct {
		name, url, inErr string
	}{
		{"http non-loopback", "http://example.okta.com", "plain http is allowed only for loopback"},
		{"http private ip", "http://10.0.0.5:8080", "plain http is allowed only for loopback"},
		{"empty", "", "empty"},
		{"path", "https://example.okta.com/api/v1", "only a scheme and host"},
		{"scheme", "ftp://example.okta.com", "scheme must be https"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := okta.New(okta.Config{OrgURL: tt.url}, tok)
			if err == nil || !strings.Contains(err.Error(), tt.inErr) {
				t.Fatalf("New(%q) error = %v, want one containing %q", tt.url, err, tt.inErr)
			}
		})
	}
	for _, ok := range []string{"https://example.okta.com", "https://example.okta.com/", "http://127.0.0.1:8080", "http://localhost:1", "http://[::1]:9"} {
		if _, err := okta.New(okta.Config{OrgURL: ok}, tok); err != nil {
			t.Errorf("New(%q): %v", ok, err)
		}
	}
	if _, err := okta.New(okta.Config{OrgURL: "https://x.okta.com"}, nil); err == nil {
		t.Error("New without a token source succeeded")
	}
	if _, err := okta.New(okta.Config{OrgURL: "https://x.okta.com", Overrides: map[string]string{"U1": ""}}, tok); err == nil {
		t.Error("New with an empty override login succeeded")
	}
}

// The SDK reads ~/.okta/okta.yaml and OKTA_* variables before our options;
// poison both and check that nothing of it takes effect.
func TestPoisonedSDKConfigIgnored(t *testing.T) {
	e := MustEnv(t, nil)
	home := t.TempDir()
	t.Setenv("HOME", home)
	if err := os.MkdirAll(filepath.Join(home, ".okta"), 0o700); err != nil {
		t.Fatal(err)
	}
	yaml := "okta:\n  client:\n    orgUrl: https://evil.okta.com\n    token: yaml-poison\n    authorizationMode: JWT\n    cache:\n      enabled: true\n  testing:\n    disableHttpsCheck: true\n"
	if err := os.WriteFile(filepath.Join(home, ".okta", "okta.yaml"), []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		"OKTA_CLIENT_ORGURL":                 "https://evil.okta.com",
		"OKTA_CLIENT_TOKEN":                  "env-poison",
		"OKTA_CLIENT_AUTHORIZATIONMODE":      "PrivateKey",
		"OKTA_CLIENT_CACHE_ENABLED":          "true",
		"OKTA_CLIENT_REQUEST_TIMEOUT":        "1",
		"OKTA_CLIENT_RATE_LIMIT_MAX_RETRIES": "9",
		"OKTA_TESTING_DISABLE_HTTPS_CHECK":   "true",
	} {
		t.Setenv(k, v)
	}
	g := e.sim.AddGroup(oktatest.Group{Name: "g"})
	for range 2 {
		if _, err := e.dir.Group(t.Context(), g.ID); err != nil {
			t.Fatalf("Group with a poisoned environment: %v", err)
		}
	}
	if got := e.sim.CountCalls(http.MethodGet, "/api/v1/groups/"); got != 2 {
		t.Errorf("GETs reaching the server = %d, want 2 (the SDK cache must stay off)", got)
	}
	if _, err := okta.New(okta.Config{OrgURL: "http://example.okta.com"}, e.tokens); err == nil {
		t.Error("http non-loopback URL accepted with OKTA_TESTING_DISABLE_HTTPS_CHECK=true")
	}
}

func TestTokenNeverInErrorsOrLogs(t *testing.T) {
	const secret = "SECRET-TOKEN-d2f0a9"
	e := MustEnv(t, func(c *okta.Config) { c.RetryBudget = 300 * time.Millisecond })
	e.sim.SetToken(secret)
	e.tokens.tok = secret
	g := e.sim.AddGroup(oktatest.Group{Name: "g"})
	u := e.sim.AddUser(oktatest.User{Login: "a@corp.example", Status: "SUSPENDED"})
	ctx := t.Context()
	var errs []error
	collect := func(err error) {
		if err == nil {
			t.Error("expected an error")
		}
		errs = append(errs, err)
	}
	_, err := e.dir.ResolveUser(ctx, symbot.Person{SlackID: "U1", Email: "a@corp.example"})
	collect(err)
	collect(e.dir.AddMember(ctx, u.ID, "00gmissing"))
	e.sim.Inject(oktatest.OpGetGroup, oktatest.Fault{Status: 500})
	_, err = e.dir.Group(ctx, g.ID)
	collect(err)
	e.sim.ClearFaults()
	e.sim.SetToken("rotated")
	e.tokens.next = secret + "-2"
	_, err = e.dir.Group(ctx, g.ID)
	collect(err)
	for _, err := range errs {
		if strings.Contains(err.Error(), "SECRET-TOKEN") {
			t.Errorf("error contains the token: %v", err)
		}
	}
	if logs := e.logs.String(); strings.Contains(logs, "SECRET-TOKEN") {
		t.Errorf("logs contain the token:\n%s", logs)
	} else if logs == "" {
		t.Error("no logs written; the check proves nothing")
	}
}

func TestOnCall(t *testing.T) {
	type rec struct{ op, result string }
	var mu sync.Mutex
	var got []rec
	e := MustEnv(t, func(c *okta.Config) {
		c.OnCall = func(op, result string, _ time.Duration) {
			mu.Lock()
			got = append(got, rec{op, result})
			mu.Unlock()
		}
	})
	g := e.sim.AddGroup(oktatest.Group{Name: "g"})
	_, _ = e.dir.Group(t.Context(), g.ID)
	_ = e.dir.AddMember(t.Context(), "00unone", g.ID)
	want := []rec{{"group", "ok"}, {"add_member", "user_not_found"}}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(got, want) {
		t.Errorf("OnCall saw %v, want %v", got, want)
	}
}

func TestCanceled(t *testing.T) {
	e := MustEnv(t, nil)
	g := e.sim.AddGroup(oktatest.Group{Name: "g"})
	arrived, release := e.sim.Hold(oktatest.OpGetGroup)
	defer release()
	ctx, cancel := contextWithCancel(t)
	done := make(chan error, 1)
	go func() { _, err := e.dir.Group(ctx, g.ID); done <- err }()
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the request never reached the simulator")
	}
	cancel()
	select {
	case err := <-done:
		if okta.Result(err) != "canceled" {
			t.Fatalf("error = %v, want a cancellation", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Group did not return after cancel")
	}
}

func TestForbiddenSaysWhatToFix(t *testing.T) {
	e := MustEnv(t, nil)
	g := e.sim.AddGroup(oktatest.Group{Name: "g"})
	u := e.sim.AddUser(oktatest.User{Login: "a@corp.example"})
	e.sim.Inject(oktatest.OpPutMembership, oktatest.Fault{Status: http.StatusForbidden})
	err := e.dir.AddMember(t.Context(), u.ID, g.ID)
	if !errors.Is(err, symbot.ErrAccessDenied) {
		t.Fatalf("error = %v, want ErrAccessDenied", err)
	}
	if want := "manage group membership"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
	if got := e.sim.CountStatus(http.StatusForbidden); got != 1 {
		t.Errorf("403s = %d, want 1 (not retried)", got)
	}
}

// TestClockInjected: the retry budget and the reported call durations
// follow Config.Now. A clock that moves a minute per reading exhausts a 2s
// budget after the first failed attempt, and the call is reported as taking
// minutes.
func TestClockInjected(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var took []time.Duration
	e := MustEnv(t, func(c *okta.Config) {
		c.RetryBudget = 2 * time.Second
		c.Now = func() time.Time {
			mu.Lock()
			defer mu.Unlock()
			now = now.Add(time.Minute)
			return now
		}
		c.OnCall = func(op, result string, d time.Duration) {
			mu.Lock()
			defer mu.Unlock()
			took = append(took, d)
		}
	})
	g := e.sim.AddGroup(oktatest.Group{Name: "g"})
	e.sim.Inject(oktatest.OpGetGroup, oktatest.Fault{Status: http.StatusBadGateway})
	if _, err := e.dir.Group(t.Context(), g.ID); !errors.Is(err, symbot.ErrUnavailable) {
		t.Fatalf("error = %v, want ErrUnavailable", err)
	}
	if got := e.dir.Stats()["retries"]; got != 0 {
		t.Errorf("retries = %d, want 0: the budget is spent by the clock", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(took) != 1 || took[0] < time.Minute {
		t.Errorf("OnCall durations = %v, want one of at least a minute", took)
	}
}
