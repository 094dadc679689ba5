package symbot

import (
	"context"
	"io"
	"time"
)

// Event names what happened to a request; notifications render it.
type Event string

// Events.
const (
	EventRequested   Event = "requested"    // a new request waits for approval
	EventApproval    Event = "approval"     // one approval recorded, more needed
	EventApproved    Event = "approved"     // quorum reached; granting
	EventDenied      Event = "denied"       // an approver denied it
	EventCancelled   Event = "cancelled"    // the requester withdrew it
	EventTimedOut    Event = "timed_out"    // nobody decided in time
	EventGranted     Event = "granted"      // the Okta membership took effect
	EventExtended    Event = "extended"     // an extension moved the expiry out
	EventWarning     Event = "warning"      // access expires soon
	EventExpired     Event = "expired"      // time is up; removal queued
	EventRevoked     Event = "revoked"      // ended early; removal queued
	EventRemoved     Event = "removed"      // the membership is gone (or was deliberately kept, see RemovalNote)
	EventFailed      Event = "failed"       // the grant could not be made
	EventRevokeStuck Event = "revoke_stuck" // removal keeps failing (alert)
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

// Alert is an operational problem that needs a person.
type Alert struct {
	RequestID string
	Event     Event
	Text      string // in words for operators; never a secret
}

// DirUser is a person in the directory (Okta).
type DirUser struct {
	ID     string
	Login  string
	Email  string
	Status string // ACTIVE, SUSPENDED, ...
}

// Directory is the identity provider: Okta. Errors wrap ErrUserNotFound,
// ErrUserNotActive, ErrGroupNotFound, ErrTokenRejected, ErrRateLimited or
// ErrUnavailable.
type Directory interface {
	// ResolveUser finds the active directory user for a Slack person.
	ResolveUser(ctx context.Context, p Person) (DirUser, error)
	IsMember(ctx context.Context, userID, groupID string) (bool, error)
	// AddMember and RemoveMember are idempotent.
	AddMember(ctx context.Context, userID, groupID string) error
	RemoveMember(ctx context.Context, userID, groupID string) error
}

// TokenSource hands out a secret (the Okta API token) and fetches it anew
// when the consumer finds it stale.
type TokenSource interface {
	// Token returns the current token, from cache when fresh.
	Token(ctx context.Context) (string, error)
	// Refresh fetches the token again unless it already changed from stale
	// (another caller refreshed it), and returns the new token.
	Refresh(ctx context.Context, stale string) (string, error)
}

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
)

// Job is one durable side effect, written in the same transaction as the
// state change that causes it.
type Job struct {
	ID        uint64 // assigned by the store, increasing
	Kind      JobKind
	RequestID string
	Event     Event
	To        string // JobNotify: Slack user id
	Text      string // JobAlert: the text
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
}

// ClaimableAt is when j can be claimed: the later of NotBefore and the end
// of its lease.
func (j *Job) ClaimableAt() time.Time {
	if j.LeaseUntil.After(j.NotBefore) {
		return j.LeaseUntil
	}
	return j.NotBefore
}

// AuditEntry is one link of the hash-chained audit log.
type AuditEntry struct {
	Seq       uint64 // assigned by the store, from 1, no gaps
	At        time.Time
	RequestID string
	Actor     string // Slack user id, or System
	Action    string // e.g. "request", "approve", "state:active", "job:grant:ok"
	Detail    string // never a secret
	PrevHash  string // Hash of the previous entry; "" for the first
	Hash      string // ComputeHash of this entry
}

// Identity caches the mapping from a Slack user to an Okta user.
type Identity struct {
	SlackID    string
	Email      string
	OktaUserID string
	OktaLogin  string
	CachedAt   time.Time
}

// Store persists requests, their time index, durable jobs, the audit chain
// and the identity cache. The bbolt store implements it; a PostgreSQL store
// could too: every method is a transaction or an atomic claim.
type Store interface {
	// Update runs fn in one read-write transaction; if fn returns an error
	// nothing is written. fn may run more than once (a store may batch
	// concurrent transactions and re-run them after a rollback): it must
	// read and write only through the Tx, decide only from the Tx and from
	// values fixed before Update, and reset anything it reports out.
	Update(ctx context.Context, fn func(Tx) error) error
	// View runs fn in a read-only transaction; writes in it fail.
	View(ctx context.Context, fn func(Tx) error) error

	// ClaimJobs atomically leases up to max jobs that are due at now
	// (NotBefore <= now and no live lease), in ID order, honouring lanes.
	// Claimed jobs get LeaseOwner=owner and LeaseUntil=now+lease.
	ClaimJobs(ctx context.Context, owner string, now time.Time, lease time.Duration, max int) ([]Job, error)
	// NextJobTime returns when the earliest job becomes claimable (its
	// NotBefore or the end of its lease), or ok=false when there are none.
	NextJobTime(ctx context.Context) (at time.Time, ok bool, err error)

	// Backup writes a consistent copy of the whole store to w.
	Backup(ctx context.Context, w io.Writer) (int64, error)
	Close() error
}

// Tx is a store transaction.
type Tx interface {
	// NextSeq returns the next value (from 1) of a named counter.
	NextSeq(name string) (uint64, error)

	// Request returns a copy of the stored request, or an error wrapping ErrNotFound.
	Request(id string) (*Request, error)
	// PutRequest inserts or replaces r and keeps the indexes (by requester,
	// by state, and by r.Deadline()) in step.
	PutRequest(r *Request) error
	RequestsByRequester(slackID string) ([]*Request, error)
	RequestsByState(s State) ([]*Request, error)
	// NextDeadline returns the request with the earliest Deadline.
	NextDeadline() (id string, at time.Time, ok bool, err error)
	// DueRequests returns up to limit request ids whose Deadline <= now, earliest first.
	DueRequests(now time.Time, limit int) ([]string, error)

	// AddJob stores j and assigns j.ID.
	AddJob(j *Job) error
	Job(id uint64) (*Job, error)
	// UpdateJob replaces a stored job (reschedule, release its lease).
	UpdateJob(j *Job) error
	// DeleteJob removes a finished job.
	DeleteJob(id uint64) error
	// Jobs returns every stored job in ID order.
	Jobs() ([]Job, error)

	// AppendAudit assigns e.Seq, e.PrevHash and e.Hash and stores e.
	AppendAudit(e *AuditEntry) error
	// Audit returns up to limit entries with Seq > after, in order (limit <= 0: all).
	Audit(after uint64, limit int) ([]AuditEntry, error)
	// AuditHead returns the last entry's Seq and Hash (0, "" when empty).
	AuditHead() (seq uint64, hash string, err error)

	Identity(slackID string) (Identity, bool, error)
	PutIdentity(id Identity) error
}

// Metrics receives the engine's measurements; cmd/symbot exports them in
// Prometheus format. Implementations must be safe for concurrent use.
type Metrics interface {
	// RequestOutcome counts a request reaching a state (pending when
	// submitted, then approved, active, denied, expired, ...).
	RequestOutcome(flow string, s State)
	// GrantLatency observes the time from final approval to the Okta
	// membership taking effect.
	GrantLatency(flow string, d time.Duration)
	// RevokeLag observes the time from a grant's end (expiry or revocation)
	// to the Okta membership being removed.
	RevokeLag(d time.Duration)
	// JobResult counts a job attempt by kind and result ("ok", "retry", "failed").
	JobResult(kind JobKind, result string)
}

// Stats is a snapshot of the engine's gauges.
type Stats struct {
	PendingJobs      int   // jobs stored and not yet done
	FailingRevokes   int   // revoke jobs that failed at least once and are still retrying
	RevokeAlerts     int64 // alerts raised for stuck revocations since start
	JobsDone         int64 // jobs completed since start
	JobsAbandoned    int64 // non-revoke jobs given up after their attempts
	NextDeadline     time.Time
	SchedulerWakeups int64
}
