// One message per job, even across crashes: the messages jobs post carry
// Slack message metadata naming the job, and a retried job looks for the
// message an earlier attempt may have posted before it posts again.

package bot

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/slack-go/slack"
	"github.com/symbot/symbot"
)

// JobEventType is the event_type of the message metadata on every message
// a job posts; its event_payload holds the job's id ("job_id", a decimal
// string), its request ("request_id") and its kind ("kind").
const JobEventType = "symbot_job"

// Bounds of the look-up for an earlier attempt's message.
const (
	// findMargin widens the look-up window before the job's creation:
	// the job's time is the replica's clock and a message's ts is Slack's.
	findMargin = 5 * time.Minute
	// findPageSize and findPages bound the look-up to 1000 messages of
	// the conversation (or thread) since the job was created.
	findPageSize = 200
	findPages    = 5
)

// jobMetadata is the metadata that names the job attempt a's message.
func jobMetadata(a symbot.JobAttempt) slack.SlackMetadata {
	return slack.SlackMetadata{EventType: JobEventType, EventPayload: map[string]any{
		"job_id":     strconv.FormatUint(a.JobID, 10),
		"request_id": a.RequestID,
		"kind":       string(a.Kind),
	}}
}

// isJobMessage reports whether m carries a's metadata and was posted by
// this app (bot id self): another app in the conversation can attach any
// metadata it likes, and adopting its message would leave the job's own
// message unposted. An empty self accepts any app's message.
func isJobMessage(m slack.Message, a symbot.JobAttempt, self string) bool {
	md := m.Metadata
	if md.EventType != JobEventType || m.BotID == "" || (self != "" && m.BotID != self) {
		return false
	}
	id, _ := md.EventPayload["job_id"].(string)
	req, _ := md.EventPayload["request_id"].(string)
	return id == strconv.FormatUint(a.JobID, 10) && req == a.RequestID
}

// postOnce posts a message in channel ch (in the thread of threadTS when
// not empty) for the job attempt in ctx, and returns the channel and ts of
// the message. The message carries the job's metadata. On a retry it first
// looks for the message an earlier attempt posted and, when it finds it,
// returns that one instead of posting again. A call not made by a job
// (none in ctx) just posts.
func (b *Bot) postOnce(ctx context.Context, ch, threadTS string, opts ...slack.MsgOption) (string, string, error) {
	a, isJob := symbot.JobAttemptFrom(ctx)
	isJob = isJob && a.JobID != 0
	if isJob && a.Retry {
		ts, found, err := b.findJobMessage(ctx, ch, threadTS, a)
		if err != nil {
			return "", "", err
		}
		if found {
			b.log.Info("found the message an earlier attempt of the job posted; not posting again",
				"request_id", a.RequestID, "job", a.JobID, "kind", a.Kind, "channel", ch, "ts", ts)
			return ch, ts, nil
		}
	}
	if isJob {
		opts = append(opts, slack.MsgOptionMetadata(jobMetadata(a)))
	}
	if threadTS != "" {
		opts = append(opts, slack.MsgOptionTS(threadTS))
	}
	var gotCh, ts string
	err := b.call(ctx, durable, "chat.postMessage", ch, func(ctx context.Context) error {
		var err error
		gotCh, ts, err = b.api.PostMessageContext(ctx, ch, opts...)
		return err
	})
	if err != nil {
		return "", "", err
	}
	if gotCh == "" {
		gotCh = ch
	}
	return gotCh, ts, nil
}

// findJobMessage looks in channel ch (or the thread of threadTS) for the
// message carrying a's metadata, among the messages since a's job was
// created (less findMargin), at most findPages pages. It reports the
// message's ts when found.
//
// Reading history needs the history scope of the conversation
// (channels:history, groups:history or im:history) and the bot in the
// conversation. When Slack refuses the read for such a reason (or any
// other error answer), the job posts as it would without the look-up and
// the problem is reported once, with its fix: a lost look-up must never
// fail the job. A rate limit or an unreachable Slack is returned, so the
// job tries again later rather than post blind.
func (b *Bot) findJobMessage(ctx context.Context, ch, threadTS string, a symbot.JobAttempt) (string, bool, error) {
	method := "conversations.history"
	if threadTS != "" {
		method = "conversations.replies"
	}
	oldest := ""
	if !a.CreatedAt.IsZero() {
		from := a.CreatedAt.Add(-findMargin)
		oldest = fmt.Sprintf("%d.%06d", from.Unix(), from.Nanosecond()/1000)
	}
	self, err := b.selfBotID(ctx)
	if err != nil {
		return "", false, b.lookupFailed(ctx, "auth.test", ch, a, err)
	}
	cursor := ""
	for range findPages {
		var msgs []slack.Message
		var next string
		err := b.try(ctx, durable, method, func(ctx context.Context) error {
			var err error
			if threadTS == "" {
				var h *slack.GetConversationHistoryResponse
				h, err = b.api.GetConversationHistoryContext(ctx, &slack.GetConversationHistoryParameters{
					ChannelID: ch, Oldest: oldest, Limit: findPageSize, Cursor: cursor, IncludeAllMetadata: true})
				if h != nil {
					msgs, next = h.Messages, h.ResponseMetaData.NextCursor
					if !h.HasMore {
						next = ""
					}
				}
			} else {
				var more bool
				msgs, more, next, err = b.api.GetConversationRepliesContext(ctx, &slack.GetConversationRepliesParameters{
					ChannelID: ch, Timestamp: threadTS, Oldest: oldest, Limit: findPageSize, Cursor: cursor, IncludeAllMetadata: true})
				if !more {
					next = ""
				}
			}
			return err
		})
		if err != nil {
			return "", false, b.lookupFailed(ctx, method, ch, a, err)
		}
		for _, m := range msgs {
			if isJobMessage(m, a, self) {
				return m.Timestamp, true, nil
			}
		}
		if next == "" {
			return "", false, nil // the whole window: not posted
		}
		cursor = next
	}
	b.log.Warn("did not find an earlier attempt's message within the look-up's bound; posting",
		"request_id", a.RequestID, "job", a.JobID, "channel", ch, "messages", findPages*findPageSize)
	return "", false, nil
}

// selfBotID returns this app's bot id (auth.test's bot_id): learned at the
// start of Run, or here once when a retried job looks before Run has
// learned it (a replica's first jobs after a crash are retries). A Slack
// answer without one gives "" (any app's message is then accepted).
func (b *Bot) selfBotID(ctx context.Context) (string, error) {
	if p := b.self.Load(); p != nil {
		return *p, nil
	}
	var res *slack.AuthTestResponse
	err := b.try(ctx, durable, "auth.test", func(ctx context.Context) error {
		var err error
		res, err = b.api.AuthTestContext(ctx)
		return err
	})
	if err != nil {
		return "", err
	}
	if res.BotID == "" {
		b.log.Warn("auth.test named no bot_id: a retried job's look-up accepts a message of any app that carries the job's metadata")
		return "", nil
	}
	b.self.Store(&res.BotID)
	return res.BotID, nil
}

// lookupFailed decides what a failed look-up means for the job: nil (post
// anyway) when Slack refused it, the error (try again later) when Slack was
// rate limited or out of reach.
func (b *Bot) lookupFailed(ctx context.Context, method, ch string, a symbot.JobAttempt, err error) error {
	if rle := rateLimitError(method, err); rle != nil {
		return rle
	}
	var se slack.SlackErrorResponse
	if !errors.As(err, &se) {
		return b.classify(ctx, method, ch, err) // unavailable, or ctx ended
	}
	var problem, key string
	switch se.Err {
	case "missing_scope":
		scope := se.Needed
		if scope == "" {
			scope = "channels:history, groups:history and im:history"
		}
		problem = fmt.Sprintf("slack %s: %s %s: symbot cannot look for the message a crashed or retried job may already have posted, so it posts again and people may see that message twice. Reinstall the Slack app with the scopes manifest.yml lists (channels:history, groups:history, im:history)", method, symbot.ErrMissingScope, scope)
		key = "lookup|missing_scope|" + scope
	case "not_in_channel":
		// Shares its key with the post's own not_in_channel report: one
		// alert per channel, whichever call meets the problem first.
		problem = fmt.Sprintf("slack %s: channel %s: %s: symbot cannot read the channel to look for the message a crashed or retried job may already have posted, so it posts again and people may see that message twice. Invite the bot with /invite @symbot", method, ch, symbot.ErrNotInChannel)
		key = "not_in_channel|" + ch
	case "channel_not_found":
		// The post that follows meets the same and reports it, with
		// its fix; a second alert would say nothing new.
	}
	b.log.Warn("could not look for an earlier attempt's message; posting", "request_id", a.RequestID, "job", a.JobID, "method", method, "channel", ch, "err", err)
	if key != "" {
		b.reportOnce(ctx, key, problem)
	}
	return nil
}
