// The Notifier port (Slack) and its events, and the jobs that post, update
// and send messages through it.

package symbot

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Event names what happened to a request; notifications render it.
type Event string

// Events.
const (
	EventRequested     Event = "requested"      // a new request waits for approval
	EventApproval      Event = "approval"       // one approval recorded, more needed
	EventApproved      Event = "approved"       // quorum reached; granting
	EventScheduled     Event = "scheduled"      // quorum reached ahead of the start time; granted then
	EventStarted       Event = "started"        // a scheduled request's start time came; granting
	EventBreakGlass    Event = "break_glass"    // granted without approval (alert; review needed)
	EventReviewOverdue Event = "review_overdue" // break-glass access still unreviewed (alert again)
	EventEscalated     Event = "escalated"      // an escalation step fired (backup approvers, re-post)
	EventReminder      Event = "reminder"       // the request still waits: approvers reminded, requester told
	EventReviewed      Event = "reviewed"       // an approver acknowledged break-glass access
	EventDenied        Event = "denied"         // an approver denied it
	EventCancelled     Event = "cancelled"      // the requester withdrew it
	EventTimedOut      Event = "timed_out"      // nobody decided in time
	EventGranted       Event = "granted"        // the Okta membership took effect
	EventExtended      Event = "extended"       // an extension moved the expiry out
	EventWarning       Event = "warning"        // access expires soon
	EventExpired       Event = "expired"        // time is up; removal queued
	EventRevoked       Event = "revoked"        // ended early; removal queued
	EventRemoved       Event = "removed"        // the membership is gone (or was deliberately kept, see RemovalNote)
	EventFailed        Event = "failed"         // the grant could not be made
	EventRevokeStuck   Event = "revoke_stuck"   // removal keeps failing (alert)
	EventRevokeOK      Event = "revoke_ok"      // a removal that was alerted as stuck is done (all-clear alert)
	// EventRemovedOutside: the reconciler found an active grant's
	// membership gone; the grant ended.
	EventRemovedOutside Event = "removed_outside"
	EventDrift          Event = "drift"      // the reconciler found Okta differing from the grants (alert)
	EventSinkStuck      Event = "sink_stuck" // an audit sink keeps failing (alert)
	// EventUnmanagedRemoved: the reconciler took away a membership no
	// grant explained (unmanaged_members: remove); told to the person.
	EventUnmanagedRemoved Event = "unmanaged_removed"
	// EventIdentityConflict: a Slack account now resolves to another Okta
	// user than the one it is bound to (alert, once per conflict).
	EventIdentityConflict Event = "identity_conflict"
)

// Notifier tells people what happens. The Slack bot implements it. Every
// call is made by the executor from a durable job and may be retried, so
// implementations should be idempotent where the API allows it.
type Notifier interface {
	// PostRequest posts the approval message for r in f's channel.
	PostRequest(ctx context.Context, f *Flow, r *Request) (MessageRef, error)
	// UpdateRequest re-renders r's approval message in place from r's
	// current state and replies in its thread about ev.
	UpdateRequest(ctx context.Context, f *Flow, r *Request, ev Event) error
	// NotifyUser sends a direct message about ev on r to the Slack user.
	NotifyUser(ctx context.Context, userID string, f *Flow, r *Request, ev Event) error
	// Alert reports an operational problem to the operators.
	Alert(ctx context.Context, a Alert) error
}

// PostPreparer is a Notifier that can do the work of an approval message
// that needs no I/O (rendering it, encoding it) apart from posting it. The
// engine prepares a new request's message while the request's transaction
// commits, on a goroutine of its own, and the first attempt of its post job
// then posts the prepared message: the request's commit waits on the disk,
// so the work overlaps that wait instead of following it. A type that
// wraps a PostPreparer to change what PostRequest does must change
// PostPrepared the same way (or hide it): a new request's message is
// posted through PostPrepared.
type PostPreparer interface {
	// PreparePost renders and encodes the approval message for r in f's
	// channel. It must not change r or f, nor do I/O.
	PreparePost(f *Flow, r *Request) PreparedPost
	// PostPrepared posts p, prepared from the f and r given, as
	// PostRequest(ctx, f, r) would.
	PostPrepared(ctx context.Context, f *Flow, r *Request, p PreparedPost) (MessageRef, error)
}

// PreparedPost is an approval message as a PostPreparer prepared it; only
// that notifier reads it.
type PreparedPost any

// MemberNotifier is a Notifier that can also tell someone who has no
// request: a person found by their directory email. The reconciler tells
// a person it removed from a group that no grant explained. A person with
// no account there is an error wrapping ErrUserNotFound.
type MemberNotifier interface {
	// NotifyMember sends a direct message about ev on f's target to the
	// person with the given email.
	NotifyMember(ctx context.Context, email string, f *Flow, target string, ev Event) error
}

// JobAttempt describes the attempt of a durable job that a Notifier call
// is made for. The executor puts it in the call's context (see
// JobAttemptFrom), so that a notifier can tag the message it posts with
// the job and, on a retry, look for that message before posting again.
type JobAttempt struct {
	JobID     uint64
	Kind      JobKind
	RequestID string
	// CreatedAt is when the job was queued (by the engine's clock): any
	// message an earlier attempt posted is newer.
	CreatedAt time.Time
	// Retry reports that an earlier attempt of this job was started and
	// may have had its effect: it posted, then failed, or its process died
	// or lost the job's lease before the outcome was stored. It is false
	// on a job's first attempt (never claimed before, no failure
	// recorded), which therefore costs no look-up.
	Retry bool
}

// attemptOf is the JobAttempt of running j. A job's lease token grows with
// every claim (a claim by the executor, a hand-over, a take-over) and
// never goes back, so a token above 1 means an earlier claim; Attempts
// counts the failures recorded.
func attemptOf(j Job) JobAttempt {
	return JobAttempt{JobID: j.ID, Kind: j.Kind, RequestID: j.RequestID, CreatedAt: j.CreatedAt,
		Retry: j.Attempts > 0 || j.LeaseToken > 1}
}

// jobAttemptKey is the context key of ContextWithJobAttempt.
type jobAttemptKey struct{}

// ContextWithJobAttempt returns ctx carrying a, for the Notifier calls a
// job's attempt makes.
func ContextWithJobAttempt(ctx context.Context, a JobAttempt) context.Context {
	return context.WithValue(ctx, jobAttemptKey{}, a)
}

// JobAttemptFrom returns the job attempt a Notifier call is made for;
// false when the call is not made by a job (an answer to a person).
func JobAttemptFrom(ctx context.Context) (JobAttempt, bool) {
	a, ok := ctx.Value(jobAttemptKey{}).(JobAttempt)
	return a, ok
}

// Alert is an operational problem that needs a person.
type Alert struct {
	RequestID string
	Event     Event
	Text      string // in words for operators; never a secret
}

func (e *Engine) execSlack(ctx context.Context, j Job) error {
	ctx = ContextWithJobAttempt(ctx, attemptOf(j))
	if j.Kind == JobAlert {
		if err := e.notifier.Alert(ctx, Alert{RequestID: j.RequestID, Event: j.Event, Text: j.Text}); err != nil {
			return fmt.Errorf("send alert: %w", err)
		}
		return e.complete(ctx, j, "", nil)
	}
	if j.Kind == JobNotify && j.Event == EventUnmanagedRemoved {
		return e.notifyMember(ctx, j)
	}
	r, handed := committedRequest(ctx, j.RequestID)
	if !handed || j.Kind != JobPost || j.Attempts > 0 {
		var err error
		if r, err = e.Get(ctx, j.RequestID); err != nil {
			if errors.Is(err, ErrNotFound) {
				return e.complete(ctx, j, "request gone", nil)
			}
			return err
		}
	}
	f := e.flowFor(r)
	if nudgeEvent(j.Event) && r.State != StatePending {
		return e.complete(ctx, j, "dropped: the request is "+string(r.State), nil)
	}
	switch j.Kind {
	case JobRepost:
		if slices.ContainsFunc(r.Reposts, func(m MessageRef) bool { return m.Channel == j.To }) {
			return e.complete(ctx, j, "already re-posted in "+j.To, nil)
		}
		c := *f
		c.Channel = j.To
		ref, err := e.notifier.PostRequest(ctx, &c, r)
		if err != nil {
			return fmt.Errorf("re-post approval message: %w", err)
		}
		return e.complete(ctx, j, "channel="+ref.Channel+" ts="+ref.TS, func(tx Tx, now time.Time) error {
			cur, err := tx.Request(r.ID)
			if err != nil {
				return err
			}
			cur.Reposts = append(cur.Reposts, ref)
			return tx.PutRequest(cur)
		})
	case JobPost:
		if r.Message.TS != "" {
			return e.complete(ctx, j, "already posted", nil)
		}
		if r.State.Final() && !r.BreakGlass {
			return e.complete(ctx, j, "not posted: the request is already "+string(r.State), nil)
		}
		if r.BreakGlass && f.BreakGlass != nil && f.BreakGlass.Channel != "" {
			// The break-glass alert, with its Acknowledge button.
			c := *f
			c.Channel = f.BreakGlass.Channel
			f = &c
		}
		var ref MessageRef
		var err error
		// Only the first attempt of a handed-over post of a request that is
		// not break-glass carries a prepared message (see preparePost).
		if msg, ok := e.preparedMessage(ctx, r); ok {
			ref, err = e.notifier.(PostPreparer).PostPrepared(ctx, f, r, msg)
		} else {
			ref, err = e.notifier.PostRequest(ctx, f, r)
		}
		if err != nil {
			return fmt.Errorf("post approval message: %w", err)
		}
		if r.State == StatePending {
			// Now that the approvers can see it, and not before: the
			// look-ups never delay an approval message.
			e.queuePrecheck(r.ID)
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

// notifyMember runs a JobNotify about a membership that has no request
// (EventUnmanagedRemoved): To is the person's email, Text "flow/target".
// A person with no Slack account, or a notifier that cannot reach people
// without a request, ends the job: there is no one to tell.
func (e *Engine) notifyMember(ctx context.Context, j Job) error {
	mn, ok := e.notifier.(MemberNotifier)
	if !ok {
		return e.complete(ctx, j, "not told: the notifier cannot message a person without a request", nil)
	}
	flow, target, _ := strings.Cut(j.Text, "/")
	f := &Flow{Name: flow, Label: flow, Targets: []Target{{Name: target, Label: target}}}
	if cf, ok := e.Flow(flow); ok {
		f = cf
	}
	err := mn.NotifyMember(ctx, j.To, f, target, j.Event)
	if errors.Is(err, ErrUserNotFound) {
		return e.complete(ctx, j, string(j.Event)+": not told: no Slack account has the email "+j.To, nil)
	}
	if err != nil {
		return fmt.Errorf("notify %s: %w", j.To, err)
	}
	return e.complete(ctx, j, string(j.Event)+" to "+j.To, nil)
}
