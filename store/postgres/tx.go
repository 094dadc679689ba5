package postgres

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/symbot/symbot"
)

// querier is what a tx needs of a pgx transaction.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// tx implements symbot.Tx on a pgx transaction.
type tx struct {
	ctx      context.Context
	q        querier
	p        *pipe // the read-write transaction's pipe; nil in View (and Import)
	writable bool
	done     bool
	dbErr    error // the last error the database returned

	// The audit head, once read, when there is no pipe to keep it: only
	// this transaction writes the chain while it holds the writer lock.
	ownHead chainHead
}

// chainHead is the audit head as a transaction last read or wrote it.
type chainHead struct {
	known bool
	seq   uint64
	hash  string
}

// head is where the transaction keeps the audit head: in its pipe, which
// the fns of a group commit share, or in the tx itself.
func (t *tx) head() *chainHead {
	if t.p != nil {
		return &t.p.head
	}
	return &t.ownHead
}

// write runs a statement whose result nobody waits for: a pipe holds it
// back (see pipe), otherwise it is sent now. want is the number of rows it
// must change (-1: any); a different number is an error.
func (t *tx) write(op string, want int64, sql string, args ...any) error {
	if t.p != nil {
		t.p.hold(op, want, sql, args...)
		return nil
	}
	tag, err := t.q.Exec(t.ctx, sql, args...)
	if err != nil {
		return t.db(op, err)
	}
	if want >= 0 && tag.RowsAffected() != want {
		return fmt.Errorf("%s: changed %d rows, want %d", op, tag.RowsAffected(), want)
	}
	return nil
}

// writeRow is write for a row write (see rowWrite): a pipe may send it
// together with others of its kind.
func (t *tx) writeRow(row *rowWrite, key, op string, want int64, sql string, args ...any) error {
	if t.p != nil {
		t.p.holdRow(row, key, op, want, sql, args...)
		return nil
	}
	return t.write(op, want, sql, args...)
}

// holds reports whether this transaction holds the row of job id (read
// FOR UPDATE or inserted by it, and not deleted), so that a change of it
// cannot miss.
func (t *tx) holds(id uint64) bool { return t.p != nil && t.p.held[id] }

var _ symbot.Tx = (*tx)(nil)

func (t *tx) check(op string) error {
	if t.done {
		return fmt.Errorf("%s: transaction already finished", op)
	}
	return nil
}

func (t *tx) checkWrite(op string) error {
	if err := t.check(op); err != nil {
		return err
	}
	if !t.writable {
		return fmt.Errorf("%s: %w", op, errReadOnly)
	}
	return nil
}

// db records a database error so Update can tell a conflict from fn's own
// failure, and wraps it with op.
func (t *tx) db(op string, err error) error {
	if err == nil {
		return nil
	}
	t.dbErr = err
	return fmt.Errorf("%s: %w", op, classify(err))
}

func (t *tx) NextSeq(name string) (uint64, error) {
	if err := t.checkWrite("next sequence"); err != nil {
		return 0, err
	}
	if err := symbot.CheckCounterName(name); err != nil {
		return 0, err
	}
	var n int64
	err := t.q.QueryRow(t.ctx, `INSERT INTO seqs (name, value) VALUES ($1, 1)
		ON CONFLICT (name) DO UPDATE SET value = seqs.value + 1 RETURNING value`, name).Scan(&n)
	return uint64(n), t.db("next sequence", err)
}

// lockSuffix locks the rows a writable transaction reads, so that a claim
// cannot lease a job between its read and its update.
func (t *tx) lockSuffix() string {
	if t.writable {
		return " FOR UPDATE"
	}
	return ""
}

func (t *tx) Request(id string) (*symbot.Request, error) {
	if err := t.check("get request"); err != nil {
		return nil, err
	}
	if t.p != nil {
		if doc, ok := t.p.reqs[id]; ok {
			if doc == nil {
				return nil, fmt.Errorf("request %q: %w", id, symbot.ErrNotFound)
			}
			return decodeRequest(id, doc)
		}
	}
	var doc []byte
	err := t.q.QueryRow(t.ctx, `SELECT doc FROM requests WHERE id = $1`, id).Scan(&doc)
	if errors.Is(err, pgx.ErrNoRows) {
		t.knowRequest(id, nil)
		return nil, fmt.Errorf("request %q: %w", id, symbot.ErrNotFound)
	}
	if err != nil {
		return nil, t.db("get request", err)
	}
	t.knowRequest(id, doc)
	return decodeRequest(id, doc)
}

// knowRequest remembers the stored document of request id (nil: there is
// none) for the rest of a read-write transaction. Every write of a
// request is made under the writer lock, which the transaction holds, so
// what it read stays true until it writes the request itself, and
// PutRequest keeps the copy in step.
func (t *tx) knowRequest(id string, doc []byte) {
	if t.p != nil {
		t.p.reqs[id] = doc
	}
}

// DueAmong returns those of the requests ids whose deadline is at or
// before now, in the order of ids, and reads their documents along
// (symbot.DueAmonger). In a read-write transaction that began with the
// hint for these ids (symbot.ContextWithDeadlines) it needs no round trip,
// unless one of them was written since.
func (t *tx) DueAmong(now time.Time, ids []string) ([]string, error) {
	if err := t.check("due among"); err != nil {
		return nil, err
	}
	var due map[string]bool
	if t.p != nil && t.p.dueIDs != nil && t.p.dueAt.Equal(now) && slices.Equal(t.p.dueIDs, ids) {
		due = t.p.due
	} else {
		rows, err := t.q.Query(t.ctx, dueAmongSQL, ids, clampNanos(now))
		if err != nil {
			return nil, t.db("due among", err)
		}
		if t.p != nil {
			due, err = t.p.keepDue(rows)
		} else {
			due, err = scanDue(rows, func(string, []byte) {})
		}
		if err != nil {
			return nil, t.db("due among", err)
		}
	}
	out := ids[:0:0]
	for _, id := range ids {
		if due[id] {
			out = append(out, id)
		}
	}
	return out, nil
}

// PrefetchRequests reads the requests ids in one round trip, so that the
// Request calls for them that follow in this read-write transaction need
// none (symbot.RequestPrefetcher). Elsewhere it does nothing.
func (t *tx) PrefetchRequests(ids []string) error {
	if err := t.check("prefetch requests"); err != nil {
		return err
	}
	if t.p == nil || len(ids) == 0 {
		return nil
	}
	rows, err := t.q.Query(t.ctx, `SELECT id, doc FROM requests WHERE id = ANY($1)`, ids)
	if err != nil {
		return t.db("prefetch requests", err)
	}
	found := map[string][]byte{}
	var (
		id  string
		doc []byte
	)
	if _, err := pgx.ForEachRow(rows, []any{&id, &doc}, func() error {
		found[id] = doc
		return nil
	}); err != nil {
		return t.db("prefetch requests", err)
	}
	for _, id := range ids {
		t.knowRequest(id, found[id])
	}
	return nil
}

func decodeRequest(id string, doc []byte) (*symbot.Request, error) {
	var r symbot.Request
	if err := json.Unmarshal(doc, &r); err != nil {
		return nil, fmt.Errorf("request %q: decode: %w", id, err)
	}
	return &r, nil
}

func (t *tx) PutRequest(r *symbot.Request) error {
	if err := t.checkWrite("put request"); err != nil {
		return err
	}
	if err := symbot.CheckPutRequest(r); err != nil {
		return err
	}
	doc, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("put request %q: encode: %w", r.ID, err)
	}
	var deadline *int64
	if at, ok := r.Deadline(); ok {
		deadline = nanos(at)
	}
	t.knowRequest(r.ID, doc)
	if t.p != nil && slices.Contains(t.p.dueIDs, r.ID) {
		t.p.dueIDs = nil // the batch read as the transaction began no longer holds
	}
	return t.writeRow(putRequestRows, r.ID, "put request", -1, `INSERT INTO requests (id, requester, state, deadline, doc) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (id) DO UPDATE SET requester = EXCLUDED.requester, state = EXCLUDED.state, deadline = EXCLUDED.deadline, doc = EXCLUDED.doc`,
		r.ID, r.Requester.SlackID, string(r.State), deadline, doc)
}

func (t *tx) requests(op, where string, args ...any) ([]*symbot.Request, error) {
	if err := t.check(op); err != nil {
		return nil, err
	}
	rows, err := t.q.Query(t.ctx, `SELECT id, doc FROM requests WHERE `+where+` ORDER BY id`, args...)
	if err != nil {
		return nil, t.db(op, err)
	}
	var out []*symbot.Request
	for rows.Next() {
		var (
			id  string
			doc []byte
		)
		if err := rows.Scan(&id, &doc); err != nil {
			rows.Close()
			return nil, t.db(op, err)
		}
		r, err := decodeRequest(id, doc)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, t.db(op, err)
	}
	return out, nil
}

func (t *tx) RequestsByRequester(slackID string) ([]*symbot.Request, error) {
	return t.requests("requests by requester", "requester = $1", slackID)
}

// openStatesSQL selects the non-final states; it is the predicate of the
// partial index requests_open (migration 0006), word for word.
const openStatesSQL = `state IN ('pending', 'approved', 'scheduled', 'active')`

// OpenRequests reads the person's non-final requests through the partial
// index requests_open.
func (t *tx) OpenRequests(slackID string) ([]*symbot.Request, error) {
	return t.requests("open requests", "requester = $1 AND "+openStatesSQL, slackID)
}

func (t *tx) RequestsByState(s symbot.State) ([]*symbot.Request, error) {
	return t.requests("requests by state", "state = $1", string(s))
}

func (t *tx) NextDeadline() (string, time.Time, bool, error) {
	if err := t.check("next deadline"); err != nil {
		return "", time.Time{}, false, err
	}
	var (
		id string
		at int64
	)
	err := t.q.QueryRow(t.ctx, `SELECT id, deadline FROM requests WHERE deadline IS NOT NULL ORDER BY deadline, id LIMIT 1`).Scan(&id, &at)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", time.Time{}, false, nil
	}
	if err != nil {
		return "", time.Time{}, false, t.db("next deadline", err)
	}
	return id, fromNanos(&at), true, nil
}

func (t *tx) DueRequests(now time.Time, limit int) ([]string, error) {
	if err := t.check("due requests"); err != nil {
		return nil, err
	}
	var lim *int
	if limit > 0 {
		lim = &limit
	}
	rows, err := t.q.Query(t.ctx, `SELECT id FROM requests WHERE deadline <= $1 ORDER BY deadline, id LIMIT $2`, clampNanos(now), lim)
	if err != nil {
		return nil, t.db("due requests", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return ids, t.db("due requests", err)
}

func scanJob(row pgx.CollectableRow) (symbot.Job, error) { return scanJobInto(row) }

// scanJobInto scans a job's columns (jobCols) and then any extra columns
// into extra.
func scanJobInto(row pgx.CollectableRow, extra ...any) (symbot.Job, error) {
	var (
		j                                  symbot.Job
		id, token                          int64
		kind, event                        string
		attempts                           int32
		notBefore, createdAt, leaseUntil   *int64
		requestID, to, text, lane, lastErr string
	)
	err := row.Scan(append([]any{&id, &kind, &requestID, &event, &to, &text, &lane, &attempts, &notBefore, &lastErr, &j.Alerted, &createdAt, &j.LeaseOwner, &leaseUntil, &token}, extra...)...)
	if err != nil {
		return j, err
	}
	j.ID, j.Kind, j.RequestID, j.Event = uint64(id), symbot.JobKind(kind), requestID, symbot.Event(event)
	j.To, j.Text, j.Lane, j.Attempts, j.LastError = to, text, lane, int(attempts), lastErr
	j.NotBefore, j.CreatedAt, j.LeaseUntil = fromNanos(notBefore), fromNanos(createdAt), fromNanos(leaseUntil)
	j.LeaseToken = uint64(token)
	return j, nil
}

func sortJobs(js []symbot.Job) {
	slices.SortFunc(js, func(a, b symbot.Job) int { return cmp.Compare(a.ID, b.ID) })
}

func (t *tx) AddJob(j *symbot.Job) error {
	if err := t.checkWrite("add job"); err != nil {
		return err
	}
	if err := symbot.CheckNewJob(j); err != nil {
		return err
	}
	if t.p != nil {
		id, err := t.p.jobID(t.ctx)
		if err != nil {
			return t.db("add job", err)
		}
		t.p.holdRow(addJobRows, strconv.FormatInt(id, 10), "add job", -1, `INSERT INTO jobs (id, kind, request_id, event, to_user, text, lane, attempts, not_before, last_error, alerted, created_at, lease_owner, lease_until, lease_token)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`,
			id, string(j.Kind), j.RequestID, string(j.Event), j.To, j.Text, j.Lane, int32(j.Attempts), nanos(j.NotBefore), j.LastError, j.Alerted,
			nanos(j.CreatedAt), j.LeaseOwner, nanos(j.LeaseUntil), int64(j.LeaseToken))
		t.p.held[uint64(id)] = true
		j.ID = uint64(id)
		return nil
	}
	var id int64
	err := t.q.QueryRow(t.ctx, `INSERT INTO jobs (id, kind, request_id, event, to_user, text, lane, attempts, not_before, last_error, alerted, created_at, lease_owner, lease_until, lease_token)
		VALUES (nextval('jobs_id_seq'), $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id`,
		string(j.Kind), j.RequestID, string(j.Event), j.To, j.Text, j.Lane, int32(j.Attempts), nanos(j.NotBefore), j.LastError, j.Alerted,
		nanos(j.CreatedAt), j.LeaseOwner, nanos(j.LeaseUntil), int64(j.LeaseToken)).Scan(&id)
	if err != nil {
		return t.db("add job", err)
	}
	j.ID = uint64(id)
	return nil
}

func (t *tx) Job(id uint64) (*symbot.Job, error) {
	if err := t.check("get job"); err != nil {
		return nil, err
	}
	if t.p != nil {
		return t.heldJob(id)
	}
	rows, err := t.q.Query(t.ctx, `SELECT `+jobCols+` FROM jobs WHERE id = $1`+t.lockSuffix(), int64(id))
	if err != nil {
		return nil, t.db("get job", err)
	}
	j, err := pgx.CollectExactlyOneRow(rows, scanJob)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("job %d: %w", id, symbot.ErrNotFound)
	}
	if err != nil {
		return nil, t.db("get job", err)
	}
	return &j, nil
}

// heldJob reads and locks job id in a read-write transaction, and with it
// the document of its request, which the caller nearly always reads next
// (see knowRequest): one round trip for both.
func (t *tx) heldJob(id uint64) (*symbot.Job, error) {
	if j, ok := t.p.jobs[id]; ok {
		if j == nil {
			return nil, fmt.Errorf("job %d: %w", id, symbot.ErrNotFound)
		}
		jj := *j
		return &jj, nil
	}
	rows, err := t.q.Query(t.ctx, `SELECT `+jobCols+`, (SELECT r.doc FROM requests r WHERE r.id = jobs.request_id) FROM jobs WHERE id = $1 FOR UPDATE`, int64(id))
	if err != nil {
		return nil, t.db("get job", err)
	}
	var doc []byte
	j, err := pgx.CollectExactlyOneRow(rows, func(row pgx.CollectableRow) (symbot.Job, error) {
		return scanJobInto(row, &doc)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		delete(t.p.held, id)
		return nil, fmt.Errorf("job %d: %w", id, symbot.ErrNotFound)
	}
	if err != nil {
		return nil, t.db("get job", err)
	}
	t.p.held[id] = true // locked FOR UPDATE until the transaction ends
	if _, ok := t.p.reqs[j.RequestID]; !ok {
		t.knowRequest(j.RequestID, doc)
	}
	return &j, nil
}

func (t *tx) UpdateJob(j *symbot.Job) error {
	if err := t.checkWrite("update job"); err != nil {
		return err
	}
	if err := symbot.CheckJobUpdate(j); err != nil {
		return err
	}
	const q = `UPDATE jobs SET kind = $2, request_id = $3, event = $4, to_user = $5, text = $6, lane = $7, attempts = $8,
		not_before = $9, last_error = $10, alerted = $11, created_at = $12, lease_owner = $13, lease_until = $14, lease_token = $15 WHERE id = $1`
	args := []any{int64(j.ID), string(j.Kind), j.RequestID, string(j.Event), j.To, j.Text, j.Lane, int32(j.Attempts), nanos(j.NotBefore), j.LastError, j.Alerted,
		nanos(j.CreatedAt), j.LeaseOwner, nanos(j.LeaseUntil), int64(j.LeaseToken)}
	if t.holds(j.ID) {
		// The row is this transaction's: the update cannot miss.
		delete(t.p.jobs, j.ID) // read it back if asked
		t.p.holdRow(updateJobRows, strconv.FormatUint(j.ID, 10), "update job", 1, q, args...)
		return nil
	}
	tag, err := t.q.Exec(t.ctx, q, args...)
	if err != nil {
		return t.db("update job", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("update job %d: %w", j.ID, symbot.ErrNotFound)
	}
	return nil
}

func (t *tx) DeleteJob(id uint64) error {
	if err := t.checkWrite("delete job"); err != nil {
		return err
	}
	if t.holds(id) {
		delete(t.p.held, id)
		t.p.jobs[id] = nil
		t.p.holdRow(deleteJobRows, strconv.FormatUint(id, 10), "delete job", 1, `DELETE FROM jobs WHERE id = $1`, int64(id))
		return nil
	}
	tag, err := t.q.Exec(t.ctx, `DELETE FROM jobs WHERE id = $1`, int64(id))
	if err != nil {
		return t.db("delete job", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("delete job %d: %w", id, symbot.ErrNotFound)
	}
	return nil
}

// JobStats counts the jobs in one aggregate query; no job row leaves the
// database.
func (t *tx) JobStats() (symbot.JobStats, error) {
	if err := t.check("job stats"); err != nil {
		return symbot.JobStats{}, err
	}
	var st symbot.JobStats
	err := t.q.QueryRow(t.ctx, `SELECT count(*), count(*) FILTER (WHERE kind = $1 AND attempts > 0) FROM jobs`,
		string(symbot.JobRevoke)).Scan(&st.Pending, &st.FailingRevokes)
	return st, t.db("job stats", err)
}

func (t *tx) Jobs() ([]symbot.Job, error) {
	if err := t.check("list jobs"); err != nil {
		return nil, err
	}
	rows, err := t.q.Query(t.ctx, `SELECT `+jobCols+` FROM jobs ORDER BY id`)
	if err != nil {
		return nil, t.db("list jobs", err)
	}
	js, err := pgx.CollectRows(rows, scanJob)
	return js, t.db("list jobs", err)
}

func (t *tx) AppendAudit(e *symbot.AuditEntry) error {
	if err := t.checkWrite("append audit"); err != nil {
		return err
	}
	h := t.head()
	if !h.known {
		seq, hash, err := t.AuditHead()
		if err != nil {
			return err
		}
		h.seq, h.hash, h.known = seq, hash, true
	}
	if err := symbot.CheckAuditAppend(e, h.seq, h.hash); err != nil {
		return err
	}
	err := t.writeRow(appendAuditRows, strconv.FormatUint(e.Seq, 10), "append audit", -1, `INSERT INTO audit (seq, at, request_id, actor, action, detail, prev_hash, key_id, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		int64(e.Seq), auditNanos(e.At), e.RequestID, e.Actor, e.Action, e.Detail, e.PrevHash, e.Key, e.Hash)
	if err != nil {
		h.known = false
		return err
	}
	h.seq, h.hash = e.Seq, e.Hash
	return nil
}

// auditNanos stores At as the same UnixNano the hash covers, so a read-back
// entry hashes the same even outside the clamped range.
func auditNanos(at time.Time) *int64 {
	if at.IsZero() {
		return nil
	}
	n := at.UnixNano()
	return &n
}

func (t *tx) Audit(after uint64, limit int) ([]symbot.AuditEntry, error) {
	if err := t.check("read audit"); err != nil {
		return nil, err
	}
	if err := symbot.CheckAuditPage(limit); err != nil {
		return nil, err
	}
	rows, err := t.q.Query(t.ctx, `SELECT seq, at, request_id, actor, action, detail, prev_hash, key_id, hash FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2`, int64(after), limit)
	if err != nil {
		return nil, t.db("read audit", err)
	}
	es, err := pgx.CollectRows(rows, scanAudit)
	return es, t.db("read audit", err)
}

func scanAudit(row pgx.CollectableRow) (symbot.AuditEntry, error) {
	var (
		e   symbot.AuditEntry
		seq int64
		at  *int64
	)
	err := row.Scan(&seq, &at, &e.RequestID, &e.Actor, &e.Action, &e.Detail, &e.PrevHash, &e.Key, &e.Hash)
	e.Seq = uint64(seq)
	if at != nil {
		e.At = time.Unix(0, *at).UTC()
	}
	return e, err
}

func (t *tx) AuditHead() (uint64, string, error) {
	if err := t.check("audit head"); err != nil {
		return 0, "", err
	}
	if h := t.head(); h.known {
		return h.seq, h.hash, nil
	}
	var (
		seq  int64
		hash string
	)
	err := t.q.QueryRow(t.ctx, `SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1`).Scan(&seq, &hash)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, "", nil
	}
	if err != nil {
		return 0, "", t.db("audit head", err)
	}
	return uint64(seq), hash, nil
}

func (t *tx) SinkCursor(sink string) (uint64, error) {
	if err := t.check("sink cursor"); err != nil {
		return 0, err
	}
	var seq int64
	err := t.q.QueryRow(t.ctx, `SELECT seq FROM sink_cursors WHERE name = $1`, sink).Scan(&seq)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, t.db("sink cursor", err)
	}
	return uint64(seq), nil
}

func (t *tx) SetSinkCursor(sink string, seq uint64) error {
	if err := t.checkWrite("set sink cursor"); err != nil {
		return err
	}
	if err := symbot.CheckSinkName(sink); err != nil {
		return err
	}
	return t.write("set sink cursor", -1, `INSERT INTO sink_cursors (name, seq) VALUES ($1, $2)
		ON CONFLICT (name) DO UPDATE SET seq = GREATEST(sink_cursors.seq, EXCLUDED.seq)`, sink, int64(seq))
}

func (t *tx) Identity(slackID string) (symbot.Identity, bool, error) {
	if err := t.check("get identity"); err != nil {
		return symbot.Identity{}, false, err
	}
	rows, err := t.q.Query(t.ctx, `SELECT `+identityCols+` FROM identities WHERE slack_id = $1`, slackID)
	if err != nil {
		return symbot.Identity{}, false, t.db("get identity", err)
	}
	id, err := pgx.CollectExactlyOneRow(rows, scanIdentity)
	if errors.Is(err, pgx.ErrNoRows) {
		return symbot.Identity{}, false, nil
	}
	if err != nil {
		return symbot.Identity{}, false, t.db("get identity", err)
	}
	return id, true, nil
}

// identityCols are the columns scanIdentity reads, in order.
const identityCols = `slack_id, email, okta_user_id, okta_login, cached_at, bound_at, via, conflict_okta_user_id, conflict_okta_login, conflict_email, conflict_at`

func scanIdentity(row pgx.CollectableRow) (symbot.Identity, error) {
	var (
		id                          symbot.Identity
		cached, bound, conflictedAt *int64
	)
	err := row.Scan(&id.SlackID, &id.Email, &id.OktaUserID, &id.OktaLogin, &cached, &bound, &id.Via,
		&id.ConflictOktaUserID, &id.ConflictOktaLogin, &id.ConflictEmail, &conflictedAt)
	id.CachedAt, id.BoundAt, id.ConflictAt = fromNanos(cached), fromNanos(bound), fromNanos(conflictedAt)
	return id, err
}

func (t *tx) PutIdentity(id symbot.Identity) error {
	if err := t.checkWrite("put identity"); err != nil {
		return err
	}
	if err := symbot.CheckIdentity(id); err != nil {
		return err
	}
	return t.write("put identity", -1, `INSERT INTO identities (`+identityCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
		ON CONFLICT (slack_id) DO UPDATE SET email = EXCLUDED.email, okta_user_id = EXCLUDED.okta_user_id, okta_login = EXCLUDED.okta_login,
			cached_at = EXCLUDED.cached_at, bound_at = EXCLUDED.bound_at, via = EXCLUDED.via,
			conflict_okta_user_id = EXCLUDED.conflict_okta_user_id, conflict_okta_login = EXCLUDED.conflict_okta_login,
			conflict_email = EXCLUDED.conflict_email, conflict_at = EXCLUDED.conflict_at`,
		id.SlackID, id.Email, id.OktaUserID, id.OktaLogin, nanos(id.CachedAt), nanos(id.BoundAt), id.Via,
		id.ConflictOktaUserID, id.ConflictOktaLogin, id.ConflictEmail, nanos(id.ConflictAt))
}

func (t *tx) DeleteIdentity(slackID string) error {
	if err := t.checkWrite("delete identity"); err != nil {
		return err
	}
	return t.write("delete identity", -1, `DELETE FROM identities WHERE slack_id = $1`, slackID)
}

func (t *tx) Identities(after string, limit int) ([]symbot.Identity, error) {
	if err := t.check("read identities"); err != nil {
		return nil, err
	}
	if err := symbot.CheckIdentityPage(limit); err != nil {
		return nil, err
	}
	rows, err := t.q.Query(t.ctx, `SELECT `+identityCols+` FROM identities WHERE slack_id > $1 ORDER BY slack_id LIMIT $2`, after, limit)
	if err != nil {
		return nil, t.db("read identities", err)
	}
	ids, err := pgx.CollectRows(rows, scanIdentity)
	if err != nil {
		return nil, t.db("read identities", err)
	}
	return ids, nil
}

// dump reads every record (for Backup).
func (t *tx) dump() (Dump, error) {
	d := Dump{SchemaVersion: SchemaVersion()}
	var err error
	if d.Seqs, err = namedValues[uint64](t, `SELECT name, value FROM seqs`); err != nil {
		return d, err
	}
	if d.Requests, err = t.requests("dump requests", "true"); err != nil {
		return d, err
	}
	if d.Jobs, err = t.Jobs(); err != nil {
		return d, err
	}
	var last int64
	if err := t.q.QueryRow(t.ctx, `SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM jobs_id_seq`).Scan(&last); err != nil {
		return d, err
	}
	d.LastJobID = uint64(last)
	for after := uint64(0); ; {
		page, err := t.Audit(after, 1000)
		if err != nil {
			return d, err
		}
		if len(page) == 0 {
			break
		}
		d.Audit = append(d.Audit, page...)
		after = page[len(page)-1].Seq
	}
	rows, err := t.q.Query(t.ctx, `SELECT `+identityCols+` FROM identities ORDER BY slack_id`)
	if err != nil {
		return d, err
	}
	if d.Identities, err = pgx.CollectRows(rows, scanIdentity); err != nil {
		return d, err
	}
	if d.SinkCursors, err = namedValues[uint64](t, `SELECT name, seq FROM sink_cursors`); err != nil {
		return d, err
	}
	d.Records, err = namedValues[[]byte](t, `SELECT name, value FROM records`)
	return d, err
}

// namedValues reads the (name, value) rows of query into a map.
func namedValues[V any](t *tx, query string) (map[string]V, error) {
	rows, err := t.q.Query(t.ctx, query)
	if err != nil {
		return nil, err
	}
	m := map[string]V{}
	var (
		name string
		v    V
	)
	_, err = pgx.ForEachRow(rows, []any{&name, &v}, func() error {
		m[name] = v
		return nil
	})
	return m, err
}
