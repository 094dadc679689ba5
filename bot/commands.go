// The slow half of a slash command or form, run on the bot's worker queue:
// telling people, opening views, submitting, extending, /sym list and
// /sym whoami.

package bot

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/slack-go/slack"
	"github.com/symbot/symbot"
)

// tell answers a person privately: in the ack of the slash command being
// answered when that is still unsent and can carry it (replyTo.ack), else
// through the response_url when there is one, else an ephemeral message in
// the channel, else a direct message.
func (b *Bot) tell(ctx context.Context, to replyTo, text string, blocks ...slack.Block) {
	text = symbot.TruncateRunes(text, maxReplyRunes)
	if to.ack.answer(ctx, ackMessage{ResponseType: slack.ResponseTypeEphemeral, Text: text, Blocks: blocks}) {
		b.log.Debug("answered in the ack", "user", to.User)
		return
	}
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
	level := slogLevelFor(err, errors.As(err, &pe) || errors.As(err, &de) || errors.As(err, &ie) || errors.As(err, &du) || errors.As(err, &ue) || errors.Is(err, symbot.ErrNotFound) || errors.Is(err, symbot.ErrOutOfDate) || errors.Is(err, symbot.ErrNotAllowed))
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

// submit makes a request; start is the start time as typed ("" for at
// once), read here in the requester's Slack time zone.
func (b *Bot) submit(ctx context.Context, to replyTo, in symbot.RequestInput, start string) {
	actor, err := b.admit(ctx, to.User)
	if err != nil {
		b.fail(ctx, to, "request", err)
		return
	}
	if start != "" {
		loc := time.UTC
		if p, ok := b.cachedProfile(to.User); ok && p.loc != nil {
			loc = p.loc
		}
		if in.StartAt, err = symbot.ParseStartTime(start, b.cfg.Now(), loc); err != nil {
			b.fail(ctx, to, "request", err)
			return
		}
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
	when := ""
	if !r.StartAt.IsZero() {
		when = ", starting " + slackDate(r.StartAt)
	}
	b.tell(ctx, to, fmt.Sprintf("%s `%s` for *%s* (%s%s) sent; it is waiting for approval%s. `%s list` shows it.",
		what, Escape(r.ID), Escape(targetLabel(f, r)), symbot.FormatDuration(r.Duration), when, where, Escape(b.cfg.Command)))
}

// breakGlass grants emergency access at once and says what happens next.
func (b *Bot) breakGlass(ctx context.Context, to replyTo, in symbot.RequestInput) {
	actor, err := b.admit(ctx, to.User)
	if err != nil {
		b.fail(ctx, to, "break-glass", err)
		return
	}
	eng := b.engine()
	r, err := eng.BreakGlass(ctx, actor, in)
	if err != nil {
		b.fail(ctx, to, "break-glass", err)
		return
	}
	f, _ := eng.Flow(r.Flow)
	where := ""
	if f != nil && f.BreakGlass != nil {
		ch := f.BreakGlass.Channel
		if ch == "" {
			ch = f.Channel
		}
		where = " in " + channelRef(ch)
	}
	b.tell(ctx, to, fmt.Sprintf(":rotating_light: Break-glass access `%s` to *%s* for %s is being granted now, without approval. It was announced%s and to the symbot operators, and an approver must review it. `%s list` shows it; relinquish it as soon as you are done.",
		Escape(r.ID), Escape(targetLabel(f, r)), symbot.FormatDuration(r.Duration), where, Escape(b.cfg.Command)))
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
	// An identity conflict refuses every request and decision: it is
	// explained once, here, rather than once per flow.
	var conflict *symbot.IdentityConflictError
	if u, err := eng.ResolveUser(ctx, actor.Person); err != nil {
		b.log.Info("whoami: directory lookup failed", "user", actor.SlackID, "err", err)
		lines = append(lines, "*Okta:* not resolved. "+b.explain(err))
		errors.As(err, &conflict)
	} else {
		lines = append(lines, fmt.Sprintf("*Okta:* %s (`%s`, %s)", Escape(u.Login), Escape(u.ID), Escape(strings.ToLower(u.Status))))
	}
	var req, appr []string
	var requestable []symbot.Flow
	now, ttl := b.cfg.Now(), b.limits.get().ApproverCacheTTL
	for _, f := range eng.Flows() {
		if conflict != nil {
			break
		}
		if !actor.IsBot && (!actor.IsGuest || f.AllowGuests) {
			req = append(req, "`"+Escape(f.Name)+"`")
			requestable = append(requestable, f)
		}
		key := actor.SlackID + "|" + actor.Email + "|" + f.Name
		ok, cached := b.approvers.get(key, now, ttl)
		var err error
		if !cached {
			ok, err = eng.MayApprove(ctx, &f, actor)
			if err == nil {
				b.approvers.put(key, ok, now, ttl)
			}
		}
		if errors.As(err, &conflict) {
			// Found out now (the directory was asked afresh): say it once.
			lines = append(lines, b.explain(err))
			break
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
	if conflict != nil {
		lines = append(lines, "*May request:* nothing until the operators have checked your account (see above)", "*May approve:* nothing until then")
		text := strings.Join(lines, "\n")
		b.tell(ctx, to, text, slack.NewSectionBlock(mrkdwn(text), nil, nil, slack.SectionBlockOptionBlockID("sym_whoami")))
		return
	}
	none := func(s []string) string {
		if len(s) == 0 {
			return "none"
		}
		return strings.Join(s, ", ")
	}
	lines = append(lines, "*May request:* "+none(req), "*May approve:* "+none(appr))
	text := strings.Join(lines, "\n")
	blocks := []slack.Block{slack.NewSectionBlock(mrkdwn(text), nil, nil, slack.SectionBlockOptionBlockID("sym_whoami"))}
	if needs := outlookLines(ctx, eng, requestable, actor); len(needs) > 0 {
		head := "*Your requests would need:*"
		text += "\n" + head + "\n" + strings.Join(needs, "\n")
		blocks = append(blocks, sectionsOf(head, needs, "sym_whoami_needs")...)
	}
	b.tell(ctx, to, text, blocks...)
}

// outlookLines says, per flow (or per target where the targets of a flow
// differ), who would have to approve actor's request, under the rules
// that can be decided before the request; the rules that depend on the
// request itself (its reason, duration, time, on-call status) are named.
func outlookLines(ctx context.Context, eng *symbot.Engine, flows []symbot.Flow, actor symbot.Actor) []string {
	var out []string
	all := eng.Outlook(ctx, flows, actor)
	for i := range flows {
		f := &flows[i]
		type line struct{ target, words string }
		var ls []line
		for _, o := range all {
			if o.Flow != f.Name {
				continue
			}
			if eff, _, ok := f.ForTarget(o.Target); ok && actor.IsGuest && !eff.AllowGuests {
				continue
			}
			ls = append(ls, line{o.Target, outlookWords(o)})
		}
		same := true
		for _, l := range ls {
			same = same && l.words == ls[0].words
		}
		switch {
		case len(ls) == 0:
		case same:
			out = append(out, "• `"+Escape(f.Name)+"`: "+ls[0].words)
		default:
			for _, l := range ls {
				out = append(out, "• `"+Escape(f.Name+"/"+l.target)+"`: "+l.words)
			}
		}
	}
	return out
}

// outlookWords says what one target's request would need.
func outlookWords(o symbot.Outlook) string {
	var s string
	r := o.Rule
	switch {
	case r != nil && r.Action == symbot.RuleApprove:
		s = "approved at once by rule `" + Escape(r.Name) + "`"
	case r != nil && r.Action == symbot.RuleRefuse:
		s = "refused by rule `" + Escape(r.Name) + "`"
	default:
		n := o.Approvals
		if n < 1 {
			n = symbot.DefaultApprovalsRequired
		}
		s = fmt.Sprintf("%d approval", n)
		if n != 1 {
			s += "s"
		}
		s += " from " + approverWords(o.Approvers)
		if r != nil {
			s += " (rule `" + Escape(r.Name) + "`)"
		}
	}
	if len(o.Depends) > 0 {
		names := make([]string, len(o.Depends))
		for i, d := range o.Depends {
			names[i] = "`" + Escape(d) + "`"
		}
		s = "depends on rules " + strings.Join(names, ", ") + "; otherwise " + s
	}
	return s
}

// sectionsOf puts head and lines into section blocks of at most
// maxReplyRunes each, at most maxWhoamiSections of them; lines that do
// not fit are counted in a last line.
func sectionsOf(head string, lines []string, id string) []slack.Block {
	var blocks []slack.Block
	cur := head
	flush := func() {
		blocks = append(blocks, slack.NewSectionBlock(mrkdwn(cur), nil, nil, slack.SectionBlockOptionBlockID(fmt.Sprintf("%s_%d", id, len(blocks)))))
		cur = ""
	}
	for i, l := range lines {
		l = symbot.TruncateRunes(l, maxReplyRunes-100)
		if utf8.RuneCountInString(cur)+1+utf8.RuneCountInString(l) > maxReplyRunes {
			if len(blocks) == maxWhoamiSections-1 {
				cur += fmt.Sprintf("\n… and %d more", len(lines)-i)
				break
			}
			flush()
		}
		if cur != "" {
			cur += "\n"
		}
		cur += l
	}
	flush()
	return blocks
}

// maxWhoamiSections bounds the sections of whoami's "would need" part
// (Slack allows 50 blocks in a message).
const maxWhoamiSections = 10
