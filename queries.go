// Read-only queries: a request, a person's requests, requests by state.

package symbot

import (
	"context"
	"fmt"
	"slices"
)

// Get returns a request by id (matched case-insensitively).
func (e *Engine) Get(ctx context.Context, id string) (*Request, error) {
	id = CanonicalID(id)
	r, err := e.readRequest(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("get request %s: %w", id, err)
	}
	return r, nil
}

// readRequest reads request id with the store's RequestReader, else in a
// View.
func (e *Engine) readRequest(ctx context.Context, id string) (*Request, error) {
	if rr, ok := e.store.(RequestReader); ok {
		return rr.ReadRequest(ctx, id)
	}
	var r *Request
	err := e.store.View(ctx, func(tx Tx) error {
		var err error
		r, err = tx.Request(id)
		return err
	})
	return r, err
}

// openRequests reads the person's non-final requests with the store's
// RequestReader, else in a View.
func (e *Engine) openRequests(ctx context.Context, slackID string) ([]*Request, error) {
	if rr, ok := e.store.(RequestReader); ok {
		return rr.ReadOpenRequests(ctx, slackID)
	}
	var rs []*Request
	err := e.store.View(ctx, func(tx Tx) error {
		var err error
		rs, err = tx.OpenRequests(slackID)
		return err
	})
	return rs, err
}

// ListForUser returns the person's requests that are not final: pending,
// approved and active, newest first.
func (e *Engine) ListForUser(ctx context.Context, slackID string) ([]*Request, error) {
	out, err := e.openRequests(ctx, slackID)
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
