// Every removal visible: ended grants whose Okta removal is not done yet,
// and the whole story of one request.

package symbot

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// PendingRemoval is an ended grant (expired, revoked, failed after the add
// may have happened) whose Okta membership removal is not done yet.
type PendingRemoval struct {
	Request     *Request
	Attempts    int       // failed attempts so far
	LastError   string    // the last attempt's error
	Since       time.Time // when the removal was queued
	NextAttempt time.Time
	Alerted     bool // the operators were alerted that it is stuck
}

// PendingRemovals returns every ended grant whose removal is still queued,
// oldest first. It reads the queued revoke jobs, which are few: never the
// whole request table.
func (e *Engine) PendingRemovals(ctx context.Context) ([]PendingRemoval, error) {
	var out []PendingRemoval
	err := e.store.View(ctx, func(tx Tx) error {
		out = out[:0]
		jobs, err := tx.Jobs()
		if err != nil {
			return err
		}
		for _, j := range jobs {
			if j.Kind != JobRevoke {
				continue
			}
			r, err := tx.Request(j.RequestID)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if r.Removed {
				continue // done; the job is only waiting to be deleted
			}
			out = append(out, PendingRemoval{Request: r, Attempts: j.Attempts, LastError: j.LastError, Since: j.CreatedAt, NextAttempt: j.NotBefore, Alerted: j.Alerted})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("pending removals: %w", err)
	}
	slices.SortFunc(out, func(a, b PendingRemoval) int { return a.Since.Compare(b.Since) })
	return out, nil
}

// Story is everything symbot knows about one request: the request with
// its transitions, its queued jobs (attempts, errors) and its audit
// entries.
type Story struct {
	Request *Request
	Jobs    []Job
	Audit   []AuditEntry
}

// Story returns the whole story of the request id (matched
// case-insensitively). It pages through the audit log: an admin command,
// not a hot path.
func (e *Engine) Story(ctx context.Context, id string) (*Story, error) {
	id = CanonicalID(id)
	s := &Story{}
	err := e.store.View(ctx, func(tx Tx) error {
		*s = Story{}
		r, err := tx.Request(id)
		if err != nil {
			return err
		}
		s.Request = r
		jobs, err := tx.Jobs()
		if err != nil {
			return err
		}
		for _, j := range jobs {
			if j.RequestID == id {
				s.Jobs = append(s.Jobs, j)
			}
		}
		return auditPages(tx, func(page []AuditEntry) error {
			for _, a := range page {
				if a.RequestID == id {
					s.Audit = append(s.Audit, a)
				}
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("request %s: %w", id, err)
	}
	return s, nil
}

// RecentFailures returns the requests whose grant failed since the given
// time, newest first, with their reasons (Request.FailReason).
func (e *Engine) RecentFailures(ctx context.Context, since time.Time) ([]*Request, error) {
	rs, err := e.ListByState(ctx, StateFailed)
	if err != nil {
		return nil, err
	}
	var out []*Request
	for _, r := range rs {
		if !r.UpdatedAt.Before(since) {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b *Request) int { return b.UpdatedAt.Compare(a.UpdatedAt) })
	return out, nil
}
