package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/symbot/symbot"
)

// ErrNotEmpty is returned by Import when the database already holds symbot
// data.
var ErrNotEmpty = errors.New("database is not empty")

// Records is everything Import copies in: the contents of another store.
type Records struct {
	Seqs      map[string]uint64
	Requests  []*symbot.Request
	Jobs      []symbot.Job // leases are dropped: the jobs run again at once
	LastJobID uint64       // the next job gets a higher id
	Audit     []symbot.AuditEntry
	AuditHead uint64 // the source's recorded head (0: not checked)
	AuditHash string
	// AuditKeys verify entries sealed with a key (the source's and the
	// target's audit keys are the same: the key lives outside both).
	AuditKeys   []*symbot.AuditKey
	Identities  []symbot.Identity
	SinkCursors map[string]uint64 // audit sink name -> the seq it has
	Records     map[string][]byte // named records (symbot.RecordTx)
}

// ImportStats counts what Import copied.
type ImportStats struct {
	Requests, Jobs, Audit, Identities, Seqs, SinkCursors, Records int
}

// Import copies recs into an empty database in one transaction, then reads
// the audit chain back and verifies it (links, hashes and the source's
// head). It refuses a database that already holds any symbot record
// (ErrNotEmpty), and writes nothing when verification fails.
func (s *Store) Import(ctx context.Context, recs *Records) (ImportStats, error) {
	var st ImportStats
	if err := symbot.VerifyAudit(recs.Audit, recs.AuditHead, recs.AuditHash, recs.AuditKeys...); err != nil {
		return st, fmt.Errorf("import: the source's audit chain does not verify, nothing copied: %w", err)
	}
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(ptx pgx.Tx) error {
		if _, err := ptx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, writerLock); err != nil {
			return fmt.Errorf("take the writer lock: %w", err)
		}
		var used bool
		err := ptx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM requests) OR EXISTS (SELECT 1 FROM jobs) OR EXISTS (SELECT 1 FROM audit)
			OR EXISTS (SELECT 1 FROM identities) OR EXISTS (SELECT 1 FROM seqs) OR EXISTS (SELECT 1 FROM sink_cursors)
			OR EXISTS (SELECT 1 FROM records)`).Scan(&used)
		if err != nil {
			return err
		}
		if used {
			return ErrNotEmpty
		}
		t := &tx{ctx: ctx, q: ptx, writable: true}
		for name, v := range recs.Seqs {
			if _, err := ptx.Exec(ctx, `INSERT INTO seqs (name, value) VALUES ($1, $2)`, name, int64(v)); err != nil {
				return fmt.Errorf("counter %s: %w", name, err)
			}
			st.Seqs++
		}
		var rows [][]any
		for _, r := range recs.Requests {
			doc, err := json.Marshal(r)
			if err != nil {
				return fmt.Errorf("request %s: encode: %w", r.ID, err)
			}
			var deadline *int64
			if at, ok := r.Deadline(); ok {
				deadline = nanos(at)
			}
			rows = append(rows, []any{r.ID, r.Requester.SlackID, string(r.State), deadline, doc})
		}
		n, err := ptx.CopyFrom(ctx, pgx.Identifier{"requests"}, []string{"id", "requester", "state", "deadline", "doc"}, pgx.CopyFromRows(rows))
		if err != nil {
			return fmt.Errorf("copy requests: %w", err)
		}
		st.Requests = int(n)
		rows = nil
		last := recs.LastJobID
		for _, j := range recs.Jobs {
			last = max(last, j.ID)
			rows = append(rows, []any{int64(j.ID), string(j.Kind), j.RequestID, string(j.Event), j.To, j.Text, j.Lane, int32(j.Attempts),
				nanos(j.NotBefore), j.LastError, j.Alerted, nanos(j.CreatedAt), "", nil, int64(0)})
		}
		n, err = ptx.CopyFrom(ctx, pgx.Identifier{"jobs"}, []string{"id", "kind", "request_id", "event", "to_user", "text", "lane", "attempts",
			"not_before", "last_error", "alerted", "created_at", "lease_owner", "lease_until", "lease_token"}, pgx.CopyFromRows(rows))
		if err != nil {
			return fmt.Errorf("copy jobs: %w", err)
		}
		st.Jobs = int(n)
		if last > 0 {
			if _, err := ptx.Exec(ctx, `SELECT setval('jobs_id_seq', $1)`, int64(last)); err != nil {
				return fmt.Errorf("set the job id counter: %w", err)
			}
		}
		rows = nil
		for _, e := range recs.Audit {
			rows = append(rows, []any{int64(e.Seq), auditNanos(e.At), e.RequestID, e.Actor, e.Action, e.Detail, e.PrevHash, e.Key, e.Hash})
		}
		n, err = ptx.CopyFrom(ctx, pgx.Identifier{"audit"}, []string{"seq", "at", "request_id", "actor", "action", "detail", "prev_hash", "key_id", "hash"}, pgx.CopyFromRows(rows))
		if err != nil {
			return fmt.Errorf("copy audit: %w", err)
		}
		st.Audit = int(n)
		for _, id := range recs.Identities {
			if err := t.PutIdentity(id); err != nil {
				return err
			}
			st.Identities++
		}
		for name, seq := range recs.SinkCursors {
			if err := t.SetSinkCursor(name, seq); err != nil {
				return err
			}
			st.SinkCursors++
		}
		for name, v := range recs.Records {
			if err := t.PutRecord(name, v); err != nil {
				return err
			}
			st.Records++
		}
		// Verify what arrived, read back from the database page by page.
		chain := symbot.AuditChain{Keys: recs.AuditKeys}
		var after uint64
		for {
			page, err := t.Audit(after, 1000)
			if err != nil {
				return err
			}
			if len(page) == 0 {
				break
			}
			for i := range page {
				if err := chain.Next(&page[i]); err != nil {
					return fmt.Errorf("the copied audit chain does not verify: %w", err)
				}
			}
			after = page[len(page)-1].Seq
		}
		seq, hash, err := t.AuditHead()
		if err != nil {
			return err
		}
		if err := chain.End(recs.AuditHead, recs.AuditHash); err != nil {
			return fmt.Errorf("the copied audit chain does not verify: %w", err)
		}
		if len(recs.Audit) > 0 && (seq != recs.Audit[len(recs.Audit)-1].Seq || hash != recs.Audit[len(recs.Audit)-1].Hash) {
			return fmt.Errorf("the copied audit chain ends at %d, the source's at %d", seq, recs.Audit[len(recs.Audit)-1].Seq)
		}
		return nil
	})
	if err != nil {
		return ImportStats{}, fmt.Errorf("import: %w", classify(err))
	}
	return st, nil
}
