// Durable jobs: their kinds and fields, queueing them in a transaction,
// completing them, and retrying or giving up with backoff.

package symbot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"
)

// JobKind is the kind of side effect a job performs.
type JobKind string

// Job kinds.
const (
	JobGrant  JobKind = "grant"  // add the Okta membership
	JobRevoke JobKind = "revoke" // remove the Okta membership (never gives up)
	JobPost   JobKind = "post"   // post the approval message
	JobUpdate JobKind = "update" // update the approval message + thread reply
	JobNotify JobKind = "notify" // DM a person
	JobAlert  JobKind = "alert"  // tell operators
	// JobRepost posts a copy of the approval message in channel To (an
	// escalation step); later updates of the request update it too.
	JobRepost JobKind = "repost"
)

// Job is one durable side effect, written in the same transaction as the
// state change that causes it.
type Job struct {
	ID        uint64 // assigned by the store, increasing
	Kind      JobKind
	RequestID string
	Event     Event
	To        string // JobNotify: Slack user id; of EventUnmanagedRemoved: the person's email
	Text      string // JobAlert: the text; JobNotify of EventUnmanagedRemoved: "flow/target"
	// Lane orders jobs: of the jobs that share a non-empty lane, only the
	// one with the lowest ID may be claimed. Empty means unordered.
	Lane      string
	Attempts  int
	NotBefore time.Time // not due before this
	LastError string
	Alerted   bool // a stuck alert was raised for this job
	CreatedAt time.Time

	LeaseOwner string
	LeaseUntil time.Time
	// LeaseToken grows with every claim of the job: a fencing token. A
	// worker whose lease ran out and was taken over finds a different
	// token (or owner) when it completes, and leaves the job alone.
	LeaseToken uint64
}

// ClaimRank orders the kinds of due jobs for Store.ClaimJobs, lowest
// first: removing access (revoke) is safety-critical and goes ahead of
// everything, adding it (grant: a person waits for it) next, and the
// Slack-facing jobs (post, update, repost, notify, alert) last. Within a
// rank jobs are claimed in ID order. Ranks never reorder a lane: only a
// lane's lowest ID may be claimed, whatever its kind, so the jobs of one
// request's message or DMs keep their order.
func ClaimRank(k JobKind) int {
	switch k {
	case JobRevoke:
		return 0
	case JobGrant:
		return 1
	}
	return ClaimRankLast
}

// ClaimRankLast is the rank of the Slack-facing jobs (and of unknown kinds).
const ClaimRankLast = 2

// ClaimableAt is when j can be claimed: the later of NotBefore and the end
// of its lease.
func (j *Job) ClaimableAt() time.Time {
	if j.LeaseUntil.After(j.NotBefore) {
		return j.LeaseUntil
	}
	return j.NotBefore
}

// laneFor orders jobs: the approval message's post and updates in one lane,
// the requester's DMs in another; Okta jobs are serialised by a lock instead.
func laneFor(j *Job) string {
	switch j.Kind {
	case JobPost, JobUpdate, JobRepost:
		return "msg:" + j.RequestID
	case JobNotify:
		return "dm:" + j.RequestID + ":" + j.To
	}
	return ""
}

func (e *Engine) addJob(tx Tx, now time.Time, j *Job) error {
	j.CreatedAt = now
	j.NotBefore = now
	if j.Lane == "" {
		j.Lane = laneFor(j)
	}
	return tx.AddJob(j)
}

func (e *Engine) addJobs(tx Tx, now time.Time, jobs ...*Job) error {
	for _, j := range jobs {
		if err := e.addJob(tx, now, j); err != nil {
			return err
		}
	}
	return nil
}

// errLeaseLost: the job's lease ran out while it ran and another worker
// (another replica) claimed it; that worker records the outcome.
var errLeaseLost = errors.New("job lease lost to another worker")

// holds reports whether stored is still the job this worker claimed as j:
// the same lease owner and fencing token. A job that was never claimed
// (LeaseOwner empty: run directly by a test) is always held.
func holds(stored *Job, j Job) bool {
	return j.LeaseOwner == "" || (stored.LeaseOwner == j.LeaseOwner && stored.LeaseToken == j.LeaseToken)
}

// completeRetryMax caps the wait between attempts to record a job's
// outcome while the store is unavailable.
const completeRetryMax = 2 * time.Second

// complete runs fn, deletes the job and audits its success, in one
// transaction, provided this worker still holds the job's lease (owner and
// fencing token); otherwise it changes nothing and returns errLeaseLost.
//
// It is called after the job's side effect happened (a Slack message
// posted, an Okta membership changed): if the store cannot be reached just
// then, it tries again until ctx ends, rather than leave the job to be done
// a second time when its lease runs out. While the store is down no other
// worker can claim the job, so the outcome is recorded as soon as it is
// back.
func (e *Engine) complete(ctx context.Context, j Job, detail string, fn func(tx Tx, now time.Time) error) error {
	err := e.completeOnce(ctx, j, detail, fn)
	for wait := 250 * time.Millisecond; errors.Is(err, ErrStoreUnavailable) && ctx.Err() == nil; wait = min(2*wait, completeRetryMax) {
		e.log().Warn("store unavailable; recording the job's outcome again shortly", "request_id", j.RequestID, "job", j.ID, "kind", j.Kind, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
		err = e.completeOnce(ctx, j, detail, fn)
	}
	if err != nil {
		return fmt.Errorf("complete %s job: %w", j.Kind, err)
	}
	e.kickExecutor()
	return nil
}

func (e *Engine) completeOnce(ctx context.Context, j Job, detail string, fn func(tx Tx, now time.Time) error) error {
	now := e.now()
	update := e.store.Update
	if j.Kind == JobPost {
		// The approval message is out and no one waits on this record
		// (its ts): it shares the commit of the next request rather than
		// add one for that request to wait behind.
		update = e.updateLater
	}
	return update(ContextWithJob(ctx, j.ID), func(tx Tx) error {
		stored, err := tx.Job(j.ID)
		if err != nil {
			if errors.Is(err, ErrNotFound) {
				return nil // finished elsewhere
			}
			return err
		}
		if !holds(stored, j) {
			return errLeaseLost
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
}

func (e *Engine) jobFailed(ctx context.Context, j Job, jerr error, log *slog.Logger) error {
	now := e.now()
	var result, failedFlow string
	var alerted, abandoned bool
	err := e.store.Update(ContextWithJob(ctx, j.ID), func(tx Tx) error {
		// The store may run this more than once: only note what to count.
		result, failedFlow, alerted, abandoned = "", "", false, false
		jj, err := tx.Job(j.ID)
		if err != nil {
			if errors.Is(err, ErrNotFound) {
				return nil
			}
			return err
		}
		if !holds(jj, j) {
			return nil // another worker took it over and records its outcome
		}
		jj.Attempts++
		jj.LastError = errText(jerr)
		jj.LeaseOwner, jj.LeaseUntil = "", time.Time{}
		permanent := IsPermanent(jerr)
		detail := fmt.Sprintf("attempt %d: %s", jj.Attempts, jj.LastError)
		capd := e.Runtime.retryMax()
		switch jj.Kind {
		case JobGrant:
			if permanent || jj.Attempts >= e.Runtime.grantAttempts() {
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
			capd = e.Runtime.revokeRetryMax()
			if jj.Attempts >= e.Runtime.revokeAlertAfter() && !jj.Alerted {
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
			if jj.Kind != JobPost && (permanent || jj.Attempts >= e.Runtime.notifyAttempts()) {
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
		e.rt.revokeAlerts.Add(1)
	}
	if abandoned {
		e.rt.jobsAbandoned.Add(1)
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

// backoff returns the delay before attempt n+1: exponential from RetryBase,
// capped, with jitter in [d/2, d].
func (e *Engine) backoff(attempts int, capd time.Duration) time.Duration {
	d := e.Runtime.retryBase()
	for i := 1; i < attempts && d < capd; i++ {
		d *= 2
	}
	d = min(d, capd)
	return d/2 + e.Runtime.jitter(d/2)
}

// errText is an error's text for the audit trail and messages, redacted
// and cut at 500 bytes on a character boundary.
func errText(err error) string {
	s := Redact(err.Error())
	if len(s) <= 500 {
		return s
	}
	cut := 500
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// failReason turns a grant error into words for people (the raw error goes
// to the log and the audit trail), and says whether operators must be told.
func failReason(err error, attempts int) (reason string, alert bool) {
	var ce *IdentityConflictError
	switch {
	case errors.As(err, &ce):
		// The operators were alerted when the conflict was found.
		return fmt.Sprintf("the requester's Slack account is bound to Okta user %s, but its profile now finds %s; symbot grants nothing to it until an operator checks this and runs `symbot identity reset %s`", ce.BoundLogin, ce.FoundLogin, ce.SlackID), false
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
	r.FailReason = Redact(reason)
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
		jobs = append(jobs, &Job{Kind: JobRevoke, RequestID: r.ID})
	}
	return r.Flow, e.apply(tx, now, r, change{to: StateFailed, by: System, note: reason, detail: reason, jobs: jobs})
}
