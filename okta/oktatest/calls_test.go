package oktatest_test

import (
	"slices"
	"testing"

	"github.com/symbot/symbot/okta/oktatest"
)

// TestCallsFrom: CallCount marks the log and CallsFrom reads only the
// requests recorded after the mark, in order, as copies; ResetCalls starts
// the count again.
func TestCallsFrom(t *testing.T) {
	s := newServer(t)
	u := s.AddUser(oktatest.User{Login: "ann@corp.example"})
	g := s.AddGroup(oktatest.Group{Name: "admins"})
	if n := s.CallCount(); n != 0 {
		t.Fatalf("CallCount of a new server = %d, want 0", n)
	}
	if got := s.CallsFrom(0); got != nil {
		t.Fatalf("CallsFrom(0) of a new server = %v, want nil", got)
	}
	MustDo(t, s, "GET", "/api/v1/users/"+u.ID, s.Token())
	mark := s.CallCount()
	if mark != 1 {
		t.Fatalf("CallCount after one request = %d, want 1", mark)
	}
	MustDo(t, s, "PUT", "/api/v1/groups/"+g.ID+"/users/"+u.ID, s.Token())
	MustDo(t, s, "GET", "/api/v1/groups/00gmissing", s.Token())
	var got []string
	calls := s.CallsFrom(mark)
	for _, c := range calls {
		got = append(got, c.Method+" "+c.Path+" "+statusClass(c.Status))
	}
	want := []string{"PUT /api/v1/groups/" + g.ID + "/users/" + u.ID + " 2xx", "GET /api/v1/groups/00gmissing 4xx"}
	if !slices.Equal(got, want) {
		t.Errorf("CallsFrom(%d) = %q, want %q", mark, got, want)
	}
	if !slices.Equal(s.CallsFrom(-1), s.Calls()) || s.CallCount() != 3 {
		t.Errorf("CallsFrom(-1) = %v, Calls() = %v, CallCount() = %d; want the same 3", s.CallsFrom(-1), s.Calls(), s.CallCount())
	}
	if rest := s.CallsFrom(s.CallCount()); rest != nil {
		t.Errorf("CallsFrom(CallCount()) = %v, want nil", rest)
	}
	// The answer is a copy: changing it leaves the log alone.
	calls[0].Path = "changed"
	if c := s.CallsFrom(mark)[0]; c.Path == "changed" {
		t.Error("changing the answer changed the log")
	}
	s.ResetCalls()
	if n, rest := s.CallCount(), s.CallsFrom(mark); n != 0 || rest != nil {
		t.Errorf("after ResetCalls: CallCount() = %d, CallsFrom(%d) = %v; want 0 and nil", n, mark, rest)
	}
	MustDo(t, s, "GET", "/api/v1/users/"+u.ID, s.Token())
	if c := s.CallsFrom(0); len(c) != 1 || c[0].Path != "/api/v1/users/"+u.ID {
		t.Errorf("CallsFrom(0) after ResetCalls and one request = %v", c)
	}
}

// statusClass is the class of an HTTP status: "2xx", "4xx".
func statusClass(status int) string { return string(rune('0'+status/100)) + "xx" }
