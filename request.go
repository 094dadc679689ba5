// Access requests: their states and legal transitions, who holds what, and
// who decided.

package symbot

import (
	"slices"
	"time"
)

// State is the state of an access request.
type State string

// The request states. Final states never change again.
const (
	StatePending  State = "pending"  // waiting for approvals
	StateApproved State = "approved" // approved; the grant job is adding the membership
	// StateScheduled: approved ahead of its start time (Request.StartAt);
	// at the start the scheduler moves it to approved and queues the grant.
	StateScheduled State = "scheduled"
	StateActive    State = "active"    // the person holds the group membership
	StateExpired   State = "expired"   // time is up; membership removed (or being removed, see Request.Removed)
	StateRevoked   State = "revoked"   // ended early by an approver or relinquished; membership removed (or being removed)
	StateDenied    State = "denied"    // an approver said no
	StateCancelled State = "cancelled" // the requester withdrew it
	StateTimedOut  State = "timed_out" // nobody decided within the approval timeout
	StateFailed    State = "failed"    // the grant could not be made
	StateExtended  State = "extended"  // approved as an extension: the active grant it extends got a later expiry
	// StateRemovedOutside: the reconciler found the Okta membership of an
	// active grant gone (someone removed it outside symbot).
	StateRemovedOutside State = "removed_outside"
)

// transitions lists every legal state change.
var transitions = map[State][]State{
	StatePending:   {StateApproved, StateScheduled, StateDenied, StateCancelled, StateTimedOut},
	StateScheduled: {StateApproved, StateCancelled, StateRevoked},
	StateApproved:  {StateActive, StateFailed, StateExtended, StateRevoked},
	StateActive:    {StateExpired, StateRevoked, StateRemovedOutside},
}

// CanTransition reports whether from -> to is a legal state change.
func CanTransition(from, to State) bool {
	for _, s := range transitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

// Final reports whether no further transition is possible from s.
func (s State) Final() bool { return len(transitions[s]) == 0 }

// Holding reports whether a request in state s holds (or may still hold) the
// Okta membership: approved (grant in flight), active, or ended but not yet
// removed.
func (r *Request) Holding() bool {
	switch r.State {
	case StateApproved:
		return r.GrantChecked
	case StateActive:
		return true
	case StateExpired, StateRevoked:
		return !r.Removed
	case StateFailed:
		// a grant that failed after the add may have happened is cleaned up
		return r.GrantChecked && !r.Removed
	}
	return false
}

// Needs reports whether r requires the membership to exist now: it is
// active, or its grant is in flight.
func (r *Request) Needs() bool {
	return r.State == StateActive || (r.State == StateApproved && r.GrantChecked)
}

// Person identifies someone in Slack, with what the adapters need to find
// them in Okta.
type Person struct {
	SlackID string
	Name    string // display name, for messages
	Email   string // from the Slack profile; used to find the Okta user
}

// Actor is a person acting in Slack (requesting, approving, clicking).
type Actor struct {
	Person
	IsGuest  bool // restricted or ultra-restricted Slack user
	IsBot    bool
	TimeZone string // IANA zone of the Slack profile, like Europe/Berlin; "" when not known
}

// Transition records one state change: who, when, and an optional note.
type Transition struct {
	From State
	To   State
	By   string // Slack user id, or "symbot" for the system
	At   time.Time
	Note string
}

// Decision is one approver's approval.
type Decision struct {
	By   string // Slack user id
	Name string
	At   time.Time
	Note string
	// OktaUserID is the Okta user the approver's account was bound to,
	// when the policy needed it (to count people, not accounts).
	OktaUserID string
}

// MessageRef locates a Slack message.
type MessageRef struct {
	Channel string
	TS      string
}

// System is the actor id recorded for transitions symbot makes on its own.
const System = "symbot"

// Request is one person's request for temporary membership of one target.
type Request struct {
	ID        string
	Flow      string // flow name
	Target    string // target name
	GroupID   string // Okta group id (copied from the target at request time)
	Requester Person
	Duration  time.Duration
	Reason    string
	// StartAt is when the requester wants the access to begin; zero means
	// as soon as it is approved. Approved before it, the request waits in
	// StateScheduled; the duration counts from the grant either way.
	StartAt   time.Time
	State     State
	CreatedAt time.Time
	UpdatedAt time.Time

	Approvals   []Decision
	Transitions []Transition

	// ExtensionOf is the id of the active request this one extends, if any.
	ExtensionOf string
	// ExtendedBy lists extension requests merged into this grant.
	ExtendedBy []string

	// Deadlines; zero when not applicable.
	TimeoutAt time.Time // pending: when it times out
	WarnAt    time.Time // active: when the expiry warning is sent
	Warned    bool      // the warning has been queued
	ExpiresAt time.Time // active: when access ends

	GrantedAt time.Time // when the Okta membership took effect
	// Okta facts recorded at grant time.
	OktaUserID   string
	OktaLogin    string
	GrantChecked bool // prior membership was checked and recorded (before the add)
	Preexisting  bool // the person was a member before symbot added them: never remove
	Removed      bool // the membership removal (or its deliberate skip) is done
	Kept         bool // the removal was skipped on purpose: see RemovalNote
	RemovalNote  string

	// What the grant needs from Okta, looked up while the request waited
	// for approval (see Engine.GrantCheckTTL): the requester's Okta user
	// and whether they were already a member of the group. An approval
	// soon enough after PrecheckedAt records them as the grant's check
	// (OktaUserID, GrantChecked, Preexisting) in its own transaction.
	// PrecheckedAt is zero when no look-up was made.
	PrecheckedAt  time.Time
	PreOktaUserID string
	PreOktaLogin  string
	PreMember     bool

	FailReason string // why the grant failed, in words for people

	Message MessageRef // the approval message in the flow's channel

	// What the flow's rules decided when the request was made (see
	// RuleOutcome): the rule that approved it or changed its approvals
	// (Rule), those approvals (RuleApprovals, 0 for the flow's;
	// RuleApprovers, nil for the flow's), and why the rules fell back to
	// manual approval (RuleNote).
	Rule          string
	RuleApprovals int
	RuleApprovers *Approvers
	RuleNote      string

	// Escalation of a pending request (Flow.Escalation): when the next
	// step or reminder is due (NudgeAt, zero for none), how many steps
	// have fired, how many reminders were sent, the backup approvers the
	// steps added (they may approve it), and the copies of the approval
	// message re-posted in other channels (updated with it).
	NudgeAt         time.Time
	Escalated       int
	Reminders       int
	BackupApprovers []string
	Reposts         []MessageRef

	// Break-glass access (Engine.BreakGlass): granted without approval,
	// reviewed after the fact. Until an approver acknowledges it
	// (ReviewedBy), it alerts again at ReviewDue, whatever its state.
	BreakGlass   bool
	ReviewDue    time.Time
	ReviewAlerts int // how many times it alerted again, unreviewed
	ReviewedBy   string
	ReviewedAt   time.Time
	ReviewNote   string

	// Nonce is a secret, random per request, carried by every button of
	// its messages: a click whose nonce differs (a message of another
	// request, or from before a restore) changes nothing. Empty for
	// requests made before nonces existed.
	Nonce string
}

// Revocable reports whether r's access can still be ended early (Revoke):
// it is active, or approved with its grant in flight or failing (the
// removal job then undoes an add that happened), or scheduled to start.
func (r *Request) Revocable() bool {
	return r.State == StateActive || r.State == StateApproved || r.State == StateScheduled
}

// Deadline returns the next time the scheduler must look at r, if any.
func (r *Request) Deadline() (time.Time, bool) {
	at, ok := r.stateDeadline()
	if r.ReviewOverdueAt(r.ReviewDue) && (!ok || r.ReviewDue.Before(at)) {
		return r.ReviewDue, true
	}
	return at, ok
}

// ReviewOverdueAt reports whether r is break-glass access still waiting
// for its review, with its review due at or before t.
func (r *Request) ReviewOverdueAt(t time.Time) bool {
	return r.BreakGlass && r.ReviewedBy == "" && !r.ReviewDue.IsZero() && !t.Before(r.ReviewDue)
}

// stateDeadline is the deadline of r's state: its approval timeout, start,
// expiry warning or expiry.
func (r *Request) stateDeadline() (time.Time, bool) {
	switch r.State {
	case StatePending:
		if !r.NudgeAt.IsZero() && (r.TimeoutAt.IsZero() || r.NudgeAt.Before(r.TimeoutAt)) {
			return r.NudgeAt, true
		}
		return r.TimeoutAt, !r.TimeoutAt.IsZero()
	case StateScheduled:
		return r.StartAt, true
	case StateActive:
		if !r.Warned && !r.WarnAt.IsZero() && r.WarnAt.Before(r.ExpiresAt) {
			return r.WarnAt, true
		}
		return r.ExpiresAt, !r.ExpiresAt.IsZero()
	}
	return time.Time{}, false
}

// LastTransition returns the most recent transition, if any.
func (r *Request) LastTransition() (Transition, bool) {
	if len(r.Transitions) == 0 {
		return Transition{}, false
	}
	return r.Transitions[len(r.Transitions)-1], true
}

// Clone returns a deep copy of r: it shares no slice or pointer with r,
// and a nil slice stays nil and an empty one empty (as the store reads
// them back).
func (r *Request) Clone() *Request {
	c := *r
	c.Approvals = slices.Clone(r.Approvals)
	c.Transitions = slices.Clone(r.Transitions)
	c.ExtendedBy = slices.Clone(r.ExtendedBy)
	c.BackupApprovers = slices.Clone(r.BackupApprovers)
	c.Reposts = slices.Clone(r.Reposts)
	if r.RuleApprovers != nil {
		a := *r.RuleApprovers
		a.Users = slices.Clone(a.Users)
		c.RuleApprovers = &a
	}
	return &c
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
	if r.State != StateRevoked && r.State != StateExpired && r.State != StateFailed && r.State != StateRemovedOutside {
		for _, x := range r.Transitions {
			if x.From == StatePending {
				t, d.State = x, x.To
			}
		}
	}
	d.By, d.At, d.Note = t.By, t.At, t.Note
	return d
}

// transition moves r to state to, recording who, when and why.
func (r *Request) transition(to State, by string, at time.Time, note string) error {
	if !CanTransition(r.State, to) {
		return &TransitionError{ID: r.ID, From: r.State, To: to}
	}
	r.Transitions = append(r.Transitions, Transition{From: r.State, To: to, By: by, At: at, Note: note})
	r.State = to
	r.UpdatedAt = at
	return nil
}
