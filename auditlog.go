package symbot

// Reading and checking the audit log: the filter behind `symbot audit` and
// the hash-chain check behind `symbot audit verify`. Both read the log in
// bounded pages.

import (
	"context"
	"crypto/hmac"
	"errors"
	"fmt"
	"time"
)

// auditPage is how many audit entries one store read returns.
const auditPage = 1000

// ErrAuditKeyUnknown is wrapped when an entry is sealed with a key the
// verifier was not given: the chain cannot be checked without it.
var ErrAuditKeyUnknown = errors.New("audit entry sealed with a key that was not given")

// AuditChain checks an audit log entry by entry, from Seq 1, so that a
// long log is verified without holding it in memory: each link, each MAC
// under the keys that sealed the entries, and every entry a checkpoint
// anchors. Once an entry is sealed with a key, every later entry must be
// too: an unkeyed entry after that is a forgery by someone without the
// key. The zero value checks an unkeyed chain without checkpoints; set
// Keys and Checkpoints before the first Next.
type AuditChain struct {
	Keys        []*AuditKey       // keys that may have sealed entries (nil entries ignored)
	Checkpoints []AuditCheckpoint // anchors exported earlier

	ready   bool
	keys    map[string]*AuditKey
	anchors map[uint64]AuditCheckpoint
	maxCP   AuditCheckpoint

	n     int    // entries checked
	prev  string // Hash of the last entry checked
	keyed bool   // an entry checked so far was sealed with a key
	err   error
}

func (c *AuditChain) init() {
	if c.ready {
		return
	}
	c.ready = true
	c.keys = map[string]*AuditKey{}
	c.anchors = map[uint64]AuditCheckpoint{}
	for _, k := range c.Keys {
		if k != nil {
			c.keys[k.id] = k
		}
	}
	for _, cp := range c.Checkpoints {
		c.anchors[cp.Seq] = cp
		if cp.Seq > c.maxCP.Seq {
			c.maxCP = cp
		}
	}
}

// Next checks the next entry of the chain. It returns an *AuditError when
// the entry was edited, removed, moved or forged (and keeps returning it).
func (c *AuditChain) Next(e *AuditEntry) error {
	c.init()
	if c.err != nil {
		return c.err
	}
	c.err = c.next(e)
	return c.err
}

func (c *AuditChain) next(e *AuditEntry) error {
	i := c.n
	want := uint64(i + 1)
	fail := func(format string, args ...any) error {
		return &AuditError{Index: i, Seq: e.Seq, Problem: fmt.Sprintf(format, args...)}
	}
	if e.Seq != want {
		if e.Seq > want {
			return fail("sequence %d where %d was expected (a gap in the sequence): entries were removed", e.Seq, want)
		}
		return fail("sequence %d where %d was expected: an entry was removed or moved", e.Seq, want)
	}
	if e.PrevHash != c.prev {
		return fail("previous-hash link broken: an earlier entry was changed, removed or moved")
	}
	if e.Key == "" {
		if c.keyed {
			return fail("unkeyed entry after the chain was keyed: it was written or rewritten by someone without the audit key")
		}
		if e.ComputeHash() != e.Hash {
			return fail("hash mismatch: this entry was changed")
		}
	} else {
		k, ok := c.keys[e.Key]
		if !ok {
			return fail("sealed with audit key %s, which was not given: configure that key (audit.key_file or audit.key_secret) to verify: %v", e.Key, ErrAuditKeyUnknown)
		}
		if !hmac.Equal([]byte(e.ComputeMAC(k)), []byte(e.Hash)) {
			return fail("MAC mismatch under key %s: this entry was changed", e.Key)
		}
		c.keyed = true
	}
	if cp, ok := c.anchors[e.Seq]; ok && cp.Hash != e.Hash {
		return fail("differs from the checkpoint exported %s: the chain was rewritten from here on", stamp(cp.At))
	}
	c.n++
	c.prev = e.Hash
	return nil
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "earlier"
	}
	return "at " + t.UTC().Format(time.RFC3339)
}

// Len returns how many entries were checked.
func (c *AuditChain) Len() int { return c.n }

// End checks the end of the chain against the head the store recorded and
// against the checkpoints. A chain with entries but no recorded head, or
// one shorter than a checkpoint, always fails. With Keys set, a non-empty
// chain must contain keyed entries.
func (c *AuditChain) End(headSeq uint64, headHash string) error {
	c.init()
	if c.err != nil {
		return c.err
	}
	n := uint64(c.n)
	last := c.n - 1
	switch {
	case headSeq == 0 && n > 0:
		return &AuditError{Index: last, Seq: n, Problem: "entries are present but no head is recorded: the head was deleted (with entries at the end, most likely)"}
	case headSeq > n:
		return &AuditError{Index: c.n, Seq: n + 1, Problem: fmt.Sprintf("chain ends at %d but the recorded head is %d: entries were removed from the end", n, headSeq)}
	case headSeq < n:
		return &AuditError{Index: int(headSeq), Seq: headSeq + 1, Problem: fmt.Sprintf("chain runs to %d past the recorded head %d: entries were added without the store", n, headSeq)}
	case n > 0 && c.prev != headHash:
		return &AuditError{Index: last, Seq: n, Problem: "last entry does not match the recorded head hash"}
	}
	if c.maxCP.Seq > n {
		return &AuditError{Index: c.n, Seq: n + 1, Problem: fmt.Sprintf("a checkpoint exported %s anchors entry %d, but the chain ends at %d: the chain was truncated or wiped", stamp(c.maxCP.At), c.maxCP.Seq, n)}
	}
	if len(c.keys) > 0 && n > 0 && !c.keyed {
		return &AuditError{Index: last, Seq: n, Problem: "an audit key is configured but no entry is sealed with it: the keyed part of the chain was removed or rewritten (if the key was only just configured, start symbot once to record the switch)"}
	}
	return nil
}

// VerifyAudit checks a whole chain, from Seq 1, against the head the store
// recorded, with the keys that sealed it. It returns an *AuditError for the
// first entry that was edited, removed or moved, or nil.
func VerifyAudit(entries []AuditEntry, headSeq uint64, headHash string, keys ...*AuditKey) error {
	c := AuditChain{Keys: keys}
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
	return e.AuditBetween(ctx, since, time.Time{})
}

// AuditBetween returns the audit entries recorded in [since, until) (zero
// until: no end), oldest first, reading the log in bounded pages.
func (e *Engine) AuditBetween(ctx context.Context, since, until time.Time) ([]AuditEntry, error) {
	var out []AuditEntry
	err := e.store.View(ctx, func(tx Tx) error {
		out = out[:0]
		return auditPages(tx, func(page []AuditEntry) error {
			for _, a := range page {
				if !a.At.Before(since) && (until.IsZero() || a.At.Before(until)) {
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

// VerifyAuditLog checks the whole stored chain against the head the store
// recorded, with the engine's audit keys. It returns how many entries it
// checked, and an *AuditError naming the first entry that was edited,
// removed, moved or forged.
func (e *Engine) VerifyAuditLog(ctx context.Context) (int, error) {
	return e.VerifyAuditAgainst(ctx, nil)
}

// VerifyAuditAgainst is VerifyAuditLog that also checks the chain against
// checkpoints exported earlier (see ParseAuditAnchors), which detects a
// truncated, wiped or rewritten tail.
func (e *Engine) VerifyAuditAgainst(ctx context.Context, checkpoints []AuditCheckpoint) (int, error) {
	var c AuditChain
	var broken error
	err := e.store.View(ctx, func(tx Tx) error {
		c, broken = AuditChain{Keys: e.auditKeys(), Checkpoints: checkpoints}, nil
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

// auditKeys are the keys the engine verifies with: the current one and
// the previous ones.
func (e *Engine) auditKeys() []*AuditKey {
	return append([]*AuditKey{e.AuditKey}, e.AuditPreviousKeys...)
}
