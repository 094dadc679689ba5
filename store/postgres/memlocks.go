package postgres

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// lockHolders is how many long-lived sessions of a Store hold its
// uncontended membership locks.
const lockHolders = 2

// memLocks holds the membership locks of one Store.
//
// One PostgreSQL session can hold many advisory locks, so a lock that no
// other session holds is taken on one of a few long-lived holder sessions
// with pg_try_advisory_lock, not on a connection of its own: a burst of
// removals, each holding a lock until its outcome is recorded, then opens
// no connections. Each holder sends its operations in batches: while one
// batch is in flight, the tries and unlocks that arrive queue up and go
// together as the next one, in one round trip. Only a lock another
// session holds is waited for on a connection of its own (see
// Store.LockMembership).
//
// Advisory locks are re-entrant within a session, so the server cannot
// keep two callers of this process apart on one holder; held, a set of
// the keys held in this process, does: a key held here makes a second
// caller wait (LockMembership) or fail (TryLockMembership) as another
// session's lock would.
//
// When a holder's session ends (the connection breaks, or a batch gets
// no answer within lockCancelGrace and the session is closed), the server
// releases every lock it held, while their callers go on as if they held
// them; the same happens to the one lock of a connection that breaks
// when each lock has its own. Their unlock then does nothing (the
// session's generation moved on), the keys stay held in this process
// until then, and new locks are taken on a new session.
type memLocks struct {
	pool    *pgxpool.Pool // the lock pool: holder sessions, and a connection per contended wait
	log     *slog.Logger
	holders [lockHolders]*holder

	mu     sync.Mutex
	held   map[string]chan struct{} // keys held in this process; the channel is closed on release
	none   sync.Cond                // broadcast when held becomes empty
	closed bool

	batches     atomic.Uint64 // batches the holders sent (for tests)
	beforeBatch func(ops int) // test hook: called before each batch is sent, with its operations
}

func newMemLocks(pool *pgxpool.Pool, log *slog.Logger) *memLocks {
	m := &memLocks{pool: pool, log: log, held: map[string]chan struct{}{}}
	m.none.L = &m.mu
	for i := range m.holders {
		m.holders[i] = &holder{m: m}
	}
	return m
}

// take marks key held in this process. While another caller here holds
// it, take waits until it is released or ctx ends, or with wait false
// returns false at once.
func (m *memLocks) take(ctx context.Context, key string, wait bool) (bool, error) {
	for {
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			return false, ErrClosed
		}
		released, busy := m.held[key]
		if !busy {
			m.held[key] = make(chan struct{})
			m.mu.Unlock()
			return true, nil
		}
		m.mu.Unlock()
		if !wait {
			return false, nil
		}
		select {
		case <-released:
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
}

// give releases key, held in this process.
func (m *memLocks) give(key string) {
	m.mu.Lock()
	close(m.held[key])
	delete(m.held, key)
	if len(m.held) == 0 {
		m.none.Broadcast()
	}
	m.mu.Unlock()
}

// pick returns a holder for a new lock: an idle one if any, else the one
// with the fewest operations queued.
func (m *memLocks) pick() *holder {
	var best *holder
	bestLen := 0
	for _, h := range m.holders {
		h.mu.Lock()
		busy, n := h.busy, len(h.queue)
		h.mu.Unlock()
		if !busy {
			return h
		}
		if best == nil || n < bestLen {
			best, bestLen = h, n
		}
	}
	return best
}

// try takes key, held in this process, on a holder session if no session
// holds it. It returns the function that releases it, or nil when another
// session holds it.
func (m *memLocks) try(ctx context.Context, key string) (func(), error) {
	h := m.pick()
	op := &lockOp{ctx: ctx, key: key}
	h.do(op)
	if op.err != nil || !op.ok {
		return nil, op.err
	}
	return sync.OnceFunc(func() {
		h.do(&lockOp{key: key, unlock: true, gen: op.gen})
		m.give(key)
	}), nil
}

// close makes later locks fail, waits until every lock of this process is
// released (as closing a pool waits for its connections), and gives back
// the holders' sessions.
func (m *memLocks) close() {
	m.mu.Lock()
	m.closed = true
	for len(m.held) > 0 {
		m.none.Wait()
	}
	m.mu.Unlock()
	for _, h := range m.holders {
		h.mu.Lock()
		h.drop(h.held > 0)
		h.mu.Unlock()
	}
}

// holder is one long-lived session that holds membership locks, and the
// queue of operations waiting for its next batch.
type holder struct {
	m *memLocks

	mu    sync.Mutex
	busy  bool      // a leader is sending a batch
	queue []*lockOp // operations waiting for the next batch

	// Owned by the leader (and by close, once no lock is held).
	conn *pgxpool.Conn // the session; nil until needed, and after it is lost
	gen  uint64        // bumped when the session is lost, with the locks it held
	held int           // locks taken on the session and not released
}

// lockOp is a try (pg_try_advisory_lock) or an unlock of one key on a
// holder's session.
type lockOp struct {
	ctx    context.Context // a try's caller's: it gives up while queued when ctx ends
	key    string
	unlock bool
	gen    uint64 // an unlock's: the session generation the lock was taken on; a try's: set when ok

	ok  bool  // a try's outcome: taken
	err error // a try's failure: the lock is not held

	wake chan bool // true: lead the next batch; false: done
	lead bool      // chosen to lead the next batch (under holder.mu)
}

// do queues op for h's next batch, sending it at once when no batch is
// in flight, and returns once op is done. A try whose ctx ends while it is
// queued is withdrawn (op.err is ctx's error); once sent, it runs to the
// end.
func (h *holder) do(op *lockOp) {
	op.wake = make(chan bool, 1)
	h.mu.Lock()
	h.queue = append(h.queue, op)
	if !h.busy {
		h.busy = true
		h.mu.Unlock()
		h.lead(op)
		return
	}
	h.mu.Unlock()
	var done <-chan struct{}
	if op.ctx != nil {
		done = op.ctx.Done()
	}
	select {
	case lead := <-op.wake:
		if lead {
			h.lead(op)
		}
		return
	case <-done:
	}
	h.mu.Lock()
	if i := slices.Index(h.queue, op); i >= 0 && !op.lead {
		h.queue = slices.Delete(h.queue, i, i+1)
		h.mu.Unlock()
		op.err = op.ctx.Err()
		return
	}
	h.mu.Unlock()
	if <-op.wake { // in a batch already, or chosen to lead the next
		h.lead(op)
	}
}

// lead sends every queued operation, self among them, as one batch, tells
// their callers, and hands the lead to the first operation queued
// meanwhile.
func (h *holder) lead(self *lockOp) {
	h.mu.Lock()
	batch := h.queue
	h.queue = nil
	h.mu.Unlock()
	h.run(batch)
	h.mu.Lock()
	for _, op := range batch {
		if op != self {
			op.wake <- false
		}
	}
	if len(h.queue) > 0 {
		next := h.queue[0]
		next.lead = true
		next.wake <- true
	} else {
		h.busy = false
	}
	h.mu.Unlock()
}

// run sends ops as one batch on h's session. When the batch fails, the
// session is closed, which releases its locks: the unlocks are then done,
// and the tries fail, unless the session was open before the batch (it
// may have died while idle): then they are sent once more on a new one.
func (h *holder) run(ops []*lockOp) {
	var unlocks, tries []*lockOp
	for _, op := range ops {
		switch {
		case op.unlock && op.gen != h.gen:
			// Taken on a session since lost: released with it.
		case op.unlock:
			unlocks = append(unlocks, op)
		default:
			tries = append(tries, op)
		}
	}
	for retried := false; ; retried = true {
		fresh := h.conn == nil
		err := h.send(unlocks, tries)
		if err == nil {
			return
		}
		if lost := h.held - len(unlocks); lost > 0 {
			h.m.log.Warn("membership lock session lost: the server released locks still in use", "locks", lost, "err", err)
		}
		h.drop(true)
		unlocks = nil
		if fresh || retried || len(tries) == 0 {
			for _, op := range tries {
				op.err = err
			}
			return
		}
	}
}

// send sends one batch: the unlocks, then the tries, opening h's session
// first if it has none.
func (h *holder) send(unlocks, tries []*lockOp) error {
	if len(unlocks) == 0 && len(tries) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), lockCancelGrace)
	defer cancel()
	if h.conn == nil {
		c, err := h.m.pool.Acquire(ctx)
		if err != nil {
			return err
		}
		h.conn = c
	}
	if hook := h.m.beforeBatch; hook != nil {
		hook(len(unlocks) + len(tries))
	}
	keys := func(ops []*lockOp) []string {
		ks := make([]string, len(ops))
		for i, op := range ops {
			ks[i] = op.key
		}
		return ks
	}
	b := &pgx.Batch{}
	if len(unlocks) > 0 {
		b.Queue(`SELECT array_agg(pg_advisory_unlock($1, hashtext(k)) ORDER BY i) FROM unnest($2::text[]) WITH ORDINALITY AS t(k, i)`,
			membershipLockSpace, keys(unlocks))
	}
	if len(tries) > 0 {
		b.Queue(`SELECT array_agg(pg_try_advisory_lock($1, hashtext(k)) ORDER BY i) FROM unnest($2::text[]) WITH ORDINALITY AS t(k, i)`,
			membershipLockSpace, keys(tries))
	}
	h.m.batches.Add(1)
	br := h.conn.SendBatch(ctx, b)
	var freed, took []bool
	var err error
	if len(unlocks) > 0 {
		err = br.QueryRow().Scan(&freed)
	}
	if err == nil && len(tries) > 0 {
		err = br.QueryRow().Scan(&took)
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err == nil && (len(freed) != len(unlocks) || len(took) != len(tries)) {
		err = fmt.Errorf("lock batch answered %d unlocks and %d tries, want %d and %d", len(freed), len(took), len(unlocks), len(tries))
	}
	if err != nil {
		return err
	}
	for i, op := range unlocks {
		if !freed[i] {
			h.m.log.Warn("membership lock was not held by its session at unlock", "key", op.key)
			continue
		}
		h.held--
	}
	for i, op := range tries {
		op.ok, op.gen = took[i], h.gen
		if op.ok {
			h.held++
		}
	}
	return nil
}

// drop gives back h's session, if it has one: closed when its locks are in
// doubt (it then releases them all), else to the pool. Locks taken on it
// are gone either way.
func (h *holder) drop(doubt bool) {
	if h.conn != nil {
		if doubt || h.conn.Conn().IsClosed() {
			ctx, cancel := context.WithTimeout(context.Background(), lockCancelGrace)
			dropLockConn(ctx, h.conn)
			cancel()
		} else {
			h.conn.Release()
		}
		h.conn = nil
	}
	h.gen++
	h.held = 0
}
