// The transactional commands that move a request through its life: submit,
// extend, approve, deny, cancel and revoke.

package symbot

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// RequestInput is what a person asks for.
type RequestInput struct {
	Flow     string // empty: inferred from a target name unique across flows
	Target   string // target name, or "flow/target"
	Duration time.Duration
	Reason   string
	// StartAt asks for the access to begin at this time rather than as
	// soon as it is approved; zero means at once. It must be ahead of now
	// and within the flow's ScheduleHorizon.
	StartAt time.Time
}

// MaxReasonLength bounds the reason text.
const MaxReasonLength = 2000

// checkRequester refuses actors who may not ask for access in flow f.
func checkRequester(f *Flow, actor Actor) error {
	if actor.SlackID == "" {
		return &InputError{Field: "requester", Problem: "missing Slack user id"}
	}
	if actor.IsBot {
		return &PolicyError{Reason: "bots cannot request access"}
	}
	if actor.IsGuest && !f.AllowGuests {
		return &PolicyError{Reason: fmt.Sprintf("guests cannot request access in flow %s", f.Name)}
	}
	return nil
}

// checkReason trims raw and checks it against the length bound and flow
// f's reason rule; missing is the problem reported for an empty reason.
func checkReason(f *Flow, raw, missing string) (string, error) {
	reason := strings.TrimSpace(raw)
	if reason == "" {
		return "", &InputError{Field: "reason", Problem: missing}
	}
	if len(reason) > MaxReasonLength {
		return "", &InputError{Field: "reason", Problem: fmt.Sprintf("too long (%d characters; at most %d)", len(reason), MaxReasonLength)}
	}
	if err := f.Reason.Check(reason); err != nil {
		return "", err
	}
	return reason, nil
}

// submit records a new request (or an extension of an active grant of the
// same target) and queues its approval message.
func (e *Engine) submit(ctx context.Context, actor Actor, in RequestInput) (*Request, error) {
	f, t, err := e.ResolveTarget(in.Flow, in.Target)
	if err != nil {
		return nil, err
	}
	if err := checkRequester(f, actor); err != nil {
		return nil, err
	}
	if !f.AllowsDuration(in.Duration) {
		return nil, &InputError{Field: "duration", Problem: fmt.Sprintf("%s is not offered by flow %s; choose one of: %s", FormatDuration(in.Duration), f.Name, durationList(f))}
	}
	reason, err := checkReason(f, in.Reason, "required: say why you need this access")
	if err != nil {
		return nil, err
	}
	now := e.now()
	if err := f.CheckStart(in.StartAt, now); err != nil {
		return nil, err
	}
	rules := e.decideByRules(ctx, f, t, actor, in.Duration, reason, in.StartAt, now)
	if rules.Rule != nil && rules.Rule.Action == RuleRefuse {
		return nil, ruleRefusal(rules.Rule)
	}
	var out *Request
	var post *Job
	var reached State
	h := e.newHandoff()
	err = e.store.Update(ctx, func(tx Tx) error {
		reached = StatePending // the store may run this more than once
		h.reset()
		if err := refuseConflicted(tx, actor.SlackID); err != nil {
			return err
		}
		mine, err := tx.OpenRequests(actor.SlackID)
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
				if in.StartAt.IsZero() {
					extends = o.ID // a later start is a grant of its own
				}
			}
		}
		r, err := newRequest(tx, f, t, actor, in.Duration, reason, now)
		if err != nil {
			return err
		}
		r.TimeoutAt = now.Add(f.ApprovalTimeout)
		r.StartAt = in.StartAt
		r.ExtensionOf = extends
		if r.TimeoutAt.Before(r.StartAt) {
			// Approvers have until the start, if that is later.
			r.TimeoutAt = r.StartAt
		}
		r.NudgeAt = nextNudge(f.Escalation, r)
		auto := applyOutcome(r, rules, now)
		if err := tx.PutRequest(r); err != nil {
			return err
		}
		detail := fmt.Sprintf("flow=%s target=%s group=%s duration=%s", f.Name, t.Name, t.GroupID, FormatDuration(in.Duration))
		if extends != "" {
			detail += " extends=" + extends
		}
		if !r.StartAt.IsZero() {
			detail += " start=" + r.StartAt.UTC().Format(time.RFC3339)
		}
		detail += rulesDetail(r)
		if err := e.audit(tx, now, r.ID, actor.SlackID, "request", detail); err != nil {
			return err
		}
		post = &Job{Kind: JobPost, RequestID: r.ID, Event: EventRequested}
		taken := h.take(post, now) // the first job of its lane: it may run at once
		if err := e.addJob(tx, now, post); err != nil {
			return err
		}
		out = r
		if auto == nil {
			if taken {
				h.preparePost(e, r) // while the commit waits on the disk
			}
			return nil
		}
		if err := e.audit(tx, now, r.ID, auto.by, "approve", auto.note); err != nil {
			return err
		}
		reached, err = e.reachApproved(tx, now, f, r, *auto, grantStart{h: h})
		return err
	})
	if err == nil && reached == StatePending {
		// Written once (no rule approved it in the same transaction): the
		// post job may post from it.
		h.handPost(post, out)
	}
	started := h.start(e, err == nil, nil)
	if err != nil {
		return nil, fmt.Errorf("submit request: %w", err)
	}
	e.observe(f.Name, StatePending)
	if reached != StatePending {
		e.observe(f.Name, reached)
	}
	if reached == StatePending && started {
		e.kickScheduler() // a new approval deadline; its only job runs here already
	} else {
		e.kick()
	}
	e.log().Info("request submitted", "request_id", out.ID, "flow", f.Name, "target", t.Name, "requester", actor.SlackID, "duration", FormatDuration(in.Duration), "extends", out.ExtensionOf, "start", out.StartAt, "rule", out.Rule, "state", out.State)
	return out.Clone(), nil
}

// extend starts an extension request for the active grant id, for the same
// flow and target.
func (e *Engine) extend(ctx context.Context, id string, actor Actor, d time.Duration, reason string) (*Request, error) {
	r, err := e.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := mayExtend(r, actor); err != nil {
		return nil, err
	}
	if lapsedAt(r, e.now()) {
		// The access it would extend has ended: expire it now and refuse.
		if err := e.lapseNow(ctx, r.ID); err != nil {
			return nil, err
		}
	}
	if d == 0 {
		d = r.Duration
	}
	return e.submit(ctx, actor, RequestInput{Flow: r.Flow, Target: r.Target, Duration: d, Reason: reason})
}

// approve records actor's approval. When the flow's quorum is reached the
// request is approved and the grant is queued (or, for an extension of a
// still-active grant, that grant's expiry moves out).
func (e *Engine) approve(ctx context.Context, id string, actor Actor, note string) (*Request, error) {
	r, f, oktaID, err := e.loadForDecision(ctx, id, actor, VerbApprove)
	if err != nil {
		return nil, err
	}
	note = strings.TrimSpace(note)
	now := e.now()
	// The approval that completes the quorum records the grant's membership
	// check, when the look-ups made while the request waited are fresh; it
	// does so under the membership lock, as the grant job would, and only
	// if the lock is free: a grant or removal of the same membership in
	// flight leaves the check to the grant job.
	gs := grantStart{h: e.newHandoff()}
	unlock := func() {}
	if len(r.Approvals)+1 >= f.ApprovalsRequired && e.precheckFresh(r, now) {
		key := membershipKey(r.PreOktaUserID, r.GroupID)
		if u, ok := e.tryLockMembership(ctx, key); ok {
			gs.locked, unlock = key, u
		}
	}
	var out *Request
	var reachedState State
	var lapsed *DecidedError
	h := gs.h
	err = e.store.Update(ctx, func(tx Tx) error {
		reachedState, lapsed = "", nil // the store may run this more than once
		h.reset()
		r, gone, err := e.lapse(tx, now, r.ID)
		if err != nil {
			return err
		}
		if gone {
			lapsed = r.Decided() // timed out in this transaction: refused
			return nil
		}
		if r.State != StatePending {
			return r.Decided()
		}
		for _, d := range r.Approvals {
			if d.By == actor.SlackID {
				return &PolicyError{Reason: fmt.Sprintf("you already approved %s; it needs %d more approval(s) from someone else", r.ID, f.ApprovalsRequired-len(r.Approvals))}
			}
			// People, not accounts: an approval from another Slack
			// account bound to the same Okta user is this person's.
			if theirs, err := approverOkta(tx, d); err != nil {
				return err
			} else if oktaID != "" && theirs == oktaID {
				return &PolicyError{Reason: fmt.Sprintf("you already approved %s from another Slack account of yours (%s, the same Okta user); it needs %d more approval(s) from someone else", r.ID, "<@"+d.By+">", f.ApprovalsRequired-len(r.Approvals))}
			}
		}
		r.Approvals = append(r.Approvals, Decision{By: actor.SlackID, Name: actor.Name, At: now, Note: note, OktaUserID: oktaID})
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
		out = r
		reachedState, err = e.reachApproved(tx, now, f, r, change{to: StateApproved, by: actor.SlackID, note: note, detail: note}, gs)
		return err
	})
	// A grant started here wakes the executor for the approval's Slack
	// jobs when it ends (within deferredKickMax): woken now, the executor
	// would claim and run them at the very moment of the Okta add,
	// competing with it for the CPU; woken then, it claims them with the
	// grant's own Slack jobs, in one claim transaction instead of two.
	h.deferKick = true
	grantRuns := h.start(e, err == nil, unlock) // releases the lock, or hands it to the grant
	if err != nil {
		return nil, e.wrapDecision("approve", err)
	}
	if lapsed != nil {
		e.observe(f.Name, lapsed.State)
		e.kick()
		return nil, lapsed
	}
	if reachedState != "" {
		e.observe(f.Name, reachedState)
	}
	if grantRuns {
		e.kickScheduler()
	} else {
		e.kick()
	}
	e.log().Info("approval recorded", "request_id", out.ID, "by", actor.SlackID, "state", out.State)
	return out.Clone(), nil
}

// reachApproved applies approved, r's approval that reached its quorum, in
// tx: the grant is queued or, for an extension of a still-active grant,
// that grant's expiry moves out. It returns the state r reached.
func (e *Engine) reachApproved(tx Tx, now time.Time, f *Flow, r *Request, approved change, gs grantStart) (State, error) {
	orig, err := e.liveGrant(tx, now, r.ExtensionOf)
	if err != nil {
		return "", err
	}
	if orig != nil {
		// An extension of a still-active grant moves that grant's
		// expiry out instead of granting anew.
		if err := e.apply(tx, now, r, approved); err != nil {
			return "", err
		}
		return StateExtended, e.mergeExtension(tx, now, f, r, orig)
	}
	if now.Before(r.StartAt) {
		// Approved ahead: the scheduler grants it at the start.
		approved.to = StateScheduled
		approved.jobs = []*Job{
			{Kind: JobUpdate, RequestID: r.ID, Event: EventScheduled},
			{Kind: JobNotify, RequestID: r.ID, Event: EventScheduled, To: r.Requester.SlackID},
		}
		return StateScheduled, e.apply(tx, now, r, approved)
	}
	grant := &Job{Kind: JobGrant, RequestID: r.ID}
	handed := gs.h.take(grant, now) // in no lane: it may run at once
	approved.jobs = []*Job{
		grant,
		{Kind: JobUpdate, RequestID: r.ID, Event: EventApproved},
		{Kind: JobNotify, RequestID: r.ID, Event: EventApproved, To: r.Requester.SlackID},
	}
	checked := e.foldCheck(now, r, gs.locked)
	if err := e.apply(tx, now, r, approved); err != nil {
		return "", err
	}
	if !checked {
		return StateApproved, nil
	}
	if err := e.auditFoldedCheck(tx, now, r); err != nil {
		return "", err
	}
	if handed {
		gs.h.hold(grant, r) // the caller's lock goes with it
	}
	return StateApproved, nil
}

// grantStart is how reachApproved starts a grant: the hand-over of its job
// to this process's workers, and the membership lock the caller holds
// (locked, a membershipKey; "" for none), under which fresh early look-ups
// are recorded as the grant's check.
type grantStart struct {
	h      *handoff
	locked string
}

// approverOkta returns the Okta user an approval was made as: recorded
// with it, or (for approvals recorded before that) the binding of its
// Slack account; "" when not known.
func approverOkta(tx Tx, d Decision) (string, error) {
	if d.OktaUserID != "" {
		return d.OktaUserID, nil
	}
	b, ok, err := tx.Identity(d.By)
	if err != nil || !ok {
		return "", err
	}
	return b.OktaUserID, nil
}

// activeGrant returns request id when it is active, or nil (id is
// empty, or names a request that is gone or no longer active).
func activeGrant(tx Tx, id string) (*Request, error) {
	if id == "" {
		return nil, nil
	}
	r, err := tx.Request(id)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil || r.State != StateActive {
		return nil, err
	}
	return r, nil
}

// liveGrant is activeGrant at the moment of decision: a grant whose expiry
// has passed is expired in tx (scheduler run or not) and is not live.
func (e *Engine) liveGrant(tx Tx, now time.Time, id string) (*Request, error) {
	if id == "" {
		return nil, nil
	}
	if _, _, err := e.lapse(tx, now, id); err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	return activeGrant(tx, id)
}

// mergeExtension applies an approved extension r to the active grant orig
// it extends.
func (e *Engine) mergeExtension(tx Tx, now time.Time, f *Flow, r, orig *Request) error {
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
	r.ExpiresAt = newExp
	if err := tx.PutRequest(orig); err != nil {
		return err
	}
	if err := e.apply(tx, now, r, change{to: StateExtended, by: System, note: note, detail: note}); err != nil {
		return err
	}
	if err := e.audit(tx, now, orig.ID, System, "extend", fmt.Sprintf("by %s until %s", r.ID, newExp.UTC().Format(time.RFC3339))); err != nil {
		return err
	}
	return e.addJobs(tx, now,
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

// deny ends a pending request; any approver may deny.
func (e *Engine) deny(ctx context.Context, id string, actor Actor, note string) (*Request, error) {
	r, f, _, err := e.loadForDecision(ctx, id, actor, VerbDeny)
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

// cancel withdraws a pending request; only its requester may.
func (e *Engine) cancel(ctx context.Context, id string, actor Actor) (*Request, error) {
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
	id = CanonicalID(id)
	var out *Request
	var lapsed error
	var lapsedFlow string
	var lapsedState State
	err := e.store.Update(ctx, func(tx Tx) error {
		lapsed = nil // the store may run this more than once
		r, gone, err := e.lapse(tx, now, id)
		if err != nil {
			return err
		}
		if gone {
			// timed out, or started, in this transaction: refused
			lapsedFlow, lapsedState = r.Flow, r.State
			lapsed = r.Decided()
			if r.State == StateApproved && !r.StartAt.IsZero() {
				lapsed = startedError(r)
			}
			return nil
		}
		if r.State == StateScheduled && to == StateCancelled {
			// A scheduled request can be withdrawn until it starts.
		} else if to == StateCancelled && !r.StartAt.IsZero() && (r.State == StateApproved || r.State == StateActive) {
			// It started before this cancel (the scheduler came first):
			// the same answer as when the start lapses in this transaction.
			return startedError(r)
		} else if r.State != StatePending {
			return r.Decided()
		}
		jobs := []*Job{{Kind: JobUpdate, RequestID: r.ID, Event: ev}}
		if dm {
			jobs = append(jobs, &Job{Kind: JobNotify, RequestID: r.ID, Event: ev, To: r.Requester.SlackID})
		}
		out = r
		return e.apply(tx, now, r, change{to: to, by: by, note: note, detail: note, jobs: jobs})
	})
	if err != nil {
		return nil, err
	}
	if lapsed != nil {
		e.observe(lapsedFlow, lapsedState)
		e.kick()
		return nil, lapsed
	}
	return out.Clone(), nil
}

// startedError refuses to cancel a scheduled request that has started.
func startedError(r *Request) error {
	return &PolicyError{Reason: fmt.Sprintf("request %s started at %s and can no longer be cancelled; relinquish the access instead", r.ID, r.StartAt.UTC().Format("2006-01-02 15:04 UTC"))}
}

// userRevoke ends active access early. The requester may always relinquish;
// approvers may revoke when the flow allows it.
func (e *Engine) userRevoke(ctx context.Context, id string, actor Actor, note string) (*Request, error) {
	if err := e.mayRevoke(ctx, id, actor); err != nil {
		return nil, err
	}
	if r, err := e.Get(ctx, id); err == nil && r.Requester.SlackID != actor.SlackID {
		// Ending someone else's access is a decision: not by an account
		// whose identity binding has a conflict. (Relinquishing one's own
		// only takes access away.)
		if err := e.checkActor(ctx, actor.SlackID); err != nil {
			return nil, err
		}
	}
	return e.revoke(ctx, id, actor.SlackID, note)
}

// AdminRevoke ends active access (or denies a pending request) on an
// operator's command.
func (e *Engine) AdminRevoke(ctx context.Context, id, reason string) (*Request, error) {
	r, err := e.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if r.State == StatePending {
		out, err := e.finishPending(ctx, id, e.now(), StateDenied, adminActor(ctx), reason, EventDenied, true)
		if err != nil {
			return nil, e.wrapDecision("revoke", err)
		}
		e.observe(r.Flow, StateDenied)
		e.kick()
		return out, nil
	}
	return e.revoke(ctx, id, adminActor(ctx), reason)
}

func (e *Engine) revoke(ctx context.Context, id, by, note string) (*Request, error) {
	id = CanonicalID(id)
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
			var err error
			if unlock, err = e.lockMembership(ctx, held); err != nil {
				return nil, err
			}
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
			if !r.Revocable() {
				return r.Decided()
			}
			if r.State == StateApproved && r.GrantChecked {
				if key := membershipKey(r.OktaUserID, r.GroupID); key != held {
					want = key
					return errNeedLock
				}
			}
			revoked := change{to: StateRevoked, by: by, note: note, detail: note, jobs: []*Job{
				{Kind: JobRevoke, RequestID: r.ID},
				{Kind: JobUpdate, RequestID: r.ID, Event: EventRevoked},
			}}
			if r.State == StateScheduled {
				// Not started: nothing was granted, nothing to remove.
				revoked.jobs = revoked.jobs[1:]
				if by == r.Requester.SlackID {
					revoked.to, revoked.jobs = StateCancelled, []*Job{{Kind: JobUpdate, RequestID: r.ID, Event: EventCancelled}}
				}
			}
			if revoked.to == StateCancelled {
				// the requester withdrew it: no DM about their own click
			} else if by == r.Requester.SlackID {
				revoked.action = "state:revoked (relinquished)"
			} else {
				revoked.jobs = append(revoked.jobs, &Job{Kind: JobNotify, RequestID: r.ID, Event: EventRevoked, To: r.Requester.SlackID})
			}
			if err := e.apply(tx, now, r, revoked); err != nil {
				return err
			}
			out = r
			// A pending extension of revoked access must not bring it back.
			mine, err := tx.OpenRequests(r.Requester.SlackID)
			if err != nil {
				return err
			}
			for _, x := range mine {
				if x.ExtensionOf != r.ID || x.State != StatePending {
					continue
				}
				xnote := "the access it extends (" + r.ID + ") was revoked"
				if err := e.apply(tx, now, x, change{to: StateCancelled, by: System, note: xnote, detail: xnote, jobs: []*Job{
					{Kind: JobUpdate, RequestID: x.ID, Event: EventCancelled},
					{Kind: JobNotify, RequestID: x.ID, Event: EventCancelled, To: x.Requester.SlackID},
				}}); err != nil {
					return err
				}
				cancelled = append(cancelled, x.ID)
			}
			return nil
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
	e.observe(out.Flow, out.State)
	for range cancelled {
		e.observe(out.Flow, StateCancelled)
	}
	e.kick()
	e.log().Info("access revoked", "request_id", out.ID, "by", by, "cancelled_extensions", cancelled)
	return out.Clone(), nil
}

// newRequest returns a pending request of actor for target t of flow f,
// numbered from the store's "request" counter in tx; the caller sets what
// is particular to its kind of request.
func newRequest(tx Tx, f *Flow, t Target, actor Actor, d time.Duration, reason string, now time.Time) (*Request, error) {
	seq, err := tx.NextSeq("request")
	if err != nil {
		return nil, err
	}
	return &Request{
		ID:        newRequestID(seq),
		Nonce:     newNonce(),
		Flow:      f.Name,
		Target:    t.Name,
		GroupID:   t.GroupID,
		Requester: actor.Person,
		Duration:  d,
		Reason:    reason,
		State:     StatePending,
		CreatedAt: now,
		UpdatedAt: now,
	}, nil
}
