// The decision policy: who may approve, deny, revoke and extend which
// request, and the errors that say why not.

package symbot

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Verb is something a person does to an existing request, as MayDecide
// checks it.
type Verb string

// The verbs.
const (
	VerbApprove Verb = "approve" // Approve a pending request
	VerbDeny    Verb = "deny"    // Deny a pending request
	VerbRevoke  Verb = "revoke"  // Revoke (or relinquish) a Revocable request
	VerbExtend  Verb = "extend"  // Extend one's own active access
)

// MayDecide reports, changing nothing, whether actor may take verb on
// request id now: nil, a *PolicyError saying why not, or a *DecidedError
// when the request has moved on. It applies exactly the checks Approve,
// Deny, Revoke and Extend apply, so a form can be refused before anyone
// fills it in.
func (e *Engine) MayDecide(ctx context.Context, id string, actor Actor, verb Verb) error {
	switch verb {
	case VerbApprove, VerbDeny:
		_, _, _, err := e.loadForDecision(ctx, id, actor, verb)
		return err
	case VerbRevoke:
		r, err := e.Get(ctx, id)
		if err != nil {
			return err
		}
		if !r.Revocable() {
			return r.Decided()
		}
		return e.mayRevoke(ctx, id, actor)
	case VerbExtend:
		r, err := e.Get(ctx, id)
		if err != nil {
			return err
		}
		return mayExtend(r, actor)
	}
	return fmt.Errorf("unknown decision %q: %w", verb, ErrInvalidRequest)
}

// mayExtend applies Extend's policy: only the person who holds the access
// may ask to extend it, and only while it is active.
func mayExtend(r *Request, actor Actor) error {
	if r.Requester.SlackID != actor.SlackID {
		return &PolicyError{Reason: "only the person who holds this access can ask to extend it"}
	}
	switch {
	case r.State == StateActive:
		return nil
	case r.State.Final():
		return r.Decided()
	}
	return &PolicyError{Reason: fmt.Sprintf("request %s is %s, not active: make a new request instead", r.ID, r.State)}
}

// MayApprove reports whether actor may approve requests of flow f made by
// someone else.
func (e *Engine) MayApprove(ctx context.Context, f *Flow, actor Actor) (bool, error) {
	_, err := e.mayDecide(ctx, f, nil, actor, VerbApprove)
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
// never from anything a button carries. With a requester it also tells
// people apart, not accounts: an actor whose Slack account is bound to the
// requester's Okta user is the requester. It returns the Okta user the
// actor is bound to when that was needed ("" when not, or when the actor
// is not in the directory), for counting distinct approvers.
func (e *Engine) mayDecide(ctx context.Context, f *Flow, requester *Person, actor Actor, verb Verb) (string, error) {
	if actor.IsBot {
		return "", &PolicyError{Reason: fmt.Sprintf("bots cannot %s requests", verb)}
	}
	if actor.IsGuest && !f.AllowGuests {
		return "", &PolicyError{Reason: fmt.Sprintf("guests cannot %s requests in flow %s", verb, f.Name)}
	}
	self := &PolicyError{Reason: fmt.Sprintf("you cannot %s your own request: someone else must", verb)}
	if requester != nil && actor.SlackID == requester.SlackID && !f.AllowSelfApproval {
		return "", self
	}
	a := f.Approvers
	approver := a.Anyone || slices.Contains(a.Users, actor.SlackID)
	oktaID, resolved := "", false
	if !approver && a.OktaGroup != "" {
		// Always ask the directory, through the binding: a deactivated
		// approver must not keep approving from a cached identity, and an
		// account whose email now finds another Okta user is refused.
		u, _, err := e.resolveBound(ctx, actor.Person, true, false)
		var ce *IdentityConflictError
		switch {
		case errors.As(err, &ce):
			return "", err
		case errors.Is(err, ErrUserNotFound) || errors.Is(err, ErrUserNotActive):
			resolved = true // not an approver: fall through
		case err != nil:
			return "", fmt.Errorf("check approver group: %w", err)
		default:
			oktaID, resolved = u.ID, true
			ok, err := e.dir.IsMember(ctx, u.ID, a.OktaGroup)
			if err != nil {
				return "", fmt.Errorf("check approver group: %w", err)
			}
			approver = ok
		}
	}
	if !approver {
		return "", &PolicyError{Reason: fmt.Sprintf("you are not an approver of flow %s (%s)", f.Name, describeApprovers(a))}
	}
	if requester == nil || (f.AllowSelfApproval && (verb != VerbApprove || f.ApprovalsRequired < 2)) {
		return oktaID, nil // no one to tell apart
	}
	// People, not accounts: two Slack accounts bound to one Okta user are
	// one person, for "not the requester" and for "distinct approvers".
	if !resolved {
		var err error
		if oktaID, err = e.personOf(ctx, actor.Person); err != nil {
			return "", fmt.Errorf("check who you are in Okta: %w", err)
		}
	}
	if oktaID == "" && a.Anyone && verb == VerbApprove {
		// Anyone may approve, but not the requester: someone symbot cannot
		// find in Okta could be the requester's second account.
		return "", &PolicyError{Reason: fmt.Sprintf("symbot could not find your Okta account, so it cannot tell you apart from the requester; flow %s lets anyone approve, but only people it finds in Okta", f.Name)}
	}
	if f.AllowSelfApproval || oktaID == "" {
		return oktaID, nil
	}
	theirs, err := e.personOf(ctx, *requester)
	var ce *IdentityConflictError
	switch {
	case errors.As(err, &ce):
		return "", &PolicyError{Reason: fmt.Sprintf("the requester's Slack account is bound to Okta user %s, but its profile now finds another Okta user; symbot acts on none of its requests until an operator checks it", ce.BoundLogin)}
	case err != nil:
		return "", fmt.Errorf("check who the requester is in Okta: %w", err)
	case theirs == oktaID:
		return "", &PolicyError{Reason: fmt.Sprintf("you cannot %s your own request, from this Slack account or another one of yours (both are Okta user %s): someone else must", verb, oktaID)}
	}
	return oktaID, nil
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

// loadForDecision applies the policy of approve and deny to the stored
// request, and returns it, its flow and the Okta user the actor is bound
// to ("" when not needed or not known).
func (e *Engine) loadForDecision(ctx context.Context, id string, actor Actor, verb Verb) (*Request, *Flow, string, error) {
	r, err := e.Get(ctx, id)
	if err != nil {
		return nil, nil, "", err
	}
	f, err := e.flowOf(r)
	if err != nil {
		return nil, nil, "", err
	}
	if r.State != StatePending {
		return nil, nil, "", r.Decided()
	}
	if _, ok := f.Target(r.Target); !ok {
		return nil, nil, "", &NotConfiguredError{ID: r.ID, Flow: r.Flow, Target: r.Target, TargetOnly: true}
	}
	if err := e.checkActor(ctx, actor.SlackID); err != nil {
		return nil, nil, "", err
	}
	if lapsedAt(r, e.now()) {
		// Past its approval timeout: it times out now, not when the
		// scheduler next runs, and the decision is refused.
		if err := e.lapseNow(ctx, r.ID); err != nil {
			return nil, nil, "", err
		}
	}
	oktaID, err := e.mayDecide(ctx, f, &r.Requester, actor, verb)
	if err != nil {
		return nil, nil, "", err
	}
	if verb == VerbApprove {
		if err := stillGrantable(r, f); err != nil {
			return nil, nil, "", err
		}
	}
	return r, f, oktaID, nil
}

// stillGrantable refuses to approve r when the configuration changed under
// it (a reload, or a restart with another config) so that what its
// approvers saw is no longer what the target grants: the target now names
// another Okta group, or allows no duration as long as r asked for. The
// request can still be denied, cancelled or asked for again.
func stillGrantable(r *Request, f *Flow) error {
	if t, ok := f.Target(r.Target); ok && t.GroupID != r.GroupID {
		return &PolicyError{Reason: fmt.Sprintf("request %s was made for Okta group %s, but target %s of flow %s now grants group %s: it can't be approved as it stands; deny it and ask the requester to request again", r.ID, r.GroupID, r.Target, f.Name, t.GroupID)}
	}
	if longest := f.MaxDuration(); longest > 0 && r.Duration > longest && r.ExtensionOf == "" {
		return &PolicyError{Reason: fmt.Sprintf("request %s asks for %s, but target %s of flow %s now allows at most %s: it can't be approved as it stands; deny it and ask the requester to request again", r.ID, FormatDuration(r.Duration), r.Target, f.Name, FormatDuration(longest))}
	}
	return nil
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
	_, err = e.mayDecide(ctx, f, nil, actor, VerbRevoke)
	return err
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
