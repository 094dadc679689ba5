// Slack Web API calls: retries on rate limits, and Slack errors turned into
// symbot errors (a missing scope, channel or membership is reported once to
// the operators).

package bot

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/slack-go/slack"
	"github.com/symbot/symbot"
)

// callMode says how a Slack call treats rate limits.
type callMode int

const (
	// interactive calls answer a person now: they wait out Retry-After
	// (bounded) and try again.
	interactive callMode = iota
	// durable calls come from the engine's jobs: on 429 they return at once
	// and the job retries later.
	durable
)

const maxRateLimitRetries = 3

// call runs one Slack Web API call, counts its result, honours 429
// Retry-After for interactive calls, and maps configuration errors
// (channel_not_found, not_in_channel, missing_scope) to the domain errors,
// reporting each such problem once. channel names the channel involved, for
// the error text.
func (b *Bot) call(ctx context.Context, mode callMode, method, channel string, fn func(ctx context.Context) error) error {
	err := b.try(ctx, mode, method, fn)
	if err == nil {
		return nil
	}
	if rle := rateLimitError(method, err); rle != nil {
		return rle
	}
	return b.classify(ctx, method, channel, err)
}

// rateLimitError is err, a failed call of method, as the error that makes
// a job try again after Slack's Retry-After when Slack rate limited the
// call (HTTP 429); nil for any other error.
func rateLimitError(method string, err error) error {
	var rl *slack.RateLimitedError
	if !errors.As(err, &rl) {
		return nil
	}
	return &symbot.RetryAfterError{After: rl.RetryAfter, Err: fmt.Errorf("slack %s rate limited (retry after %s): %w", method, rl.RetryAfter, symbot.ErrRateLimited)}
}

// try runs one Slack Web API call and counts its result. Interactive calls
// wait out a Retry-After of at most MaxRetryWait and try again (at most
// maxRateLimitRetries times); durable calls return the 429 at once. It
// returns the call's last error, or ctx's when ctx ends while waiting.
func (b *Bot) try(ctx context.Context, mode callMode, method string, fn func(ctx context.Context) error) error {
	for attempt := 0; ; attempt++ {
		err := fn(ctx)
		b.count(method, err)
		var rl *slack.RateLimitedError
		if mode != interactive || !errors.As(err, &rl) || attempt >= maxRateLimitRetries || rl.RetryAfter > b.cfg.MaxRetryWait {
			return err
		}
		b.log.Info("slack rate limited; waiting", "method", method, "retry_after", rl.RetryAfter)
		if !pause(ctx, max(rl.RetryAfter, 10*time.Millisecond)) {
			return ctx.Err()
		}
	}
}

// classify maps a failed Slack call to an error the engine and Explain
// understand, and reports configuration problems once.
func (b *Bot) classify(ctx context.Context, method, channel string, err error) error {
	var se slack.SlackErrorResponse
	if !errors.As(err, &se) {
		if ctx.Err() != nil {
			return fmt.Errorf("slack %s: %w", method, ctx.Err())
		}
		return fmt.Errorf("slack %s: %w: %w", method, symbot.ErrUnavailable, err)
	}
	ch := channel
	if ch == "" {
		ch = "(unknown)"
	}
	if refused(se.Err) {
		e := &TokenError{Env: EnvBotToken, Code: se.Err, Method: method, Err: err}
		b.reportOnce(ctx, "auth|"+se.Err, e.Error())
		return e
	}
	switch se.Err {
	case "channel_not_found":
		e := fmt.Errorf("slack %s: channel %s: %w: check the channel id in the flow configuration, and for a private channel invite the bot with /invite @symbot", method, ch, symbot.ErrChannelNotFound)
		b.reportOnce(ctx, "channel_not_found|"+channel, e.Error())
		return e
	case "not_in_channel":
		e := fmt.Errorf("slack %s: channel %s: %w: invite the bot with /invite @symbot", method, ch, symbot.ErrNotInChannel)
		b.reportOnce(ctx, "not_in_channel|"+channel, e.Error())
		return e
	case "is_archived":
		e := fmt.Errorf("slack %s: channel %s is archived: %w: unarchive it or point the flow at another channel", method, ch, symbot.ErrChannelNotFound)
		b.reportOnce(ctx, "is_archived|"+channel, e.Error())
		return e
	case "missing_scope":
		scope := se.Needed
		if scope == "" {
			scope = scopeFor(method)
		}
		e := fmt.Errorf("slack %s: %w %s: add scope %s in the app config (or re-import manifest.yml) and reinstall the app", method, symbot.ErrMissingScope, scope, scope)
		b.reportOnce(ctx, "missing_scope|"+scope, e.Error())
		return e
	case "message_not_found", "cant_update_message", "user_not_found", "users_not_found", "expired_trigger_id", "invalid_trigger_id":
		return symbot.Permanent(fmt.Errorf("slack %s: %s", method, se.Err))
	case "ratelimited":
		return fmt.Errorf("slack %s: %w", method, symbot.ErrRateLimited)
	case "internal_error", "fatal_error", "service_unavailable", "request_timeout":
		return fmt.Errorf("slack %s: %s: %w", method, se.Err, symbot.ErrUnavailable)
	}
	return fmt.Errorf("slack %s: %w", method, err)
}

// scopeFor names the bot scope a method needs, for missing_scope errors
// without a "needed" field.
func scopeFor(method string) string {
	switch method {
	case "users.info":
		return "users:read (and users:read.email)"
	case "conversations.open":
		return "im:write"
	case "users.lookupByEmail":
		return "users:read.email"
	}
	return "chat:write"
}

// reportOnce logs a configuration problem and alerts the errors channel,
// the first time only.
func (b *Bot) reportOnce(ctx context.Context, key, text string) {
	b.reportedMu.Lock()
	seen := b.reported[key]
	if !seen && len(b.reported) < 1000 {
		b.reported[key] = true
	}
	b.reportedMu.Unlock()
	if seen {
		return
	}
	b.log.Error("slack configuration problem", "problem", text)
	if b.cfg.ErrorsChannel == "" {
		return
	}
	if err := b.postAlert(ctx, "Slack configuration problem: "+text); err != nil {
		b.log.Error("alert to errors channel failed", "channel", b.cfg.ErrorsChannel, "err", err)
	}
}

// postAlert posts operator text to the errors channel. It does not go
// through classify, so a broken errors channel cannot loop.
func (b *Bot) postAlert(ctx context.Context, text string) error {
	return b.try(ctx, interactive, "chat.postMessage", func(ctx context.Context) error {
		_, _, err := b.api.PostMessageContext(ctx, b.cfg.ErrorsChannel, alertMessage(":warning: ", text)...)
		return err
	})
}

// alertMessage is an operator alert: icon, then text escaped and cut to
// fit one section block.
func alertMessage(icon, text string) []slack.MsgOption {
	body := icon + escapeTrunc(text, 2900)
	return []slack.MsgOption{slack.MsgOptionText(body, false),
		slack.MsgOptionBlocks(slack.NewSectionBlock(mrkdwn(body), nil, nil, slack.SectionBlockOptionBlockID("sym_alert")))}
}

func (b *Bot) count(method string, err error) {
	res := "ok"
	if err != nil {
		var rl *slack.RateLimitedError
		var se slack.SlackErrorResponse
		switch {
		case errors.As(err, &rl):
			res = "rate_limited"
		case errors.As(err, &se) && se.Err != "" && len(se.Err) < 64 && !strings.ContainsAny(se.Err, " \n"):
			res = se.Err
		default:
			res = "error"
		}
	}
	b.callsMu.Lock()
	b.calls[CallKey{Method: method, Result: res}]++
	b.callsMu.Unlock()
}
