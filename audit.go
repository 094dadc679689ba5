package symbot

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// The audit chain. Every entry carries the hash of the one before it, so an
// edit, a removal or a reordering breaks a link. Entries written before an
// audit key was configured are chained with a plain SHA-256 (Key == "");
// from the entry that records the switch on, every entry is an HMAC-SHA-256
// under a key that is kept outside the database, so someone who can write
// the database file but does not hold the key cannot recompute the chain.
// Checkpoints (a sequence number and the head MAC at that point) are
// exported outside the file as anchors, so that truncating the chain or
// wiping it entirely is detected too.

// AuditEntry is one link of the audit chain.
type AuditEntry struct {
	Seq       uint64 // assigned by AppendAudit, from 1, no gaps
	At        time.Time
	RequestID string
	Actor     string // Slack user id, System, or admin:<os user>(uid=,pid=)
	Action    string // e.g. "request", "approve", "state:active", "job:grant:ok", "refused:approve"
	Detail    string // never a secret
	PrevHash  string // Hash of the previous entry; "" for the first
	Key       string // ID of the AuditKey that sealed it; "" for the unkeyed SHA-256 of older entries
	Hash      string // ComputeMAC under Key, or ComputeHash when Key is ""
}

// AuditKeyMinSize is the shortest audit key accepted, in bytes.
const AuditKeyMinSize = 32

// AuditKey keys the audit chain's MACs. It never appears in the chain, the
// logs or an error: only its ID, a fingerprint, does.
type AuditKey struct {
	id     string
	secret []byte
}

// NewAuditKey makes a key from at least AuditKeyMinSize secret bytes.
func NewAuditKey(secret []byte) (*AuditKey, error) {
	if len(secret) < AuditKeyMinSize {
		return nil, fmt.Errorf("audit key: %d bytes, want at least %d (make one with `symbot audit keygen`)", len(secret), AuditKeyMinSize)
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("symbot audit key id"))
	return &AuditKey{id: "k1-" + hex.EncodeToString(m.Sum(nil)[:8]), secret: append([]byte(nil), secret...)}, nil
}

// ParseAuditKey reads a key as `symbot audit keygen` writes it: hex (or
// standard base64) text, surrounding white space ignored. Errors never
// quote the text.
func ParseAuditKey(text []byte) (*AuditKey, error) {
	s := strings.TrimSpace(string(text))
	if s == "" {
		return nil, errors.New("audit key: empty (make one with `symbot audit keygen`)")
	}
	if b, err := hex.DecodeString(s); err == nil {
		return NewAuditKey(b)
	}
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		return NewAuditKey(b)
	}
	return nil, errors.New("audit key: not hex or base64 text (make one with `symbot audit keygen`)")
}

// GenerateAuditKey returns a new random key in the text form ParseAuditKey reads.
func GenerateAuditKey() (string, error) {
	b := make([]byte, AuditKeyMinSize)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate audit key: %w", err)
	}
	return hex.EncodeToString(b) + "\n", nil
}

// ID is the key's fingerprint, recorded in the entries it seals.
func (k *AuditKey) ID() string { return k.id }

// String, Format and LogValue show only the ID, so that printing or
// logging a key by mistake does not leak it.
func (k *AuditKey) String() string             { return "audit key " + k.id }
func (k *AuditKey) LogValue() slog.Value       { return slog.StringValue(k.id) }
func (k *AuditKey) Format(f fmt.State, _ rune) { fmt.Fprint(f, k.String()) }

// ComputeHash returns the hex SHA-256 of the entry's fields and PrevHash, in
// a length-prefixed encoding so that no two different entries collide by
// shifting bytes between fields. It is the link of unkeyed entries (Key "").
func (e *AuditEntry) ComputeHash() string {
	var buf [512]byte
	sum := sha256.Sum256(e.appendFields(buf[:0], false))
	return hex.EncodeToString(sum[:])
}

// ComputeMAC returns the hex HMAC-SHA-256 under k of the entry's fields,
// PrevHash and Key (which it does not set).
func (e *AuditEntry) ComputeMAC(k *AuditKey) string {
	m := hmac.New(sha256.New, k.secret)
	m.Write(macDomain)
	m.Write(e.appendFields(make([]byte, 0, 512), true))
	return hex.EncodeToString(m.Sum(nil))
}

// macDomain starts every keyed MAC input.
var macDomain = []byte("symbot audit v2\x00")

// Seal sets e.Key and e.Hash: an HMAC under k, or the plain SHA-256 when k
// is nil. Seq, At and PrevHash must be set first.
func (e *AuditEntry) Seal(k *AuditKey) {
	if k == nil {
		e.Key = ""
		e.Hash = e.ComputeHash()
		return
	}
	e.Key = k.id
	e.Hash = e.ComputeMAC(k)
}

// appendFields appends what ComputeHash and ComputeMAC digest to b: Seq
// and At (8 bytes each), then each field as its 8-byte length and its
// bytes; keyed adds Key. Every entry is sealed and every verified entry
// hashed through it, so it builds one buffer rather than writing each
// field to the hash (a write through the hash.Hash interface copies each
// string to the heap).
func (e *AuditEntry) appendFields(b []byte, keyed bool) []byte {
	b = binary.BigEndian.AppendUint64(b, e.Seq)
	b = binary.BigEndian.AppendUint64(b, uint64(e.At.UnixNano()))
	for _, s := range [...]string{e.RequestID, e.Actor, e.Action, e.Detail, e.PrevHash} {
		b = binary.BigEndian.AppendUint64(b, uint64(len(s)))
		b = append(b, s...)
	}
	if keyed {
		b = binary.BigEndian.AppendUint64(b, uint64(len(e.Key)))
		b = append(b, e.Key...)
	}
	return b
}

// ActionAuditKey is the action of the entry that records a switch of the
// chain's key (from none, or from another key). It is sealed with the new key.
const ActionAuditKey = "audit:key"

// AppendAudit appends e to the chain in tx: it links e to the stored head,
// seals it under k (nil: unkeyed) and stores it.
func AppendAudit(tx Tx, k *AuditKey, e *AuditEntry) error {
	seq, head, err := tx.AuditHead()
	if err != nil {
		return err
	}
	e.Seq = seq + 1
	e.PrevHash = head
	// Details carry error texts from outside (Okta, AWS, Slack): one
	// redactor masks anything token-shaped before it is sealed forever.
	e.Detail = Redact(e.Detail)
	e.Seal(k)
	return tx.AppendAudit(e)
}

// AuditCheckpoint anchors the chain outside the store: the head's sequence
// number and MAC at a moment. A later chain must still hold an entry Seq
// with exactly this Hash.
type AuditCheckpoint struct {
	Seq  uint64
	Hash string
	Key  string // the key ID of the entry Seq ("" unkeyed)
	At   time.Time
}

// AuditError reports the first broken link of an audit chain.
type AuditError struct {
	Index   int    // position in the chain (0-based) where the problem shows
	Seq     uint64 // the entry's recorded Seq (or the Seq that is missing)
	Problem string
}

func (e *AuditError) Error() string {
	return fmt.Sprintf("audit entry %d (position %d): %s", e.Seq, e.Index, e.Problem)
}
