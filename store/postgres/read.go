// Reads of one statement, outside any transaction block.

package postgres

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
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
// (symbot.RequestReader) in one statement, without a transaction block.
// Reads made while another is in flight wait for it and then go together
// in one statement (see openReads): each is sent after it was asked for,
// so it sees every transaction committed before, as its own statement
// would.
func (s *Store) ReadOpenRequests(ctx context.Context, slackID string) ([]*symbot.Request, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("open requests: %w", err)
	}
	return s.opens.read(ctx, s, slackID)
}

// oneStatement is a read-only tx whose every statement goes to the pool
// on its own (and so runs in a transaction of its own): it must make one
// read only.
func (s *Store) oneStatement(ctx context.Context) *tx {
	return &tx{ctx: ctx, q: s.pool}
}

// maxOpenReads caps the persons of one batch of ReadOpenRequests.
const maxOpenReads = 64

// openReads batches concurrent ReadOpenRequests (the check, under each
// removal's membership lock, of who else needs the membership): a read
// made while none is in flight goes at once; reads made meanwhile queue,
// and once the batch in flight is answered, the queued ones go as one
// statement for all their persons.
type openReads struct {
	mu      sync.Mutex
	running bool
	queue   []*openRead
	batches int // statements sent, for tests
}

// openRead is one caller's read in a batch.
type openRead struct {
	ctx     context.Context
	slackID string
	done    chan struct{}
	rs      []*symbot.Request
	err     error
}

func (o *openReads) read(ctx context.Context, s *Store, slackID string) ([]*symbot.Request, error) {
	r := &openRead{ctx: ctx, slackID: slackID, done: make(chan struct{})}
	o.mu.Lock()
	o.queue = append(o.queue, r)
	lead := !o.running
	o.running = true
	o.mu.Unlock()
	if lead {
		go o.run(s)
	}
	select {
	case <-r.done:
		return r.rs, r.err
	case <-ctx.Done():
		return nil, fmt.Errorf("open requests: %w", ctx.Err())
	}
}

// run sends the queued reads, a batch at a time, until none is left.
func (o *openReads) run(s *Store) {
	for {
		o.mu.Lock()
		n := min(len(o.queue), maxOpenReads)
		if n == 0 {
			o.running = false
			o.mu.Unlock()
			return
		}
		batch := slices.Clone(o.queue[:n])
		o.queue = slices.Delete(o.queue, 0, n)
		o.batches++
		o.mu.Unlock()
		s.readOpen(batch)
		for _, r := range batch {
			close(r.done)
		}
	}
}

// readOpen answers the reads of batch in one statement.
func (s *Store) readOpen(batch []*openRead) {
	if len(batch) == 1 {
		r := batch[0]
		r.rs, r.err = s.oneStatement(r.ctx).OpenRequests(r.slackID)
		return
	}
	// The statement serves every read of the batch: it ends when the last
	// of their contexts does.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var live atomic.Int32
	live.Store(int32(len(batch)))
	for _, r := range batch {
		defer context.AfterFunc(r.ctx, func() {
			if live.Add(-1) == 0 {
				cancel()
			}
		})()
	}
	var ids []string
	for _, r := range batch {
		if !slices.Contains(ids, r.slackID) {
			ids = append(ids, r.slackID)
		}
	}
	by := map[string][]*symbot.Request{}
	bad := map[string]error{} // a person whose request does not decode
	rows, err := s.pool.Query(ctx, `SELECT requester, id, doc FROM requests WHERE requester = ANY($1) AND `+openStatesSQL+` ORDER BY id`, ids)
	if err == nil {
		var (
			who, id string
			doc     []byte
		)
		_, err = pgx.ForEachRow(rows, []any{&who, &id, &doc}, func() error {
			r, err := decodeRequest(id, doc)
			if err != nil {
				bad[who] = err
			}
			by[who] = append(by[who], r)
			return nil
		})
	}
	given := map[string]bool{}
	for _, r := range batch {
		switch {
		case err != nil:
			r.err = fmt.Errorf("open requests: %w", classify(err))
		case bad[r.slackID] != nil:
			r.err = fmt.Errorf("open requests: %w", bad[r.slackID])
		case given[r.slackID]:
			// The same person twice: each caller gets its own copies.
			for _, q := range by[r.slackID] {
				r.rs = append(r.rs, q.Clone())
			}
		default:
			given[r.slackID] = true
			r.rs = by[r.slackID]
		}
	}
}
