// Small named records (symbot.RecordTx) on PostgreSQL: the reconciler keeps
// its per-group state here, so every replica sees the same record.

package postgres

import (
	"bytes"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/symbot/symbot"
)

var _ symbot.RecordTx = (*tx)(nil)

// Record returns the named record, ok=false when there is none.
func (t *tx) Record(name string) ([]byte, bool, error) {
	if err := t.check("get record"); err != nil {
		return nil, false, err
	}
	var v []byte
	err := t.q.QueryRow(t.ctx, `SELECT value FROM records WHERE name = $1`, name).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, t.db("get record", err)
	}
	return v, true, nil
}

// PutRecord stores (or, with a nil value, deletes) the named record.
func (t *tx) PutRecord(name string, value []byte) error {
	if err := t.checkWrite("put record"); err != nil {
		return err
	}
	if err := symbot.CheckRecordName(name); err != nil {
		return err
	}
	if value == nil {
		return t.write("put record", -1, `DELETE FROM records WHERE name = $1`, name)
	}
	return t.write("put record", -1, `INSERT INTO records (name, value) VALUES ($1, $2)
		ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value`, name, bytes.Clone(value)) // sent later: the caller may reuse value
}
