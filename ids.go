// Request ids and button nonces: ids that a restored store cannot issue
// again, and the per-request secret every button carries.

package symbot

import (
	"context"
	crand "crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// idAlphabet has no letters that read like digits (no I, O) and no 0 or 1.
const idAlphabet = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"

// newRequestID returns "SYM-<seq>-<4 random characters>". The sequence
// keeps ids short and ordered; the random tail means that a store
// restored from a backup, whose counter starts again from an old value,
// does not issue an id that an existing Slack message already carries
// (one chance in about a million per id, and the nonce still refuses the
// old message's buttons).
func newRequestID(seq uint64) string {
	var b [4]byte
	_, _ = crand.Read(b[:])
	tail := make([]byte, len(b))
	for i, c := range b {
		tail[i] = idAlphabet[int(c)%len(idAlphabet)]
	}
	return fmt.Sprintf("SYM-%d-%s", seq, tail)
}

// newNonce returns a random 128-bit secret in hex.
func newNonce() string {
	var b [16]byte
	_, _ = crand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// CanonicalID returns the stored form of a request id typed by a person:
// ids are matched case-insensitively and without surrounding space.
func CanonicalID(id string) string { return strings.ToUpper(strings.TrimSpace(id)) }

// ButtonValue is what a button of r's messages carries: its id and nonce.
func ButtonValue(r *Request) string {
	if r.Nonce == "" {
		return r.ID
	}
	return r.ID + ":" + r.Nonce
}

// ParseButtonValue splits a button value into the request id and nonce.
func ParseButtonValue(v string) (id, nonce string) {
	id, nonce, _ = strings.Cut(v, ":")
	return id, nonce
}

// CheckButton checks that a button carrying id and nonce belongs to the
// stored request id: it returns ErrOutOfDate (changing nothing) when the
// request does not exist or its nonce differs, so that a message of
// another request, or one from before a restore, cannot decide anything.
func (e *Engine) CheckButton(ctx context.Context, id, nonce string) (*Request, error) {
	r, err := e.Get(ctx, id)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, fmt.Errorf("request %s: %w", id, ErrOutOfDate)
		}
		return nil, err
	}
	if subtle.ConstantTimeCompare([]byte(r.Nonce), []byte(nonce)) != 1 {
		e.log().Warn("button refused: its nonce does not match the stored request", "request_id", r.ID)
		return nil, fmt.Errorf("request %s: %w", r.ID, ErrOutOfDate)
	}
	return r, nil
}
