package symbot

// Reading and checking the audit log: the filter behind `symbot audit` and
// the hash-chain check behind `symbot audit verify`. Both read the log in
// bounded pages.

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// auditPage is how many audit entries one store read returns.
const auditPage = 1000

// AuditChain checks an audit log entry by entry, from Seq 1, so that a
// long log is verified without holding it in memory. The zero value is
// ready to use.
type AuditChain struct {
	n    int    // entries checked
	prev string // Hash of the last entry checked
}

// Next checks the next entry of the chain. It returns an *AuditError when
// the entry was edited, removed or moved.
func (c *AuditChain) Next(e *AuditEntry) error {
	i := c.n
	want := uint64(i + 1)
	if e.Seq != want {
		return &AuditError{Index: i, Seq: e.Seq, Problem: fmt.Sprintf("sequence %d where %d was expected: an entry was removed or moved", e.Seq, want)}
	}
	if e.PrevHash != c.prev {
		return &AuditError{Index: i, Seq: e.Seq, Problem: "previous-hash link broken: an earlier entry was changed, removed or moved"}
	}
	if got := e.ComputeHash(); got != e.Hash {
		return &AuditError{Index: i, Seq: e.Seq, Problem: "hash mismatch: this entry was changed"}
	}
	c.prev = e.Hash
	c.n++
	return nil
}

// Len returns how many entries were checked.
func (c *AuditChain) Len() int { return c.n }

// End checks that the chain ends at the head the store recorded (headSeq 0
// skips that check).
func (c *AuditChain) End(headSeq uint64, headHash string) error {
	if headSeq == 0 {
		return nil
	}
	n := uint64(c.n)
	if n != headSeq {
		return &AuditError{Index: c.n, Seq: n + 1, Problem: fmt.Sprintf("chain ends at %d but the recorded head is %d: entries were removed from the end", n, headSeq)}
	}
	if c.prev != headHash {
		return &AuditError{Index: c.n - 1, Seq: n, Problem: "last entry does not match the recorded head hash"}
	}
	return nil
}

// VerifyAudit checks a whole chain, from Seq 1, against the head the store
// recorded (headSeq 0 skips that check). It returns an *AuditError for the
// first entry that was edited, removed or moved, or nil.
func VerifyAudit(entries []AuditEntry, headSeq uint64, headHash string) error {
	var c AuditChain
	for i := range entries {
		if err := c.Next(&entries[i]); err != nil {
			return err
		}
	}
	return c.End(headSeq, headHash)
}

// auditPages calls fn with each page of the stored audit log, oldest
// first, inside tx.
func auditPages(tx Tx, fn func([]AuditEntry) error) error {
	var after uint64
	for {
		page, err := tx.Audit(after, auditPage)
		if err != nil {
			return err
		}
		if len(page) == 0 {
			return nil
		}
		if err := fn(page); err != nil {
			return err
		}
		if len(page) < auditPage {
			return nil
		}
		after = page[len(page)-1].Seq
	}
}

// AuditSince returns the audit entries recorded at or after since (the
// zero time: all), oldest first.
func (e *Engine) AuditSince(ctx context.Context, since time.Time) ([]AuditEntry, error) {
	var out []AuditEntry
	err := e.store.View(ctx, func(tx Tx) error {
		out = out[:0]
		return auditPages(tx, func(page []AuditEntry) error {
			for _, a := range page {
				if !a.At.Before(since) {
					out = append(out, a)
				}
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	return out, nil
}

// VerifyAuditLog checks the whole stored hash chain against the head the
// store recorded. It returns how many entries it checked, and an
// *AuditError naming the first entry that was edited, removed or moved.
func (e *Engine) VerifyAuditLog(ctx context.Context) (int, error) {
	var c AuditChain
	var broken error
	err := e.store.View(ctx, func(tx Tx) error {
		c, broken = AuditChain{}, nil
		err := auditPages(tx, func(page []AuditEntry) error {
			for i := range page {
				if broken = c.Next(&page[i]); broken != nil {
					return errStopAudit
				}
			}
			return nil
		})
		if errors.Is(err, errStopAudit) {
			return nil
		}
		if err != nil {
			return err
		}
		seq, hash, err := tx.AuditHead()
		if err != nil {
			return err
		}
		broken = c.End(seq, hash)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("verify audit log: %w", err)
	}
	return c.Len(), broken
}

// errStopAudit ends a page walk early.
var errStopAudit = errors.New("stop reading the audit log")
