package okta_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/okta/oktatest"
)

// TestUserGroups: the ids of every group a user is in, for rules that read
// requester.groups; a missing user is ErrUserNotFound, not "no groups".
func TestUserGroups(t *testing.T) {
	e := MustEnv(t, nil)
	u := e.sim.AddUser(oktatest.User{Login: "a@corp.example"})
	g1 := e.sim.AddGroup(oktatest.Group{Name: "sre"})
	g2 := e.sim.AddGroup(oktatest.Group{Name: "dba"})
	e.sim.AddGroup(oktatest.Group{Name: "not-mine"})
	e.sim.AddMember(g1.ID, u.ID)
	e.sim.AddMember(g2.ID, u.ID)
	got, err := e.dir.UserGroups(t.Context(), u.ID)
	slices.Sort(got)
	want := []string{g1.ID, g2.ID}
	slices.Sort(want)
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("UserGroups = %v, %v; want %v", got, err, want)
	}
	if _, err := e.dir.UserGroups(t.Context(), "00umissing"); !errors.Is(err, symbot.ErrUserNotFound) {
		t.Fatalf("UserGroups(missing) err = %v, want ErrUserNotFound", err)
	}
}
