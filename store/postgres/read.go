// Reads of one statement, outside any transaction block.

package postgres

import (
	"context"
	"fmt"

	"github.com/symbot/symbot"
)

var _ symbot.RequestReader = (*Store)(nil)

// ReadRequest reads request id (symbot.RequestReader) in one statement
// sent on its own: the statement reads one snapshot, so it needs no
// transaction block, and costs one round trip where View costs a BEGIN
// and a ROLLBACK besides.
func (s *Store) ReadRequest(ctx context.Context, id string) (*symbot.Request, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("get request: %w", err)
	}
	return s.oneStatement(ctx).Request(id)
}

// ReadOpenRequests reads the person's non-final requests
// (symbot.RequestReader) in one statement sent on its own, as
// ReadRequest.
func (s *Store) ReadOpenRequests(ctx context.Context, slackID string) ([]*symbot.Request, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("open requests: %w", err)
	}
	return s.oneStatement(ctx).OpenRequests(slackID)
}

// oneStatement is a read-only tx whose every statement goes to the pool
// on its own (and so runs in a transaction of its own): it must make one
// read only.
func (s *Store) oneStatement(ctx context.Context) *tx {
	return &tx{ctx: ctx, q: s.pool}
}
