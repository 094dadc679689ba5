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
	ResponseType string        `json:"response_type"`
	Text         string        `json:"text"`
	Blocks       []slack.Block `json:"blocks,omitempty"`
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
	// ack, when not nil, lets the first answer ride in the unacknowledged
	// ack of the slash command being answered.
	ack *ackReply
}

// onSlash handles a slash command on the event loop: it parses and
// validates (cheap), queues slow work, and returns the ack payload, or
// ackWhenDone for a request, whose work calls settle once it is stored,
// or answers the person in the ack through ar (nil when the envelope
// takes no response payload).
func (b *Bot) onSlash(cmd slack.SlashCommand, now time.Time, settle func(any), ar *ackReply) any {
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
	c, err := parseCommand(cmd.Text, b.cfg.Command)
	if err != nil {
		return ephemeralAck(b.explain(err))
	}
	var fn func(ctx context.Context)
	name, class, later := "", classAct, false
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
		fn = func(ctx context.Context) {
			b.openView(ctx, cmd.TriggerID, view, to)
			// Learn the person's time zone while they fill the form in, so
			// that its start time is checked when they submit it.
			if _, err := b.profile(ctx, cmd.UserID); err != nil {
				b.log.Debug("profile for the request form", "user", cmd.UserID, "err", err)
			}
		}
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
		if c.Start != "" {
			// The form of the time is checked now; the time itself is
			// read in the requester's time zone by the worker.
			if _, err := symbot.ParseStartTime(c.Start, now, time.UTC); err != nil {
				return ephemeralAck(b.explain(err))
			}
		}
		if !b.limits.requests.allow(cmd.UserID, now) {
			return ephemeralAck(b.tooManyRequests())
		}
		in := symbot.RequestInput{Flow: f.Name, Target: t.Name, Duration: d, Reason: reason}
		name, later = "submit request", true
		start := c.Start
		to.ack = ar
		fn = settled(settle, func(ctx context.Context) { b.submit(ctx, to, in, start) })
	case cmdBreakGlass:
		if err := checkTargetName(eng.Flows(), "target", c.Target); err != nil {
			return ephemeralAck(b.explain(err))
		}
		f, t, err := eng.ResolveTarget("", c.Target)
		if err != nil {
			return ephemeralAck(b.explain(err))
		}
		if f.BreakGlass == nil {
			return ephemeralAck(b.explain(&symbot.PolicyError{Reason: fmt.Sprintf("flow %s has no break-glass access; ask for approval with `%s req`", f.Name, b.cfg.Command)}))
		}
		d, err := symbot.ParseDuration(c.Duration)
		if err == nil {
			err = f.BreakGlass.CheckDuration(f.Name, d)
		} else {
			err = &symbot.InputError{Field: "duration", Problem: fmt.Sprintf("not a duration: use a form like 15m or 1h; break-glass access in %s lasts at most %s", f.Name, symbot.FormatDuration(f.BreakGlass.MaxDuration))}
		}
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
		name, later = "break-glass", true
		to.ack = ar
		fn = settled(settle, func(ctx context.Context) { b.breakGlass(ctx, to, in) })
	case cmdList:
		name, class = "list", classRead
		fn = func(ctx context.Context) { b.list(ctx, to) }
	case cmdWhoami:
		name, class = "whoami", classRead
		fn = func(ctx context.Context) { b.whoami(ctx, to) }
	}
	if !b.enqueue(name, cmd.UserID, class, fn) {
		b.log.Warn("busy; command refused", "task", name, "user", cmd.UserID, "command", cmd.Command)
		return ephemeralAck(b.explain(errBusy))
	}
	if later {
		return ackWhenDone
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

// onInteraction handles a click or a form on the event loop and returns
// the ack payload, or ackWhenDone for a button, whose work (a decision,
// or the form it opens) calls settle when it is done. redelivery is true
// when Slack delivers the envelope again (retry_attempt > 0).
func (b *Bot) onInteraction(cb slack.InteractionCallback, now time.Time, redelivery bool, settle func(any)) any {
	switch cb.Type {
	case slack.InteractionTypeBlockActions:
		if len(cb.ActionCallback.BlockActions) == 0 {
			return nil
		}
		a := *cb.ActionCallback.BlockActions[0]
		switch a.ActionID {
		case ActionApprove, ActionApproveNote, ActionDeny, ActionRevoke, ActionCancel, ActionRelinquish, ActionExtend, ActionAcknowledge:
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
		// The shared mark of a click is made when a replica takes it on,
		// before its outcome is stored. A redelivered envelope was taken on
		// by a replica that did not acknowledge it (it died, or is still at
		// work): that replica's mark is its own, not a double click, and a
		// redelivery whose work was done was recognised above.
		if _, dup := b.recent.get(key, now); dup || (!redelivery && b.sharedSeen(key, now)) {
			b.doubleClicks.Add(1)
			b.log.Debug("double click ignored", "user", cb.User.ID, "action", a.ActionID, "request_id", a.Value)
			return nil
		}
		if !b.limits.commands.allow(cb.User.ID, now) {
			b.slowDown(cb, now)
			return nil
		}
		if !b.enqueue("click "+a.ActionID, cb.User.ID, classAct, settled(settle, func(ctx context.Context) { b.onClick(ctx, cb, a) })) {
			return errNoAck
		}
		b.recent.put(key, now, b.cfg.ClickWindow, nil)
		b.sharedMark(key, now, b.cfg.ClickWindow)
		if cb.TriggerID != "" {
			b.recent.put("trigger|"+cb.TriggerID, now, 0, nil)
		}
		return ackWhenDone
	case slack.InteractionTypeViewSubmission:
		return b.onSubmit(cb, now, settle)
	}
	return nil
}

// onSubmit validates a modal submission synchronously: problems go back
// inline in the ack; valid input is queued for the engine, and its work
// acknowledges the submission (closing the modal) once its outcome is
// stored, as for a slash command or a click: a process that dies in between
// leaves the modal open with Slack's error, not closed on a lost request.
func (b *Bot) onSubmit(cb slack.InteractionCallback, now time.Time, settle func(any)) any {
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
		in, start, errs := b.readRequestForm(values, cb.User.ID, now)
		if len(errs) > 0 {
			return slack.NewErrorsViewSubmissionResponse(errs)
		}
		if !b.limits.requests.allow(cb.User.ID, now) {
			return slack.NewErrorsViewSubmissionResponse(map[string]string{BlockReason: b.tooManyRequests()})
		}
		name = "submit request"
		fn = func(ctx context.Context) { b.submit(ctx, to, in, start) }
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
	if !b.enqueue(name, cb.User.ID, classAct, settled(settle, fn)) {
		return slack.NewErrorsViewSubmissionResponse(map[string]string{field: "symbot is busy right now; please submit again in a moment."})
	}
	b.recent.put(viewKey, now, 0, nil)
	return ackWhenDone
}

// readRequestForm validates the request form and returns the input and the
// start time as typed, or problems keyed by block id. The start is read in
// the requester's time zone when their profile is at hand (the form's
// opening asks for it); else only its form is checked here, and the worker
// reads it.
func (b *Bot) readRequestForm(values slack.ViewState, user string, now time.Time) (symbot.RequestInput, string, map[string]string) {
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
	start := strings.TrimSpace(inputValue(values, BlockStart))
	if start != "" {
		loc, known := time.UTC, false
		if p, ok := b.cachedProfile(user); ok && p.loc != nil {
			loc, known = p.loc, true
		}
		at, err := symbot.ParseStartTime(start, now, loc)
		if err == nil && known && f != nil {
			err = f.CheckStart(at, now)
		}
		if err != nil {
			errs[BlockStart] = b.inputProblem(err)
		}
	}
	return in, start, errs
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
