// The shared rate limiter: it follows Okta's X-Rate-Limit headers so that
// symbot's calls wait for the window's reset instead of spending the org's
// whole limit.

package okta

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// limiter keeps every call of one Directory under Okta's rate limit. It
// learns the window from the X-Rate-Limit-Limit, -Remaining and -Reset
// headers of every answer and counts the calls it lets out itself, so a
// burst stops at the end of the window's budget and waits for the reset
// instead of running into 429s.
//
// Okta keeps one bucket per endpoint family; this limiter keeps one state
// for all of them, which is conservative: an answer from a nearly spent
// bucket slows every call until its reset.
//
// Accounting: avail is how many more calls may start in the current
// window. Each call takes one when it starts. Each answer lowers avail to
// Remaining minus the calls still in flight (they may not be counted in
// Remaining yet), never raises it within a window. An answer with a later
// reset starts a new window. When the local clock passes the reset, avail
// becomes Limit minus the calls in flight. Until the first answer arrives
// only one call is let out at a time, so not even the first burst can
// overrun a small limit.
type limiter struct {
	mu        sync.Mutex
	known     bool      // a rate-limited answer was seen
	free      bool      // answers carry no rate-limit headers: do not limit
	limit     int       // calls per window
	avail     int       // calls that may still start in this window
	reset     int64     // the server's reset (epoch seconds) of the current window
	resetAt   time.Time // local time after which the window is surely over; zero once passed
	inflight  int
	waiters   int
	wake      chan struct{}
	throttled atomic.Int64 // waits for a reset
	now       func() time.Time
}

func newLimiter(now func() time.Time) *limiter {
	return &limiter{wake: make(chan struct{}), now: now}
}

// reserve is how many calls of each window are left to other clients of
// the same org.
func (l *limiter) reserve() int { return l.limit / 50 }

// waitError says the reset comes after the caller's deadline.
type waitError struct{ wait time.Duration }

func (e *waitError) Error() string {
	return fmt.Sprintf("rate limit resets in %s, after the deadline", e.wait)
}

// wait blocks until a call may start (or ctx ends, or the reset comes
// after ctx's deadline) and counts it as in flight; done must follow.
func (l *limiter) wait(ctx context.Context) error {
	counted := false
	for {
		l.mu.Lock()
		now := l.now()
		if !l.resetAt.IsZero() && !now.Before(l.resetAt) {
			l.resetAt = time.Time{}
			l.avail = l.limit - l.inflight
		}
		switch {
		case l.free:
			l.inflight++
			l.mu.Unlock()
			return nil
		case !l.known:
			if l.inflight == 0 {
				l.inflight++
				l.mu.Unlock()
				return nil
			}
		case l.avail > l.reserve():
			l.avail--
			l.inflight++
			l.mu.Unlock()
			return nil
		}
		var timer *time.Timer
		var tc <-chan time.Time
		if !l.resetAt.IsZero() {
			d := l.resetAt.Sub(now)
			if dl, ok := ctx.Deadline(); ok && dl.Before(l.resetAt) {
				l.mu.Unlock()
				return &waitError{wait: d}
			}
			timer = time.NewTimer(d)
			tc = timer.C
			if !counted {
				counted = true
				l.throttled.Add(1)
			}
		}
		ch := l.wake
		l.waiters++
		l.mu.Unlock()
		var err error
		select {
		case <-ctx.Done():
			err = ctx.Err()
		case <-ch:
		case <-tc:
		}
		if timer != nil {
			timer.Stop()
		}
		l.mu.Lock()
		l.waiters--
		l.mu.Unlock()
		if err != nil {
			return err
		}
	}
}

// blocked reports whether calls wait for a known reset.
func (l *limiter) blocked() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.resetAt.IsZero() && l.avail <= l.reserve()
}

// done ends a call started by wait and learns from its answer.
func (l *limiter) done(tr *trace) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inflight--
	switch {
	case tr.hasRL:
		l.free = false
		end := time.Unix(tr.reset, 0)
		if !tr.serverNow.IsZero() {
			// Date has whole seconds and is never later than the server's
			// clock, so this end is never before the server's reset.
			end = tr.received.Add(time.Duration(tr.reset-tr.serverNow.Unix()) * time.Second)
		}
		switch {
		case !l.known || tr.reset > l.reset:
			l.known = true
			l.limit, l.reset, l.resetAt = tr.limit, tr.reset, end
			l.avail = tr.remaining - l.inflight
		case tr.reset == l.reset && !l.resetAt.IsZero():
			l.limit = tr.limit
			l.avail = min(l.avail, tr.remaining-l.inflight)
			if end.After(l.resetAt) {
				l.resetAt = end
			}
		}
		// An answer from an older window tells nothing new.
	case tr.status >= 200 && tr.status < 300 && !l.known:
		l.free = true // e.g. a proxy that strips the headers
	}
	if l.waiters > 0 {
		close(l.wake)
		l.wake = make(chan struct{})
	}
}

// fill records the status and rate-limit headers of an answer.
func (tr *trace) fill(resp *http.Response, now time.Time) {
	tr.status = resp.StatusCode
	tr.received = now
	h := resp.Header
	limit, err1 := strconv.Atoi(h.Get("X-Rate-Limit-Limit"))
	remaining, err2 := strconv.Atoi(h.Get("X-Rate-Limit-Remaining"))
	reset, err3 := strconv.ParseInt(h.Get("X-Rate-Limit-Reset"), 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || limit <= 0 {
		return
	}
	tr.hasRL, tr.limit, tr.remaining, tr.reset = true, limit, remaining, reset
	if t, err := http.ParseTime(h.Get("Date")); err == nil {
		tr.serverNow = t
	}
}
