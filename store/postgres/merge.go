// Set-based flushes: the held writes of a pipe that do the same thing to
// different rows (the request upserts, job inserts and audit appends of a
// deadline batch or of a group of job completions) go to the server as one
// statement over arrays, not one statement per row.

package postgres

import (
	"fmt"
	"strconv"
)

// rowWrite is a kind of held write that changes one row, named by its key
// within table, and nothing else; writes of one kind to different rows can
// be sent as one statement (sql, over one array per argument, of the SQL
// types types, one element per row).
type rowWrite struct {
	table string
	types []string // "int8" (int64 or *int64, NULL for nil), "int4", "text" (string or []byte), "bool"
	sql   string
}

// The row writes a transaction holds back; each one's single-row statement
// is in tx.go, next to the method that holds it.
var (
	putRequestRows = &rowWrite{table: "requests", types: []string{"text", "text", "text", "int8", "text"},
		sql: `INSERT INTO requests (id, requester, state, deadline, doc)
		SELECT id, requester, state, deadline, doc::jsonb FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::text[]) AS u(id, requester, state, deadline, doc)
		ON CONFLICT (id) DO UPDATE SET requester = EXCLUDED.requester, state = EXCLUDED.state, deadline = EXCLUDED.deadline, doc = EXCLUDED.doc`}
	addJobRows = &rowWrite{table: "jobs", types: jobArgTypes,
		sql: `INSERT INTO jobs (id, kind, request_id, event, to_user, text, lane, attempts, not_before, last_error, alerted, created_at, lease_owner, lease_until, lease_token)
		SELECT * FROM unnest(` + arrayParams(jobArgTypes) + `)`}
	updateJobRows = &rowWrite{table: "jobs", types: jobArgTypes,
		sql: `UPDATE jobs SET kind = u.kind, request_id = u.request_id, event = u.event, to_user = u.to_user, text = u.text, lane = u.lane, attempts = u.attempts,
		not_before = u.not_before, last_error = u.last_error, alerted = u.alerted, created_at = u.created_at, lease_owner = u.lease_owner, lease_until = u.lease_until, lease_token = u.lease_token
		FROM unnest(` + arrayParams(jobArgTypes) + `) AS u(id, kind, request_id, event, to_user, text, lane, attempts, not_before, last_error, alerted, created_at, lease_owner, lease_until, lease_token)
		WHERE jobs.id = u.id`}
	deleteJobRows = &rowWrite{table: "jobs", types: []string{"int8"},
		sql: `DELETE FROM jobs WHERE id = ANY($1::int8[])`}
	appendAuditRows = &rowWrite{table: "audit", types: []string{"int8", "int8", "text", "text", "text", "text", "text", "text", "text"},
		sql: `INSERT INTO audit (seq, at, request_id, actor, action, detail, prev_hash, key_id, hash)
		SELECT * FROM unnest($1::int8[], $2::int8[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[])`}
)

// jobArgTypes are the types of a job row's columns, id first, in the order
// of the single-row statements of AddJob and UpdateJob.
var jobArgTypes = []string{"int8", "text", "text", "text", "text", "text", "text", "int4", "int8", "text", "bool", "int8", "text", "int8", "int8"}

// arrayParams is "$1::t1[], $2::t2[], ..." for types.
func arrayParams(types []string) string {
	s := ""
	for i, t := range types {
		if i > 0 {
			s += ", "
		}
		s += "$" + strconv.Itoa(i+1) + "::" + t + "[]"
	}
	return s
}

// merge returns the statements that do what ws do, in order, with the
// row writes of one kind joined into one statement where that keeps every
// row's writes in their order: a write joins the last statement of its kind
// unless a statement after that one (or that one itself) already touches
// its row. A write that is not a row write is a barrier: nothing moves
// across it.
func merge(ws []heldWrite) ([]heldWrite, error) {
	if len(ws) < 2 {
		return ws, nil
	}
	type rowKey struct{ table, key string }
	out := make([]heldWrite, 0, len(ws))
	rows := map[int][][]any{}   // index in out -> the args of each row joined there
	last := map[rowKey]int{}    // the last statement in out that touches a row
	open := map[*rowWrite]int{} // the last statement of each kind since the last barrier
	for _, w := range ws {
		if w.row == nil {
			out = append(out, w)
			clear(open)
			continue
		}
		k := rowKey{w.row.table, w.key}
		if i, ok := open[w.row]; ok {
			if j, touched := last[k]; !touched || j < i {
				if rows[i] == nil {
					rows[i] = [][]any{out[i].args}
				}
				rows[i] = append(rows[i], w.args)
				if out[i].want >= 0 && w.want >= 0 {
					out[i].want += w.want
				} else {
					out[i].want = -1
				}
				last[k] = i
				continue
			}
		}
		out = append(out, w)
		open[w.row] = len(out) - 1
		last[k] = len(out) - 1
	}
	for i, rs := range rows {
		args, err := out[i].row.arrays(rs)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", out[i].op, err)
		}
		out[i].op = fmt.Sprintf("%s (%d rows)", out[i].op, len(rs))
		out[i].sql = out[i].row.sql
		out[i].args = args
	}
	return out, nil
}

// arrays turns rows of single-row arguments into one array per argument.
func (r *rowWrite) arrays(rows [][]any) (out []any, err error) {
	out = make([]any, len(r.types))
	bad := func(c int, v any) error {
		return fmt.Errorf("argument %d is a %T, not %s", c+1, v, r.types[c])
	}
	for c, typ := range r.types {
		switch typ {
		case "int8":
			a := make([]*int64, len(rows))
			for i, row := range rows {
				switch v := row[c].(type) {
				case int64:
					a[i] = &v
				case *int64:
					a[i] = v
				default:
					return nil, bad(c, v)
				}
			}
			out[c] = a
		case "int4":
			if out[c], err = column[int32](rows, c, bad); err != nil {
				return nil, err
			}
		case "text":
			a := make([]string, len(rows))
			for i, row := range rows {
				switch v := row[c].(type) {
				case string:
					a[i] = v
				case []byte:
					a[i] = string(v)
				default:
					return nil, bad(c, v)
				}
			}
			out[c] = a
		case "bool":
			if out[c], err = column[bool](rows, c, bad); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("argument %d has the unknown type %s", c+1, typ)
		}
	}
	return out, nil
}

// column is argument c of each row, which must be a T.
func column[T any](rows [][]any, c int, bad func(int, any) error) ([]T, error) {
	a := make([]T, len(rows))
	for i, row := range rows {
		v, ok := row[c].(T)
		if !ok {
			return nil, bad(c, row[c])
		}
		a[i] = v
	}
	return a, nil
}
