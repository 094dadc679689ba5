// What the bot does with each event: slash commands, button clicks and modal
// submissions, acknowledged within Slack's 3 seconds; every decision is the
// engine's (MayDecide before a form opens).

package bot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/slack-go/slack"
	"github.com/symbot/symbot"
)

// ackMessage is the payload of a slash command ack: Slack shows it to the
// person as an ephemeral message.
type ackMessage struct {
	ResponseType string `json:"response_type"`
	Text         string `json:"text"`
}

func ephemeralAck(text string) ackMessage {
	return ackMessage{ResponseType: slack.ResponseTypeEphemeral, Text: symbot.TruncateRunes(text, maxReplyRunes)}
}

// maxReplyRunes bounds every answer to a person: a section block holds 3000
// characters, and an ack must stay well under Socket Mode's 20 KB.
const maxReplyRunes = 2900

// maxAckBytes bounds an encoded ack payload: Slack silently drops Socket
// Mode responses of 20 KB or more, and then redelivers the envelope.
const maxAckBytes = 16 << 10

// boundAck returns payload, or a short stand-in when its encoding would not
// fit in an ack. The renderers bound what they echo; this is the last line.
func (b *Bot) boundAck(payload any) any {
	if payload == nil || payload == errNoAck {
		return payload
	}
	raw, err := json.Marshal(payload)
	if err == nil && len(raw) < maxAckBytes {
		return payload
	}
	b.log.Warn("ack payload too large; answering briefly", "bytes", len(raw), "err", err)
	if v, ok := payload.(*slack.ViewSubmissionResponse); ok && v.ResponseAction == slack.RAErrors {
		short := map[string]string{}
		for k, e := range v.Errors {
			if len(short) < 10 {
				short[symbot.TruncateRunes(k, 255)] = symbot.TruncateRunes(e, 150)
			}
		}
		return slack.NewErrorsViewSubmissionResponse(short)
	}
	return ephemeralAck("That answer was too long to show. " + helpHint(b.cfg.Command))
}

// replyTo says where to answer a person privately.
type replyTo struct {
	User        string
	Channel     string
	ResponseURL string
}

// onSlash handles a slash command on the event loop: it parses and
// validates (cheap), queues slow work, and returns the ack payload.
func (b *Bot) onSlash(cmd slack.SlashCommand, now time.Time) any {
	if cmd.TriggerID != "" && !b.recent.add("trigger|"+cmd.TriggerID, now, 0) {
		b.duplicates.Add(1)
		return nil
	}
	if !strings.EqualFold(cmd.Command, b.cfg.Command) {
		return ephemeralAck(fmt.Sprintf("I only answer `%s`. %s", Escape(b.cfg.Command), helpHint(b.cfg.Command)))
	}
	if !b.limits.commands.allow(cmd.UserID, now) {
		return ephemeralAck(b.tooFast())
	}
	eng := b.engine()
	to := replyTo{User: cmd.UserID, Channel: cmd.ChannelID, ResponseURL: cmd.ResponseURL}
	log := b.log.With("user", cmd.UserID, "command", cmd.Command)
	c, err := parseCommand(cmd.Text, b.cfg.Command)
	if err != nil {
		return ephemeralAck(b.explain(err))
	}
	var fn func(ctx context.Context)
	name, class := "", classAct
	switch c.Kind {
	case cmdHelp:
		return ephemeralAck(helpText(b.cfg.Command))
	case cmdModal:
		flows := eng.Flows()
		if c.Flow != "" {
			if err := checkTargetName(flows, "flow", c.Flow); err != nil {
				return ephemeralAck(b.explain(err))
			}
			f, ok := eng.Flow(c.Flow)
			if !ok {
				// "/sym req target" without duration and reason.
				if _, _, err := eng.ResolveTarget("", c.Flow); err == nil {
					cc := Escape(b.cfg.Command)
					return ephemeralAck(b.explain(&UsageError{Problem: "The duration and reason are missing. Expected `" + cc + " req <target> <duration> <reason…>`, or `" + cc + " req` for the form."}))
				}
				return ephemeralAck(b.explain(&symbot.InputError{Field: "flow", Problem: fmt.Sprintf("there is no flow %q; the flows are %s", c.Flow, flowList(flows))}))
			}
			flows = []symbot.Flow{*f}
		}
		meta := encodeMeta(modalMeta{Channel: cmd.ChannelID, ResponseURL: cmd.ResponseURL})
		view := requestModal(flows, meta)
		name = "open request form"
		fn = func(ctx context.Context) { b.openView(ctx, cmd.TriggerID, view, to) }
	case cmdRequest:
		if err := checkTargetName(eng.Flows(), "target", c.Target); err != nil {
			return ephemeralAck(b.explain(err))
		}
		f, t, err := eng.ResolveTarget("", c.Target)
		if err != nil {
			return ephemeralAck(b.explain(err))
		}
		d, err := checkDuration(f, c.Duration)
		if err != nil {
			return ephemeralAck(b.explain(err))
		}
		reason, err := checkReason(c.Reason)
		if err != nil {
			return ephemeralAck(b.explain(err))
		}
		if !b.limits.requests.allow(cmd.UserID, now) {
			return ephemeralAck(b.tooManyRequests())
		}
		in := symbot.RequestInput{Flow: f.Name, Target: t.Name, Duration: d, Reason: reason}
		name = "submit request"
		fn = func(ctx context.Context) { b.submit(ctx, to, in) }
	case cmdList:
		name, class = "list", classRead
		fn = func(ctx context.Context) { b.list(ctx, to) }
	case cmdWhoami:
		name, class = "whoami", classRead
		fn = func(ctx context.Context) { b.whoami(ctx, to) }
	}
	if !b.enqueue(name, cmd.UserID, class, fn) {
		log.Warn("busy; command refused", "task", name)
		return ephemeralAck(b.explain(errBusy))
	}
	return nil
}

func flowList(flows []symbot.Flow) string {
	var n []string
	for _, f := range flows {
		n = append(n, f.Name)
	}
	return strings.Join(n, ", ")
}

func encodeMeta(m modalMeta) string {
	raw, _ := json.Marshal(m)
	return string(raw)
}

func decodeMeta(s string) modalMeta {
	var m modalMeta
	_ = json.Unmarshal([]byte(s), &m)
	return m
}

// onInteraction handles a button click or modal submission on the event
// loop and returns the ack payload.
func (b *Bot) onInteraction(cb slack.InteractionCallback, now time.Time) any {
	switch cb.Type {
	case slack.InteractionTypeBlockActions:
		if len(cb.ActionCallback.BlockActions) == 0 {
			return nil
		}
		a := *cb.ActionCallback.BlockActions[0]
		switch a.ActionID {
		case ActionApprove, ActionApproveNote, ActionDeny, ActionRevoke, ActionCancel, ActionRelinquish, ActionExtend:
		default:
			return nil // selects inside modals and the like
		}
		if cb.TriggerID != "" {
			if _, dup := b.recent.get("trigger|"+cb.TriggerID, now); dup {
				b.duplicates.Add(1)
				return nil
			}
		}
		key := strings.Join([]string{"click", cb.User.ID, a.ActionID, a.Value, cb.Container.MessageTs}, "|")
		if _, dup := b.recent.get(key, now); dup || b.sharedSeen(key, now) {
			b.doubleClicks.Add(1)
			b.log.Debug("double click ignored", "user", cb.User.ID, "action", a.ActionID, "request_id", a.Value)
			return nil
		}
		if !b.limits.commands.allow(cb.User.ID, now) {
			b.slowDown(cb, now)
			return nil
		}
		if !b.enqueue("click "+a.ActionID, cb.User.ID, classAct, func(ctx context.Context) { b.onClick(ctx, cb, a) }) {
			return errNoAck
		}
		b.recent.put(key, now, b.cfg.ClickWindow, nil)
		b.sharedMark(key, now, b.cfg.ClickWindow)
		if cb.TriggerID != "" {
			b.recent.put("trigger|"+cb.TriggerID, now, 0, nil)
		}
		return nil
	case slack.InteractionTypeViewSubmission:
		return b.onSubmit(cb, now)
	}
	return nil
}

// onSubmit validates a modal submission synchronously: problems go back
// inline in the ack; valid input is queued for the engine and the ack
// closes the modal.
func (b *Bot) onSubmit(cb slack.InteractionCallback, now time.Time) any {
	viewKey := "view|" + cb.View.ID
	if _, done := b.recent.get(viewKey, now); done {
		b.duplicates.Add(1)
		return nil // already accepted: just close it
	}
	meta := decodeMeta(cb.View.PrivateMetadata)
	to := replyTo{User: cb.User.ID, Channel: meta.Channel, ResponseURL: meta.ResponseURL}
	var values slack.ViewState
	if cb.View.State != nil {
		values = *cb.View.State
	}
	field := BlockReason
	if cb.View.CallbackID == CallbackNote {
		field = BlockNote
	}
	if !b.limits.commands.allow(cb.User.ID, now) {
		return slack.NewErrorsViewSubmissionResponse(map[string]string{field: b.tooFast()})
	}
	var fn func(ctx context.Context)
	name := ""
	switch cb.View.CallbackID {
	case CallbackRequest:
		in, errs := b.readRequestForm(values)
		if len(errs) > 0 {
			return slack.NewErrorsViewSubmissionResponse(errs)
		}
		if !b.limits.requests.allow(cb.User.ID, now) {
			return slack.NewErrorsViewSubmissionResponse(map[string]string{BlockReason: b.tooManyRequests()})
		}
		name = "submit request"
		fn = func(ctx context.Context) { b.submit(ctx, to, in) }
	case CallbackNote:
		note := strings.TrimSpace(inputValue(values, BlockNote))
		if len(note) > 500*4 {
			return slack.NewErrorsViewSubmissionResponse(map[string]string{BlockNote: "Too long: at most 500 characters."})
		}
		action, id, nonce := meta.Action, meta.RequestID, meta.Nonce
		name = "decide " + action
		fn = func(ctx context.Context) { b.decide(ctx, to, action, id, nonce, note) }
	case CallbackExtend:
		eng := b.engine()
		f, ok := eng.Flow(meta.Flow)
		if meta.Target != "" {
			ff, _, err := eng.ResolveTarget(meta.Flow, meta.Target) // the target's limits
			f, ok = ff, err == nil
		}
		errs := map[string]string{}
		var d time.Duration
		if ok {
			var err error
			if d, err = checkDuration(f, selectedValue(values, BlockDuration)); err != nil {
				errs[BlockDuration] = b.inputProblem(err)
			}
		}
		reason, err := checkReason(inputValue(values, BlockReason))
		if err == nil && ok {
			err = f.Reason.Check(reason)
		}
		if err != nil {
			errs[BlockReason] = b.inputProblem(err)
		}
		if len(errs) > 0 {
			return slack.NewErrorsViewSubmissionResponse(errs)
		}
		if !b.limits.requests.allow(cb.User.ID, now) {
			return slack.NewErrorsViewSubmissionResponse(map[string]string{BlockReason: b.tooManyRequests()})
		}
		id, nonce := meta.RequestID, meta.Nonce
		name = "extend"
		fn = func(ctx context.Context) { b.extend(ctx, to, id, nonce, d, reason) }
	default:
		return nil
	}
	if !b.enqueue(name, cb.User.ID, classAct, fn) {
		return slack.NewErrorsViewSubmissionResponse(map[string]string{field: "symbot is busy right now; please submit again in a moment."})
	}
	b.recent.put(viewKey, now, 0, nil)
	return nil
}

// readRequestForm validates the request form and returns the input, or
// problems keyed by block id.
func (b *Bot) readRequestForm(values slack.ViewState) (symbot.RequestInput, map[string]string) {
	eng := b.engine()
	errs := map[string]string{}
	var in symbot.RequestInput
	var f *symbot.Flow
	spec := selectedValue(values, BlockTarget)
	if spec == "" {
		errs[BlockTarget] = "Choose what you need access to."
	} else if err := checkTargetName(eng.Flows(), "target", spec); err != nil {
		errs[BlockTarget] = b.inputProblem(err)
	} else {
		ff, t, err := eng.ResolveTarget("", spec)
		if err != nil {
			errs[BlockTarget] = b.inputProblem(err)
		} else {
			f, in.Flow, in.Target = ff, ff.Name, t.Name
		}
	}
	ds := selectedValue(values, BlockDuration)
	switch {
	case ds == "":
		errs[BlockDuration] = "Choose how long you need it."
	case f != nil:
		d, err := checkDuration(f, ds)
		if err != nil {
			errs[BlockDuration] = b.inputProblem(err)
		}
		in.Duration = d
	}
	reason, err := checkReason(inputValue(values, BlockReason))
	if err == nil && f != nil {
		err = f.Reason.Check(reason) // the target's reason rule, its message next to the field
	}
	if err != nil {
		errs[BlockReason] = b.inputProblem(err)
	}
	in.Reason = reason
	return in, errs
}

// inputProblem is Explain's plain-text form for inline modal field errors
// (Slack shows them as plain text next to the field, so no escaping and no
// field name: the field is right there).
func (b *Bot) inputProblem(err error) string {
	var ie *symbot.InputError
	if errors.As(err, &ie) {
		p := symbot.TruncateRunes(symbot.OneLine(ie.Problem), 300)
		if p != "" {
			p = strings.ToUpper(p[:1]) + p[1:]
		}
		return p + "."
	}
	return b.explain(err)
}

func selectedValue(v slack.ViewState, block string) string {
	if a, ok := v.Values[block][block]; ok {
		return a.SelectedOption.Value
	}
	return ""
}

func inputValue(v slack.ViewState, block string) string {
	if a, ok := v.Values[block][block]; ok {
		return a.Value
	}
	return ""
}

// ---- slow work, run by the workers --------------------------------------

// tell answers a person privately: through the response_url when there is
// one, else an ephemeral message in the channel, else a direct message.
func (b *Bot) tell(ctx context.Context, to replyTo, text string, blocks ...slack.Block) {
	text = symbot.TruncateRunes(text, maxReplyRunes)
	opts := []slack.MsgOption{slack.MsgOptionText(text, false)}
	if len(blocks) > 0 {
		opts = append(opts, slack.MsgOptionBlocks(blocks...))
	}
	if to.ResponseURL != "" {
		err := b.call(ctx, interactive, "response_url", to.Channel, func(ctx context.Context) error {
			_, _, err := b.api.PostMessageContext(ctx, to.Channel, append(opts, slack.MsgOptionResponseURL(to.ResponseURL, slack.ResponseTypeEphemeral))...)
			return err
		})
		if err == nil {
			return
		}
		b.log.Info("response_url failed; trying an ephemeral message", "user", to.User, "err", err)
	}
	if to.Channel != "" {
		err := b.call(ctx, interactive, "chat.postEphemeral", to.Channel, func(ctx context.Context) error {
			_, err := b.api.PostEphemeralContext(ctx, to.Channel, to.User, opts...)
			return err
		})
		if err == nil {
			return
		}
		b.log.Info("ephemeral message failed; sending a DM", "user", to.User, "channel", to.Channel, "err", err)
	}
	if len(blocks) == 0 {
		blocks = []slack.Block{slack.NewSectionBlock(mrkdwn(text), nil, nil, slack.SectionBlockOptionBlockID("sym_reply"))}
	}
	if err := b.dm(ctx, interactive, to.User, text, blocks); err != nil {
		b.log.Error("could not answer user", "user", to.User, "err", err)
	}
}

// fail logs err with its details and tells the person Explain(err).
func (b *Bot) fail(ctx context.Context, to replyTo, what string, err error) {
	var (
		pe *symbot.PolicyError
		de *symbot.DecidedError
		ie *symbot.InputError
		du *symbot.DuplicateError
		ue *UsageError
	)
	if errors.Is(err, symbot.ErrUserNotFound) {
		if p, ok := b.cachedProfile(to.User); ok && p.emailUnconfirmed {
			err = fmt.Errorf("%w: %w", errEmailUnconfirmed, err)
		}
	}
	level := slogLevelFor(err, errors.As(err, &pe) || errors.As(err, &de) || errors.As(err, &ie) || errors.As(err, &du) || errors.As(err, &ue) || errors.Is(err, symbot.ErrNotFound) || errors.Is(err, symbot.ErrOutOfDate))
	b.log.Log(ctx, level, what+" refused or failed", "user", to.User, "err", err)
	b.tell(ctx, to, b.explain(err))
}

func (b *Bot) openView(ctx context.Context, triggerID string, view slack.ModalViewRequest, to replyTo) {
	err := b.call(ctx, interactive, "views.open", "", func(ctx context.Context) error {
		_, err := b.api.OpenViewContext(ctx, triggerID, view)
		return err
	})
	if err != nil {
		b.fail(ctx, to, "open modal", err)
	}
}

func (b *Bot) submit(ctx context.Context, to replyTo, in symbot.RequestInput) {
	actor, err := b.admit(ctx, to.User)
	if err != nil {
		b.fail(ctx, to, "request", err)
		return
	}
	eng := b.engine()
	if err := b.checkPending(ctx, eng, to.User); err != nil {
		b.fail(ctx, to, "request", err)
		return
	}
	if p, _ := b.cachedProfile(to.User); p.emailUnconfirmed {
		// The grant finds the requester in Okta, and an unconfirmed email
		// is not used for that: say so now rather than fail the grant
		// later (an override by Slack id may still find them).
		if _, err := eng.ResolveUser(ctx, actor.Person); err != nil {
			b.fail(ctx, to, "request", err)
			return
		}
	}
	r, err := eng.Submit(ctx, actor, in)
	if err != nil {
		b.fail(ctx, to, "request", err)
		return
	}
	f, _ := eng.Flow(r.Flow)
	where := ""
	if f != nil {
		where = " in " + channelRef(f.Channel)
	}
	what := "Request"
	if r.ExtensionOf != "" {
		what = "Extension request (of `" + Escape(r.ExtensionOf) + "`)"
	}
	b.tell(ctx, to, fmt.Sprintf("%s `%s` for *%s* (%s) sent; it is waiting for approval%s. `%s list` shows it.",
		what, Escape(r.ID), Escape(targetLabel(f, r)), symbot.FormatDuration(r.Duration), where, Escape(b.cfg.Command)))
}

func (b *Bot) extend(ctx context.Context, to replyTo, id, nonce string, d time.Duration, reason string) {
	eng := b.engine()
	if _, err := eng.CheckButton(ctx, id, nonce); err != nil {
		b.fail(ctx, to, "extend", err)
		return
	}
	actor, err := b.admit(ctx, to.User)
	if err != nil {
		b.fail(ctx, to, "extend", err)
		return
	}
	r, err := eng.Extend(ctx, id, actor, d, reason)
	if err != nil {
		b.fail(ctx, to, "extend", err)
		return
	}
	f, _ := eng.Flow(r.Flow)
	b.tell(ctx, to, fmt.Sprintf("Extension request `%s` for *%s* (%s more) sent; it is waiting for approval.", Escape(r.ID), Escape(targetLabel(f, r)), symbot.FormatDuration(r.Duration)))
}

func (b *Bot) list(ctx context.Context, to replyTo) {
	eng := b.engine()
	rs, err := eng.ListForUser(ctx, to.User)
	if err != nil {
		b.fail(ctx, to, "list", err)
		return
	}
	text, blocks := listBlocks(func(name string) *symbot.Flow { f, _ := eng.Flow(name); return f }, rs, b.cfg.Now(), b.cfg.Command)
	b.tell(ctx, to, text, blocks...)
}

func (b *Bot) whoami(ctx context.Context, to replyTo) {
	p, err := b.profile(ctx, to.User)
	if err != nil {
		b.fail(ctx, to, "whoami", err)
		return
	}
	actor := p.actor
	eng := b.engine()
	var lines []string
	kind := ""
	switch {
	case actor.IsBot:
		kind = " (a bot)"
	case actor.IsGuest:
		kind = " (a guest)"
	}
	lines = append(lines, fmt.Sprintf("*Slack:* %s, `%s`%s", mention(actor.SlackID), Escape(actor.SlackID), kind))
	if p.refusal != "" {
		lines = append(lines, "*May not use symbot:* "+Escape(p.refusal)+".")
		text := strings.Join(lines, "\n")
		b.tell(ctx, to, text, slack.NewSectionBlock(mrkdwn(text), nil, nil, slack.SectionBlockOptionBlockID("sym_whoami")))
		return
	}
	if p.emailUnconfirmed {
		lines = append(lines, "*Email:* not confirmed in Slack, so symbot does not use it to find you in Okta.")
	}
	if u, err := eng.ResolveUser(ctx, actor.Person); err != nil {
		b.log.Info("whoami: directory lookup failed", "user", actor.SlackID, "err", err)
		lines = append(lines, "*Okta:* not resolved. "+b.explain(err))
	} else {
		lines = append(lines, fmt.Sprintf("*Okta:* %s (`%s`, %s)", Escape(u.Login), Escape(u.ID), Escape(strings.ToLower(u.Status))))
	}
	var req, appr []string
	for _, f := range eng.Flows() {
		if !actor.IsBot && (!actor.IsGuest || f.AllowGuests) {
			req = append(req, "`"+Escape(f.Name)+"`")
		}
		key := actor.SlackID + "|" + actor.Email + "|" + f.Name
		now, ttl := b.cfg.Now(), b.limits.ApproverCacheTTL
		ok, cached := b.approvers.get(key, now, ttl)
		if !cached {
			ok, err = eng.MayApprove(ctx, &f, actor)
			if err == nil {
				b.approvers.put(key, ok, now, ttl)
			}
		}
		if err != nil {
			b.log.Info("whoami: approver check failed", "user", actor.SlackID, "flow", f.Name, "err", err)
			appr = append(appr, "`"+Escape(f.Name)+"` (could not check: "+b.explain(err)+")")
			continue
		}
		if ok {
			appr = append(appr, "`"+Escape(f.Name)+"`")
		}
	}
	none := func(s []string) string {
		if len(s) == 0 {
			return "none"
		}
		return strings.Join(s, ", ")
	}
	lines = append(lines, "*May request:* "+none(req), "*May approve:* "+none(appr))
	text := strings.Join(lines, "\n")
	b.tell(ctx, to, text, slack.NewSectionBlock(mrkdwn(text), nil, nil, slack.SectionBlockOptionBlockID("sym_whoami")))
}

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
	case errors.As(err, &pe), errors.As(err, &de):
		return err
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
	return fmt.Sprintf("You are sending symbot commands faster than it takes them (%d a minute). Please wait a moment and try again.", b.limits.CommandsPerMinute)
}

// tooManyRequests is the answer to someone over Limits.RequestsPerMinute.
func (b *Bot) tooManyRequests() string {
	return fmt.Sprintf("You have made %d requests in the last minute, the most symbot takes. Please wait a minute before asking again.", b.limits.RequestsPerMinute)
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
	max := b.limits.PendingPerUser
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
