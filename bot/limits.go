// Abuse limits: requests and commands per minute per person, pending
// requests per person, and the approver answer cache.

package bot

import (
	"sync"
	"sync/atomic"
	"time"
)

// Limits are per-person limits that keep one person's flood from costing
// anyone else. A zero field gets its default (DefaultLimits); a negative
// one turns that limit off.
type Limits struct {
	// RequestsPerMinute is how many requests (extensions included) one
	// person may make in a minute; each posts an approval message.
	RequestsPerMinute int
	// PendingPerUser is how many requests one person may have waiting for
	// approval at once.
	PendingPerUser int
	// CommandsPerMinute is how many slash commands, button clicks and form
	// submissions one person may send in a minute.
	CommandsPerMinute int
	// ApproverCacheTTL is how long "/sym whoami" trusts an answer to "may
	// this person approve flow X" (an Okta group look-up for okta_group
	// approvers). Decisions always ask afresh.
	ApproverCacheTTL time.Duration
}

// DefaultLimits are the limits a zero Limits gets.
func DefaultLimits() Limits {
	return Limits{RequestsPerMinute: 5, PendingPerUser: 10, CommandsPerMinute: 30, ApproverCacheTTL: 30 * time.Second}
}

// withDefaults fills zero fields from DefaultLimits.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.RequestsPerMinute == 0 {
		l.RequestsPerMinute = d.RequestsPerMinute
	}
	if l.PendingPerUser == 0 {
		l.PendingPerUser = d.PendingPerUser
	}
	if l.CommandsPerMinute == 0 {
		l.CommandsPerMinute = d.CommandsPerMinute
	}
	if l.ApproverCacheTTL == 0 {
		l.ApproverCacheTTL = d.ApproverCacheTTL
	}
	return l
}

// rate is a per-person token bucket: n events a minute, in bursts of up
// to n. n < 0 allows everything.
type rate struct {
	mu      sync.Mutex
	n       int
	buckets map[string]*bucket
}

type bucket struct {
	tokens   float64
	at       time.Time
	notified time.Time // when the person was last told to slow down
}

const maxBuckets = 50000

func newRate(perMinute int) *rate {
	return &rate{n: perMinute, buckets: map[string]*bucket{}}
}

// allow takes one token of user's bucket at now, if there is one.
func (r *rate) allow(user string, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n < 0 {
		return true
	}
	b := r.refillLocked(user, now)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// notify reports whether user should be told about being limited now: at
// most once a minute, so that the telling cannot be flooded either.
func (r *rate) notify(user string, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.refillLocked(user, now)
	if !b.notified.IsZero() && now.Sub(b.notified) < time.Minute {
		return false
	}
	b.notified = now
	return true
}

func (r *rate) refillLocked(user string, now time.Time) *bucket {
	b, ok := r.buckets[user]
	if !ok {
		if len(r.buckets) >= maxBuckets {
			// Forget the full buckets: they would allow as much anyway.
			for u, o := range r.buckets {
				if now.Sub(o.at) >= time.Minute && now.Sub(o.notified) >= time.Minute {
					delete(r.buckets, u)
				}
			}
		}
		b = &bucket{tokens: float64(r.n), at: now}
		r.buckets[user] = b
		return b
	}
	if d := now.Sub(b.at); d > 0 {
		b.tokens = min(float64(r.n), b.tokens+d.Minutes()*float64(r.n))
		b.at = now
	}
	return b
}

// setN changes the rate to n a minute. What each person used of the
// current minute's allowance still counts: a bucket holds n less what was
// used, never less than nothing.
func (r *rate) setN(n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.n
	r.n = n
	if old < 0 || n < 0 {
		clear(r.buckets) // from or to unlimited: start full
		return
	}
	for _, b := range r.buckets {
		b.tokens = max(0, min(float64(n), b.tokens+float64(n-old)))
	}
}

// limiter holds a bot's per-person limits; set changes them while the bot
// runs.
type limiter struct {
	cur                atomic.Pointer[Limits]
	commands, requests *rate
}

func newLimiter(l Limits) *limiter {
	l = l.withDefaults()
	lim := &limiter{commands: newRate(l.CommandsPerMinute), requests: newRate(l.RequestsPerMinute)}
	lim.cur.Store(&l)
	return lim
}

// get returns the limits in effect.
func (l *limiter) get() Limits { return *l.cur.Load() }

// set replaces the limits; the per-person buckets carry over.
func (l *limiter) set(lim Limits) {
	lim = lim.withDefaults()
	l.cur.Store(&lim)
	l.commands.setN(lim.CommandsPerMinute)
	l.requests.setN(lim.RequestsPerMinute)
}

// approverCache remembers whoami's answers to "may this person approve
// flow X" for Limits.ApproverCacheTTL, so that repeated whoamis do not each
// ask Okta. Decisions never use it.
type approverCache struct {
	mu sync.Mutex
	m  map[string]approverAnswer
}

type approverAnswer struct {
	ok bool
	at time.Time
}

const maxApproverAnswers = 10000

func newApproverCache() *approverCache { return &approverCache{m: map[string]approverAnswer{}} }

func (c *approverCache) get(key string, now time.Time, ttl time.Duration) (bool, bool) {
	if ttl <= 0 {
		return false, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	a, ok := c.m[key]
	if !ok || now.Sub(a.at) >= ttl {
		return false, false
	}
	return a.ok, true
}

func (c *approverCache) put(key string, ok bool, now time.Time, ttl time.Duration) {
	if ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxApproverAnswers {
		clear(c.m)
	}
	c.m[key] = approverAnswer{ok: ok, at: now}
}

// forget drops every remembered answer.
func (c *approverCache) forget() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.m)
}

// SetLimits replaces the per-person limits while the bot runs (a config
// reload); zero fields get the defaults, as in Config.Limits. What each
// person has used in the current minute carries over.
func (b *Bot) SetLimits(l Limits) { b.limits.set(l) }

// FlowsChanged tells the bot the engine's flows were replaced: whoami's
// remembered approver answers, which depend on them, are dropped.
func (b *Bot) FlowsChanged() { b.approvers.forget() }
