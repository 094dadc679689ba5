// The decoded-request cache: a request's stored bytes, and the request
// they decode to, so that reading a request the store has just written or
// read need not decode its JSON again.
//
// Why: a request is decoded each time a transaction reads it, about 27 µs
// for a pending one, and the same bytes are read several times in the
// few milliseconds after they are written: the approval message's post
// job completes (and records the message) in the next request's commit,
// and the early Okta look-ups read the request and its requester's open
// requests and then record their findings in a late write (since session
// 10 after a burst, no longer in the next request's commit). Those
// decodes ran inside the commit that the next request waits on.
//
// The cache is a memo of a function, bytes -> request: an entry holds the
// bytes and what json.Unmarshal makes of them, and is used only when the
// bytes a transaction reads are equal to the entry's. So an entry left by
// a write that was rolled back, or by a value written over since, is never
// used; it is only a miss. An entry made from a request being written is
// that request as decoding its bytes would give it back (storedForm), or
// is not made at all.

package store

import (
	"bytes"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/symbot/symbot"
)

// reqCacheMax bounds the entries of each memo (the request cache's and
// the job cache's, jobcache.go); past it an arbitrary one is dropped.
// Recently written requests and jobs are the ones read again (the pending
// requests and their jobs), and a few thousand are a few megabytes.
const reqCacheMax = 4096

// reqCache maps request ids to their last stored bytes seen and the
// request those decode to. The zero value is empty and ready; a nil
// *reqCache caches nothing.
type reqCache struct{ memo[string, *symbot.Request] }

// memo maps record ids to the record's last stored bytes seen and the
// value they decode to; at most reqCacheMax entries, past which an
// arbitrary one is dropped. The zero value is empty and ready. Neither
// bytes nor value change once in it: readers get copies.
type memo[K comparable, V any] struct {
	mu sync.Mutex
	m  map[K]memoEntry[V]
}

// memoEntry is one memo: val decodes to v.
type memoEntry[V any] struct {
	val []byte
	v   V
}

// lookup returns the value that val (record id's stored bytes) decodes
// to, when the memo knows it; the caller copies it before handing it out.
func (c *memo[K, V]) lookup(id K, val []byte) (V, bool) {
	c.mu.Lock()
	e, ok := c.m[id]
	c.mu.Unlock()
	if !ok || !bytes.Equal(e.val, val) {
		var zero V
		return zero, false
	}
	return e.v, true
}

func (c *memo[K, V]) add(id K, val []byte, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[K]memoEntry[V]{}
	}
	if _, ok := c.m[id]; !ok && len(c.m) >= reqCacheMax {
		for k := range c.m {
			delete(c.m, k)
			break
		}
	}
	c.m[id] = memoEntry[V]{val: val, v: v}
}

func (c *memo[K, V]) forget(id K) {
	c.mu.Lock()
	delete(c.m, id)
	c.mu.Unlock()
}

// get returns a copy of the request that val (request id's stored bytes)
// decodes to, when the cache knows it.
func (c *reqCache) get(id string, val []byte) (*symbot.Request, bool) {
	if c == nil {
		return nil, false
	}
	r, ok := c.lookup(id, val)
	if !ok {
		return nil, false
	}
	return r.Clone(), true
}

// decoded remembers that val decodes to r, as json.Unmarshal gave it: the
// cache keeps a copy of both (val may live in bbolt's memory map, valid
// only during its transaction).
func (c *reqCache) decoded(id string, val []byte, r *symbot.Request) {
	if c == nil {
		return
	}
	c.add(id, bytes.Clone(val), r.Clone())
}

// encoded remembers that r was encoded to val, when the request that val
// decodes to is known exactly (storedForm); otherwise it forgets id.
func (c *reqCache) encoded(id string, val []byte, r *symbot.Request) {
	if c == nil {
		return
	}
	s, ok := storedForm(r)
	if !ok {
		c.forget(id)
		return
	}
	c.add(id, bytes.Clone(val), s)
}

// storedForm returns r as decoding encodeRequest(r) gives it back, or
// false when it cannot say so cheaply. The JSON round trip of
// requestRecord changes only two kinds of values: a time (its monotonic
// reading and its location go; a zero time under omitzero reads back as
// time.Time{}), which is put through time's own JSON methods here, as
// encoding/json does; and a string that is not valid UTF-8 (its bad bytes
// become U+FFFD), for which it reports false. Strings, numbers, bools,
// slices (nil or not) and the pointer read back as they were.
// TestStoredFormIsTheDecodedForm holds this to json.Unmarshal for every
// field, found by reflection, so that a field added to Request fails it
// until it is handled here.
func storedForm(r *symbot.Request) (*symbot.Request, bool) {
	c := r.Clone()
	ok := true
	str := func(ss ...string) {
		for _, s := range ss {
			if ok && !utf8.ValidString(s) {
				ok = false
			}
		}
	}
	// tm is a time field under omitzero; tmAlways one always encoded.
	tm := func(ts ...*time.Time) {
		for _, t := range ts {
			if t.IsZero() {
				*t = time.Time{}
				continue
			}
			if ok {
				ok = roundTripTime(t)
			}
		}
	}
	tmAlways := func(t *time.Time) {
		if ok {
			ok = roundTripTime(t)
		}
	}
	str(c.ID, c.Flow, c.Target, c.GroupID, c.Requester.SlackID, c.Requester.Name, c.Requester.Email, c.Reason,
		string(c.State), c.ExtensionOf, c.OktaUserID, c.OktaLogin, c.RemovalNote, c.PreOktaUserID, c.PreOktaLogin,
		c.FailReason, c.Message.Channel, c.Message.TS, c.Rule, c.RuleNote, c.ReviewedBy, c.ReviewNote, c.Nonce)
	str(c.ExtendedBy...)
	str(c.BackupApprovers...)
	tm(&c.StartAt, &c.CreatedAt, &c.UpdatedAt, &c.TimeoutAt, &c.WarnAt, &c.ExpiresAt, &c.GrantedAt,
		&c.PrecheckedAt, &c.NudgeAt, &c.ReviewDue, &c.ReviewedAt)
	for i := range c.Approvals {
		d := &c.Approvals[i]
		str(d.By, d.Name, d.Note, d.OktaUserID)
		tmAlways(&d.At)
	}
	for i := range c.Transitions {
		t := &c.Transitions[i]
		str(string(t.From), string(t.To), t.By, t.Note)
		tmAlways(&t.At)
	}
	for _, m := range c.Reposts {
		str(m.Channel, m.TS)
	}
	if c.RuleApprovers != nil {
		str(c.RuleApprovers.OktaGroup)
		str(c.RuleApprovers.Users...)
	}
	return c, ok
}

// roundTripTime replaces *t with what time's JSON encoding of it decodes
// to; false when it has none (a year outside 0-9999).
func roundTripTime(t *time.Time) bool {
	if t.Location() == time.UTC {
		// The common case, and a cheaper way to the same result: a UTC
		// time reads back as itself, less any monotonic reading.
		if y := t.Year(); y < 0 || y > 9999 {
			return false
		}
		*t = t.Round(0)
		return true
	}
	b, err := t.MarshalJSON()
	if err != nil {
		return false
	}
	var u time.Time
	if err := u.UnmarshalJSON(b); err != nil {
		return false
	}
	*t = u
	return true
}
