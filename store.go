// The Store port: transactions over requests, their deadlines, durable jobs,
// the audit chain and identity bindings.

package symbot

import (
	"context"
	"io"
	"time"
)

// Store persists requests, their time index, durable jobs, the audit chain
// and the identity bindings. The bbolt store implements it; a PostgreSQL store
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
	// (NotBefore <= now and no live lease), honouring lanes (only a lane's
	// lowest ID may be claimed), in ClaimRank order of their kinds
	// (revocations, then grants, then Slack jobs) and in ID order within
	// a rank. It returns them in that order.
	// Claimed jobs get LeaseOwner=owner and LeaseUntil=now+lease.
	ClaimJobs(ctx context.Context, owner string, now time.Time, lease time.Duration, max int) ([]Job, error)
	// NextJobTime returns when the earliest job becomes claimable (its
	// NotBefore or the end of its lease), or ok=false when there are none.
	NextJobTime(ctx context.Context) (at time.Time, ok bool, err error)

	// Backup writes a consistent copy of the whole store to w.
	Backup(ctx context.Context, w io.Writer) (int64, error)
	Close() error
}

// MembershipLocker is implemented by a store that several symbot processes
// share (PostgreSQL): it serialises the grant and revoke work on one
// (person, group) membership across all of them, so two replicas never add
// and remove the same membership at once. For a store that does not
// implement it (a bbolt file, held by one process) the engine locks in
// process.
type MembershipLocker interface {
	// LockMembership blocks until the lock named key is held or ctx ends,
	// and returns the function that releases it. The store releases the
	// lock of a holder that dies (its connection ends).
	LockMembership(ctx context.Context, key string) (unlock func(), err error)
}

// MembershipTryLocker is implemented by a MembershipLocker that can also
// take a lock only if it is free, without waiting. An approval uses it to
// record the grant's membership check in its own transaction; with a
// shared store that lacks it, the grant job records the check itself.
type MembershipTryLocker interface {
	// TryLockMembership takes the lock named key if no one holds it, and
	// returns the function that releases it; ok is false when it is held.
	TryLockMembership(ctx context.Context, key string) (unlock func(), ok bool, err error)
}

// LaterUpdater is implemented by a store that can hold back a write no one
// waits on at once (a finished job's outcome, a look-up's record) to share
// the commit of the next Update, instead of committing it on its own and
// so making that Update wait behind one more commit. UpdateLater is Update
// otherwise: it returns once fn's transaction is committed, and fn may run
// more than once. A store without it commits such writes with Update.
type LaterUpdater interface {
	UpdateLater(ctx context.Context, fn func(Tx) error) error
}

// updateLater runs fn with the store's UpdateLater, or Update.
func (e *Engine) updateLater(ctx context.Context, fn func(Tx) error) error {
	if l, ok := e.store.(LaterUpdater); ok {
		return l.UpdateLater(ctx, fn)
	}
	return e.store.Update(ctx, fn)
}

// RequestReader is implemented by a store whose every read is a round
// trip to a server (PostgreSQL) and that can read without a transaction
// block: ReadRequest and ReadOpenRequests return what Tx.Request and
// Tx.OpenRequests would in a View of their own, read by one statement,
// which sees one snapshot (every transaction committed before it
// starts), without a View's BEGIN and ROLLBACK. The engine uses it for
// the reads that are one statement anyway: Get, a person's open
// requests, and the check under a membership lock of who else needs the
// membership (a statement started once the lock is held sees every
// change committed before). A store without it is read with View.
type RequestReader interface {
	// ReadRequest returns the stored request, or an error wrapping
	// ErrNotFound.
	ReadRequest(ctx context.Context, id string) (*Request, error)
	// ReadOpenRequests returns the person's requests that are not
	// final, in ID order (Tx.OpenRequests).
	ReadOpenRequests(ctx context.Context, slackID string) ([]*Request, error)
}

// RequestClaimer is implemented by a store whose every read is a round
// trip to a server (PostgreSQL): ClaimJobsWithRequests is ClaimJobs that
// also reads, in the same statement, the request of each claimed job
// whose kind is one of kinds. reqs[i] is the request of jobs[i] as stored
// when the claim was made, nil when jobs[i] is of another kind or its
// request is not found or cannot be read (the job then reads it itself). The claim sees every job committed before it, so
// such a request is at least as new as the transaction that queued the
// job. A removal reads its request with it rather than on its own: what
// it decides from before the membership lock (the request has ended and
// is not yet removed, its person and group, whether the membership was
// there before) is fixed once its revoke job is queued, but for Removed,
// which the outcome checks again.
type RequestClaimer interface {
	ClaimJobsWithRequests(ctx context.Context, owner string, now time.Time, lease time.Duration, max int, kinds []JobKind) (jobs []Job, reqs []*Request, err error)
}

// Deduper remembers keys (Slack envelope ids, trigger ids, clicks) for
// every process sharing a store, so that a redelivered envelope or a
// double click is recognised whichever replica receives it. A store shared
// by several processes implements it; the bot keeps its own in-process set
// too.
type Deduper interface {
	// Seen reports whether key is marked and its mark has not expired.
	Seen(ctx context.Context, key string, now time.Time) (bool, error)
	// Mark marks key until now+ttl and reports whether it was not marked
	// (or its mark had expired) before.
	Mark(ctx context.Context, key string, now time.Time, ttl time.Duration) (bool, error)
}

// RequestPrefetcher is implemented by the transactions of a store whose
// every read is a round trip to a server (PostgreSQL): PrefetchRequests
// reads the named requests at once, so that the Request calls for them
// that follow in the same transaction need no round trip each. Callers
// that read many requests by id in one transaction (the scheduler's
// batches of deadlines) call it first when the Tx implements it.
type RequestPrefetcher interface {
	PrefetchRequests(ids []string) error
}

// jobHintKey is the context key of ContextWithJob.
type jobHintKey struct{}

// DueAmonger is implemented by the transactions of a store whose every
// read is a round trip to a server (PostgreSQL): DueAmong returns, in the
// order given, those of the requests ids that the store's deadline index
// lists as due at now, in one round trip or none (see
// ContextWithDeadlines), and reads their documents along, so that the
// Request calls for them that follow need none.
type DueAmonger interface {
	DueAmong(now time.Time, ids []string) ([]string, error)
}

// deadlinesHintKey is the context key of ContextWithDeadlines.
type deadlinesHintKey struct{}

// deadlinesHint is the value of ContextWithDeadlines.
type deadlinesHint struct {
	now time.Time
	ids []string
}

// ContextWithDeadlines returns ctx with a hint for the store: the Update
// made with it first asks which of the requests ids are due at now
// (DueAmonger) and reads those (the scheduler's batch of deadlines). A
// store whose reads are round trips to a server (PostgreSQL) answers as
// the transaction begins; other stores ignore the hint.
func ContextWithDeadlines(ctx context.Context, now time.Time, ids []string) context.Context {
	return context.WithValue(ctx, deadlinesHintKey{}, deadlinesHint{now: now, ids: ids})
}

// DeadlinesFromContext returns the hint of ContextWithDeadlines.
func DeadlinesFromContext(ctx context.Context) (now time.Time, ids []string, ok bool) {
	h, ok := ctx.Value(deadlinesHintKey{}).(deadlinesHint)
	return h.now, h.ids, ok
}

// ContextWithJob returns ctx with a hint for the store: the Update made
// with it reads job id first (to complete or reschedule it). A store whose
// reads are round trips to a server (PostgreSQL) reads the jobs of the
// Updates it runs together in one go; other stores ignore the hint.
func ContextWithJob(ctx context.Context, id uint64) context.Context {
	return context.WithValue(ctx, jobHintKey{}, id)
}

// JobFromContext returns the job hint set by ContextWithJob.
func JobFromContext(ctx context.Context) (id uint64, ok bool) {
	id, ok = ctx.Value(jobHintKey{}).(uint64)
	return id, ok
}

// Tx is a store transaction.
type Tx interface {
	// NextSeq returns the next value (from 1) of a named counter.
	NextSeq(name string) (uint64, error)

	// Request returns a copy of the stored request, or an error wrapping ErrNotFound.
	Request(id string) (*Request, error)
	// PutRequest inserts or replaces r and keeps the indexes (by requester,
	// by state, the requester's open requests, and by r.Deadline()) in step.
	PutRequest(r *Request) error
	// RequestsByRequester returns every request of the person, final ones
	// included: a read of their whole history, never for a write path.
	RequestsByRequester(slackID string) ([]*Request, error)
	// OpenRequests returns the person's requests that are not final
	// (pending, approved, active), in ID order, from an index kept by
	// PutRequest: its cost does not grow with the person's history.
	OpenRequests(slackID string) ([]*Request, error)
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
	// JobStats counts the stored jobs for gauges, without reading them
	// (an index or an aggregate query, never a scan of every job).
	JobStats() (JobStats, error)
	// Jobs returns every stored job in ID order: a full read, for tests,
	// backups and tools, never for a hot or periodic path.
	Jobs() ([]Job, error)

	// AppendAudit stores e as the new head of the audit chain. e is sealed
	// already (see the function AppendAudit): its Seq must be the head's
	// Seq+1 and its PrevHash the head's Hash, else nothing is stored and
	// the error says so. The store never computes or changes a hash.
	AppendAudit(e *AuditEntry) error
	// Audit returns one page: up to limit entries with Seq > after, in
	// order. Read on with after = the last Seq returned. There is no "all":
	// a limit below 1 is an error wrapping ErrInvalidRequest.
	Audit(after uint64, limit int) ([]AuditEntry, error)
	// AuditHead returns the last entry's Seq and Hash (0, "" when empty).
	AuditHead() (seq uint64, hash string, err error)

	// SinkCursor returns the Seq of the last audit entry delivered to the
	// named sink (0: none yet).
	SinkCursor(sink string) (uint64, error)
	// SetSinkCursor records that the named sink has every entry up to seq.
	// A cursor never moves back: a lower seq than the stored one is ignored.
	SetSinkCursor(sink string, seq uint64) error

	// Identity returns the binding of a Slack account, ok=false when there
	// is none.
	Identity(slackID string) (Identity, bool, error)
	// PutIdentity inserts or replaces the binding of id.SlackID.
	PutIdentity(id Identity) error
	// DeleteIdentity removes the binding of a Slack account (nothing when
	// there is none).
	DeleteIdentity(slackID string) error
	// Identities returns one page: up to limit bindings with SlackID >
	// after, in SlackID order (bytewise). A limit below 1 is an error
	// wrapping ErrInvalidRequest.
	Identities(after string, limit int) ([]Identity, error)
}

// JobStats counts the stored jobs.
type JobStats struct {
	Pending        int // jobs stored and not yet done
	FailingRevokes int // revoke jobs that failed at least once and are still retrying
}

// RecordTx is implemented by the transactions of stores that keep small
// named records: the reconciler keeps one per Okta group (the standing
// members, who was alerted). It is a separate interface so that a store
// without it still works; the reconciler then reports that it cannot run.
type RecordTx interface {
	// Record returns the named record, ok=false when there is none.
	Record(name string) (value []byte, ok bool, err error)
	// PutRecord stores the named record; a nil value deletes it.
	PutRecord(name string, value []byte) error
}
