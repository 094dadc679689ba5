// A slash command's answer in its Socket Mode ack.

package bot

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"time"
)

// defaultAckReplyWindow is how long after a slash command's envelope
// arrives its ack may still carry an answer. Slack shows an ack's payload
// only when the ack comes within 3 s of sending the envelope; the rest is
// left for the envelope's way in and the ack's way out.
const defaultAckReplyWindow = 2 * time.Second

// ackReply lets the first answer of work that acknowledges a slash
// command's envelope once its outcome is stored (a request, break-glass)
// ride in that ack, as the response message Slack shows the person,
// instead of costing a response_url call before the ack.
type ackReply struct {
	// send acknowledges the envelope with payload and reports whether it
	// did: not when the envelope was acknowledged already, nor when the
	// ack could not be queued (Run stopping).
	send  func(payload any) bool
	until time.Time // real time; an ack after it may come too late for Slack to show
	used  atomic.Bool
}

// answer acknowledges the envelope with text and blocks as an ephemeral
// message and reports whether it did. It does not for a second answer,
// for work cut short by shutdown (its envelope stays unacknowledged, for
// Slack to deliver again), after the window, for a message too large for
// an ack, or when the envelope was acknowledged already: the caller then
// answers as it would without an ack to ride in.
func (a *ackReply) answer(ctx context.Context, msg ackMessage) bool {
	if a == nil || !a.used.CompareAndSwap(false, true) || ctx.Err() != nil || !time.Now().Before(a.until) {
		return false
	}
	if raw, err := json.Marshal(msg); err != nil || len(raw) >= maxAckBytes {
		return false
	}
	return a.send(msg)
}
