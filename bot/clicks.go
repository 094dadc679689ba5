// Button clicks: approve, deny, revoke, relinquish, cancel and extend,
// each asked of the engine (MayDecide) before anything opens or changes,
// and the per-person limits that keep one person from flooding the queue.

package bot

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/slack-go/slack"
	"github.com/symbot/symbot"
)

// onClick handles a button.
func (b *Bot) onClick(ctx context.Context, cb slack.InteractionCallback, a slack.BlockAction) {
	ch := cb.Container.ChannelID
	if ch == "" {
		ch = cb.Channel.ID
	}
	to := replyTo{User: cb.User.ID, Channel: ch, ResponseURL: cb.ResponseURL}
	id, nonce := symbot.ParseButtonValue(a.Value)
	eng := b.engine()
	log := b.log.With("user", cb.User.ID, "action", a.ActionID, "request_id", id)
	// A button of another request's message, or from before a restore,
	// changes nothing.
	if _, err := eng.CheckButton(ctx, id, nonce); err != nil {
		b.fail(ctx, to, a.ActionID, err)
		return
	}
	actor, err := b.admit(ctx, cb.User.ID)
	if err != nil {
		b.fail(ctx, to, a.ActionID, err)
		return
	}
	switch a.ActionID {
	case ActionApprove:
		if _, err := eng.Approve(ctx, id, actor, ""); err != nil {
			b.fail(ctx, to, "approve", err)
			return
		}
		log.Info("approved")
	case ActionApproveNote, ActionDeny, ActionRevoke:
		r, err := eng.Get(ctx, id)
		if err != nil {
			b.fail(ctx, to, a.ActionID, err)
			return
		}
		if err := b.noteRefusal(ctx, eng, a.ActionID, r, actor); err != nil {
			b.fail(ctx, to, a.ActionID, err)
			return
		}
		f, _ := eng.Flow(r.Flow)
		if f == nil {
			b.fail(ctx, to, a.ActionID, &symbot.NotConfiguredError{ID: r.ID, Flow: r.Flow, Target: r.Target})
			return
		}
		meta := encodeMeta(modalMeta{Channel: ch, Action: a.ActionID, RequestID: id, Nonce: nonce})
		b.openView(ctx, cb.TriggerID, noteModal(a.ActionID, f, r, meta), to)
	case ActionAcknowledge:
		if _, err := eng.Acknowledge(ctx, id, actor, ""); err != nil {
			b.fail(ctx, to, "acknowledge", err)
			return
		}
		log.Info("break-glass acknowledged")
	case ActionCancel:
		r, err := eng.Cancel(ctx, id, actor)
		if err != nil {
			b.fail(ctx, to, "cancel", err)
			return
		}
		b.tell(ctx, to, fmt.Sprintf("Cancelled request `%s`.", Escape(r.ID)))
	case ActionRelinquish:
		r, err := eng.Revoke(ctx, id, actor, "")
		if err != nil {
			b.fail(ctx, to, "relinquish", err)
			return
		}
		f, _ := eng.Flow(r.Flow)
		b.tell(ctx, to, fmt.Sprintf("Done: your access to *%s* (`%s`) is being removed.", Escape(targetLabel(f, r)), Escape(r.ID)))
	case ActionExtend:
		r, err := eng.Get(ctx, id)
		if err != nil {
			b.fail(ctx, to, "extend", err)
			return
		}
		if err := eng.MayDecide(ctx, id, actor, symbot.VerbExtend); err != nil {
			b.fail(ctx, to, "extend", err)
			return
		}
		f, _, err := eng.ResolveTarget(r.Flow, r.Target) // the target's durations
		if err != nil {
			b.fail(ctx, to, "extend", &symbot.NotConfiguredError{ID: r.ID, Flow: r.Flow, Target: r.Target})
			return
		}
		meta := encodeMeta(modalMeta{Channel: ch, Flow: f.Name, Target: r.Target, RequestID: id, Nonce: nonce})
		b.openView(ctx, cb.TriggerID, extendModal(f, r, meta), to)
	}
}

// noteRefusal says why actor may not take action (approve with a note,
// deny or revoke) on r, before the note form opens: nobody should fill in a
// form whose submission would be refused. The engine's MayDecide applies
// the same checks as the decision itself; if a check cannot be made now
// (Okta unreachable, say), the form opens and the engine decides on
// submission.
func (b *Bot) noteRefusal(ctx context.Context, eng *symbot.Engine, action string, r *symbot.Request, actor symbot.Actor) error {
	verb := symbot.VerbApprove
	switch action {
	case ActionDeny:
		verb = symbot.VerbDeny
	case ActionRevoke:
		verb = symbot.VerbRevoke
	}
	err := eng.MayDecide(ctx, r.ID, actor, verb)
	var pe *symbot.PolicyError
	var de *symbot.DecidedError
	switch {
	case errors.As(err, &pe) && verb == symbot.VerbDeny && actor.SlackID == r.Requester.SlackID:
		return &symbot.PolicyError{Reason: fmt.Sprintf("you cannot deny your own request. To withdraw it, use Cancel in the message I sent you, or in `%s list`", b.cfg.Command)}
	case errors.As(err, &pe), errors.As(err, &de), errors.Is(err, symbot.ErrNotAllowed):
		return err // ErrNotAllowed: an identity binding with a conflict, say
	case err != nil:
		b.log.Warn("cannot check the decision before the form; the engine decides on submission", "request_id", r.ID, "err", err)
	}
	return nil
}

// decide applies an Approve, Deny or Revoke with its note, after the note
// modal.
func (b *Bot) decide(ctx context.Context, to replyTo, action, id, nonce, note string) {
	eng := b.engine()
	if _, err := eng.CheckButton(ctx, id, nonce); err != nil {
		b.fail(ctx, to, action, err)
		return
	}
	actor, err := b.admit(ctx, to.User)
	if err != nil {
		b.fail(ctx, to, action, err)
		return
	}
	switch action {
	case ActionApproveNote:
		_, err = eng.Approve(ctx, id, actor, note)
	case ActionDeny:
		_, err = eng.Deny(ctx, id, actor, note)
	case ActionRevoke:
		_, err = eng.Revoke(ctx, id, actor, note)
	default:
		err = fmt.Errorf("unknown decision %q: %w", action, symbot.ErrInvalidRequest)
	}
	if err != nil {
		b.fail(ctx, to, action, err)
		return
	}
	b.log.Info("decided", "action", action, "request_id", id, "user", to.User)
}

// tooFast is the answer to someone over Limits.CommandsPerMinute.
func (b *Bot) tooFast() string {
	return fmt.Sprintf("You are sending symbot commands faster than it takes them (%d a minute). Please wait a moment and try again.", b.limits.get().CommandsPerMinute)
}

// tooManyRequests is the answer to someone over Limits.RequestsPerMinute.
func (b *Bot) tooManyRequests() string {
	return fmt.Sprintf("You have made %d requests in the last minute, the most symbot takes. Please wait a minute before asking again.", b.limits.get().RequestsPerMinute)
}

// slowDown tells someone whose click was dropped for going too fast, once
// a minute at most, in the background.
func (b *Bot) slowDown(cb slack.InteractionCallback, now time.Time) {
	if !b.limits.commands.notify(cb.User.ID, now) {
		return
	}
	ch := cb.Container.ChannelID
	if ch == "" {
		ch = cb.Channel.ID
	}
	to := replyTo{User: cb.User.ID, Channel: ch, ResponseURL: cb.ResponseURL}
	b.enqueue("too fast", cb.User.ID, classRead, func(ctx context.Context) { b.tell(ctx, to, b.tooFast()) })
}

// checkPending refuses a new request from someone who already has
// Limits.PendingPerUser requests waiting for approval.
func (b *Bot) checkPending(ctx context.Context, eng *symbot.Engine, user string) error {
	max := b.limits.get().PendingPerUser
	if max < 0 {
		return nil
	}
	rs, err := eng.ListForUser(ctx, user)
	if err != nil {
		return err
	}
	n := 0
	for _, r := range rs {
		if r.State == symbot.StatePending {
			n++
		}
	}
	if n >= max {
		return &symbot.PolicyError{Reason: fmt.Sprintf("you have %d requests waiting for approval, the most symbot keeps for one person. Cancel one in `%s list`, or wait for a decision", n, b.cfg.Command)}
	}
	return nil
}
