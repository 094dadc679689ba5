package symbot

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// The engine's side of the audit trail: who exactly acted, refused
// attempts, and the switch to a keyed chain.

// Submit records a new request (or an extension of an active grant of the
// same target) and queues its approval message. A refusal is audited.
func (e *Engine) Submit(ctx context.Context, actor Actor, in RequestInput) (*Request, error) {
	e.noteIntake()
	r, err := e.submit(ctx, actor, in)
	e.auditRefusal(ctx, actor, "request", "", "flow="+in.Flow+" target="+in.Target, err)
	return r, err
}

// BreakGlass grants emergency access at once, without approval, on a flow
// that allows it (Flow.BreakGlass), alerting the break-glass and errors
// channels; an approver must acknowledge it afterwards. A refusal is
// audited.
func (e *Engine) BreakGlass(ctx context.Context, actor Actor, in RequestInput) (*Request, error) {
	e.noteIntake()
	r, err := e.breakGlass(ctx, actor, in)
	e.auditRefusal(ctx, actor, "breakglass", "", "flow="+in.Flow+" target="+in.Target, err)
	return r, err
}

// Acknowledge records an approver's after-the-fact review of break-glass
// access id: an approver of its flow, never its requester. A refusal is
// audited.
func (e *Engine) Acknowledge(ctx context.Context, id string, actor Actor, note string) (*Request, error) {
	r, err := e.acknowledge(ctx, id, actor, note)
	e.auditRefusal(ctx, actor, "acknowledge", id, "", err)
	return r, err
}

// Extend starts an extension request for the active grant id, for the same
// flow and target. A refusal is audited.
func (e *Engine) Extend(ctx context.Context, id string, actor Actor, d time.Duration, reason string) (*Request, error) {
	e.noteIntake()
	r, err := e.extend(ctx, id, actor, d, reason)
	e.auditRefusal(ctx, actor, "extend", id, "", err)
	return r, err
}

// Approve records actor's approval. When the flow's quorum is reached the
// request is approved and the grant is queued (or, for an extension of a
// still-active grant, that grant's expiry moves out). A refusal is audited.
func (e *Engine) Approve(ctx context.Context, id string, actor Actor, note string) (*Request, error) {
	e.noteIntake()
	r, err := e.approve(ctx, id, actor, note)
	e.auditRefusal(ctx, actor, string(VerbApprove), id, "", err)
	return r, err
}

// Deny ends a pending request; any approver may deny. A refusal is audited.
func (e *Engine) Deny(ctx context.Context, id string, actor Actor, note string) (*Request, error) {
	e.noteIntake()
	r, err := e.deny(ctx, id, actor, note)
	e.auditRefusal(ctx, actor, string(VerbDeny), id, "", err)
	return r, err
}

// Cancel withdraws a pending request; only its requester may. A refusal is
// audited.
func (e *Engine) Cancel(ctx context.Context, id string, actor Actor) (*Request, error) {
	r, err := e.cancel(ctx, id, actor)
	e.auditRefusal(ctx, actor, "cancel", id, "", err)
	return r, err
}

// Revoke ends active access early. The requester may always relinquish;
// approvers may revoke when the flow allows it. A refusal is audited.
func (e *Engine) Revoke(ctx context.Context, id string, actor Actor, note string) (*Request, error) {
	r, err := e.userRevoke(ctx, id, actor, note)
	e.auditRefusal(ctx, actor, string(VerbRevoke), id, "", err)
	return r, err
}

// ActionRefusedPrefix starts the action of an audited refusal:
// "refused:approve", "refused:revoke", ...
const ActionRefusedPrefix = "refused:"

// auditRefusal records that the policy refused actor's attempt to verb on
// request id (err a *PolicyError), rate-limited per person so that a flood
// of clicks cannot bloat the trail. Anything else (a request that moved on,
// a store error) is not a refusal and is not recorded. Failing to record
// is logged: the refusal itself has happened either way.
func (e *Engine) auditRefusal(ctx context.Context, actor Actor, verb, id, what string, err error) {
	var pe *PolicyError
	var ce *IdentityConflictError
	switch {
	case errors.As(err, &ce):
		pe = &PolicyError{Reason: ce.Error()}
	case !errors.As(err, &pe):
		return
	}
	now := e.now()
	ok, dropped := e.refusals.admit(actor.SlackID, now, orDefault(e.RefusalAuditBurst, 5), orDefault(e.RefusalAuditEvery, time.Minute))
	if !ok {
		return
	}
	detail := pe.Reason
	if what != "" {
		detail = what + ": " + detail
	}
	if dropped > 0 {
		detail += fmt.Sprintf(" (%d earlier refusals of this person were not recorded: rate limit)", dropped)
	}
	werr := e.store.Update(context.WithoutCancel(ctx), func(tx Tx) error {
		return e.audit(tx, now, id, actor.SlackID, ActionRefusedPrefix+verb, detail)
	})
	if werr != nil {
		e.log().Error("audit refusal", "request_id", id, "by", actor.SlackID, "action", verb, "error", werr)
	}
}

// refusalLimiter is a token bucket per person. Buckets that are full again
// are forgotten, so its size stays bounded by the people refused recently.
type refusalLimiter struct {
	mu sync.Mutex
	m  map[string]*refusalBucket
}

type refusalBucket struct {
	tokens  float64
	last    time.Time
	dropped int
}

// admit takes a token of who's bucket, and reports whether it had one and
// how many attempts were refused a token since the last admitted one.
func (l *refusalLimiter) admit(who string, now time.Time, burst int, every time.Duration) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = map[string]*refusalBucket{}
	}
	refill := func(b *refusalBucket) {
		if d := now.Sub(b.last); d > 0 {
			b.tokens = min(float64(burst), b.tokens+float64(d)/float64(every))
			b.last = now
		}
	}
	if len(l.m) >= 4096 {
		for k, b := range l.m {
			refill(b)
			if b.tokens >= float64(burst) && b.dropped == 0 {
				delete(l.m, k)
			}
		}
	}
	b, ok := l.m[who]
	if !ok {
		b = &refusalBucket{tokens: float64(burst), last: now}
		l.m[who] = b
	}
	refill(b)
	if b.tokens < 1 {
		b.dropped++
		return false, 0
	}
	b.tokens--
	d := b.dropped
	b.dropped = 0
	return true, d
}

// Operator is the operating-system user behind an admin command, as the
// kernel reports the peer of the admin socket.
type Operator struct {
	User string // login name, or the uid in decimal when it has none
	UID  int
	PID  int
}

type operatorKey struct{}

// WithOperator returns ctx carrying op, for the engine's admin methods
// (AdminRevoke, AuditAdmin) to record.
func WithOperator(ctx context.Context, op Operator) context.Context {
	return context.WithValue(ctx, operatorKey{}, op)
}

// OperatorFrom returns the operator WithOperator put in ctx.
func OperatorFrom(ctx context.Context) (Operator, bool) {
	op, ok := ctx.Value(operatorKey{}).(Operator)
	return op, ok
}

// adminActor is the audit actor of an admin command: "admin:<user>" with
// the operating-system user when known, else "admin".
func adminActor(ctx context.Context) string {
	op, ok := OperatorFrom(ctx)
	if !ok || op.User == "" {
		return "admin"
	}
	return fmt.Sprintf("admin:%s(uid=%d,pid=%d)", op.User, op.UID, op.PID)
}

// AuditAdmin records an admin command that changes nothing but matters to
// an auditor (a backup of the database, an export of the trail), with the
// operator from ctx.
func (e *Engine) AuditAdmin(ctx context.Context, action, detail string) error {
	now := e.now()
	err := e.store.Update(ctx, func(tx Tx) error {
		return e.audit(tx, now, "", adminActor(ctx), "admin:"+action, detail)
	})
	if err != nil {
		return fmt.Errorf("audit admin %s: %w", action, err)
	}
	return nil
}

// EnsureAuditKey makes the chain's head use e.AuditKey. When the head was
// sealed otherwise (unkeyed, or under another key) it appends the switch
// entry, sealed with the new key and linked to the old head, so the switch
// is itself part of the trail. It refuses to go back to an unkeyed chain:
// an unkeyed entry after a keyed one would read as a forgery.
func (e *Engine) EnsureAuditKey(ctx context.Context) error {
	now := e.now()
	var switched string
	err := e.store.Update(ctx, func(tx Tx) error {
		switched = ""
		seq, _, err := tx.AuditHead()
		if err != nil {
			return err
		}
		prev := ""
		if seq > 0 {
			last, err := tx.Audit(seq-1, 1)
			if err != nil {
				return err
			}
			if len(last) != 1 {
				return fmt.Errorf("audit head %d has no entry: the audit trail was altered; run `symbot audit verify`", seq)
			}
			prev = last[0].Key
		}
		want := ""
		if e.AuditKey != nil {
			want = e.AuditKey.ID()
		}
		switch {
		case prev == want && (seq > 0 || want == ""):
			return nil
		case want == "":
			return fmt.Errorf("the audit chain is sealed with key %s but no audit key is configured: set audit.key_file or audit.key_secret to that key", prev)
		}
		from := "unkeyed SHA-256"
		if prev != "" {
			from = "key " + prev
		}
		switched = fmt.Sprintf("audit chain sealed with key %s from here on (before: %s)", want, from)
		return e.audit(tx, now, "", System, ActionAuditKey, switched)
	})
	if err != nil {
		return fmt.Errorf("switch audit key: %w", err)
	}
	if switched != "" {
		e.log().Info("audit key switched", "detail", switched)
	}
	return nil
}

// QueueAlert queues an operator alert as a durable job (sent to the errors
// channel by the executor, retried like any Slack job).
func (e *Engine) QueueAlert(ctx context.Context, a Alert) error {
	now := e.now()
	err := e.store.Update(ctx, func(tx Tx) error {
		return e.addJob(tx, now, &Job{Kind: JobAlert, RequestID: a.RequestID, Event: a.Event, Text: a.Text})
	})
	if err != nil {
		return fmt.Errorf("queue alert: %w", err)
	}
	e.kickExecutor()
	return nil
}

// isRefusal reports whether an audit action records a refused attempt.
func isRefusal(action string) bool { return strings.HasPrefix(action, ActionRefusedPrefix) }
