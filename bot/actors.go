// Who is acting: a Slack user's profile from users.info, cached, and the
// admission of actors (this workspace, not deleted, not a bot or stranger,
// confirmed email) before the engine is asked.

package bot

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/slack-go/slack"
	"github.com/symbot/symbot"
)

// actorCache remembers what users.info said about people, trusting each
// answer for Config.UserCacheTTL.
type actorCache struct {
	b  *Bot
	mu sync.Mutex
	m  map[string]cachedActor
}

type cachedActor struct {
	p  profile
	at time.Time
}

// profile is what Slack says about a person, as symbot uses it.
type profile struct {
	actor symbot.Actor
	// refusal says why this account may not act (request, approve, deny,
	// revoke, extend, cancel) at all; "" when it may.
	refusal string
	// emailUnconfirmed: Slack has not confirmed the email on the profile,
	// so actor.Email is left empty and never finds anyone in Okta.
	emailUnconfirmed bool
	// loc is the person's time zone in Slack (users.info tz, or its
	// tz_offset when the zone is unknown here); a start time they type is
	// read in it.
	loc *time.Location
}

// workspace is where the app is installed, learned from auth.test.
type workspace struct {
	team       string // team_id
	enterprise string // enterprise_id; "" outside Enterprise Grid
}

const maxCachedActors = 10000

func newActorCache(b *Bot) *actorCache {
	return &actorCache{b: b, m: map[string]cachedActor{}}
}

// profile returns what the engine's policy needs to know about a Slack user,
// and why the account may not act at all, if it may not.
func (b *Bot) profile(ctx context.Context, userID string) (profile, error) {
	c := b.actors
	now := b.cfg.Now()
	c.mu.Lock()
	if e, ok := c.m[userID]; ok && now.Sub(e.at) < b.cfg.UserCacheTTL {
		c.mu.Unlock()
		return e.p, nil
	}
	c.mu.Unlock()

	var u *slack.User
	err := b.call(ctx, interactive, "users.info", "", func(ctx context.Context) error {
		var err error
		u, err = b.api.GetUserInfoContext(ctx, userID)
		return err
	})
	if err != nil {
		b.log.Warn("users.info failed", "user", userID, "err", err)
		return profile{}, fmt.Errorf("look up slack user %s: %w: %w", userID, errSlackProfile, err)
	}
	p := profileOf(u, b.ws.Load())
	c.mu.Lock()
	if len(c.m) >= maxCachedActors {
		clear(c.m)
	}
	c.m[userID] = cachedActor{p: p, at: now}
	c.mu.Unlock()
	return p, nil
}

// cachedProfile returns what is cached about userID, without asking Slack.
func (b *Bot) cachedProfile(userID string) (profile, bool) {
	c := b.actors
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[userID]
	return e.p, ok
}

// admit returns the actor for a Slack user who is about to change
// something (request, approve, deny, revoke, extend, cancel), or a
// *symbot.PolicyError saying why this account may not act at all: it is
// deactivated, a bot or app, a stranger, or of another workspace or
// organisation (Slack Connect). Guests are left to the flow's policy.
func (b *Bot) admit(ctx context.Context, userID string) (symbot.Actor, error) {
	p, err := b.profile(ctx, userID)
	if err != nil {
		return symbot.Actor{}, err
	}
	if p.refusal != "" {
		return symbot.Actor{}, &symbot.PolicyError{Reason: p.refusal}
	}
	return p.actor, nil
}

// errEmailUnconfirmed explains a failed Okta look-up for someone whose
// Slack email is not confirmed.
var errEmailUnconfirmed = errors.New("slack email not confirmed")

// profileOf turns a users.info answer into a profile, judged against the
// workspace the app is installed in (nil: not known, which refuses).
func profileOf(u *slack.User, ws *workspace) profile {
	name := u.Profile.DisplayName
	if name == "" {
		name = u.RealName
	}
	if name == "" {
		name = u.Profile.RealName
	}
	if name == "" {
		name = u.Name
	}
	p := profile{actor: symbot.Actor{
		Person:  symbot.Person{SlackID: u.ID, Name: name, Email: u.Profile.Email},
		IsGuest: u.IsRestricted || u.IsUltraRestricted,
		IsBot:   u.IsBot || u.IsAppUser || u.IsWorkflowBot || u.IsConnectorBot,
		// The profile's zone, for rules that read the requester's local time.
		TimeZone: u.TZ,
	}}
	if !u.IsEmailConfirmed {
		// An unconfirmed address may be anyone's (an approver's, say): it
		// must not find an Okta user.
		p.actor.Email = ""
		p.emailUnconfirmed = u.Profile.Email != ""
	}
	p.refusal = refusal(u, ws)
	p.loc = location(u.TZ, u.TZOffset)
	return p
}

// location is the time zone named tz (an IANA name, from users.info), or a
// fixed zone of offset seconds when this host does not know the name.
func location(tz string, offset int) *time.Location {
	if tz != "" {
		if loc := loadLocation(tz); loc != nil {
			return loc
		}
		return time.FixedZone(tz, offset)
	}
	if offset != 0 {
		return time.FixedZone(time.Unix(0, 0).In(time.FixedZone("", offset)).Format("UTC-07:00"), offset)
	}
	return time.UTC
}

// locations caches time.LoadLocation by name (nil: unknown here), which
// otherwise reads the zone file from disk for every users.info answer.
var locations struct {
	sync.Mutex
	m map[string]*time.Location
}

// maxLocations bounds the cache: there are some 600 IANA names, and a name
// beyond the bound is just loaded each time.
const maxLocations = 1024

// loadLocation is time.LoadLocation(name), or nil when this host does not
// know the name; each name is read from disk once.
func loadLocation(name string) *time.Location {
	locations.Lock()
	loc, ok := locations.m[name]
	locations.Unlock()
	if ok {
		return loc
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		loc = nil
	}
	locations.Lock()
	if locations.m == nil {
		locations.m = map[string]*time.Location{}
	}
	if len(locations.m) < maxLocations {
		locations.m[name] = loc
	}
	locations.Unlock()
	return loc
}

// refusal says why u may not act at all, or "".
func refusal(u *slack.User, ws *workspace) string {
	switch {
	case u.ID == "":
		return "Slack did not say who you are"
	case u.Deleted:
		return "your Slack account is deactivated"
	case u.IsBot || u.IsAppUser || u.IsWorkflowBot || u.IsConnectorBot:
		return "bots and apps cannot request or decide access"
	case u.IsStranger:
		return "your Slack account is not a member of the workspace symbot is installed in"
	case ws == nil:
		return "symbot does not know its Slack workspace yet; please try again in a minute"
	}
	const other = "your Slack account belongs to another workspace or organization (a Slack Connect or external account); only members of the workspace symbot is installed in can request or decide access"
	if ws.enterprise != "" {
		if u.Enterprise.EnterpriseID != ws.enterprise {
			return other
		}
		if ws.team != "" && u.TeamID != ws.team && !slices.Contains(u.Enterprise.Teams, ws.team) {
			return other
		}
		return ""
	}
	if u.TeamID != ws.team || u.Enterprise.EnterpriseID != "" {
		return other
	}
	return ""
}

// learnWorkspace asks auth.test which workspace (and Enterprise Grid org)
// the app is installed in. It retries transient failures until ctx ends;
// a rejected bot token is an error.
func (b *Bot) learnWorkspace(ctx context.Context) error {
	wait := 500 * time.Millisecond
	for {
		var res *slack.AuthTestResponse
		err := b.try(ctx, interactive, "auth.test", func(ctx context.Context) error {
			var err error
			res, err = b.api.AuthTestContext(ctx)
			return err
		})
		if err == nil && res.TeamID == "" && res.EnterpriseID == "" {
			err = errors.New("auth.test named no team and no enterprise")
		}
		if err == nil {
			b.ws.Store(&workspace{team: res.TeamID, enterprise: res.EnterpriseID})
			if res.BotID != "" {
				b.self.Store(&res.BotID)
			}
			b.log.Info("slack workspace", "team_id", res.TeamID, "enterprise_id", res.EnterpriseID)
			return nil
		}
		if te := tokenError(EnvBotToken, "auth.test", err); te != nil {
			return fmt.Errorf("learn the slack workspace: %w", te)
		}
		if ctx.Err() != nil {
			return nil
		}
		b.log.Warn("auth.test failed; retrying", "err", err, "in", wait)
		if !pause(ctx, wait) {
			return nil
		}
		wait = min(2*wait, 30*time.Second)
	}
}
