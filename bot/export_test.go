package bot

import "time"

// SetAckReplyWindow sets how long after a slash command arrives its answer
// may still ride in its ack. Call it before Run.
func SetAckReplyWindow(b *Bot, d time.Duration) { b.ackReplyWindow = d }
