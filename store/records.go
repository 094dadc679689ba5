// The audit chain, the audit sinks' delivery cursors, the identity cache and
// named records.

package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"

	"github.com/symbot/symbot"
)

func (t *tx) AppendAudit(e *symbot.AuditEntry) error {
	if err := t.checkWrite("append audit"); err != nil {
		return err
	}
	seq, hash := auditHead(t.tx)
	if err := symbot.CheckAuditAppend(e, seq, hash); err != nil {
		return err
	}
	v, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("append audit: encode: %w", err)
	}
	if err := t.rput(jAudit, u64(e.Seq), v); err != nil {
		return fmt.Errorf("append audit %d: %w", e.Seq, err)
	}
	head := append(u64(e.Seq), e.Hash...)
	if err := t.b(bucketMeta).Put(keyAuditHead, head); err != nil {
		return fmt.Errorf("append audit %d: record head: %w", e.Seq, err)
	}
	return nil
}

// Audit returns the stored entries as they are on disk (their recorded
// Seq, not the key's), so symbot.VerifyAudit sees moved entries.
func (t *tx) Audit(after uint64, limit int) ([]symbot.AuditEntry, error) {
	if err := t.check(); err != nil {
		return nil, fmt.Errorf("read audit: %w", err)
	}
	if err := symbot.CheckAuditPage(limit); err != nil {
		return nil, err
	}
	if after == math.MaxUint64 {
		return nil, nil // nothing comes after (after+1 would wrap to the first)
	}
	var out []symbot.AuditEntry
	c, err := t.rcursor(jAudit)
	if err != nil {
		return nil, fmt.Errorf("read audit: %w", err)
	}
	for k, v := c.seek(u64(after + 1)); k != nil && len(out) < limit; k, v = c.next() {
		var e symbot.AuditEntry
		if err := json.Unmarshal(v, &e); err != nil {
			return nil, fmt.Errorf("read audit: entry %d is damaged (%v): the audit log was altered; restore it from a backup", binary.BigEndian.Uint64(k), err)
		}
		out = append(out, e)
	}
	return out, nil
}

func (t *tx) AuditHead() (uint64, string, error) {
	if err := t.check(); err != nil {
		return 0, "", fmt.Errorf("audit head: %w", err)
	}
	seq, hash := auditHead(t.tx)
	return seq, hash, nil
}

func (t *tx) SinkCursor(sink string) (uint64, error) {
	if err := t.check(); err != nil {
		return 0, fmt.Errorf("sink cursor: %w", err)
	}
	v := t.b(bucketSinkCursor).Get([]byte(sink))
	if v == nil {
		return 0, nil
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("sink cursor %s: malformed (%d bytes)", sink, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

func (t *tx) SetSinkCursor(sink string, seq uint64) error {
	if err := t.checkWrite("set sink cursor"); err != nil {
		return err
	}
	if err := symbot.CheckSinkName(sink); err != nil {
		return err
	}
	cur, err := t.SinkCursor(sink)
	if err != nil {
		return err
	}
	if seq <= cur {
		return nil
	}
	if err := t.b(bucketSinkCursor).Put([]byte(sink), u64(seq)); err != nil {
		return fmt.Errorf("set sink cursor %s: %w", sink, err)
	}
	return nil
}

func (t *tx) Identity(slackID string) (symbot.Identity, bool, error) {
	if err := t.check(); err != nil {
		return symbot.Identity{}, false, fmt.Errorf("get identity: %w", err)
	}
	v, err := t.rget(jIdentity, []byte(slackID))
	if err != nil {
		return symbot.Identity{}, false, fmt.Errorf("get identity: %w", err)
	}
	if v == nil {
		return symbot.Identity{}, false, nil
	}
	var id symbot.Identity
	if err := json.Unmarshal(v, &id); err != nil {
		return symbot.Identity{}, false, fmt.Errorf("identity %s: decode: %w", slackID, err)
	}
	return id, true, nil
}

func (t *tx) PutIdentity(id symbot.Identity) error {
	if err := t.checkWrite("put identity"); err != nil {
		return err
	}
	if err := symbot.CheckIdentity(id); err != nil {
		return err
	}
	v, err := json.Marshal(id)
	if err != nil {
		return fmt.Errorf("put identity %s: encode: %w", id.SlackID, err)
	}
	if err := t.rput(jIdentity, []byte(id.SlackID), v); err != nil {
		return fmt.Errorf("put identity %s: %w", id.SlackID, err)
	}
	return nil
}

func (t *tx) DeleteIdentity(slackID string) error {
	if err := t.checkWrite("delete identity"); err != nil {
		return err
	}
	if err := t.rdel(jIdentity, []byte(slackID)); err != nil {
		return fmt.Errorf("delete identity %s: %w", slackID, err)
	}
	return nil
}

func (t *tx) Identities(after string, limit int) ([]symbot.Identity, error) {
	if err := t.check(); err != nil {
		return nil, fmt.Errorf("read identities: %w", err)
	}
	if err := symbot.CheckIdentityPage(limit); err != nil {
		return nil, err
	}
	var out []symbot.Identity
	c, err := t.rcursor(jIdentity)
	if err != nil {
		return nil, fmt.Errorf("read identities: %w", err)
	}
	k, v := c.seek([]byte(after))
	if k != nil && string(k) == after {
		k, v = c.next()
	}
	for ; k != nil && len(out) < limit; k, v = c.next() {
		var id symbot.Identity
		if err := json.Unmarshal(v, &id); err != nil {
			return nil, fmt.Errorf("identity %s: decode: %w", k, err)
		}
		out = append(out, id)
	}
	return out, nil
}

var _ symbot.RecordTx = (*tx)(nil)

// Record returns a copy of the named record.
func (t *tx) Record(name string) ([]byte, bool, error) {
	if err := t.check(); err != nil {
		return nil, false, fmt.Errorf("get record: %w", err)
	}
	v := t.b(bucketRecords).Get([]byte(name))
	if v == nil {
		return nil, false, nil
	}
	return bytes.Clone(v), true, nil
}

// PutRecord stores (or, with a nil value, deletes) the named record.
func (t *tx) PutRecord(name string, value []byte) error {
	if err := t.checkWrite("put record"); err != nil {
		return err
	}
	if err := symbot.CheckRecordName(name); err != nil {
		return err
	}
	var err error
	if value == nil {
		err = t.b(bucketRecords).Delete([]byte(name))
	} else {
		err = t.b(bucketRecords).Put([]byte(name), bytes.Clone(value)) // bbolt keeps value until the commit
	}
	if err != nil {
		return fmt.Errorf("put record %s: %w", name, err)
	}
	return nil
}
