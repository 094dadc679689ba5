package symbot

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"time"
)

// AuditEntry is one link of the hash-chained audit log.
type AuditEntry struct {
	Seq       uint64 // assigned by the store, from 1, no gaps
	At        time.Time
	RequestID string
	Actor     string // Slack user id, or System
	Action    string // e.g. "request", "approve", "state:active", "job:grant:ok"
	Detail    string // never a secret
	PrevHash  string // Hash of the previous entry; "" for the first
	Hash      string // ComputeHash of this entry
}

// ComputeHash returns the hex SHA-256 of the entry's fields and PrevHash, in
// a length-prefixed encoding so that no two different entries collide by
// shifting bytes between fields.
func (e *AuditEntry) ComputeHash() string {
	h := sha256.New()
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], e.Seq)
	h.Write(n[:])
	binary.BigEndian.PutUint64(n[:], uint64(e.At.UnixNano()))
	h.Write(n[:])
	for _, s := range []string{e.RequestID, e.Actor, e.Action, e.Detail, e.PrevHash} {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// AuditError reports the first broken link of an audit chain.
type AuditError struct {
	Index   int    // position in the slice given to VerifyAudit
	Seq     uint64 // the entry's recorded Seq
	Problem string
}

func (e *AuditError) Error() string {
	return fmt.Sprintf("audit entry %d (position %d): %s", e.Seq, e.Index, e.Problem)
}
