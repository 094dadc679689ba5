package symbot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Engine is the request state machine, the approval policy, the durable-job
// executor and the expiry scheduler. Every state change and the jobs it
// causes are written in one store transaction; Run executes the jobs and
// fires the deadlines.
type Engine struct {
	store    Store
	dir      Directory
	notifier Notifier
	flows    []Flow
	byName   map[string]*Flow

	// Optional settings; set before Run. Zero values get defaults.
	Now     func() time.Time // the clock; default time.Now
	Logger  *slog.Logger     // default discards
	Metrics Metrics          // default none

	Workers          int           // concurrent jobs; default 16
	Lease            time.Duration // job lease; default 2m (must exceed JobTimeout)
	JobTimeout       time.Duration // one attempt of one job; default 45s
	RetryBase        time.Duration // first retry delay; default 1s
	RetryMax         time.Duration // cap of retry delays for grant and Slack jobs; default 5m
	RevokeRetryMax   time.Duration // cap of retry delays for revocations; default 1m
	GrantAttempts    int           // a grant fails after this many attempts; default 10 (about 8 minutes)
	NotifyAttempts   int           // Slack jobs are abandoned after this many; default 12
	RevokeAlertAfter int           // alert after this many failed revocation attempts; default 5
	IdentityTTL      time.Duration // how long a Slack→Okta identity is cached; default 10m
	BatchSize        int           // deadlines handled per transaction; default 256
	Owner            string        // job lease owner; default a per-process id
	// ShutdownGrace bounds how long Run waits for in-flight jobs after its
	// context ends; jobs still running then are cancelled and run again at
	// the next start. Default 10s.
	ShutdownGrace time.Duration

	kickJobs  chan struct{}
	kickSched chan struct{}
	locks     keyedMutex

	jobsDone      atomic.Int64
	jobsAbandoned atomic.Int64
	revokeAlerts  atomic.Int64
	wakeups       atomic.Int64
}

// NewEngine validates flows (after applying defaults) and returns an engine.
func NewEngine(st Store, dir Directory, n Notifier, flows []Flow) (*Engine, error) {
	fs := make([]Flow, len(flows))
	for i, f := range flows {
		f.Durations = slices.Clone(f.Durations)
		f.Targets = slices.Clone(f.Targets)
		f.Approvers.Users = slices.Clone(f.Approvers.Users)
		f.ApplyDefaults()
		fs[i] = f
	}
	if err := ValidateFlows(fs); err != nil {
		return nil, fmt.Errorf("invalid flows: %w", err)
	}
	e := &Engine{
		store: st, dir: dir, notifier: n, flows: fs,
		byName:    map[string]*Flow{},
		kickJobs:  make(chan struct{}, 1),
		kickSched: make(chan struct{}, 1),
	}
	for i := range e.flows {
		e.byName[strings.ToLower(e.flows[i].Name)] = &e.flows[i]
	}
	return e, nil
}

func (e *Engine) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

var discard = slog.New(slog.DiscardHandler)

func (e *Engine) log() *slog.Logger {
	if e.Logger != nil {
		return e.Logger
	}
	return discard
}

// Resolved defaults of the optional settings used in several places.
func (e *Engine) workers() int              { return orDefault(e.Workers, 16) }
func (e *Engine) lease() time.Duration      { return orDefault(e.Lease, 2*time.Minute) }
func (e *Engine) jobTimeout() time.Duration { return orDefault(e.JobTimeout, 45*time.Second) }
func (e *Engine) retryMax() time.Duration   { return orDefault(e.RetryMax, 5*time.Minute) }

func orDefault[T int | time.Duration](v, d T) T {
	if v <= 0 {
		return d
	}
	return v
}

// Flows returns the configured flows (after defaults).
func (e *Engine) Flows() []Flow { return slices.Clone(e.flows) }

// Flow returns the flow with the given name.
func (e *Engine) Flow(name string) (*Flow, bool) {
	f, ok := e.byName[strings.ToLower(name)]
	if !ok {
		return nil, false
	}
	c := *f
	return &c, true
}

// RequestInput is what a person asks for.
type RequestInput struct {
	Flow     string // empty: inferred from a target name unique across flows
	Target   string // target name, or "flow/target"
	Duration time.Duration
	Reason   string
}

// MaxReasonLength bounds the reason text.
const MaxReasonLength = 2000

// ResolveTarget finds the flow and target for the input's names.
func (e *Engine) ResolveTarget(flowName, targetName string) (*Flow, Target, error) {
	if flowName == "" {
		if f, t, ok := strings.Cut(targetName, "/"); ok {
			flowName, targetName = f, t
		}
	}
	targetName = strings.TrimSpace(targetName)
	if flowName != "" {
		f, ok := e.byName[strings.ToLower(flowName)]
		if !ok {
			return nil, Target{}, &InputError{Field: "flow", Problem: fmt.Sprintf("no flow named %q; choose one of: %s", flowName, e.flowNames())}
		}
		if targetName == "" {
			return nil, Target{}, &InputError{Field: "target", Problem: "missing: choose one of: " + targetNames(f)}
		}
		t, ok := f.Target(targetName)
		if !ok {
			return nil, Target{}, &InputError{Field: "target", Problem: fmt.Sprintf("flow %s has no target %q; choose one of: %s", f.Name, targetName, targetNames(f))}
		}
		return f, t, nil
	}
	if targetName == "" {
		return nil, Target{}, &InputError{Field: "target", Problem: "missing: name the target you need"}
	}
	var found []*Flow
	var tgt Target
	for i := range e.flows {
		if t, ok := e.flows[i].Target(targetName); ok {
			found = append(found, &e.flows[i])
			tgt = t
		}
	}
	switch len(found) {
	case 0:
		var all []Target
		for i := range e.flows {
			all = append(all, e.flows[i].Targets...)
		}
		return nil, Target{}, &InputError{Field: "target", Problem: fmt.Sprintf("no target named %q; choose one of: %s", targetName, list(all, func(t Target) string { return t.Name }))}
	case 1:
		return found[0], tgt, nil
	}
	opts := list(found, func(f *Flow) string { return f.Name + "/" + targetName })
	return nil, Target{}, &InputError{Field: "target", Problem: fmt.Sprintf("target %q is in several flows; write one of: %s", targetName, opts)}
}

// list joins the names of xs for a message: "a, b, c".
func list[T any](xs []T, name func(T) string) string {
	n := make([]string, len(xs))
	for i, x := range xs {
		n[i] = name(x)
	}
	return strings.Join(n, ", ")
}

func (e *Engine) flowNames() string { return list(e.flows, func(f Flow) string { return f.Name }) }
func targetNames(f *Flow) string    { return list(f.Targets, func(t Target) string { return t.Name }) }
func durationList(f *Flow) string   { return list(f.Durations, FormatDuration) }

// Submit records a new request (or an extension of an active grant of the
// same target) and queues its approval message.
func (e *Engine) Submit(ctx context.Context, actor Actor, in RequestInput) (*Request, error) {
	f, t, err := e.ResolveTarget(in.Flow, in.Target)
	if err != nil {
		return nil, err
	}
	if actor.SlackID == "" {
		return nil, &InputError{Field: "requester", Problem: "missing Slack user id"}
	}
	if actor.IsBot {
		return nil, &PolicyError{Reason: "bots cannot request access"}
	}
	if actor.IsGuest && !f.AllowGuests {
		return nil, &PolicyError{Reason: fmt.Sprintf("guests cannot request access in flow %s", f.Name)}
	}
	if !f.AllowsDuration(in.Duration) {
		return nil, &InputError{Field: "duration", Problem: fmt.Sprintf("%s is not offered by flow %s; choose one of: %s", FormatDuration(in.Duration), f.Name, durationList(f))}
	}
	reason := strings.TrimSpace(in.Reason)
	if reason == "" {
		return nil, &InputError{Field: "reason", Problem: "required: say why you need this access"}
	}
	if len(reason) > MaxReasonLength {
		return nil, &InputError{Field: "reason", Problem: fmt.Sprintf("too long (%d characters; at most %d)", len(reason), MaxReasonLength)}
	}
	now := e.now()
	var out *Request
	err = e.store.Update(ctx, func(tx Tx) error {
		mine, err := tx.RequestsByRequester(actor.SlackID)
		if err != nil {
			return err
		}
		var extends string
		for _, o := range mine {
			if o.GroupID != t.GroupID || !strings.EqualFold(o.Flow, f.Name) {
				continue
			}
			switch o.State {
			case StatePending, StateApproved:
				return &DuplicateError{ExistingID: o.ID, Message: o.Message}
			case StateActive:
				extends = o.ID
			}
		}
		seq, err := tx.NextSeq("request")
		if err != nil {
			return err
		}
		r := &Request{
			ID:        fmt.Sprintf("SYM-%d", seq),
			Flow:      f.Name,
			Target:    t.Name,
			GroupID:   t.GroupID,
			Requester: actor.Person,
			Duration:  in.Duration,
			Reason:    reason,
			State:     StatePending,
			CreatedAt: now,
			UpdatedAt: now,
			TimeoutAt: now.Add(f.ApprovalTimeout),

			ExtensionOf: extends,
		}
		if err := tx.PutRequest(r); err != nil {
			return err
		}
		detail := fmt.Sprintf("flow=%s target=%s group=%s duration=%s", f.Name, t.Name, t.GroupID, FormatDuration(in.Duration))
		if extends != "" {
			detail += " extends=" + extends
		}
		if err := e.audit(tx, now, r.ID, actor.SlackID, "request", detail); err != nil {
			return err
		}
		if err := e.addJob(tx, now, &Job{Kind: JobPost, RequestID: r.ID, Event: EventRequested}); err != nil {
			return err
		}
		out = r
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("submit request: %w", err)
	}
	e.observe(f.Name, StatePending)
	e.kick()
	e.log().Info("request submitted", "request_id", out.ID, "flow", f.Name, "target", t.Name, "requester", actor.SlackID, "duration", FormatDuration(in.Duration), "extends", out.ExtensionOf)
	return out.Clone(), nil
}

// Extend starts an extension request for the active grant id, for the same
// flow and target.
func (e *Engine) Extend(ctx context.Context, id string, actor Actor, d time.Duration, reason string) (*Request, error) {
	r, err := e.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if r.Requester.SlackID != actor.SlackID {
		return nil, &PolicyError{Reason: "only the person who holds this access can ask to extend it"}
	}
	if r.State != StateActive {
		return nil, &PolicyError{Reason: fmt.Sprintf("request %s is %s, not active: make a new request instead", r.ID, r.State)}
	}
	if d == 0 {
		d = r.Duration
	}
	return e.Submit(ctx, actor, RequestInput{Flow: r.Flow, Target: r.Target, Duration: d, Reason: reason})
}

// Get returns a request by id.
func (e *Engine) Get(ctx context.Context, id string) (*Request, error) {
	var r *Request
	err := e.store.View(ctx, func(tx Tx) error {
		var err error
		r, err = tx.Request(id)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("get request %s: %w", id, err)
	}
	return r, nil
}

// ListForUser returns the person's requests that are not final: pending,
// approved and active, newest first.
func (e *Engine) ListForUser(ctx context.Context, slackID string) ([]*Request, error) {
	var out []*Request
	err := e.store.View(ctx, func(tx Tx) error {
		rs, err := tx.RequestsByRequester(slackID)
		if err != nil {
			return err
		}
		for _, r := range rs {
			if !r.State.Final() {
				out = append(out, r)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list requests: %w", err)
	}
	slices.SortFunc(out, func(a, b *Request) int { return b.CreatedAt.Compare(a.CreatedAt) })
	return out, nil
}

// ListByState returns the requests in the given states.
func (e *Engine) ListByState(ctx context.Context, states ...State) ([]*Request, error) {
	var out []*Request
	err := e.store.View(ctx, func(tx Tx) error {
		for _, s := range states {
			rs, err := tx.RequestsByState(s)
			if err != nil {
				return err
			}
			out = append(out, rs...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list requests: %w", err)
	}
	slices.SortFunc(out, func(a, b *Request) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out, nil
}

// ResolveUser finds the directory user for a Slack person, through the
// identity cache.
func (e *Engine) ResolveUser(ctx context.Context, p Person) (DirUser, error) {
	now := e.now()
	var id Identity
	var ok bool
	_ = e.store.View(ctx, func(tx Tx) error {
		var err error
		id, ok, err = tx.Identity(p.SlackID)
		return err
	})
	if ok && id.Email == p.Email && now.Sub(id.CachedAt) < orDefault(e.IdentityTTL, 10*time.Minute) {
		return DirUser{ID: id.OktaUserID, Login: id.OktaLogin, Email: id.Email, Status: "ACTIVE"}, nil
	}
	u, err := e.dir.ResolveUser(ctx, p)
	if err != nil {
		return DirUser{}, err
	}
	_ = e.store.Update(ctx, func(tx Tx) error {
		return tx.PutIdentity(Identity{SlackID: p.SlackID, Email: p.Email, OktaUserID: u.ID, OktaLogin: u.Login, CachedAt: now})
	})
	return u, nil
}

// MayApprove reports whether actor may approve requests of flow f made by
// someone else.
func (e *Engine) MayApprove(ctx context.Context, f *Flow, actor Actor) (bool, error) {
	err := e.mayDecide(ctx, f, "", actor, VerbApprove)
	if err == nil {
		return true, nil
	}
	var pe *PolicyError
	if errors.As(err, &pe) {
		return false, nil
	}
	return false, err
}

// mayDecide applies the approver policy from config and the directory,
// never from anything a button carries.
func (e *Engine) mayDecide(ctx context.Context, f *Flow, requester string, actor Actor, verb string) error {
	if actor.IsBot {
		return &PolicyError{Reason: fmt.Sprintf("bots cannot %s requests", verb)}
	}
	if actor.IsGuest && !f.AllowGuests {
		return &PolicyError{Reason: fmt.Sprintf("guests cannot %s requests in flow %s", verb, f.Name)}
	}
	if requester != "" && actor.SlackID == requester && !f.AllowSelfApproval {
		return &PolicyError{Reason: fmt.Sprintf("you cannot %s your own request: someone else must", verb)}
	}
	a := f.Approvers
	if a.Anyone || slices.Contains(a.Users, actor.SlackID) {
		return nil
	}
	if a.OktaGroup != "" {
		// Always ask the directory: a deactivated approver must not keep
		// approving from a cached identity.
		u, err := e.dir.ResolveUser(ctx, actor.Person)
		switch {
		case errors.Is(err, ErrUserNotFound) || errors.Is(err, ErrUserNotActive):
			// not an approver: fall through
		case err != nil:
			return fmt.Errorf("check approver group: %w", err)
		default:
			ok, err := e.dir.IsMember(ctx, u.ID, a.OktaGroup)
			if err != nil {
				return fmt.Errorf("check approver group: %w", err)
			}
			if ok {
				return nil
			}
		}
	}
	return &PolicyError{Reason: fmt.Sprintf("you are not an approver of flow %s (%s)", f.Name, describeApprovers(a))}
}

func describeApprovers(a Approvers) string {
	var parts []string
	if len(a.Users) > 0 {
		var us []string
		for _, u := range a.Users {
			us = append(us, "<@"+u+">")
		}
		parts = append(parts, "approvers: "+strings.Join(us, ", "))
	}
	if a.OktaGroup != "" {
		parts = append(parts, "members of Okta group "+a.OktaGroup)
	}
	return strings.Join(parts, "; ")
}

func (e *Engine) flowOf(r *Request) (*Flow, error) {
	f, ok := e.byName[strings.ToLower(r.Flow)]
	if !ok {
		return nil, fmt.Errorf("request %s: flow %q is no longer configured: %w", r.ID, r.Flow, ErrNotFound)
	}
	return f, nil
}

// Decided says who decided r and how: the decision that ended "pending"
// (approved, denied, cancelled, timed out), or, once access ended, the
// transition that ended it. It is the error for acting on a request that
// has moved on.
func (r *Request) Decided() *DecidedError {
	d := &DecidedError{ID: r.ID, State: r.State, By: System}
	t, ok := r.LastTransition()
	if !ok {
		return d
	}
	if r.State != StateRevoked && r.State != StateExpired && r.State != StateFailed {
		for _, x := range r.Transitions {
			if x.From == StatePending {
				t, d.State = x, x.To
			}
		}
	}
	d.By, d.At, d.Note = t.By, t.At, t.Note
	return d
}

// Approve records actor's approval. When the flow's quorum is reached the
// request is approved and the grant is queued (or, for an extension of a
// still-active grant, that grant's expiry moves out).
func (e *Engine) Approve(ctx context.Context, id string, actor Actor, note string) (*Request, error) {
	r, f, err := e.loadForDecision(ctx, id, actor, VerbApprove)
	if err != nil {
		return nil, err
	}
	note = strings.TrimSpace(note)
	now := e.now()
	var out *Request
	var reachedState State
	err = e.store.Update(ctx, func(tx Tx) error {
		reachedState = "" // the store may run this more than once
		r, err := tx.Request(r.ID)
		if err != nil {
			return err
		}
		if r.State != StatePending {
			return r.Decided()
		}
		for _, d := range r.Approvals {
			if d.By == actor.SlackID {
				return &PolicyError{Reason: fmt.Sprintf("you already approved %s; it needs %d more approval(s) from someone else", r.ID, f.ApprovalsRequired-len(r.Approvals))}
			}
		}
		r.Approvals = append(r.Approvals, Decision{By: actor.SlackID, Name: actor.Name, At: now, Note: note})
		r.UpdatedAt = now
		if err := e.audit(tx, now, r.ID, actor.SlackID, "approve", fmt.Sprintf("approval %d of %d", len(r.Approvals), f.ApprovalsRequired)); err != nil {
			return err
		}
		if len(r.Approvals) < f.ApprovalsRequired {
			if err := tx.PutRequest(r); err != nil {
				return err
			}
			out = r
			return e.addJob(tx, now, &Job{Kind: JobUpdate, RequestID: r.ID, Event: EventApproval})
		}
		if err := r.transition(StateApproved, actor.SlackID, now, note); err != nil {
			return err
		}
		r.TimeoutAt = time.Time{}
		reachedState = StateApproved
		if err := e.audit(tx, now, r.ID, actor.SlackID, "state:approved", note); err != nil {
			return err
		}
		if r.ExtensionOf != "" {
			extended, err := e.mergeExtension(tx, now, f, r)
			if err != nil {
				return err
			}
			if extended {
				reachedState = StateExtended
				out = r
				return nil
			}
		}
		if err := tx.PutRequest(r); err != nil {
			return err
		}
		out = r
		return e.addJobs(tx, now,
			&Job{Kind: JobGrant, RequestID: r.ID},
			&Job{Kind: JobUpdate, RequestID: r.ID, Event: EventApproved},
			&Job{Kind: JobNotify, RequestID: r.ID, Event: EventApproved, To: r.Requester.SlackID},
		)
	})
	if err != nil {
		return nil, e.wrapDecision("approve", err)
	}
	if reachedState != "" {
		e.observe(f.Name, reachedState)
	}
	e.kick()
	e.log().Info("approval recorded", "request_id", out.ID, "by", actor.SlackID, "state", out.State)
	return out.Clone(), nil
}

// mergeExtension applies an approved extension r to the grant it extends.
// It reports false when that grant is no longer active (r then becomes an
// ordinary grant).
func (e *Engine) mergeExtension(tx Tx, now time.Time, f *Flow, r *Request) (bool, error) {
	orig, err := tx.Request(r.ExtensionOf)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return false, nil
		}
		return false, err
	}
	if orig.State != StateActive {
		return false, nil
	}
	newExp := orig.ExpiresAt.Add(r.Duration)
	if limit := now.Add(f.MaxDuration()); newExp.After(limit) {
		newExp = limit
	}
	if newExp.Before(orig.ExpiresAt) {
		newExp = orig.ExpiresAt
	}
	orig.ExpiresAt = newExp
	orig.WarnAt = warnAt(f, orig.GrantedAt, newExp)
	orig.Warned = false
	orig.ExtendedBy = append(orig.ExtendedBy, r.ID)
	orig.UpdatedAt = now
	note := fmt.Sprintf("extended %s until %s", orig.ID, newExp.UTC().Format(time.RFC3339))
	if err := r.transition(StateExtended, System, now, note); err != nil {
		return false, err
	}
	r.ExpiresAt = newExp
	if err := tx.PutRequest(orig); err != nil {
		return false, err
	}
	if err := tx.PutRequest(r); err != nil {
		return false, err
	}
	if err := e.audit(tx, now, r.ID, System, "state:extended", note); err != nil {
		return false, err
	}
	if err := e.audit(tx, now, orig.ID, System, "extend", fmt.Sprintf("by %s until %s", r.ID, newExp.UTC().Format(time.RFC3339))); err != nil {
		return false, err
	}
	return true, e.addJobs(tx, now,
		&Job{Kind: JobUpdate, RequestID: r.ID, Event: EventExtended},
		&Job{Kind: JobUpdate, RequestID: orig.ID, Event: EventExtended},
		&Job{Kind: JobNotify, RequestID: r.ID, Event: EventExtended, To: r.Requester.SlackID},
	)
}

func warnAt(f *Flow, from, expires time.Time) time.Time {
	if f.ExpiryWarning <= 0 {
		return time.Time{}
	}
	w := expires.Add(-f.ExpiryWarning)
	if !w.After(from) {
		return time.Time{}
	}
	return w
}

// Deny ends a pending request; any approver may deny.
func (e *Engine) Deny(ctx context.Context, id string, actor Actor, note string) (*Request, error) {
	r, f, err := e.loadForDecision(ctx, id, actor, VerbDeny)
	if err != nil {
		return nil, err
	}
	note = strings.TrimSpace(note)
	now := e.now()
	out, err := e.finishPending(ctx, r.ID, now, StateDenied, actor.SlackID, note, EventDenied, true)
	if err != nil {
		return nil, e.wrapDecision("deny", err)
	}
	e.observe(f.Name, StateDenied)
	e.kick()
	e.log().Info("request denied", "request_id", out.ID, "by", actor.SlackID)
	return out, nil
}

// Cancel withdraws a pending request; only its requester may.
func (e *Engine) Cancel(ctx context.Context, id string, actor Actor) (*Request, error) {
	r, err := e.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if r.Requester.SlackID != actor.SlackID {
		return nil, &PolicyError{Reason: "only the requester can cancel a request"}
	}
	out, err := e.finishPending(ctx, r.ID, e.now(), StateCancelled, actor.SlackID, "", EventCancelled, false)
	if err != nil {
		return nil, e.wrapDecision("cancel", err)
	}
	e.observe(r.Flow, StateCancelled)
	e.kick()
	return out, nil
}

func (e *Engine) finishPending(ctx context.Context, id string, now time.Time, to State, by, note string, ev Event, dm bool) (*Request, error) {
	var out *Request
	err := e.store.Update(ctx, func(tx Tx) error {
		r, err := tx.Request(id)
		if err != nil {
			return err
		}
		if r.State != StatePending {
			return r.Decided()
		}
		if err := r.transition(to, by, now, note); err != nil {
			return err
		}
		r.TimeoutAt = time.Time{}
		if err := tx.PutRequest(r); err != nil {
			return err
		}
		if err := e.audit(tx, now, r.ID, by, "state:"+string(to), note); err != nil {
			return err
		}
		jobs := []*Job{{Kind: JobUpdate, RequestID: r.ID, Event: ev}}
		if dm {
			jobs = append(jobs, &Job{Kind: JobNotify, RequestID: r.ID, Event: ev, To: r.Requester.SlackID})
		}
		out = r
		return e.addJobs(tx, now, jobs...)
	})
	if err != nil {
		return nil, err
	}
	return out.Clone(), nil
}

func (e *Engine) loadForDecision(ctx context.Context, id string, actor Actor, verb string) (*Request, *Flow, error) {
	r, err := e.Get(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	f, err := e.flowOf(r)
	if err != nil {
		return nil, nil, err
	}
	if r.State != StatePending {
		return nil, nil, r.Decided()
	}
	if err := e.mayDecide(ctx, f, r.Requester.SlackID, actor, verb); err != nil {
		return nil, nil, err
	}
	return r, f, nil
}

func (e *Engine) wrapDecision(verb string, err error) error {
	var de *DecidedError
	var pe *PolicyError
	var te *TransitionError
	if errors.As(err, &de) || errors.As(err, &pe) || errors.As(err, &te) {
		return err
	}
	return fmt.Errorf("%s request: %w", verb, err)
}

// Revoke ends active access early. The requester may always relinquish;
// approvers may revoke when the flow allows it.
func (e *Engine) Revoke(ctx context.Context, id string, actor Actor, note string) (*Request, error) {
	if err := e.mayRevoke(ctx, id, actor); err != nil {
		return nil, err
	}
	return e.revoke(ctx, id, actor.SlackID, note)
}

// mayRevoke applies Revoke's policy to the stored request.
func (e *Engine) mayRevoke(ctx context.Context, id string, actor Actor) error {
	r, err := e.Get(ctx, id)
	if err != nil {
		return err
	}
	f, err := e.flowOf(r)
	if err != nil {
		return err
	}
	if actor.SlackID == r.Requester.SlackID {
		return nil // relinquishing one's own access is always allowed
	}
	if !f.AllowRevoke {
		return &PolicyError{Reason: fmt.Sprintf("flow %s does not allow approvers to revoke access; the requester can relinquish it", f.Name)}
	}
	return e.mayDecide(ctx, f, "", actor, VerbRevoke)
}

// Decision verbs for MayDecide.
const (
	VerbApprove = "approve"
	VerbDeny    = "deny"
	VerbRevoke  = "revoke"
)

// MayDecide reports, changing nothing, whether actor may take the decision
// verb (VerbApprove, VerbDeny or VerbRevoke) on request id now: nil, a
// *PolicyError saying why not, or a *DecidedError when the request has
// moved on. It applies exactly the checks Approve, Deny and Revoke apply,
// so a form can be refused before anyone fills it in.
func (e *Engine) MayDecide(ctx context.Context, id string, actor Actor, verb string) error {
	switch verb {
	case VerbApprove, VerbDeny:
		_, _, err := e.loadForDecision(ctx, id, actor, verb)
		return err
	case VerbRevoke:
		r, err := e.Get(ctx, id)
		if err != nil {
			return err
		}
		if r.State != StateActive && r.State != StateApproved {
			return r.Decided()
		}
		return e.mayRevoke(ctx, id, actor)
	}
	return fmt.Errorf("unknown decision %q: %w", verb, ErrInvalidRequest)
}

// AdminRevoke ends active access (or denies a pending request) on an
// operator's command.
func (e *Engine) AdminRevoke(ctx context.Context, id, reason string) (*Request, error) {
	r, err := e.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if r.State == StatePending {
		out, err := e.finishPending(ctx, id, e.now(), StateDenied, "admin", reason, EventDenied, true)
		if err != nil {
			return nil, e.wrapDecision("revoke", err)
		}
		e.observe(r.Flow, StateDenied)
		e.kick()
		return out, nil
	}
	return e.revoke(ctx, id, "admin", reason)
}

func (e *Engine) revoke(ctx context.Context, id, by, note string) (*Request, error) {
	now := e.now()
	var out *Request
	var cancelled []string
	// errNeedLock: the request is approved and its grant job has recorded
	// the membership check, so the add may be about to happen; take the
	// membership lock (held by the grant job through its add) and retry, so
	// that nothing is added after the revocation is acknowledged.
	errNeedLock := errors.New("need the membership lock")
	want := "" // the lock the transaction asked for
	for attempt := 0; ; attempt++ {
		held := want // the lock held during this attempt ("" for none)
		unlock := func() {}
		if held != "" {
			unlock = e.locks.Lock(held)
		}
		err := e.store.Update(ctx, func(tx Tx) error {
			// The store may run this more than once: decide only from tx
			// and from what is held, never from a previous run.
			out, cancelled = nil, nil
			r, err := tx.Request(id)
			if err != nil {
				return err
			}
			// An approved request whose grant is in flight (or keeps failing)
			// can be stopped too; the removal job undoes an add that happened.
			if r.State != StateActive && r.State != StateApproved {
				return r.Decided()
			}
			if r.State == StateApproved && r.GrantChecked {
				if key := membershipKey(r.OktaUserID, r.GroupID); key != held {
					want = key
					return errNeedLock
				}
			}
			if err := r.transition(StateRevoked, by, now, note); err != nil {
				return err
			}
			r.Removed = false
			if err := tx.PutRequest(r); err != nil {
				return err
			}
			action := "state:revoked"
			if by == r.Requester.SlackID {
				action = "state:revoked (relinquished)"
			}
			if err := e.audit(tx, now, r.ID, by, action, note); err != nil {
				return err
			}
			out = r
			jobs := []*Job{
				{Kind: JobRevoke, RequestID: r.ID},
				{Kind: JobUpdate, RequestID: r.ID, Event: EventRevoked},
			}
			if by != r.Requester.SlackID {
				jobs = append(jobs, &Job{Kind: JobNotify, RequestID: r.ID, Event: EventRevoked, To: r.Requester.SlackID})
			}
			// A pending extension of revoked access must not bring it back.
			mine, err := tx.RequestsByRequester(r.Requester.SlackID)
			if err != nil {
				return err
			}
			for _, x := range mine {
				if x.ExtensionOf != r.ID || x.State != StatePending {
					continue
				}
				xnote := "the access it extends (" + r.ID + ") was revoked"
				if err := x.transition(StateCancelled, System, now, xnote); err != nil {
					return err
				}
				x.TimeoutAt = time.Time{}
				if err := tx.PutRequest(x); err != nil {
					return err
				}
				if err := e.audit(tx, now, x.ID, System, "state:cancelled", xnote); err != nil {
					return err
				}
				jobs = append(jobs,
					&Job{Kind: JobUpdate, RequestID: x.ID, Event: EventCancelled},
					&Job{Kind: JobNotify, RequestID: x.ID, Event: EventCancelled, To: x.Requester.SlackID})
				cancelled = append(cancelled, x.ID)
			}
			return e.addJobs(tx, now, jobs...)
		})
		unlock()
		if errors.Is(err, errNeedLock) && attempt < 3 {
			continue
		}
		if err != nil {
			return nil, e.wrapDecision("revoke", err)
		}
		break
	}
	e.observe(out.Flow, StateRevoked)
	for range cancelled {
		e.observe(out.Flow, StateCancelled)
	}
	e.kick()
	e.log().Info("access revoked", "request_id", out.ID, "by", by, "cancelled_extensions", cancelled)
	return out.Clone(), nil
}

// audit appends one audit entry in tx.
func (e *Engine) audit(tx Tx, now time.Time, id, actor, action, detail string) error {
	return tx.AppendAudit(&AuditEntry{At: now, RequestID: id, Actor: actor, Action: action, Detail: detail})
}

// laneFor orders jobs: the approval message's post and updates in one lane,
// the requester's DMs in another; Okta jobs are serialised by a lock instead.
func laneFor(j *Job) string {
	switch j.Kind {
	case JobPost, JobUpdate:
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

func (e *Engine) observe(flow string, s State) {
	if e.Metrics != nil {
		e.Metrics.RequestOutcome(flow, s)
	}
}

// kick wakes the executor and the scheduler: for changes that may add
// jobs and a sooner deadline.
func (e *Engine) kick() {
	e.kickExecutor()
	select {
	case e.kickSched <- struct{}{}:
	default:
	}
}

// kickExecutor wakes only the executor: for changes that add jobs but no
// deadline.
func (e *Engine) kickExecutor() {
	select {
	case e.kickJobs <- struct{}{}:
	default:
	}
}

// Stats returns a snapshot of the engine's gauges.
func (e *Engine) Stats(ctx context.Context) (Stats, error) {
	s := Stats{
		JobsDone:         e.jobsDone.Load(),
		JobsAbandoned:    e.jobsAbandoned.Load(),
		RevokeAlerts:     e.revokeAlerts.Load(),
		SchedulerWakeups: e.wakeups.Load(),
	}
	err := e.store.View(ctx, func(tx Tx) error {
		jobs, err := tx.Jobs()
		if err != nil {
			return err
		}
		s.PendingJobs = len(jobs)
		for _, j := range jobs {
			if j.Kind == JobRevoke && j.Attempts > 0 {
				s.FailingRevokes++
			}
		}
		_, at, ok, err := tx.NextDeadline()
		if ok {
			s.NextDeadline = at
		}
		return err
	})
	return s, err
}

// keyedMutex serialises grant and revoke jobs of one (user, group) pair so
// that the check of who still needs a membership and the Okta call that
// follows cannot interleave with another job on the same membership.
type keyedMutex struct {
	mu sync.Mutex
	m  map[string]*keyedEntry
}

type keyedEntry struct {
	mu   sync.Mutex
	refs int
}

func (k *keyedMutex) Lock(key string) func() {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*keyedEntry{}
	}
	ent := k.m[key]
	if ent == nil {
		ent = &keyedEntry{}
		k.m[key] = ent
	}
	ent.refs++
	k.mu.Unlock()
	ent.mu.Lock()
	return func() {
		ent.mu.Unlock()
		k.mu.Lock()
		ent.refs--
		if ent.refs == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
}
