// Deadlines at the moment of decision: a decision that depends on a
// deadline (the approval timeout of a pending request, the expiry of an
// active grant) sees it applied first, in its own transaction, whether or
// not the scheduler has run.

package symbot

import (
	"context"
	"time"
)

// lapsedAt reports whether a deadline of r that decisions depend on has
// passed at now: a pending request's approval timeout, a scheduled
// request's start or an active grant's expiry.
func lapsedAt(r *Request, now time.Time) bool {
	switch r.State {
	case StatePending:
		return !r.TimeoutAt.IsZero() && !now.Before(r.TimeoutAt)
	case StateScheduled:
		return !now.Before(r.StartAt)
	case StateActive:
		return !r.ExpiresAt.IsZero() && !now.Before(r.ExpiresAt)
	}
	return false
}

// lapse applies, in tx, the deadline of request id that has passed at now
// (timed_out or expired, with the jobs the scheduler would queue) and
// returns the request as it is then; ok is false when nothing had lapsed.
func (e *Engine) lapse(tx Tx, now time.Time, id string) (r *Request, ok bool, err error) {
	r, err = tx.Request(id)
	if err != nil || !lapsedAt(r, now) {
		return r, false, err
	}
	var later []*Job
	if _, err := e.handleDeadline(tx, now, r.ID, &later); err != nil {
		return nil, false, err
	}
	if err := e.addJobs(tx, now, later...); err != nil {
		return nil, false, err
	}
	r, err = tx.Request(id)
	return r, err == nil, err
}

// lapseNow applies a lapsed deadline of request id in its own transaction
// and returns the error that refuses the decision (who decided: symbot, on
// time), or nil when no deadline had passed.
func (e *Engine) lapseNow(ctx context.Context, id string) error {
	var refused *DecidedError
	var flow string
	var state State
	err := e.store.Update(ctx, func(tx Tx) error {
		refused = nil // the store may run this more than once
		r, ok, err := e.lapse(tx, e.now(), id)
		if err != nil || !ok {
			return err
		}
		refused, flow, state = r.Decided(), r.Flow, r.State
		return nil
	})
	if err != nil {
		return err
	}
	if refused == nil {
		return nil
	}
	e.observe(flow, state)
	e.kick()
	e.log().Info("decision refused: its deadline had passed", "request_id", id, "state", state)
	return refused
}
