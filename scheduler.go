// The scheduler: one timer on the next deadline; approval timeouts,
// scheduled starts, expiry warnings and expiries fired in batches.

package symbot

import (
	"context"
	"fmt"
	"time"
)

func (e *Engine) runScheduler(ctx context.Context) error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var busySince time.Time // when this scheduler first found another firing; zero when it is not
	for {
		turn := fireTry
		if !busySince.IsZero() && time.Since(busySince) >= fireTurnPatience {
			turn = fireAnyway
		}
		busy, err := e.fireDue(ctx, turn)
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return nil
			}
			e.log().Error("scheduler: fire due deadlines", "err", err)
			timer.Reset(time.Second)
		case busy && turn == fireTry:
			// Another scheduler (another replica) is firing what is due.
			// Look again soon: it may stop, and the jobs it makes are
			// claimable here too (fireDue kicked the executor).
			if busySince.IsZero() {
				busySince = time.Now()
			}
			timer.Reset(fireTurnRetry)
		default:
			if !busy {
				// The turn was free: patience starts over. While it stays
				// taken (a paused holder), every wake-up fires anyway,
				// not after another wait.
				busySince = time.Time{}
			}
			wait := time.Hour
			err := e.store.View(ctx, func(tx Tx) error {
				_, at, ok, err := tx.NextDeadline()
				if ok {
					wait = min(max(at.Sub(e.now()), 0), time.Hour)
				}
				return err
			})
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				e.log().Error("scheduler: next deadline", "err", err)
				wait = time.Second
			}
			timer.Reset(wait)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		case <-e.rt.kickSched:
			timer.Stop()
		}
		e.rt.wakeups.Add(1)
	}
}

// FireDue handles every deadline that is due now: approval timeouts,
// expiry warnings and expiries, in batches of BatchSize per transaction.
//
// FireDue takes the fire turn first (see fireTurn), waiting while another
// scheduler has it, so that when it returns what was due has been handled.
func (e *Engine) FireDue(ctx context.Context) error {
	_, err := e.fireDue(ctx, fireWait)
	return err
}

// How fireDue takes the fire turn.
type turnMode int

const (
	fireWait   turnMode = iota // wait while another has it
	fireTry                    // give up at once when another has it
	fireAnyway                 // take it if it is free, else fire without it
)

// fireTurnKey names the lock of the fire turn, in the space of the
// membership locks; no membership key has its form (uid|gid).
const fireTurnKey = "symbot:fire-due"

var (
	// fireTurnRetry is how soon a scheduler that found another firing
	// looks again.
	fireTurnRetry = 100 * time.Millisecond
	// fireTurnPatience is how long a scheduler lets others fire before it
	// fires anyway: a holder that stopped without losing its database
	// session (a paused process) must not hold up every deadline.
	fireTurnPatience = 5 * time.Second
)

// fireTurn takes the fire turn: the replicas that share a store take turns
// to handle due deadlines, rather than all reading the same due batch and
// queueing for the writer lock to find, all but one, that it was handled
// meanwhile. The turn only saves that work: a deadline fires exactly once
// either way (fire handles only what is still due, in its transaction). It
// is the store's lock for a shared store, else this process's. ok is false
// when another holds the turn (never with fireWait, which waits for it);
// with a shared store that cannot try its lock, or cannot say, there is no
// turn to take and ok is true.
func (e *Engine) fireTurn(ctx context.Context, mode turnMode) (unlock func(), ok bool, err error) {
	if mode == fireWait {
		unlock, err := e.lockMembership(ctx, fireTurnKey)
		return unlock, err == nil, err
	}
	if _, shared := e.store.(MembershipLocker); !shared {
		unlock, ok = e.rt.locks.TryLock(fireTurnKey)
		return unlock, ok, nil
	}
	tl, can := e.store.(MembershipTryLocker)
	if !can {
		return func() {}, true, nil
	}
	unlock, ok, err = tl.TryLockMembership(ctx, fireTurnKey)
	if err != nil {
		// The store cannot say (it is unreachable, say): fire without the
		// turn, so that the store's own error, if any, comes from firing
		// and the scheduler backs off, rather than trying again at once.
		return func() {}, true, nil
	}
	return unlock, ok, nil
}

// fireDue is FireDue taking the fire turn as mode says; busy is true when
// another scheduler has the turn: with fireTry it then did not fire, with
// fireAnyway it fired without the turn.
func (e *Engine) fireDue(ctx context.Context, mode turnMode) (busy bool, err error) {
	unlock, ok, err := e.fireTurn(ctx, mode)
	if err != nil {
		return false, fmt.Errorf("take the fire turn: %w", err)
	}
	if !ok {
		if mode == fireTry {
			// The jobs the other makes may be claimed here too.
			e.kickExecutor()
			return true, nil
		}
		return true, e.fireAll(ctx) // fireAnyway
	}
	defer unlock()
	return false, e.fireAll(ctx)
}

// fireAll handles every deadline that is due now, batch by batch.
func (e *Engine) fireAll(ctx context.Context) error {
	batch := e.Runtime.batchSize()
	for range 100000 {
		now := e.now()
		var ids []string
		if err := e.store.View(ctx, func(tx Tx) error {
			var err error
			ids, err = tx.DueRequests(now, batch)
			return err
		}); err != nil {
			return fmt.Errorf("due requests: %w", err)
		}
		if len(ids) == 0 {
			return nil
		}
		outcomes, err := e.fire(ctx, now, ids)
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			// One bad request must not hold up every other deadline:
			// handle them one by one and skip (and report) what fails.
			outcomes = nil
			for _, id := range ids {
				o, err1 := e.fire(ctx, now, []string{id})
				if err1 != nil {
					e.log().Error("scheduler: cannot handle a deadline; skipping it", "request_id", id, "err", err1)
					continue
				}
				outcomes = append(outcomes, o...)
			}
			if len(outcomes) == 0 {
				return fmt.Errorf("handle deadlines: %w", err)
			}
		}
		for _, o := range outcomes {
			e.observe(o.flow, o.state)
			e.log().Info("deadline reached", "request_id", o.id, "state", o.state)
		}
		e.kickExecutor()
		if len(ids) < batch {
			return nil
		}
	}
	return nil
}

// fire handles the deadlines of ids in one transaction. Revocations are
// queued before the Slack jobs, so that they are claimed first.
func (e *Engine) fire(ctx context.Context, now time.Time, ids []string) ([]outcome, error) {
	var outcomes []outcome
	err := e.store.Update(ContextWithDeadlines(ctx, now, ids), func(tx Tx) error {
		outcomes = outcomes[:0] // the store may run this more than once
		// ids come from a snapshot read before this transaction: another
		// replica may have handled some of them since. Handle only those
		// still due, rather than rewriting each handled one as if its index
		// entry were stale.
		todo, err := stillDue(tx, now, ids)
		if err != nil {
			return err
		}
		if p, ok := tx.(RequestPrefetcher); ok && len(todo) > 1 {
			if err := p.PrefetchRequests(todo); err != nil {
				return err
			}
		}
		var later []*Job
		for _, id := range todo {
			o, err := e.handleDeadline(tx, now, id, &later)
			if err != nil {
				return fmt.Errorf("request %s: %w", id, err)
			}
			if o.state != "" {
				outcomes = append(outcomes, o)
			}
		}
		return e.addJobs(tx, now, later...)
	})
	return outcomes, err
}

// stillDue returns the ids that the store still lists as due at now.
func stillDue(tx Tx, now time.Time, ids []string) ([]string, error) {
	if d, ok := tx.(DueAmonger); ok {
		return d.DueAmong(now, ids)
	}
	due, err := tx.DueRequests(now, 2*len(ids)) // room for some that fell due meanwhile
	if err != nil {
		return nil, err
	}
	set := make(map[string]bool, len(due))
	for _, id := range due {
		set[id] = true
	}
	out := ids[:0:0]
	for _, id := range ids {
		if set[id] {
			out = append(out, id)
		}
	}
	return out, nil
}

type outcome struct {
	id, flow string
	state    State
}

func (e *Engine) handleDeadline(tx Tx, now time.Time, id string, later *[]*Job) (outcome, error) {
	r, err := tx.Request(id)
	if err != nil {
		return outcome{}, err
	}
	if r.ReviewOverdueAt(now) {
		// Break-glass access nobody has reviewed: alert again. Its state's
		// own deadline, if due too, is handled below.
		if err := e.reviewOverdue(tx, now, r, later); err != nil {
			return outcome{}, err
		}
	}
	switch {
	case r.State == StatePending && !r.TimeoutAt.IsZero() && !now.Before(r.TimeoutAt):
		if err := e.apply(tx, now, r, change{to: StateTimedOut, by: System, note: "no decision in time"}); err != nil {
			return outcome{}, err
		}
		*later = append(*later,
			&Job{Kind: JobUpdate, RequestID: r.ID, Event: EventTimedOut},
			&Job{Kind: JobNotify, RequestID: r.ID, Event: EventTimedOut, To: r.Requester.SlackID},
		)
		return outcome{r.ID, r.Flow, StateTimedOut}, nil
	case r.State == StatePending && !r.NudgeAt.IsZero() && !now.Before(r.NudgeAt):
		// Escalation steps and reminders; the request keeps waiting.
		return outcome{}, e.nudge(tx, now, r, later)
	case r.State == StateScheduled && !now.Before(r.StartAt):
		// The start time: grant now; the duration counts from the grant.
		note := "start time reached"
		if err := e.apply(tx, now, r, change{to: StateApproved, by: System, note: note, detail: note, action: "state:approved (start time reached)", jobs: []*Job{{Kind: JobGrant, RequestID: r.ID}}}); err != nil {
			return outcome{}, err
		}
		*later = append(*later, &Job{Kind: JobUpdate, RequestID: r.ID, Event: EventStarted})
		return outcome{r.ID, r.Flow, StateApproved}, nil
	case r.State == StateActive && !now.Before(r.ExpiresAt):
		// The revocation is queued now, the message update after the batch.
		if err := e.apply(tx, now, r, change{to: StateExpired, by: System, jobs: []*Job{{Kind: JobRevoke, RequestID: r.ID}}}); err != nil {
			return outcome{}, err
		}
		*later = append(*later, &Job{Kind: JobUpdate, RequestID: r.ID, Event: EventExpired})
		return outcome{r.ID, r.Flow, StateExpired}, nil
	case r.State == StateActive && !r.Warned && !r.WarnAt.IsZero() && !now.Before(r.WarnAt):
		r.Warned = true
		if err := tx.PutRequest(r); err != nil {
			return outcome{}, err
		}
		if err := e.audit(tx, now, r.ID, System, "warn", "expires "+r.ExpiresAt.UTC().Format(time.RFC3339)); err != nil {
			return outcome{}, err
		}
		*later = append(*later, &Job{Kind: JobNotify, RequestID: r.ID, Event: EventWarning, To: r.Requester.SlackID})
		return outcome{}, nil
	}
	// Nothing due after all (the index was stale): re-put to re-index.
	return outcome{}, tx.PutRequest(r)
}
