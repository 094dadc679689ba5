// The Notifier the engine's jobs call: post and update the approval message,
// DM people, alert the operators.

package bot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/slack-go/slack"
	"github.com/symbot/symbot"
)

// errNotPosted is returned by UpdateRequest before the approval message exists.
var errNotPosted = errors.New("approval message not posted yet")

// PostRequest posts the approval message for r in f's channel.
func (b *Bot) PostRequest(ctx context.Context, f *symbot.Flow, r *symbot.Request) (symbot.MessageRef, error) {
	return b.postApproval(ctx, f, r, renderApproval(f, r))
}

// approvalMessage is an approval message as it is posted: its text and
// blocks (encoded already when PreparePost made it).
type approvalMessage struct {
	text   string
	blocks []slack.Block
}

// renderApproval renders the approval message for r in f's channel.
func renderApproval(f *symbot.Flow, r *symbot.Request) *approvalMessage {
	text, blocks := renderRequest(f, r)
	if r.Message.TS != "" && r.Message.Channel != f.Channel {
		blocks = copyBlocks(r, blocks) // an escalation's re-post
	}
	return &approvalMessage{text: text, blocks: blocks}
}

// postApproval posts m, the approval message for r, in f's channel.
func (b *Bot) postApproval(ctx context.Context, f *symbot.Flow, r *symbot.Request, m *approvalMessage) (symbot.MessageRef, error) {
	ch, ts, err := b.postOnce(ctx, f.Channel, "", slack.MsgOptionText(m.text, false), slack.MsgOptionBlocks(m.blocks...))
	if err != nil {
		return symbot.MessageRef{}, err
	}
	b.log.Debug("approval message posted", "request_id", r.ID, "channel", ch, "ts", ts)
	return symbot.MessageRef{Channel: ch, TS: ts}, nil
}

var _ symbot.PostPreparer = (*Bot)(nil)

// PreparePost renders the approval message for r in f's channel and
// encodes its blocks, which is most of the work of posting it (slack-go
// encodes blocks by reflection when it sends them). It does no I/O; the
// engine runs it while r's transaction commits. Blocks that do not encode
// are left as they are, for the post to report.
func (b *Bot) PreparePost(f *symbot.Flow, r *symbot.Request) symbot.PreparedPost {
	m := renderApproval(f, r)
	if enc, err := encodeBlocks(m.blocks); err == nil {
		m.blocks = enc
	}
	return m
}

// PostPrepared posts p, prepared by PreparePost from f and r, as
// PostRequest(ctx, f, r) would.
func (b *Bot) PostPrepared(ctx context.Context, f *symbot.Flow, r *symbot.Request, p symbot.PreparedPost) (symbot.MessageRef, error) {
	if m, ok := p.(*approvalMessage); ok && m != nil {
		return b.postApproval(ctx, f, r, m)
	}
	return b.PostRequest(ctx, f, r)
}

// encodedBlock is a block already encoded as JSON: slack-go's encoding of
// a message's blocks then copies it instead of walking the block again.
type encodedBlock struct {
	typ slack.MessageBlockType
	id  string
	raw json.RawMessage
}

func (e encodedBlock) BlockType() slack.MessageBlockType { return e.typ }
func (e encodedBlock) ID() string                        { return e.id }
func (e encodedBlock) MarshalJSON() ([]byte, error)      { return e.raw, nil }

// encodeBlocks encodes each block as slack-go would when sending it.
func encodeBlocks(blocks []slack.Block) ([]slack.Block, error) {
	out := make([]slack.Block, len(blocks))
	for i, bl := range blocks {
		raw, err := json.Marshal(bl)
		if err != nil {
			return nil, err
		}
		out[i] = encodedBlock{typ: bl.BlockType(), id: bl.ID(), raw: raw}
	}
	return out, nil
}

// UpdateRequest re-renders r's approval message from r's current state and
// replies in its thread about ev. It fails (so the job retries) while the
// message has not been posted.
func (b *Bot) UpdateRequest(ctx context.Context, f *symbot.Flow, r *symbot.Request, ev symbot.Event) error {
	if r.Message.TS == "" {
		return fmt.Errorf("request %s: %w", r.ID, errNotPosted)
	}
	ch := r.Message.Channel
	if ch == "" {
		ch = f.Channel
	}
	text, blocks := renderRequest(f, r)
	err := b.call(ctx, durable, "chat.update", ch, func(ctx context.Context) error {
		_, _, _, err := b.api.UpdateMessageContext(ctx, ch, r.Message.TS, slack.MsgOptionText(text, false), slack.MsgOptionBlocks(blocks...))
		return err
	})
	if err != nil {
		return err
	}
	line := threadLine(f, r, ev)
	_, _, err = b.postOnce(ctx, ch, r.Message.TS, slack.MsgOptionText(line, false),
		slack.MsgOptionBlocks(slack.NewSectionBlock(mrkdwn(line), nil, nil, slack.SectionBlockOptionBlockID("sym_event"))))
	if err != nil {
		return fmt.Errorf("reply in thread of %s: %w", r.ID, err)
	}
	// The copies an escalation re-posted follow the original; a failure
	// there must not repeat the thread reply above, so it is only logged.
	copied := copyBlocks(r, blocks)
	for _, m := range r.Reposts {
		err := b.call(ctx, durable, "chat.update", m.Channel, func(ctx context.Context) error {
			_, _, _, err := b.api.UpdateMessageContext(ctx, m.Channel, m.TS, slack.MsgOptionText(text, false), slack.MsgOptionBlocks(copied...))
			return err
		})
		if err != nil {
			b.log.Warn("update of a re-posted approval message failed", "request_id", r.ID, "channel", m.Channel, "err", err)
		}
	}
	return nil
}

// NotifyUser sends userID a direct message about ev on r.
func (b *Bot) NotifyUser(ctx context.Context, userID string, f *symbot.Flow, r *symbot.Request, ev symbot.Event) error {
	body, btns := dmBody(f, r, ev, userID, b.cfg.Now(), b.cfg.Command)
	if err := b.dm(ctx, durable, userID, body, dmBlocks(body, btns)); err != nil {
		return fmt.Errorf("%s of %s: %w", ev, r.ID, err)
	}
	return nil
}

var _ symbot.MemberNotifier = (*Bot)(nil)

// NotifyMember sends a direct message about ev on f's target to the Slack
// user with the given email (found with users.lookupByEmail): the person
// the reconciler removed from a group no grant explained. Nobody with that
// email (or only a deactivated account) is an error wrapping
// symbot.ErrUserNotFound.
func (b *Bot) NotifyMember(ctx context.Context, email string, f *symbot.Flow, target string, ev symbot.Event) error {
	var u *slack.User
	var notFound bool
	err := b.call(ctx, durable, "users.lookupByEmail", "", func(ctx context.Context) error {
		var err error
		u, err = b.api.GetUserByEmailContext(ctx, email)
		var se slack.SlackErrorResponse
		notFound = errors.As(err, &se) && se.Err == "users_not_found"
		return err
	})
	if notFound || err == nil && (u == nil || u.Deleted) {
		return fmt.Errorf("%s: no Slack account has the email %s: %w", ev, email, symbot.ErrUserNotFound)
	}
	if err != nil {
		return fmt.Errorf("%s: find the Slack account of %s: %w", ev, email, err)
	}
	body := memberBody(f, target, ev, b.cfg.Command)
	if err := b.dm(ctx, durable, u.ID, body, dmBlocks(body, nil)); err != nil {
		return fmt.Errorf("%s to %s: %w", ev, email, err)
	}
	return nil
}

// memberBody is the DM about ev on f's target to a person without a
// request.
func memberBody(f *symbot.Flow, target string, ev symbot.Event, cmd string) string {
	label, flow := target, ""
	if f != nil {
		flow = f.Name
		if t, ok := f.Target(target); ok && t.Label != "" {
			label = t.Label
		}
	}
	switch ev {
	case symbot.EventUnmanagedRemoved:
		s := fmt.Sprintf("symbot removed you from *%s* in Okta: you were a member, but no approved request gave you that access.", Escape(label))
		if flow != "" {
			s += fmt.Sprintf(" If you need it, ask for it with `%s req %s/%s <duration> <reason>`.", Escape(cmd), Escape(flow), Escape(target))
		}
		return s
	}
	return fmt.Sprintf("symbot: %s on *%s*.", Escape(string(ev)), Escape(label))
}

// Alert posts an operational problem to the errors channel, or logs it at
// error level when there is none.
func (b *Bot) Alert(ctx context.Context, a symbot.Alert) error {
	var parts []string
	if a.RequestID != "" {
		parts = append(parts, "request "+a.RequestID)
	}
	if a.Event != "" {
		parts = append(parts, string(a.Event))
	}
	text := a.Text
	if len(parts) > 0 {
		text += " (" + strings.Join(parts, ", ") + ")"
	}
	if b.cfg.ErrorsChannel == "" {
		b.log.Error("symbot alert", "request_id", a.RequestID, "event", a.Event, "text", a.Text)
		return nil
	}
	icon := ":rotating_light: "
	if a.Event == symbot.EventRevokeOK {
		icon = ":white_check_mark: " // an all-clear
	}
	_, _, err := b.postOnce(ctx, b.cfg.ErrorsChannel, "", alertMessage(icon, text)...)
	if err != nil {
		b.log.Error("symbot alert (errors channel failed)", "request_id", a.RequestID, "event", a.Event, "text", a.Text, "err", err)
		return fmt.Errorf("post alert: %w", err)
	}
	return nil
}

// dm sends a direct message, opening (and remembering) the DM channel.
func (b *Bot) dm(ctx context.Context, mode callMode, userID, text string, blocks []slack.Block) error {
	ch, err := b.dmChannel(ctx, mode, userID)
	if err != nil {
		return err
	}
	if mode == durable {
		// A job's DM: tagged with the job, and not sent twice.
		_, _, err := b.postOnce(ctx, ch, "", slack.MsgOptionText(text, false), slack.MsgOptionBlocks(blocks...))
		return err
	}
	return b.call(ctx, mode, "chat.postMessage", ch, func(ctx context.Context) error {
		_, _, err := b.api.PostMessageContext(ctx, ch, slack.MsgOptionText(text, false), slack.MsgOptionBlocks(blocks...))
		return err
	})
}

func (b *Bot) dmChannel(ctx context.Context, mode callMode, userID string) (string, error) {
	if ch, ok := b.dms.Load(userID); ok {
		return ch.(string), nil
	}
	var ch *slack.Channel
	err := b.call(ctx, mode, "conversations.open", userID, func(ctx context.Context) error {
		var err error
		ch, _, _, err = b.api.OpenConversationContext(ctx, &slack.OpenConversationParameters{Users: []string{userID}})
		return err
	})
	if err != nil {
		return "", fmt.Errorf("open DM with %s: %w", userID, err)
	}
	if ch == nil || ch.ID == "" {
		return "", fmt.Errorf("open DM with %s: %w: no channel in the answer", userID, symbot.ErrUnavailable)
	}
	b.dms.Store(userID, ch.ID)
	return ch.ID, nil
}
