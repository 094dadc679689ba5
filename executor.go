package symbot

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Run executes due jobs and fires deadlines until ctx ends. Everything
// already due when it starts runs at once.
func (e *Engine) Run(ctx context.Context) error {
	if e.Owner == "" {
		var b [8]byte
		_, _ = crand.Read(b[:])
		e.Owner = "symbot-" + hex.EncodeToString(b[:])
	}
	var wg sync.WaitGroup
	var schedErr, execErr error
	wg.Go(func() { schedErr = e.runScheduler(ctx) })
	wg.Go(func() { execErr = e.runExecutor(ctx) })
	wg.Wait()
	return errors.Join(schedErr, execErr)
}

// ---- scheduler ----

func (e *Engine) runScheduler(ctx context.Context) error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		if err := e.FireDue(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			e.log().Error("scheduler: fire due deadlines", "err", err)
			timer.Reset(time.Second)
		} else {
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
		case <-e.kickSched:
			timer.Stop()
		}
		e.wakeups.Add(1)
	}
}

// FireDue handles every deadline that is due now: approval timeouts,
// expiry warnings and expiries, in batches of BatchSize per transaction.
func (e *Engine) FireDue(ctx context.Context) error {
	batch := orDefault(e.BatchSize, 256)
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
	err := e.store.Update(ctx, func(tx Tx) error {
		outcomes = outcomes[:0] // the store may run this more than once
		var later []*Job
		for _, id := range ids {
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

type outcome struct {
	id, flow string
	state    State
}

func (e *Engine) handleDeadline(tx Tx, now time.Time, id string, later *[]*Job) (outcome, error) {
	r, err := tx.Request(id)
	if err != nil {
		return outcome{}, err
	}
	switch {
	case r.State == StatePending && !r.TimeoutAt.IsZero() && !now.Before(r.TimeoutAt):
		if err := r.transition(StateTimedOut, System, now, "no decision in time"); err != nil {
			return outcome{}, err
		}
		r.TimeoutAt = time.Time{}
		if err := tx.PutRequest(r); err != nil {
			return outcome{}, err
		}
		if err := e.audit(tx, now, r.ID, System, "state:timed_out", ""); err != nil {
			return outcome{}, err
		}
		*later = append(*later,
			&Job{Kind: JobUpdate, RequestID: r.ID, Event: EventTimedOut},
			&Job{Kind: JobNotify, RequestID: r.ID, Event: EventTimedOut, To: r.Requester.SlackID},
		)
		return outcome{r.ID, r.Flow, StateTimedOut}, nil
	case r.State == StateActive && !now.Before(r.ExpiresAt):
		if err := r.transition(StateExpired, System, now, ""); err != nil {
			return outcome{}, err
		}
		r.Removed = false
		if err := tx.PutRequest(r); err != nil {
			return outcome{}, err
		}
		if err := e.audit(tx, now, r.ID, System, "state:expired", ""); err != nil {
			return outcome{}, err
		}
		*later = append(*later, &Job{Kind: JobUpdate, RequestID: r.ID, Event: EventExpired})
		return outcome{r.ID, r.Flow, StateExpired}, e.addJob(tx, now, &Job{Kind: JobRevoke, RequestID: r.ID})
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

// ---- executor ----

func (e *Engine) runExecutor(ctx context.Context) error {
	workers, lease := e.workers(), e.lease()
	// Claim ahead of the workers so that one claim transaction feeds many
	// jobs; queued jobs hold their lease, and ones already queued here are
	// never queued twice.
	capacity := 4 * workers
	queue := make(chan Job, capacity)
	freed := make(chan struct{}, 1)
	var mu sync.Mutex
	held := map[uint64]bool{}
	jobCtx, cancelJobs := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for j := range queue {
				if ctx.Err() == nil {
					// A job that waited in the queue may be near the end of
					// its lease: renew it first, or skip it if another
					// worker (another replica) took it over meanwhile.
					if j, ok := e.ensureLease(ctx, j, lease); ok {
						e.runJob(jobCtx, j)
					}
				} // else: left for the next start (its lease is cleared or expires)
				mu.Lock()
				delete(held, j.ID)
				mu.Unlock()
				select {
				case freed <- struct{}{}:
				default:
				}
			}
		})
	}
	defer func() {
		close(queue)
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		t := time.NewTimer(orDefault(e.ShutdownGrace, 10*time.Second))
		select {
		case <-done:
		case <-t.C:
			cancelJobs()
			<-done
		}
		t.Stop()
		cancelJobs()
	}()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		wait := time.Hour
		mu.Lock()
		free := capacity - len(held)
		mu.Unlock()
		if free > 0 {
			jobs, err := e.store.ClaimJobs(ctx, e.Owner, e.now(), lease, free)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				e.log().Error("executor: claim jobs", "err", err)
				wait = time.Second
			}
			queued := 0
			for _, j := range jobs {
				mu.Lock()
				dup := held[j.ID]
				held[j.ID] = true
				mu.Unlock()
				if !dup {
					queue <- j
					queued++
				}
			}
			if err == nil && len(jobs) == free && queued > 0 {
				continue // there may be more due right now
			}
			if err == nil {
				at, ok, err := e.store.NextJobTime(ctx)
				switch {
				case err != nil:
					if ctx.Err() != nil {
						return nil
					}
					e.log().Error("executor: next job time", "err", err)
					wait = time.Second
				case ok:
					d := at.Sub(e.now())
					if d <= 0 {
						// Due but not claimable: it waits behind its lane or
						// is queued here, and is freed when a job ends.
						d = time.Second
					}
					wait = min(d, time.Hour)
				}
			}
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		case <-e.kickJobs:
		case <-freed:
		}
		timer.Stop() // since Go 1.23 a stopped timer never delivers a stale value
	}
}

// ensureLease makes sure this executor still holds j's lease for at least
// one job timeout, renewing it when needed. It reports false when the job is
// gone or leased by another owner.
func (e *Engine) ensureLease(ctx context.Context, j Job, lease time.Duration) (Job, bool) {
	if e.now().Add(e.jobTimeout() + time.Second).Before(j.LeaseUntil) {
		return j, true
	}
	ok := false
	err := e.store.Update(ctx, func(tx Tx) error {
		ok = false
		jj, err := tx.Job(j.ID)
		if err != nil {
			if errors.Is(err, ErrNotFound) {
				return nil
			}
			return err
		}
		now := e.now()
		if jj.LeaseOwner != e.Owner && jj.LeaseUntil.After(now) {
			return nil // someone else holds it now
		}
		if jj.NotBefore.After(now) {
			return nil // someone else ran and rescheduled it
		}
		jj.LeaseOwner, jj.LeaseUntil = e.Owner, now.Add(lease)
		j = *jj
		ok = true
		return tx.UpdateJob(jj)
	})
	if err != nil {
		e.log().Warn("renew job lease", "job", j.ID, "err", err)
		return j, false
	}
	return j, ok
}

// runJob runs one attempt of a job and records its outcome.
func (e *Engine) runJob(ctx context.Context, j Job) {
	log := e.log().With("request_id", j.RequestID, "job", j.ID, "kind", j.Kind, "attempt", j.Attempts+1)
	actx, cancel := context.WithTimeout(ctx, e.jobTimeout())
	defer cancel()
	var err error
	switch j.Kind {
	case JobGrant:
		err = e.execGrant(actx, j)
	case JobRevoke:
		err = e.execRevoke(actx, j)
	case JobPost, JobUpdate, JobNotify, JobAlert:
		err = e.execSlack(actx, j)
	default:
		err = Permanent(fmt.Errorf("unknown job kind %q", j.Kind))
	}
	if err == nil {
		e.jobsDone.Add(1)
		e.jobResult(j.Kind, "ok")
		log.Debug("job done")
		return
	}
	if ferr := e.jobFailed(context.WithoutCancel(ctx), j, err, log); ferr != nil {
		log.Error("record job failure", "err", ferr, "job_err", err)
	}
}

func (e *Engine) jobResult(k JobKind, result string) {
	if e.Metrics != nil {
		e.Metrics.JobResult(k, result)
	}
}

// backoff returns the delay before attempt n+1: exponential from RetryBase,
// capped, with jitter in [d/2, d].
func (e *Engine) backoff(attempts int, capd time.Duration) time.Duration {
	d := orDefault(e.RetryBase, time.Second)
	for i := 1; i < attempts && d < capd; i++ {
		d *= 2
	}
	d = min(d, capd)
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// errText is an error's text for the audit trail and messages, cut at 500
// bytes on a character boundary.
func errText(err error) string {
	s := err.Error()
	if len(s) <= 500 {
		return s
	}
	cut := 500
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// complete runs fn, deletes the job and audits its success, in one transaction.
func (e *Engine) complete(ctx context.Context, j Job, detail string, fn func(tx Tx, now time.Time) error) error {
	now := e.now()
	err := e.store.Update(ctx, func(tx Tx) error {
		if _, err := tx.Job(j.ID); err != nil {
			if errors.Is(err, ErrNotFound) {
				return nil // finished elsewhere
			}
			return err
		}
		if fn != nil {
			if err := fn(tx, now); err != nil {
				return err
			}
		}
		if err := tx.DeleteJob(j.ID); err != nil {
			return err
		}
		return e.audit(tx, now, j.RequestID, System, "job:"+string(j.Kind)+":ok", detail)
	})
	if err != nil {
		return fmt.Errorf("complete %s job: %w", j.Kind, err)
	}
	e.kickExecutor()
	return nil
}

func (e *Engine) jobFailed(ctx context.Context, j Job, jerr error, log *slog.Logger) error {
	now := e.now()
	var result, failedFlow string
	var alerted, abandoned bool
	err := e.store.Update(ctx, func(tx Tx) error {
		// The store may run this more than once: only note what to count.
		result, failedFlow, alerted, abandoned = "", "", false, false
		jj, err := tx.Job(j.ID)
		if err != nil {
			if errors.Is(err, ErrNotFound) {
				return nil
			}
			return err
		}
		jj.Attempts++
		jj.LastError = errText(jerr)
		jj.LeaseOwner, jj.LeaseUntil = "", time.Time{}
		permanent := IsPermanent(jerr)
		detail := fmt.Sprintf("attempt %d: %s", jj.Attempts, jj.LastError)
		capd := e.retryMax()
		switch jj.Kind {
		case JobGrant:
			if permanent || jj.Attempts >= orDefault(e.GrantAttempts, 10) {
				result = "failed"
				if err := e.audit(tx, now, j.RequestID, System, "job:grant:failed", detail); err != nil {
					return err
				}
				if err := tx.DeleteJob(jj.ID); err != nil {
					return err
				}
				failedFlow, err = e.failRequest(tx, now, j.RequestID, jerr, jj.Attempts)
				return err
			}
		case JobRevoke:
			// Revocation never gives up.
			capd = orDefault(e.RevokeRetryMax, time.Minute)
			if jj.Attempts >= orDefault(e.RevokeAlertAfter, 5) && !jj.Alerted {
				jj.Alerted = true
				alerted = true
				r, rerr := tx.Request(j.RequestID)
				who := ""
				if rerr == nil {
					who = fmt.Sprintf(" (%s in Okta group %s)", r.OktaLogin, r.GroupID)
				}
				if err := e.addJob(tx, now, &Job{Kind: JobAlert, RequestID: j.RequestID, Event: EventRevokeStuck,
					Text: fmt.Sprintf("Removing access for request %s%s has failed %d times and is still being retried. Last error: %s", j.RequestID, who, jj.Attempts, jj.LastError)}); err != nil {
					return err
				}
			}
		default:
			// The approval message is never given up while the request is
			// live: a channel or scope problem is fixed by a person (the
			// bot reports it once), and then the request appears.
			if jj.Kind != JobPost && (permanent || jj.Attempts >= orDefault(e.NotifyAttempts, 12)) {
				result = "failed"
				abandoned = true
				if err := tx.DeleteJob(jj.ID); err != nil {
					return err
				}
				return e.audit(tx, now, j.RequestID, System, "job:"+string(jj.Kind)+":abandoned", detail)
			}
		}
		delay := e.backoff(jj.Attempts, capd)
		var ra *RetryAfterError
		if errors.As(jerr, &ra) {
			delay = max(delay, ra.After)
		}
		jj.NotBefore = now.Add(delay)
		result = "retry"
		if err := tx.UpdateJob(jj); err != nil {
			return err
		}
		return e.audit(tx, now, j.RequestID, System, "job:"+string(jj.Kind)+":error", detail)
	})
	if err != nil {
		return err
	}
	if alerted {
		e.revokeAlerts.Add(1)
	}
	if abandoned {
		e.jobsAbandoned.Add(1)
	}
	if result != "" {
		e.jobResult(j.Kind, result)
	}
	if failedFlow != "" {
		e.observe(failedFlow, StateFailed)
	}
	log.Warn("job attempt failed", "err", jerr, "result", result)
	e.kickExecutor()
	return nil
}

// failReason turns a grant error into words for people (the raw error goes
// to the log and the audit trail), and says whether operators must be told.
func failReason(err error, attempts int) (reason string, alert bool) {
	switch {
	case errors.Is(err, ErrUserNotFound), errors.Is(err, ErrUserNotActive):
		// The directory's own words: "no active Okta user with the email x@y".
		msg := strings.TrimPrefix(err.Error(), resolvePrefix)
		for _, sentinel := range []error{ErrUserNotFound, ErrUserNotActive} {
			msg = strings.TrimSuffix(msg, ": "+sentinel.Error())
		}
		return msg, false
	case errors.Is(err, ErrGroupNotFound):
		return "the Okta group of this target does not exist; the symbot operators were alerted to fix the flow's group_id", true
	case errors.Is(err, ErrTokenRejected), errors.Is(err, ErrAccessDenied), errors.Is(err, ErrSecretNotFound):
		return "symbot's own credentials for Okta or AWS were refused; the symbot operators were alerted", true
	}
	return fmt.Sprintf("Okta or AWS did not answer after %d attempts; the symbot operators were alerted. Try again later", attempts), true
}

// failRequest ends an approved request whose grant failed, and returns its
// flow ("" when the request was no longer approved).
func (e *Engine) failRequest(tx Tx, now time.Time, id string, cause error, attempts int) (string, error) {
	r, err := tx.Request(id)
	if err != nil {
		return "", err
	}
	if r.State != StateApproved {
		return "", nil
	}
	reason, alert := failReason(cause, attempts)
	r.FailReason = reason
	if err := r.transition(StateFailed, System, now, r.FailReason); err != nil {
		return "", err
	}
	jobs := []*Job{
		{Kind: JobUpdate, RequestID: r.ID, Event: EventFailed},
		{Kind: JobNotify, RequestID: r.ID, Event: EventFailed, To: r.Requester.SlackID},
	}
	for _, d := range r.Approvals {
		if d.By != r.Requester.SlackID {
			jobs = append(jobs, &Job{Kind: JobNotify, RequestID: r.ID, Event: EventFailed, To: d.By})
		}
	}
	if alert {
		jobs = append(jobs, &Job{Kind: JobAlert, RequestID: r.ID, Event: EventFailed,
			Text: fmt.Sprintf("The grant of request %s (Okta group %s) failed after %d attempt(s): %s", r.ID, r.GroupID, attempts, errText(cause))})
	}
	// If the add may have happened, make sure it is undone.
	if r.GrantChecked && !r.Preexisting {
		r.Removed = false
		jobs = append(jobs, &Job{Kind: JobRevoke, RequestID: r.ID})
	} else {
		r.Removed = true
	}
	if err := tx.PutRequest(r); err != nil {
		return "", err
	}
	if err := e.audit(tx, now, r.ID, System, "state:failed", r.FailReason); err != nil {
		return "", err
	}
	return r.Flow, e.addJobs(tx, now, jobs...)
}

const resolvePrefix = "resolve Okta user: "

func membershipKey(uid, gid string) string { return uid + "|" + gid }

// others returns the other requests of r's requester for the same Okta
// user and group that satisfy keep.
func others(tx Tx, r *Request, uid string, keep func(*Request) bool) ([]*Request, error) {
	rs, err := tx.RequestsByRequester(r.Requester.SlackID)
	if err != nil {
		return nil, err
	}
	var out []*Request
	for _, o := range rs {
		if o.ID != r.ID && o.GroupID == r.GroupID && o.OktaUserID == uid && keep(o) {
			out = append(out, o)
		}
	}
	return out, nil
}

func (e *Engine) execGrant(ctx context.Context, j Job) error {
	r, err := e.Get(ctx, j.RequestID)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return e.complete(ctx, j, "request gone", nil)
		}
		return err
	}
	if r.State != StateApproved {
		return e.complete(ctx, j, "nothing to do: request is "+string(r.State), nil)
	}
	uid, login := r.OktaUserID, r.OktaLogin
	if !r.GrantChecked {
		u, err := e.dir.ResolveUser(ctx, r.Requester)
		if err != nil {
			return fmt.Errorf(resolvePrefix+"%w", err)
		}
		uid, login = u.ID, u.Login
	}
	unlock := e.locks.Lock(membershipKey(uid, r.GroupID))
	defer unlock()
	// Re-read under the lock: a revocation of an approved request whose
	// check is recorded takes this lock too, so from here on the state
	// cannot move away from approved until this job is done.
	if r, err = e.Get(ctx, j.RequestID); err != nil {
		return err
	}
	if r.State != StateApproved {
		return e.complete(ctx, j, "nothing to do: request is "+string(r.State), nil)
	}

	if !r.GrantChecked {
		// Record whether the person was already a member, before adding.
		var holders []*Request
		if err := e.store.View(ctx, func(tx Tx) error {
			var err error
			holders, err = others(tx, r, uid, (*Request).Holding)
			return err
		}); err != nil {
			return err
		}
		pre := false
		if len(holders) > 0 {
			for _, h := range holders {
				pre = pre || h.Preexisting
			}
		} else {
			pre, err = e.dir.IsMember(ctx, uid, r.GroupID)
			if err != nil {
				return fmt.Errorf("check existing membership: %w", err)
			}
		}
		now := e.now()
		err = e.store.Update(ctx, func(tx Tx) error {
			cur, err := tx.Request(r.ID)
			if err != nil {
				return err
			}
			if cur.State != StateApproved {
				r = cur
				return nil
			}
			cur.OktaUserID, cur.OktaLogin = uid, login
			cur.GrantChecked, cur.Preexisting = true, pre
			if err := tx.PutRequest(cur); err != nil {
				return err
			}
			r = cur
			return e.audit(tx, now, r.ID, System, "grant:checked", fmt.Sprintf("okta_user=%s member_before=%t", uid, pre))
		})
		if err != nil {
			return err
		}
		if r.State != StateApproved {
			return e.complete(ctx, j, "nothing to do: request is "+string(r.State), nil)
		}
	}
	if !r.Preexisting {
		if err := e.dir.AddMember(ctx, uid, r.GroupID); err != nil {
			return fmt.Errorf("add user to group: %w", err)
		}
	}
	f := e.flowFor(r)
	var latency time.Duration
	granted := false
	err = e.complete(ctx, j, fmt.Sprintf("okta_user=%s group=%s", uid, r.GroupID), func(tx Tx, now time.Time) error {
		granted = false // the store may run this more than once
		cur, err := tx.Request(r.ID)
		if err != nil {
			return err
		}
		if cur.State != StateApproved {
			return nil
		}
		granted = true
		if err := cur.transition(StateActive, System, now, ""); err != nil {
			return err
		}
		cur.GrantedAt = now
		cur.ExpiresAt = now.Add(cur.Duration)
		cur.WarnAt = warnAt(f, now, cur.ExpiresAt)
		for _, t := range cur.Transitions {
			if t.To == StateApproved {
				latency = now.Sub(t.At)
			}
		}
		if err := tx.PutRequest(cur); err != nil {
			return err
		}
		if err := e.audit(tx, now, cur.ID, System, "state:active", "expires "+cur.ExpiresAt.UTC().Format(time.RFC3339)); err != nil {
			return err
		}
		return e.addJobs(tx, now,
			&Job{Kind: JobUpdate, RequestID: cur.ID, Event: EventGranted},
			&Job{Kind: JobNotify, RequestID: cur.ID, Event: EventGranted, To: cur.Requester.SlackID},
		)
	})
	if err != nil {
		return err
	}
	if !granted {
		return nil
	}
	e.kick() // a new expiry may be the next deadline
	e.observe(r.Flow, StateActive)
	if e.Metrics != nil {
		e.Metrics.GrantLatency(r.Flow, latency)
	}
	e.log().Info("access granted", "request_id", r.ID, "okta_user", uid, "group", r.GroupID, "preexisting", r.Preexisting)
	return nil
}

func (e *Engine) execRevoke(ctx context.Context, j Job) error {
	r, err := e.Get(ctx, j.RequestID)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return e.complete(ctx, j, "request gone", nil)
		}
		return err
	}
	if r.Removed || !(r.State == StateExpired || r.State == StateRevoked || r.State == StateFailed) {
		return e.complete(ctx, j, "nothing to do", nil)
	}
	note, kept := "", false
	if !r.GrantChecked || r.OktaUserID == "" {
		note = "nothing to remove: the membership was never added"
	} else {
		unlock := e.locks.Lock(membershipKey(r.OktaUserID, r.GroupID))
		defer unlock()
		var needers []*Request
		if err := e.store.View(ctx, func(tx Tx) error {
			var err error
			needers, err = others(tx, r, r.OktaUserID, (*Request).Needs)
			return err
		}); err != nil {
			return err
		}
		switch {
		case len(needers) > 0:
			note, kept = "another active grant ("+needers[0].ID+") still needs it", true
		case r.Preexisting:
			note, kept = "the person was a member before symbot granted access", true
		default:
			err := e.dir.RemoveMember(ctx, r.OktaUserID, r.GroupID)
			switch {
			case errors.Is(err, ErrUserNotFound), errors.Is(err, ErrGroupNotFound):
				note = "already gone: " + errText(err)
			case err != nil:
				return fmt.Errorf("remove user from group: %w", err)
			default:
				note = "removed from Okta group " + r.GroupID
			}
		}
	}
	var lag time.Duration
	err = e.complete(ctx, j, note, func(tx Tx, now time.Time) error {
		cur, err := tx.Request(r.ID)
		if err != nil {
			return err
		}
		if cur.Removed {
			return nil
		}
		cur.Removed = true
		cur.Kept = kept
		cur.RemovalNote = note
		cur.UpdatedAt = now
		if t, ok := cur.LastTransition(); ok {
			lag = now.Sub(t.At)
		}
		if cur.State == StateExpired && !cur.ExpiresAt.IsZero() {
			lag = now.Sub(cur.ExpiresAt) // includes any scheduler lag
		}
		if err := tx.PutRequest(cur); err != nil {
			return err
		}
		if cur.State == StateFailed {
			return nil
		}
		return e.addJobs(tx, now,
			&Job{Kind: JobUpdate, RequestID: cur.ID, Event: EventRemoved},
			&Job{Kind: JobNotify, RequestID: cur.ID, Event: EventRemoved, To: cur.Requester.SlackID},
		)
	})
	if err != nil {
		return err
	}
	if e.Metrics != nil {
		e.Metrics.RevokeLag(lag)
	}
	e.log().Info("access removed", "request_id", r.ID, "note", note)
	return nil
}

// flowFor returns r's flow, or a minimal stand-in when the flow was removed
// from the configuration (its messages must still be sent).
func (e *Engine) flowFor(r *Request) *Flow {
	if f, err := e.flowOf(r); err == nil {
		return f
	}
	return &Flow{Name: r.Flow, Label: r.Flow, Targets: []Target{{Name: r.Target, Label: r.Target, GroupID: r.GroupID}}}
}

func (e *Engine) execSlack(ctx context.Context, j Job) error {
	if j.Kind == JobAlert {
		if err := e.notifier.Alert(ctx, Alert{RequestID: j.RequestID, Event: j.Event, Text: j.Text}); err != nil {
			return fmt.Errorf("send alert: %w", err)
		}
		return e.complete(ctx, j, "", nil)
	}
	r, err := e.Get(ctx, j.RequestID)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return e.complete(ctx, j, "request gone", nil)
		}
		return err
	}
	f := e.flowFor(r)
	switch j.Kind {
	case JobPost:
		if r.Message.TS != "" {
			return e.complete(ctx, j, "already posted", nil)
		}
		if r.State.Final() {
			return e.complete(ctx, j, "not posted: the request is already "+string(r.State), nil)
		}
		ref, err := e.notifier.PostRequest(ctx, f, r)
		if err != nil {
			return fmt.Errorf("post approval message: %w", err)
		}
		return e.complete(ctx, j, "channel="+ref.Channel+" ts="+ref.TS, func(tx Tx, now time.Time) error {
			cur, err := tx.Request(r.ID)
			if err != nil {
				return err
			}
			cur.Message = ref
			return tx.PutRequest(cur)
		})
	case JobUpdate:
		if r.Message.TS == "" {
			// Never posted: the request ended before its post ran.
			return e.complete(ctx, j, "no message to update", nil)
		}
		if err := e.notifier.UpdateRequest(ctx, f, r, j.Event); err != nil {
			return fmt.Errorf("update approval message: %w", err)
		}
		return e.complete(ctx, j, string(j.Event), nil)
	case JobNotify:
		if err := e.notifier.NotifyUser(ctx, j.To, f, r, j.Event); err != nil {
			return fmt.Errorf("notify %s: %w", j.To, err)
		}
		return e.complete(ctx, j, string(j.Event)+" to "+j.To, nil)
	}
	return Permanent(fmt.Errorf("unknown job kind %q", j.Kind))
}

// RunDueJobs runs every job that is due now, and the jobs those cause, until
// none is due, with up to Workers at once. It is for tests, benchmarks and
// one-shot tools; Run does the same continuously.
func (e *Engine) RunDueJobs(ctx context.Context) (int, error) {
	if e.Owner == "" {
		e.Owner = "symbot-oneshot"
	}
	workers, lease := e.workers(), e.lease()
	n := 0
	for {
		jobs, err := e.store.ClaimJobs(ctx, e.Owner, e.now(), lease, workers)
		if err != nil {
			return n, fmt.Errorf("claim jobs: %w", err)
		}
		if len(jobs) == 0 {
			return n, nil
		}
		var wg sync.WaitGroup
		for _, j := range jobs {
			wg.Go(func() { e.runJob(ctx, j) })
		}
		wg.Wait()
		n += len(jobs)
	}
}
