// People: ResolveUser finds the active Okta user for a Slack person, by
// login override or by email.

package okta

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/okta/okta-sdk-golang/v2/okta"
	"github.com/okta/okta-sdk-golang/v2/okta/query"

	"github.com/symbot/symbot"
)

// ResolveUser finds the active Okta user for a Slack person: an override
// (by Slack id, then by email) names the login; otherwise the user whose
// login is the email, else the user found by `profile.email eq "<email>"`.
// Only ACTIVE users count: a match in another status gives an error
// wrapping symbot.ErrUserNotActive that names the status; no match gives
// symbot.ErrUserNotFound.
func (d *Directory) ResolveUser(ctx context.Context, p symbot.Person) (u symbot.DirUser, err error) {
	start := d.now()
	defer func() { d.observe("resolve_user", start, err) }()
	u, err = d.resolve(ctx, p)
	if err != nil {
		return symbot.DirUser{}, fmt.Errorf("resolve slack user %s: %w", p.SlackID, err)
	}
	return u, nil
}

func (d *Directory) resolve(ctx context.Context, p symbot.Person) (symbot.DirUser, error) {
	email := strings.TrimSpace(p.Email)
	if login, from, ok := d.override(p.SlackID, email); ok {
		u, err := d.getUser(ctx, login)
		if errors.Is(err, symbot.ErrUserNotFound) {
			return symbot.DirUser{}, fmt.Errorf("the override for %s names the okta login %q, but okta has no such user: %w", from, login, symbot.ErrUserNotFound)
		}
		if err != nil {
			return symbot.DirUser{}, err
		}
		if u.Status != "ACTIVE" {
			return symbot.DirUser{}, fmt.Errorf("okta user %s (from the override for %s) is %s, not ACTIVE: %w", u.Login, from, u.Status, symbot.ErrUserNotActive)
		}
		u.Via = symbot.ViaOverride
		return u, nil
	}
	if email == "" {
		return symbot.DirUser{}, fmt.Errorf("the slack profile has no email to find the okta user by; add an override for %s: %w", p.SlackID, symbot.ErrUserNotFound)
	}

	var inactive *symbot.DirUser
	u, err := d.getUser(ctx, email)
	switch {
	case err == nil && u.Status == "ACTIVE":
		u.Via = symbot.ViaEmail
		return u, nil
	case err == nil:
		inactive = &u
	case !errors.Is(err, symbot.ErrUserNotFound):
		return symbot.DirUser{}, err
	}

	found, err := d.searchEmail(ctx, email)
	if err != nil {
		return symbot.DirUser{}, err
	}
	var active []symbot.DirUser
	for _, f := range found {
		if !strings.EqualFold(f.Email, email) {
			continue
		}
		if f.Status == "ACTIVE" {
			active = append(active, f)
		} else if inactive == nil {
			inactive = &f
		}
	}
	switch {
	case len(active) == 1:
		active[0].Via = symbot.ViaEmail
		return active[0], nil
	case len(active) > 1:
		logins := make([]string, len(active))
		for i, a := range active {
			logins[i] = a.Login
		}
		return symbot.DirUser{}, fmt.Errorf("%d active okta users have the email %s (logins %s); add an override for %s: %w",
			len(active), email, strings.Join(logins, ", "), p.SlackID, symbot.ErrUserNotFound)
	case inactive != nil:
		return symbot.DirUser{}, fmt.Errorf("okta user %s with the email %s is %s, not ACTIVE: %w", inactive.Login, email, inactive.Status, symbot.ErrUserNotActive)
	}
	return symbot.DirUser{}, fmt.Errorf("no active Okta user with the email %s: %w", email, symbot.ErrUserNotFound)
}

func (d *Directory) override(slackID, email string) (login, from string, ok bool) {
	if slackID != "" {
		if login, ok := d.overrides[slackID]; ok {
			return login, "slack user " + slackID, true
		}
	}
	if email != "" {
		if login, ok := d.overrides[strings.ToLower(email)]; ok {
			return login, "email " + email, true
		}
	}
	return "", "", false
}

// getUser fetches a user by id or login; a 404 wraps symbot.ErrUserNotFound.
func (d *Directory) getUser(ctx context.Context, idOrLogin string) (symbot.DirUser, error) {
	var got *okta.User
	err := d.do(ctx, "get user", func(string) error {
		return fmt.Errorf("no okta user with the id or login %s: %w", idOrLogin, symbot.ErrUserNotFound)
	}, func(ctx context.Context, c *okta.Client) (*okta.Response, error) {
		u, resp, err := c.User.GetUser(ctx, url.PathEscape(idOrLogin))
		got = u
		return resp, err
	})
	if err != nil {
		return symbot.DirUser{}, err
	}
	if got == nil {
		return symbot.DirUser{}, fmt.Errorf("okta get user %s: empty answer", idOrLogin)
	}
	return dirUser(got), nil
}

// searchEmail lists the users (any status) whose profile.email is email.
func (d *Directory) searchEmail(ctx context.Context, email string) ([]symbot.DirUser, error) {
	expr := `profile.email eq "` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(email) + `"`
	var found []*okta.User
	err := d.do(ctx, "search users", nil, func(ctx context.Context, c *okta.Client) (*okta.Response, error) {
		us, resp, err := c.User.ListUsers(ctx, &query.Params{Search: expr, Limit: 200})
		found = us
		return resp, err
	})
	if err != nil {
		return nil, err
	}
	out := make([]symbot.DirUser, 0, len(found))
	for _, u := range found {
		if u != nil {
			out = append(out, dirUser(u))
		}
	}
	return out, nil
}

func dirUser(u *okta.User) symbot.DirUser {
	du := symbot.DirUser{ID: u.Id, Status: u.Status}
	if u.Profile != nil {
		du.Login, _ = (*u.Profile)["login"].(string)
		du.Email, _ = (*u.Profile)["email"].(string)
	}
	return du
}
