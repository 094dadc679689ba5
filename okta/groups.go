// Groups: look a group up, add, remove and check a membership, and list
// members, each through Directory.do (token refresh, rate limit, retries).

package okta

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/okta/okta-sdk-golang/v2/okta"

	"github.com/symbot/symbot"
)

// Group is an Okta group.
type Group struct {
	ID          string
	Name        string
	Description string
	Type        string // OKTA_GROUP, APP_GROUP, BUILT_IN
}

// Group fetches a group, e.g. to check a flow's target before use. A
// missing group gives an error wrapping symbot.ErrGroupNotFound.
func (d *Directory) Group(ctx context.Context, groupID string) (g Group, err error) {
	start := d.now()
	defer func() { d.observe("group", start, err) }()
	if err := checkID("group", groupID); err != nil {
		return Group{}, err
	}
	var got *okta.Group
	err = d.do(ctx, "get group", groupNotFound(groupID), func(ctx context.Context, c *okta.Client) (*okta.Response, error) {
		g, resp, err := c.Group.GetGroup(ctx, url.PathEscape(groupID))
		got = g
		return resp, err
	})
	if err != nil {
		return Group{}, fmt.Errorf("get okta group %s: %w", groupID, err)
	}
	if got == nil {
		return Group{}, fmt.Errorf("get okta group %s: empty answer", groupID)
	}
	return toGroup(got), nil
}

// AddMember adds the user to the group (PUT, idempotent).
func (d *Directory) AddMember(ctx context.Context, userID, groupID string) (err error) {
	start := d.now()
	defer func() { d.observe("add_member", start, err) }()
	if err := d.changeMember(ctx, "add member", userID, groupID, func(ctx context.Context, c *okta.Client) (*okta.Response, error) {
		return c.Group.AddUserToGroup(ctx, url.PathEscape(groupID), url.PathEscape(userID))
	}); err != nil {
		return fmt.Errorf("add okta user %s to group %s: %w", userID, groupID, err)
	}
	return nil
}

// RemoveMember removes the user from the group (DELETE, idempotent: a
// user who is not a member is fine). A missing user or group is an error
// (wrapping symbot.ErrUserNotFound or symbot.ErrGroupNotFound); either way
// the membership no longer exists.
func (d *Directory) RemoveMember(ctx context.Context, userID, groupID string) (err error) {
	start := d.now()
	defer func() { d.observe("remove_member", start, err) }()
	if err := d.changeMember(ctx, "remove member", userID, groupID, func(ctx context.Context, c *okta.Client) (*okta.Response, error) {
		return c.Group.RemoveUserFromGroup(ctx, url.PathEscape(groupID), url.PathEscape(userID))
	}); err != nil {
		return fmt.Errorf("remove okta user %s from group %s: %w", userID, groupID, err)
	}
	return nil
}

func (d *Directory) changeMember(ctx context.Context, op, userID, groupID string, fn attemptFunc) error {
	if err := checkID("user", userID); err != nil {
		return err
	}
	if err := checkID("group", groupID); err != nil {
		return err
	}
	return d.do(ctx, op, func(summary string) error {
		// Okta names the missing resource: "... : <id> (User)" or "(UserGroup)".
		if strings.HasSuffix(summary, "(User)") {
			return fmt.Errorf("okta has no user %s: %w", userID, symbot.ErrUserNotFound)
		}
		return fmt.Errorf("okta has no group %s: %w", groupID, symbot.ErrGroupNotFound)
	}, fn)
}

// IsMember reports whether the user is in the group. It pages through the
// user's groups (GET /api/v1/users/{id}/groups), which stays small while a
// group's member list can be huge. A group that does not exist simply
// does not contain the user (use Group to check a group); a missing user
// gives an error wrapping symbot.ErrUserNotFound.
func (d *Directory) IsMember(ctx context.Context, userID, groupID string) (is bool, err error) {
	start := d.now()
	defer func() { d.observe("is_member", start, err) }()
	if err := checkID("user", userID); err != nil {
		return false, err
	}
	if err := checkID("group", groupID); err != nil {
		return false, err
	}
	path := "/api/v1/users/" + url.PathEscape(userID) + "/groups"
	err = pages(ctx, d, "list user groups", path, func(string) error {
		return fmt.Errorf("okta has no user %s: %w", userID, symbot.ErrUserNotFound)
	}, func(gs []*groupRef) bool {
		for _, g := range gs {
			if g != nil && g.Id == groupID {
				is = true
				return true
			}
		}
		return false
	})
	if err != nil {
		return false, fmt.Errorf("check okta user %s in group %s: %w", userID, groupID, err)
	}
	return is, nil
}

// UserGroups returns the ids of every group the user is in (GET
// /api/v1/users/{id}/groups, all pages), for rules that read the
// requester's groups. A missing user gives an error wrapping
// symbot.ErrUserNotFound.
func (d *Directory) UserGroups(ctx context.Context, userID string) (ids []string, err error) {
	start := d.now()
	defer func() { d.observe("user_groups", start, err) }()
	if err := checkID("user", userID); err != nil {
		return nil, err
	}
	path := "/api/v1/users/" + url.PathEscape(userID) + "/groups"
	err = pages(ctx, d, "list user groups", path, func(string) error {
		return fmt.Errorf("okta has no user %s: %w", userID, symbot.ErrUserNotFound)
	}, func(gs []*groupRef) bool {
		for _, g := range gs {
			if g != nil {
				ids = append(ids, g.Id)
			}
		}
		return false
	})
	if err != nil {
		return nil, fmt.Errorf("list okta user %s's groups: %w", userID, err)
	}
	return ids, nil
}

// groupRef is the one field of a group that IsMember and UserGroups read:
// decoding a page of groups into it skips the rest of each group (its
// profile, dates, links), about a third of the time of decoding whole
// okta.Group values (the early look-ups list a requester's groups for
// every request).
type groupRef struct {
	Id string `json:"id"`
}

// ListMembers returns every member of the group, following Okta's
// Link rel="next" pages of Config.PageSize users.
func (d *Directory) ListMembers(ctx context.Context, groupID string) (us []symbot.DirUser, err error) {
	start := d.now()
	defer func() { d.observe("list_members", start, err) }()
	if err := checkID("group", groupID); err != nil {
		return nil, err
	}
	path := "/api/v1/groups/" + url.PathEscape(groupID) + "/users?limit=" + strconv.Itoa(d.pageSize)
	err = pages(ctx, d, "list group members", path, groupNotFound(groupID), func(page []*okta.User) bool {
		for _, u := range page {
			if u != nil {
				us = append(us, dirUser(u))
			}
		}
		return false
	})
	if err != nil {
		return nil, fmt.Errorf("list members of okta group %s: %w", groupID, err)
	}
	return us, nil
}

// pages GETs path and every next page, each with its own retries, and
// hands each page to each until it returns true.
func pages[T any](ctx context.Context, d *Directory, op, path string, notFound notFoundFunc, each func([]*T) bool) error {
	seen := map[string]bool{}
	for next := path; next != ""; {
		if seen[next] {
			return fmt.Errorf("okta %s: the next-page link repeats %s", op, next)
		}
		seen[next] = true
		var page []*T
		var resp *okta.Response
		err := d.do(ctx, op, notFound, func(ctx context.Context, c *okta.Client) (*okta.Response, error) {
			page = nil
			rq := c.CloneRequestExecutor()
			req, err := rq.WithAccept("application/json").WithContentType("application/json").NewRequest(http.MethodGet, next, nil)
			if err != nil {
				return nil, err
			}
			r, err := rq.Do(ctx, req, &page)
			resp = r
			return r, err
		})
		if err != nil {
			return err
		}
		if each(page) || len(page) == 0 || resp == nil || !resp.HasNextPage() {
			return nil
		}
		next = resp.NextPage
	}
	return nil
}

func groupNotFound(groupID string) notFoundFunc {
	return func(string) error {
		return fmt.Errorf("okta has no group %s: %w", groupID, symbot.ErrGroupNotFound)
	}
}

func toGroup(g *okta.Group) Group {
	out := Group{ID: g.Id, Type: g.Type}
	if g.Profile != nil {
		out.Name, out.Description = g.Profile.Name, g.Profile.Description
	}
	return out
}

var errEmptyID = errors.New("empty id")

func checkID(what, id string) error {
	if strings.TrimSpace(id) == "" {
		return fmt.Errorf("okta %s id: %w", what, errEmptyID)
	}
	return nil
}
