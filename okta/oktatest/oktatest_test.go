package oktatest_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/symbot/symbot/okta/oktatest"
)

type answer struct {
	status int
	header http.Header
	body   map[string]any
	list   []map[string]any
}

// MustDo sends one request with the given token and decodes the answer.
func MustDo(tb testing.TB, s *oktatest.Server, method, path, token string) answer {
	tb.Helper()
	req, err := http.NewRequestWithContext(tb.Context(), method, s.URL()+path, nil)
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Authorization", "SSWS "+token)
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	a := answer{status: resp.StatusCode, header: resp.Header}
	if len(b) > 0 {
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			tb.Errorf("%s %s: Content-Type %q with a body, want application/json", method, path, ct)
		}
		if b[0] == '[' {
			err = json.Unmarshal(b, &a.list)
		} else {
			err = json.Unmarshal(b, &a.body)
		}
		if err != nil {
			tb.Fatalf("%s %s: body %s: %v", method, path, b, err)
		}
	}
	return a
}

// status sends a request from any goroutine and returns its status.
func status(s *oktatest.Server, method, path string) (int, error) {
	req, err := http.NewRequest(method, s.URL()+path, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "SSWS "+s.Token())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

func newServer(t *testing.T) *oktatest.Server {
	s := oktatest.NewServer()
	t.Cleanup(s.Close)
	return s
}

func TestErrorShapeAndHeaders(t *testing.T) {
	s := newServer(t)
	a := MustDo(t, s, "GET", "/api/v1/groups/00gx", "wrong")
	if a.status != 401 || a.body["errorCode"] != "E0000011" || a.body["errorSummary"] != "Invalid token provided" {
		t.Errorf("bad token: %d %v", a.status, a.body)
	}
	for _, k := range []string{"errorLink", "errorId", "errorCauses"} {
		if _, ok := a.body[k]; !ok {
			t.Errorf("error body lacks %s: %v", k, a.body)
		}
	}
	a = MustDo(t, s, "GET", "/api/v1/groups/00gx", s.Token())
	if a.status != 404 || a.body["errorCode"] != "E0000007" || a.body["errorSummary"] != "Not found: Resource not found: 00gx (UserGroup)" {
		t.Errorf("missing group: %d %v", a.status, a.body)
	}
	if _, err := http.ParseTime(a.header.Get("Date")); err != nil {
		t.Errorf("Date header: %v", err)
	}
	for _, k := range []string{"X-Rate-Limit-Limit", "X-Rate-Limit-Remaining", "X-Rate-Limit-Reset"} {
		if _, err := strconv.ParseInt(a.header.Get(k), 10, 64); err != nil {
			t.Errorf("%s = %q: %v", k, a.header.Get(k), err)
		}
	}
}

func TestUsersAndSearch(t *testing.T) {
	s := newServer(t)
	u := s.AddUser(oktatest.User{Login: "bob.login", Email: "Bob@corp.example", FirstName: "Bob"})
	s.AddUser(oktatest.User{Login: "x@corp.example", Status: "SUSPENDED"})
	for _, path := range []string{"/api/v1/users/" + u.ID, "/api/v1/users/BOB.login"} {
		a := MustDo(t, s, "GET", path, s.Token())
		prof, _ := a.body["profile"].(map[string]any)
		if a.status != 200 || a.body["id"] != u.ID || a.body["status"] != "ACTIVE" || prof["login"] != "bob.login" || prof["email"] != "Bob@corp.example" {
			t.Errorf("GET %s: %d %v", path, a.status, a.body)
		}
	}
	tests := []struct {
		name, expr string
		want       int
	}{
		{"email eq, any case", `profile.email eq "bob@CORP.example"`, 1},
		{"status", `status eq "SUSPENDED"`, 1},
		{"and", `status eq "ACTIVE" and profile.login sw "bob"`, 1},
		{"or", `profile.login eq "bob.login" or profile.login eq "x@corp.example"`, 2},
		{"no match", `profile.email eq "nobody@corp.example"`, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := MustDo(t, s, "GET", "/api/v1/users?search="+url.QueryEscape(tt.expr), s.Token())
			if a.status != 200 || len(a.list) != tt.want {
				t.Errorf("search %s: %d, %d users, want %d", tt.expr, a.status, len(a.list), tt.want)
			}
		})
	}
	a := MustDo(t, s, "GET", "/api/v1/users?search="+url.QueryEscape(`profile.email eq "unterminated`), s.Token())
	if a.status != 400 || a.body["errorCode"] != "E0000031" {
		t.Errorf("bad search: %d %v", a.status, a.body)
	}
}

func TestMembershipAndPaging(t *testing.T) {
	s := newServer(t)
	g := s.AddGroup(oktatest.Group{Name: "g"})
	var uids []string
	for i := range 5 {
		uids = append(uids, s.AddUser(oktatest.User{Login: fmt.Sprintf("u%d@corp.example", i)}).ID)
	}
	for _, uid := range uids {
		for range 2 {
			if a := MustDo(t, s, "PUT", "/api/v1/groups/"+g.ID+"/users/"+uid, s.Token()); a.status != 204 {
				t.Fatalf("PUT: %d %v", a.status, a.body)
			}
		}
	}
	if a := MustDo(t, s, "PUT", "/api/v1/groups/"+g.ID+"/users/00unone", s.Token()); a.status != 404 || !strings.HasSuffix(a.body["errorSummary"].(string), "(User)") {
		t.Errorf("PUT missing user: %d %v", a.status, a.body)
	}
	var got []string
	path := "/api/v1/groups/" + g.ID + "/users?limit=2"
	for pages := 0; path != ""; pages++ {
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		a := MustDo(t, s, "GET", path, s.Token())
		for _, u := range a.list {
			got = append(got, u["id"].(string))
		}
		links := a.header.Values("Link")
		path = ""
		for _, l := range links {
			if strings.HasSuffix(l, `rel="next"`) {
				path = strings.TrimPrefix(strings.Trim(strings.Split(l, ";")[0], "<>"), s.URL())
			}
		}
		if !strings.HasSuffix(links[0], `rel="self"`) {
			t.Errorf("first Link = %q, want rel=\"self\"", links[0])
		}
	}
	if strings.Join(got, ",") != strings.Join(uids, ",") {
		t.Errorf("paged members %v, want %v", got, uids)
	}
	a := MustDo(t, s, "GET", "/api/v1/users/"+uids[0]+"/groups", s.Token())
	if len(a.list) != 1 || a.list[0]["id"] != g.ID {
		t.Errorf("user groups = %v", a.list)
	}
	if a := MustDo(t, s, "DELETE", "/api/v1/groups/"+g.ID+"/users/"+uids[0], s.Token()); a.status != 204 || s.IsMember(g.ID, uids[0]) {
		t.Errorf("DELETE: %d, member %v", a.status, s.IsMember(g.ID, uids[0]))
	}
	if got := s.CountCalls("PUT", "/api/v1/groups/"); got != 11 {
		t.Errorf("CountCalls PUT = %d, want 11", got)
	}
}

func TestRateLimit(t *testing.T) {
	s := newServer(t)
	// The window is aligned to the clock: an hour makes it unlikely that
	// the four calls straddle a window boundary.
	s.SetRateLimit(3, time.Hour)
	var statuses []int
	for range 4 {
		a := MustDo(t, s, "GET", "/api/v1/users?search="+url.QueryEscape(`status eq "ACTIVE"`), s.Token())
		statuses = append(statuses, a.status)
		if a.status == 429 {
			if a.body["errorCode"] != "E0000047" || a.header.Get("X-Rate-Limit-Remaining") != "0" {
				t.Errorf("429: %v, remaining %s", a.body, a.header.Get("X-Rate-Limit-Remaining"))
			}
			reset, _ := strconv.ParseInt(a.header.Get("X-Rate-Limit-Reset"), 10, 64)
			if now := time.Now().Unix(); reset <= now || reset > now+3600 {
				t.Errorf("reset %d is not within the window after %d", reset, now)
			}
		}
	}
	if fmt.Sprint(statuses) != "[200 200 200 429]" {
		t.Errorf("statuses = %v, want [200 200 200 429]", statuses)
	}
}

func TestInjectAndHold(t *testing.T) {
	s := newServer(t)
	g := s.AddGroup(oktatest.Group{Name: "g"})
	u := s.AddUser(oktatest.User{Login: "a@corp.example"})
	put := "/api/v1/groups/" + g.ID + "/users/" + u.ID

	s.Inject(oktatest.OpPutMembership, oktatest.Fault{Status: 503, Count: 2})
	var statuses []int
	for range 3 {
		statuses = append(statuses, MustDo(t, s, "PUT", put, s.Token()).status)
	}
	if fmt.Sprint(statuses) != "[503 503 204]" {
		t.Errorf("statuses = %v, want [503 503 204]", statuses)
	}
	s.RemoveMember(g.ID, u.ID)

	// Hold: nothing changes until release.
	arrived, release := s.Hold(oktatest.OpPutMembership)
	done := make(chan int, 1)
	go func() { st, _ := status(s, "PUT", put); done <- st }()
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("held PUT never arrived")
	}
	if s.IsMember(g.ID, u.ID) {
		t.Error("membership changed while the PUT was held before its effect")
	}
	release()
	if st := <-done; st != 204 || !s.IsMember(g.ID, u.ID) {
		t.Errorf("after release: %d, member %v", st, s.IsMember(g.ID, u.ID))
	}

	// HoldAnswer: the change happens, the answer waits.
	arrived, release = s.HoldAnswer(oktatest.OpDelMembership)
	go func() { st, _ := status(s, "DELETE", put); done <- st }()
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("held DELETE never arrived")
	}
	if s.IsMember(g.ID, u.ID) {
		t.Error("membership still there while the DELETE answer is held")
	}
	release()
	if st := <-done; st != 204 {
		t.Errorf("after release: %d", st)
	}
}

// TestMembershipLogTellsRepeatsFromChanges: the log holds every applied
// PUT and DELETE, and marks the ones that found the membership already as
// asked (a replayed add), so a test can tell one grant added twice from an
// idempotent retry.
func TestMembershipLogTellsRepeatsFromChanges(t *testing.T) {
	s := newServer(t)
	g := s.AddGroup(oktatest.Group{Name: "g"})
	uid := s.AddUser(oktatest.User{Login: "u@corp.example"}).ID
	path := "/api/v1/groups/" + g.ID + "/users/" + uid
	for _, method := range []string{"PUT", "PUT", "DELETE", "DELETE"} {
		if a := MustDo(t, s, method, path, s.Token()); a.status != 204 {
			t.Fatalf("%s: %d %v", method, a.status, a.body)
		}
	}
	MustDo(t, s, "PUT", "/api/v1/groups/"+g.ID+"/users/00unone", s.Token()) // 404: not applied
	var got []string
	for _, c := range s.MembershipLog() {
		if c.Group != g.ID || c.User != uid || c.At.IsZero() {
			t.Errorf("change %+v: wrong group, user or time", c)
		}
		got = append(got, fmt.Sprintf("add=%t changed=%t", c.Add, c.Changed))
	}
	want := []string{"add=true changed=true", "add=true changed=false", "add=false changed=true", "add=false changed=false"}
	if strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Errorf("MembershipLog = %v, want %v", got, want)
	}
}
