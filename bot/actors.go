package bot

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/slack-go/slack"
	"github.com/symbot/symbot"
)

// actorCache builds symbot.Actors from users.info, trusting each answer for
// Config.UserCacheTTL.
type actorCache struct {
	b  *Bot
	mu sync.Mutex
	m  map[string]cachedActor
}

type cachedActor struct {
	a  symbot.Actor
	at time.Time
}

const maxCachedActors = 10000

func newActorCache(b *Bot) *actorCache {
	return &actorCache{b: b, m: map[string]cachedActor{}}
}

// actor returns the facts about a Slack user that the engine's policy needs.
func (b *Bot) actor(ctx context.Context, userID string) (symbot.Actor, error) {
	c := b.actors
	now := b.cfg.Now()
	c.mu.Lock()
	if e, ok := c.m[userID]; ok && now.Sub(e.at) < b.cfg.UserCacheTTL {
		c.mu.Unlock()
		return e.a, nil
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
		return symbot.Actor{}, fmt.Errorf("look up slack user %s: %w: %w", userID, errSlackProfile, err)
	}
	a := actorOf(u)
	c.mu.Lock()
	if len(c.m) >= maxCachedActors {
		clear(c.m)
	}
	c.m[userID] = cachedActor{a: a, at: now}
	c.mu.Unlock()
	return a, nil
}

// actorOf turns a users.info answer into an Actor.
func actorOf(u *slack.User) symbot.Actor {
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
	return symbot.Actor{
		Person:  symbot.Person{SlackID: u.ID, Name: name, Email: u.Profile.Email},
		IsGuest: u.IsRestricted || u.IsUltraRestricted,
		IsBot:   u.IsBot || u.IsAppUser,
	}
}
