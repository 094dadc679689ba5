// Fewer round trips: a read-write transaction holds back the writes whose
// outcome nobody waits for and sends them in one pipeline with the next
// statement that returns something, or with COMMIT.

package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/symbot/symbot"
)

// pipe is one read-write PostgreSQL transaction on one connection, shared
// by the fns of a group commit (see group.go). Writes that return nothing
// the caller needs (an upsert of a request, an audit insert, the update or
// delete of a job row this transaction holds) are held back and sent, in
// order and in one pipeline, ahead of the next statement that returns
// rows, or with COMMIT; a statement always sees every write before it, as
// if they had been sent one by one. The price: a held write that fails
// makes a later statement (or COMMIT) fail, and the whole transaction is
// rolled back, as it would be anyway (PostgreSQL aborts a transaction at
// its first failed statement).
type pipe struct {
	conn    *pgx.Conn
	pending []heldWrite
	broken  bool // a statement failed: the transaction is aborted

	// What every fn of the transaction shares.
	head  chainHead              // the audit head, once read or written
	held  map[uint64]bool        // job rows this transaction holds: read FOR UPDATE or inserted, not deleted
	reqs  map[string][]byte      // request documents as this transaction read or wrote them (nil: none); see tx.knowRequest
	jobs  map[uint64]*symbot.Job // jobs read ahead for the fns of the group (nil: none); see prefetchJobs
	asked map[uint64]bool        // job hints already read ahead
	// Job ids: nextJob is the next id to give out, seqNext the one the
	// sequence jobs_id_seq would give next (both 0 until known). A group
	// reads the sequence as it begins (begin); otherwise the first AddJob
	// takes nextval('jobs_id_seq'). Ids count on from there, and commit
	// moves the sequence past the last one given out. Every AddJob runs
	// under the writer lock, so no other transaction takes ids meanwhile,
	// and ids grow in commit order as lanes need.
	nextJob, seqNext int64
	// The scheduler's batch read as the transaction began (see
	// symbot.ContextWithDeadlines): of the requests dueIDs, those due at
	// dueAt; dueIDs is nil once one of them is written here.
	dueAt  time.Time
	dueIDs []string
	due    map[string]bool
}

// heldWrite is a statement sent later; want is the number of rows it must
// change (-1: any). A row write (row set) changes only the row key of its
// table, so that it may be sent as part of one statement with others of
// its kind (see merge).
type heldWrite struct {
	op   string
	sql  string
	args []any
	want int64
	row  *rowWrite
	key  string
}

var _ querier = (*pipe)(nil)

func newPipe(conn *pgx.Conn) *pipe {
	return &pipe{conn: conn, held: map[uint64]bool{}, reqs: map[string][]byte{}, jobs: map[uint64]*symbot.Job{}, asked: map[uint64]bool{}}
}

// hold queues a write to be sent with the next statement.
func (p *pipe) hold(op string, want int64, sql string, args ...any) {
	p.pending = append(p.pending, heldWrite{op: op, sql: sql, args: args, want: want})
}

// holdRow queues a row write: sql changes only the row key of row.table,
// and args are the arguments of row.sql for that one row.
func (p *pipe) holdRow(row *rowWrite, key string, op string, want int64, sql string, args ...any) {
	p.pending = append(p.pending, heldWrite{op: op, sql: sql, args: args, want: want, row: row, key: key})
}

// send sends the held writes and then sql in one pipeline and returns the
// batch positioned at sql's result. The caller reads that result and
// closes the batch.
func (p *pipe) send(ctx context.Context, sql string, args []any) (pgx.BatchResults, error) {
	if p.broken {
		return nil, errAborted
	}
	pending, err := merge(p.pending)
	p.pending = nil
	if err != nil {
		p.broken = true
		return nil, err
	}
	b := &pgx.Batch{}
	for _, h := range pending {
		b.Queue(h.sql, h.args...)
	}
	b.Queue(sql, args...)
	br := p.conn.SendBatch(ctx, b)
	for _, h := range pending {
		tag, err := br.Exec()
		if err == nil && h.want >= 0 && tag.RowsAffected() != h.want {
			err = fmt.Errorf("changed %d rows, want %d", tag.RowsAffected(), h.want)
		}
		if err != nil {
			p.broken = true
			_ = br.Close()
			return nil, fmt.Errorf("%s: %w", h.op, err)
		}
	}
	return br, nil
}

// errAborted: a statement of this transaction failed before.
var errAborted = errors.New("the transaction failed before")

func (p *pipe) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if len(p.pending) == 0 && !p.broken {
		tag, err := p.conn.Exec(ctx, sql, args...)
		p.broken = p.broken || err != nil
		return tag, err
	}
	br, err := p.send(ctx, sql, args)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	p.broken = p.broken || err != nil
	return tag, err
}

func (p *pipe) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if len(p.pending) == 0 && !p.broken {
		rows, err := p.conn.Query(ctx, sql, args...)
		if err != nil {
			p.broken = true
			return nil, err
		}
		return &pipeRows{Rows: rows, p: p}, nil
	}
	br, err := p.send(ctx, sql, args)
	if err != nil {
		return nil, err
	}
	rows, err := br.Query()
	if err != nil {
		p.broken = true
		_ = br.Close()
		return nil, err
	}
	return &pipeRows{Rows: rows, br: br, p: p}, nil
}

func (p *pipe) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	rows, err := p.Query(ctx, sql, args...)
	return &pipeRow{rows: rows, err: err}
}

// pipeRows are the rows of a statement sent by a pipe: closing them also
// reads the end of its batch, and an error marks the transaction broken.
type pipeRows struct {
	pgx.Rows
	br     pgx.BatchResults // nil when sent alone
	p      *pipe
	closed bool
	err    error
}

func (r *pipeRows) Next() bool {
	if r.Rows.Next() {
		return true
	}
	r.finish()
	return false
}

func (r *pipeRows) Close() { r.finish() }

func (r *pipeRows) finish() {
	if r.closed {
		return
	}
	r.closed = true
	r.Rows.Close()
	if r.br != nil {
		if err := r.br.Close(); err != nil && r.err == nil {
			r.err = err
		}
	}
	if r.Err() != nil {
		r.p.broken = true
	}
}

func (r *pipeRows) Err() error {
	if err := r.Rows.Err(); err != nil {
		return err
	}
	return r.err
}

// pipeRow is QueryRow's result, as pgx's own.
type pipeRow struct {
	rows pgx.Rows
	err  error
}

func (r *pipeRow) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	defer r.rows.Close()
	if !r.rows.Next() {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return pgx.ErrNoRows
	}
	if err := r.rows.Scan(dest...); err != nil {
		return err
	}
	r.rows.Close()
	return r.rows.Err()
}

// jobID gives out the id of a new job (see pipe.nextJob).
func (p *pipe) jobID(ctx context.Context) (int64, error) {
	if p.nextJob == 0 {
		var n int64
		if err := p.QueryRow(ctx, `SELECT nextval('jobs_id_seq')`).Scan(&n); err != nil {
			return 0, err
		}
		p.nextJob, p.seqNext = n, n+1
	}
	id := p.nextJob
	p.nextJob++
	return id, nil
}

// commit sends the held writes, moves the job id sequence past the ids
// given out, and commits, in one round trip. An error from a held write
// means the transaction was rolled back; an error from COMMIT itself may
// leave its outcome unknown (unknown is then true).
func (p *pipe) commit(ctx context.Context) (unknown bool, err error) {
	if p.nextJob > p.seqNext {
		p.hold("move the job id counter", -1, `SELECT setval('jobs_id_seq', $1)`, p.nextJob-1)
	}
	br, err := p.send(ctx, `COMMIT`, nil)
	if err != nil {
		return false, err
	}
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	p.broken = true // finished either way
	if err != nil {
		return true, err
	}
	if tag.String() != "COMMIT" {
		return false, fmt.Errorf("the server rolled the transaction back (%s)", tag.String())
	}
	return false, nil
}

// prefetchJobs reads and locks, in one statement, the jobs that the
// writes ws will read first (symbot.ContextWithJob) and have not been read
// ahead yet, with their requests' documents. The transaction holds the
// writer lock, so no other writer can change them before it ends (job
// claims skip locked rows), and its own changes of them drop the copy.
func (p *pipe) prefetchJobs(ctx context.Context, ws []*write) error {
	ids := p.jobHints(ws)
	if len(ids) == 0 {
		return nil
	}
	rows, err := p.Query(ctx, prefetchJobsSQL, ids)
	if err != nil {
		return err
	}
	return p.keepJobs(ids, rows)
}

// prefetchJobsSQL reads and locks the jobs $1 with their requests'
// documents.
const prefetchJobsSQL = `SELECT ` + jobCols + `, (SELECT r.doc FROM requests r WHERE r.id = jobs.request_id) FROM jobs WHERE id = ANY($1) ORDER BY id FOR UPDATE`

// jobHints returns the jobs that the writes ws will read first and that
// were not read ahead yet, and marks them asked.
func (p *pipe) jobHints(ws []*write) []int64 {
	var ids []int64
	for _, w := range ws {
		if id, ok := symbot.JobFromContext(w.Ctx); ok && !p.asked[id] {
			p.asked[id] = true
			ids = append(ids, int64(id))
		}
	}
	return ids
}

// keepJobs keeps the rows of prefetchJobsSQL for the jobs ids.
func (p *pipe) keepJobs(ids []int64, rows pgx.Rows) error {
	docs := map[string][]byte{}
	js, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (symbot.Job, error) {
		var doc []byte
		j, err := scanJobInto(row, &doc)
		docs[j.RequestID] = doc
		return j, err
	})
	if err != nil {
		return err
	}
	for _, id := range ids {
		p.jobs[uint64(id)] = nil
	}
	for i := range js {
		p.jobs[js[i].ID] = &js[i]
		p.held[js[i].ID] = true
	}
	for id, doc := range docs {
		if _, ok := p.reqs[id]; !ok {
			p.reqs[id] = doc
		}
	}
	return nil
}

// begin starts the read-write transaction of a group and reads what
// nearly every group needs, in one round trip: BEGIN, the writer lock,
// then (under the lock, so they are current until the transaction ends)
// the audit head, the job id sequence, and the jobs the writes ws will
// read first (see prefetchJobs). locked reports whether the lock was
// taken: an error after that aborts the transaction but is no fault of
// any write's.
func (p *pipe) begin(ctx context.Context, ws []*write) (locked bool, err error) {
	ids := p.jobHints(ws)
	for _, w := range ws {
		if now, due, ok := symbot.DeadlinesFromContext(w.Ctx); ok && p.dueIDs == nil && len(due) > 0 {
			p.dueAt, p.dueIDs = now, due
		}
	}
	b := &pgx.Batch{}
	b.Queue(`BEGIN ISOLATION LEVEL READ COMMITTED`)
	b.Queue(`SELECT pg_advisory_xact_lock($1)`, writerLock)
	b.Queue(`SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1`)
	b.Queue(`SELECT last_value, is_called FROM jobs_id_seq`)
	if len(ids) > 0 {
		b.Queue(prefetchJobsSQL, ids)
	}
	if p.dueIDs != nil {
		b.Queue(dueAmongSQL, p.dueIDs, clampNanos(p.dueAt))
	}
	br := p.conn.SendBatch(ctx, b)
	defer func() {
		if cerr := br.Close(); err == nil && cerr != nil {
			err = cerr
		}
		p.broken = p.broken || err != nil
	}()
	if _, err := br.Exec(); err != nil {
		return false, err
	}
	if _, err := br.Exec(); err != nil {
		return false, err
	}
	var (
		seq, last int64
		hash      string
		called    bool
	)
	switch err := br.QueryRow().Scan(&seq, &hash); {
	case errors.Is(err, pgx.ErrNoRows):
		p.head = chainHead{known: true}
	case err != nil:
		return true, fmt.Errorf("audit head: %w", err)
	default:
		p.head = chainHead{known: true, seq: uint64(seq), hash: hash}
	}
	if err := br.QueryRow().Scan(&last, &called); err != nil {
		return true, fmt.Errorf("job id sequence: %w", err)
	}
	if called {
		last++
	}
	p.nextJob, p.seqNext = last, last
	if len(ids) > 0 {
		rows, err := br.Query()
		if err != nil {
			return true, fmt.Errorf("read jobs ahead: %w", err)
		}
		if err := p.keepJobs(ids, rows); err != nil {
			return true, fmt.Errorf("read jobs ahead: %w", err)
		}
	}
	if p.dueIDs != nil {
		rows, err := br.Query()
		if err != nil {
			return true, fmt.Errorf("read due requests ahead: %w", err)
		}
		if p.due, err = p.keepDue(rows); err != nil {
			return true, fmt.Errorf("read due requests ahead: %w", err)
		}
	}
	return true, nil
}

// dueAmongSQL reads those of the requests $1 whose deadline is at or
// before $2, with their documents.
const dueAmongSQL = `SELECT id, doc FROM requests WHERE id = ANY($1) AND deadline <= $2`

// keepDue keeps the documents of the rows of dueAmongSQL (see
// tx.knowRequest) and returns their ids.
func (p *pipe) keepDue(rows pgx.Rows) (map[string]bool, error) {
	return scanDue(rows, func(id string, doc []byte) {
		if _, ok := p.reqs[id]; !ok {
			p.reqs[id] = doc
		}
	})
}

// scanDue returns the ids of the rows of dueAmongSQL, passing each with
// its document to keep.
func scanDue(rows pgx.Rows, keep func(id string, doc []byte)) (map[string]bool, error) {
	due := map[string]bool{}
	var (
		id  string
		doc []byte
	)
	_, err := pgx.ForEachRow(rows, []any{&id, &doc}, func() error {
		due[id] = true
		keep(id, doc)
		return nil
	})
	return due, err
}
