// Argument checks of the Store contract, shared by the store
// implementations (bbolt, PostgreSQL, the in-memory store) so that they
// refuse the same calls with the same words.

package symbot

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// CheckClaim checks the arguments of Store.ClaimJobs before it claims
// anything: an empty owner, a lease that is not positive and a done ctx are
// errors; none is true (with a nil error) when max asks for no job, so the
// store claims nothing.
func CheckClaim(ctx context.Context, owner string, lease time.Duration, max int) (none bool, err error) {
	if owner == "" {
		return false, errors.New("claim jobs: empty owner")
	}
	if lease <= 0 {
		return false, fmt.Errorf("claim jobs: lease %v must be positive", lease)
	}
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("claim jobs: %w", err)
	}
	return max <= 0, nil
}

// CheckNewJob checks a job given to Tx.AddJob.
func CheckNewJob(j *Job) error {
	if j == nil {
		return errors.New("add job: nil job")
	}
	if j.Kind == "" {
		return errors.New("add job: job has no kind")
	}
	return nil
}

// CheckAuditAppend checks an entry given to Tx.AppendAudit: it must be
// sealed and extend the stored head (headSeq, headHash).
func CheckAuditAppend(e *AuditEntry, headSeq uint64, headHash string) error {
	if e == nil {
		return errors.New("append audit: nil entry")
	}
	if e.Seq != headSeq+1 || e.PrevHash != headHash {
		return fmt.Errorf("append audit: entry %d does not extend the head %d: link it with symbot.AppendAudit", e.Seq, headSeq)
	}
	if e.Hash == "" {
		return fmt.Errorf("append audit %d: entry is not sealed", e.Seq)
	}
	return nil
}

// CheckAuditPage checks the page size given to Tx.Audit: there is no "all".
func CheckAuditPage(limit int) error {
	if limit < 1 {
		return fmt.Errorf("read audit: page size %d: want at least 1: %w", limit, ErrInvalidRequest)
	}
	return nil
}

// CheckIdentity checks a binding given to Tx.PutIdentity.
func CheckIdentity(id Identity) error {
	if id.SlackID == "" {
		return errors.New("put identity: identity has no SlackID")
	}
	return nil
}

// CheckIdentityPage checks the page size given to Tx.Identities.
func CheckIdentityPage(limit int) error {
	if limit < 1 {
		return fmt.Errorf("read identities: page size %d: want at least 1: %w", limit, ErrInvalidRequest)
	}
	return nil
}

// CheckCounterName checks the counter name given to Tx.NextSeq.
func CheckCounterName(name string) error {
	if name == "" {
		return errors.New("next sequence: empty counter name")
	}
	return nil
}

// CheckPutRequest checks a request given to Tx.PutRequest.
func CheckPutRequest(r *Request) error {
	if r == nil || r.ID == "" {
		return errors.New("put request: request has no ID")
	}
	return nil
}

// CheckJobUpdate checks a job given to Tx.UpdateJob.
func CheckJobUpdate(j *Job) error {
	if j == nil {
		return errors.New("update job: nil job")
	}
	return nil
}

// CheckSinkName checks the sink name given to Tx.SetSinkCursor.
func CheckSinkName(sink string) error {
	if sink == "" {
		return errors.New("set sink cursor: empty sink name")
	}
	return nil
}

// CheckRecordName checks the record name given to Tx.PutRecord.
func CheckRecordName(name string) error {
	if name == "" {
		return errors.New("put record: empty name")
	}
	return nil
}
