// The grant's look-ups made early: while a request waits for approval
// (once its approval message is posted and requests have stopped coming
// in for a moment, see awaitQuiet), the requester's Okta user and
// their existing membership of the group are looked up and recorded, so
// that the approval can record them as the grant's check in its own
// transaction and the grant job goes straight to the Okta add.

package symbot

import (
	"context"
	"fmt"
	"time"
)

const (
	// prechecksQueued bounds the requests waiting for their look-ups; more
	// are skipped (their grants look up for themselves). The look-ups of a
	// burst of requests mostly wait for its end (see awaitQuiet; during
	// it, each worker runs one every precheckMaxWait), so this is about
	// the longest burst whose requests all get them: 8 s at 500 a second.
	prechecksQueued = 4096
	// precheckWorkers look up at once.
	precheckWorkers = 4
	// precheckTimeout bounds one request's look-ups, and apart from them
	// the write of their record.
	precheckTimeout = 30 * time.Second
	// precheckWritesMax bounds the look-ups' records being written at
	// once (see runPrechecks); a worker with one more waits for a slot.
	precheckWritesMax = 64
	// precheckQuiet: the look-ups wait until no request, approval or
	// denial has come in for this long, ...
	precheckQuiet = 10 * time.Millisecond
	// precheckMaxWait: ... or until they have waited this long.
	precheckMaxWait = time.Second
)

// intakeClock is the origin of runner.lastIntake's readings, taken from
// the monotonic clock (in a synctest bubble, from the bubble's clock,
// before the origin: the readings are negative, and 0 still means none).
var intakeClock = time.Now()

// noteIntake records that a request (or extension), approval or denial is
// coming in: the early look-ups, which serve an approval seconds away at
// the earliest, give way to it (see awaitQuiet).
func (e *Engine) noteIntake() { e.rt.lastIntake.Store(int64(time.Since(intakeClock))) }

// awaitQuiet waits until no intake has been noted for precheckQuiet, or
// precheckMaxWait has passed, or ctx ends (false). A burst of requests (500 a second, say) keeps both cores busy
// with their messages' users.info, commits and posts; one request's
// look-ups (two Okta calls and a late write, about 0.4 ms of CPU) run
// beside the next request's intake and slow it. Deferred to a quiet
// spell they cost the requests nothing, and their own record is needed
// only at an approval; an approval that comes first looks up for itself,
// as without them.
func (e *Engine) awaitQuiet(ctx context.Context) bool {
	quiet, most := orDefault(e.rt.precheckQuiet, precheckQuiet), orDefault(e.rt.precheckMaxWait, precheckMaxWait)
	start := time.Now()
	for {
		last := e.rt.lastIntake.Load()
		if last == 0 {
			return ctx.Err() == nil // no intake yet
		}
		wait := time.Duration(last) + quiet - time.Since(intakeClock)
		if left := most - time.Since(start); wait > left {
			wait = left
		}
		if wait <= 0 {
			return ctx.Err() == nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
	}
}

func (e *Engine) grantCheckTTL() time.Duration {
	ttl := e.GrantCheckTTL
	if p := e.grantCheckSet.Load(); p != nil {
		ttl = *p
	}
	if ttl < 0 {
		return 0
	}
	return orDefault(ttl, 5*time.Minute)
}

// SetGrantCheckTTL changes GrantCheckTTL (as the field reads: 0 the
// default, negative off) while the engine runs, for a config reload. It
// applies to the approvals and early look-ups that come after it.
func (e *Engine) SetGrantCheckTTL(d time.Duration) { e.grantCheckSet.Store(&d) }

// GrantCheckTTLInEffect is how long early look-ups stand for a grant's
// check now (defaults and SetGrantCheckTTL applied); 0 when they are off.
func (e *Engine) GrantCheckTTLInEffect() time.Duration { return e.grantCheckTTL() }

// precheckFresh reports whether r's early look-ups may stand for its
// grant's check at now.
func (e *Engine) precheckFresh(r *Request, now time.Time) bool {
	ttl := e.grantCheckTTL()
	return ttl > 0 && r.PreOktaUserID != "" && !r.PrecheckedAt.IsZero() &&
		!now.Before(r.PrecheckedAt) && now.Sub(r.PrecheckedAt) < ttl
}

// queuePrecheck asks Run's look-up workers to look up for request id;
// without them (Run not running) or with the queue full it does nothing.
func (e *Engine) queuePrecheck(id string) {
	if e.grantCheckTTL() <= 0 || !e.rt.running.Load() {
		return
	}
	select {
	case e.rt.prechecks <- id:
	default:
	}
}

// runPrechecks looks up for queued requests until ctx ends. Each
// request's record is written on a goroutine of its own, which Run waits
// for: the worker goes on to the next request without waiting for the
// commit, so that look-ups run back to back (after a burst of requests,
// see awaitQuiet) share their commits rather than each wait for one. At
// most precheckWritesMax are written at once.
func (e *Engine) runPrechecks(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case id := <-e.rt.prechecks:
			if !e.awaitQuiet(ctx) {
				return
			}
			record, err := e.precheckCurrent(ctx, id)
			if e.rt.precheckHandled != nil {
				e.rt.precheckHandled(id)
			}
			if err == nil && record != nil {
				select {
				case e.rt.precheckSlots <- struct{}{}:
				case <-ctx.Done():
					return
				}
				e.rt.precheckWrites.Go(func() {
					defer func() { <-e.rt.precheckSlots }()
					wctx, cancel := context.WithTimeout(ctx, precheckTimeout)
					defer cancel()
					e.precheckFailed(ctx, id, record(wctx))
				})
			}
			e.precheckFailed(ctx, id, err)
		}
	}
}

// precheckCurrent runs precheck for request id as it is stored now. Its
// post job queued it pending, but it waited since for a quiet spell: it
// may have been approved, denied or cancelled meanwhile (many of a burst
// are), and looking up for it then would only spend Okta's rate limit and,
// for a first-time requester, resolve an identity that nothing asked for.
func (e *Engine) precheckCurrent(ctx context.Context, id string) (func(context.Context) error, error) {
	ctx, cancel := context.WithTimeout(ctx, precheckTimeout)
	defer cancel()
	r, err := e.readRequest(ctx, id)
	if err != nil {
		return nil, err
	}
	return e.precheck(ctx, r)
}

// precheckFailed logs err, request id's early look-ups' failure, unless it
// is nil or ctx (Run's) has ended.
func (e *Engine) precheckFailed(ctx context.Context, id string, err error) {
	if err != nil && ctx.Err() == nil {
		// The grant looks up for itself, and reports what fails then.
		e.log().Debug("early grant look-ups failed", "request_id", id, "err", err)
	}
}

// precheck looks up what request r's grant will need from Okta and
// returns the write that records it in the request while it is pending
// (nil when there is nothing to look up). r decides only whether to look
// up at all; the record is written only if the request is still pending
// then. The existing
// membership is read under the membership lock, as the grant job reads
// it, so that it never mistakes a membership another grant is adding for
// one the person had before symbot.
func (e *Engine) precheck(ctx context.Context, r *Request) (record func(context.Context) error, err error) {
	id := r.ID
	if r.State != StatePending || e.precheckFresh(r, e.now()) || !r.StartAt.IsZero() {
		// A request with a start time is granted by the scheduler at its
		// start, which looks up for itself.
		return nil, nil
	}
	// A binding to record (a first-time requester's, say) is written with
	// the look-ups below, in the same late write: the membership look-up
	// needs only the Okta user, not the binding committed.
	u, _, bind, err := e.resolveBinding(ctx, r.Requester, true)
	if err != nil {
		return nil, resolveError(err)
	}
	unlock, err := e.lockMembership(ctx, membershipKey(u.ID, r.GroupID))
	if err != nil {
		return nil, err
	}
	pre, err := e.priorMembership(ctx, r, u.ID)
	at := e.now()
	unlock()
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context) error {
		// Needed only at the approval, seconds away at the earliest: it
		// shares the commit of the next write rather than add one.
		err := e.updateLater(ctx, func(tx Tx) error {
			if bind != nil {
				if err := bind.write(tx); err != nil {
					return err
				}
				if bind.conflict != nil {
					return nil // the conflict is recorded; the look-ups do not stand
				}
			}
			cur, err := tx.Request(id)
			if err != nil {
				return err
			}
			if cur.State != StatePending {
				return nil
			}
			cur.PrecheckedAt, cur.PreOktaUserID, cur.PreOktaLogin, cur.PreMember = at, u.ID, u.Login, pre
			return tx.PutRequest(cur)
		})
		if err != nil {
			return fmt.Errorf("record early grant look-ups: %w", err)
		}
		if bind != nil {
			if err := e.bound(r.Requester, bind); err != nil {
				return Permanent(err)
			}
		}
		return nil
	}, nil
}

// foldCheck records r's fresh early look-ups as its grant's check, in the
// transaction that approves r, when the caller holds the membership lock
// named locked. It reports whether it did.
func (e *Engine) foldCheck(now time.Time, r *Request, locked string) bool {
	if locked == "" || r.GrantChecked || !e.precheckFresh(r, now) || membershipKey(r.PreOktaUserID, r.GroupID) != locked {
		return false
	}
	r.OktaUserID, r.OktaLogin = r.PreOktaUserID, r.PreOktaLogin
	r.GrantChecked, r.Preexisting = true, r.PreMember
	return true
}

// auditFoldedCheck audits a check recorded by foldCheck.
func (e *Engine) auditFoldedCheck(tx Tx, now time.Time, r *Request) error {
	return e.audit(tx, now, r.ID, System, "grant:checked", fmt.Sprintf("okta_user=%s member_before=%t looked_up=%s", r.OktaUserID, r.Preexisting, r.PrecheckedAt.UTC().Format(time.RFC3339)))
}
