// A bounded set of recently seen keys with expiry: envelope, trigger and
// click dedup.

package bot

import (
	"sync"
	"time"
)

// recentSet remembers recently seen keys (envelope ids, trigger ids, click
// keys), each with an optional expiry and a value, bounded in size: when
// full, the oldest key is forgotten.
type recentSet struct {
	mu    sync.Mutex
	max   int
	m     map[string]recentEntry
	order []string // ring of keys in insertion order
	next  int
}

type recentEntry struct {
	until time.Time // zero: until pushed out
	val   any
}

func newRecentSet(max int) *recentSet {
	return &recentSet{max: max, m: make(map[string]recentEntry, max), order: make([]string, max)}
}

// get returns the value stored for key if it is present and not expired.
func (s *recentSet) get(key string, now time.Time) (any, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[key]
	if !ok || (!e.until.IsZero() && !now.Before(e.until)) {
		return nil, false
	}
	return e.val, true
}

// put stores key with val for ttl (0: until pushed out).
func (s *recentSet) put(key string, now time.Time, ttl time.Duration, val any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.putLocked(key, now, ttl, val)
}

func (s *recentSet) putLocked(key string, now time.Time, ttl time.Duration, val any) {
	var until time.Time
	if ttl > 0 {
		until = now.Add(ttl)
	}
	if _, ok := s.m[key]; !ok {
		if old := s.order[s.next]; old != "" {
			delete(s.m, old)
		}
		s.order[s.next] = key
		s.next = (s.next + 1) % s.max
	}
	s.m[key] = recentEntry{until: until, val: val}
}

// add stores key unless it is already present; it reports whether it was added.
func (s *recentSet) add(key string, now time.Time, ttl time.Duration) bool {
	return s.addValue(key, now, ttl, nil)
}

// addValue stores key with val unless key is already present; it reports
// whether it was added.
func (s *recentSet) addValue(key string, now time.Time, ttl time.Duration, val any) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.m[key]; ok && (e.until.IsZero() || now.Before(e.until)) {
		return false
	}
	s.putLocked(key, now, ttl, val)
	return true
}
