// Export: a store's whole content as plain values, for copying it to another
// store (symbot migrate --from).

package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"

	"github.com/symbot/symbot"
	bolt "go.etcd.io/bbolt"
)

// Export is every record of a store, read from one transaction: what
// `symbot migrate --from` copies to another store.
type Export struct {
	Seqs       map[string]uint64
	Requests   []*symbot.Request // in ID order
	Jobs       []symbot.Job      // in ID order
	LastJobID  uint64            // the job id counter (ids are never reused)
	Audit      []symbot.AuditEntry
	AuditHead  uint64 // the recorded head, to verify the chain against
	AuditHash  string
	Identities []symbot.Identity
	// SinkCursors are the audit sinks' delivery cursors (sink name -> the
	// seq it has): without them every sink ships the whole chain again.
	SinkCursors map[string]uint64
	// Records are the named records (symbot.RecordTx): the reconciler's
	// standing members and alerts sent, a pending restore mark.
	Records map[string][]byte
}

// Export reads every record in one read transaction.
func (s *Store) Export(ctx context.Context) (*Export, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("export store: %w", err)
	}
	if s.unreadable != nil {
		return nil, s.unreadable
	}
	x := &Export{Seqs: map[string]uint64{}, SinkCursors: map[string]uint64{}, Records: map[string][]byte{}}
	err := s.db.View(func(btx *bolt.Tx) error {
		t := s.txOf(btx)
		if err := btx.Bucket(bucketSeq).ForEach(func(k, v []byte) error {
			if len(v) != 8 {
				return fmt.Errorf("counter %q: malformed value", k)
			}
			x.Seqs[string(k)] = binary.BigEndian.Uint64(v)
			return nil
		}); err != nil {
			return err
		}
		rc, err := t.rcursor(jRequests)
		if err != nil {
			return err
		}
		for k, v := rc.first(); k != nil; k, v = rc.next() {
			var r symbot.Request
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("request %s: decode: %w", k, err)
			}
			x.Requests = append(x.Requests, &r)
		}
		js, err := t.Jobs()
		if err != nil {
			return err
		}
		x.Jobs = js
		x.LastJobID = btx.Bucket(bucketJobs).Sequence()
		for {
			page, err := t.Audit(uint64(len(x.Audit)), 1000)
			if err != nil {
				return err
			}
			if len(page) == 0 {
				break
			}
			x.Audit = append(x.Audit, page...)
		}
		x.AuditHead, x.AuditHash = auditHead(btx)
		ic, err := t.rcursor(jIdentity)
		if err != nil {
			return err
		}
		for k, v := ic.first(); k != nil; k, v = ic.next() {
			var id symbot.Identity
			if err := json.Unmarshal(v, &id); err != nil {
				return fmt.Errorf("identity %s: decode: %w", k, err)
			}
			x.Identities = append(x.Identities, id)
		}
		if err := btx.Bucket(bucketSinkCursor).ForEach(func(k, v []byte) error {
			if len(v) != 8 {
				return fmt.Errorf("sink cursor %s: malformed (%d bytes)", k, len(v))
			}
			x.SinkCursors[string(k)] = binary.BigEndian.Uint64(v)
			return nil
		}); err != nil {
			return err
		}
		return btx.Bucket(bucketRecords).ForEach(func(k, v []byte) error {
			x.Records[string(k)] = bytes.Clone(v)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("export store %s: %w", s.path, err)
	}
	return x, nil
}
