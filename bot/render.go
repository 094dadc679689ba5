// Block Kit rendering: the approval message, its buttons, the modals and the
// texts of each event.

package bot

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/slack-go/slack"
	"github.com/symbot/symbot"
)

// Action ids of symbot's buttons; every button's value is a request id.
const (
	ActionApprove     = "sym_approve"
	ActionApproveNote = "sym_approve_note" // approve after an optional note
	ActionDeny        = "sym_deny"
	ActionRevoke      = "sym_revoke"
	ActionCancel      = "sym_cancel"
	ActionRelinquish  = "sym_relinquish"
	ActionExtend      = "sym_extend"
	ActionAcknowledge = "sym_acknowledge" // review break-glass access after the fact
)

// Modal callback ids and the block ids of their inputs (the keys of inline
// errors and of submitted values). Each input's action id equals its block id.
const (
	CallbackRequest = "sym_request" // the request form
	CallbackNote    = "sym_note"    // decision note for Approve with note, Deny and Revoke
	CallbackExtend  = "sym_extend"  // extension reason

	BlockTarget   = "target"   // static select, option values "flow/target"
	BlockDuration = "duration" // static select, option values like "1h"
	BlockReason   = "reason"   // multiline plain text input
	BlockStart    = "start"    // optional plain text input: when the access should begin
	BlockNote     = "note"     // optional plain text input
)

func mrkdwn(s string) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.MarkdownType, s, false, false)
}

// reasonText shows a requester's reason: a plain_text object (no mrkdwn, no
// emoji shortcodes), cleaned, on one line and escaped (Slack reads &, <
// and > as entities in every text), within a section's 3000 characters.
func reasonText(reason string) *slack.TextBlockObject {
	t := slack.NewTextBlockObject(slack.PlainTextType, "Reason: "+escapeTrunc(symbot.OneLine(reason), 2900), false, false)
	f := false
	t.Emoji = &f
	return t
}

func plain(s string, max int) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.PlainTextType, plainTrunc(s, max), false, false)
}

// button is a button about r: its value is symbot.ButtonValue(r), the
// request id and its secret nonce.
func button(action, label string, r *symbot.Request, style string) *slack.ButtonBlockElement {
	btn := slack.NewButtonBlockElement(action, symbot.ButtonValue(r), plain(label, 75))
	if style != "" {
		btn.Style = slack.Style(style)
	}
	return btn
}

// targetLabel returns the human label of r's target.
func targetLabel(f *symbot.Flow, r *symbot.Request) string {
	if f != nil {
		if t, ok := f.Target(r.Target); ok && t.Label != "" {
			return t.Label
		}
	}
	return r.Target
}

func flowLabel(f *symbot.Flow, r *symbot.Request) string {
	if f != nil && f.Label != "" {
		return f.Label
	}
	return r.Flow
}

// lastBy returns the most recent transition into state s.
func lastBy(r *symbot.Request, s symbot.State) (symbot.Transition, bool) {
	for i := len(r.Transitions) - 1; i >= 0; i-- {
		if r.Transitions[i].To == s {
			return r.Transitions[i], true
		}
	}
	return symbot.Transition{}, false
}

// who renders the actor of a transition.
func who(id string) string {
	if id == symbot.System || id == "" {
		return "symbot"
	}
	return mention(id)
}

// noteBudget bounds the escaped notes of one text, so that a section with
// several approvers' notes stays within Slack's 3000 characters.
const noteBudget = 1500

// approvers names r's approvers, each followed by their note, if any.
func approvers(r *symbot.Request) string {
	n := 0
	for _, a := range r.Approvals {
		if a.Note != "" {
			n++
		}
	}
	each := 500
	if n > 0 {
		each = min(each, noteBudget/n)
	}
	var m []string
	for _, a := range r.Approvals {
		s := mention(a.By)
		if q := quoteUser(a.Note, each); q != "" {
			s += " (" + q + ")"
		}
		m = append(m, s)
	}
	if len(m) == 0 {
		return "symbot"
	}
	return strings.Join(m, ", ")
}

// withNote follows a line of symbot's with a decision note, quoted so that
// it cannot pass for more of symbot's words (see quoteUser).
func withNote(s, note string) string {
	q := quoteUser(note, 500)
	if q == "" {
		return s
	}
	return s + " — " + q
}

func approvalsNeeded(f *symbot.Flow) int {
	if f == nil || f.ApprovalsRequired < 1 {
		return symbot.DefaultApprovalsRequired
	}
	return f.ApprovalsRequired
}

// stateLine describes r's current state for the approval message.
func stateLine(f *symbot.Flow, r *symbot.Request) string {
	switch r.State {
	case symbot.StatePending:
		s := ":hourglass_flowing_sand: *Waiting for approval*"
		need := approvalsNeeded(f)
		if need > 1 || len(r.Approvals) > 0 {
			s += fmt.Sprintf(" (%d of %d", len(r.Approvals), need)
			if len(r.Approvals) > 0 {
				s += ", approved by " + approvers(r)
			}
			s += ")"
		}
		if !r.TimeoutAt.IsZero() {
			s += " · times out " + slackDate(r.TimeoutAt)
		}
		if len(r.BackupApprovers) > 0 {
			s += " · escalated to " + mentions(r.BackupApprovers)
		}
		return s
	case symbot.StateScheduled:
		return ":calendar: *Approved ahead* by " + approvers(r) + " · access starts " + slackDate(r.StartAt)
	case symbot.StateApproved:
		if r.BreakGlass {
			return ":rotating_light: *Break-glass*: no approval · granting access…"
		}
		return ":white_check_mark: *Approved* by " + approvers(r) + " · granting access…"
	case symbot.StateActive:
		if r.BreakGlass {
			return ":large_green_circle: *Active* until " + slackDate(r.ExpiresAt) + " · break-glass, no approval"
		}
		return ":large_green_circle: *Active* until " + slackDate(r.ExpiresAt) + " · approved by " + approvers(r)
	case symbot.StateExpired:
		s := ":hourglass: *Expired*"
		if !r.ExpiresAt.IsZero() {
			s += " " + slackDate(r.ExpiresAt)
		}
		return s + removal(r)
	case symbot.StateRevoked:
		t, _ := lastBy(r, symbot.StateRevoked)
		s := ":no_entry: *Revoked* by " + who(t.By)
		if t.By == r.Requester.SlackID {
			s = ":no_entry: *Relinquished* by " + mention(t.By)
		}
		if !t.At.IsZero() {
			s += " " + slackDate(t.At)
		}
		if t.From == symbot.StateScheduled {
			return withNote(s, t.Note) + " · it had not started"
		}
		return withNote(s, t.Note) + removal(r)
	case symbot.StateDenied:
		t, _ := lastBy(r, symbot.StateDenied)
		return withNote(":x: *Denied* by "+who(t.By), t.Note)
	case symbot.StateCancelled:
		if t, ok := lastBy(r, symbot.StateCancelled); ok && t.From == symbot.StateScheduled {
			return ":leftwards_arrow_with_hook: *Cancelled* by the requester before its start"
		}
		return ":leftwards_arrow_with_hook: *Cancelled* by the requester"
	case symbot.StateTimedOut:
		s := ":zzz: *Timed out*: nobody decided"
		if f != nil && f.ApprovalTimeout > 0 {
			s += " within " + symbot.FormatDuration(f.ApprovalTimeout)
		}
		return s
	case symbot.StateFailed:
		return ":warning: *Failed*: " + escapeTrunc(symbot.OneLine(failReason(r)), 1000)
	case symbot.StateExtended:
		return ":white_check_mark: *Extension approved* by " + approvers(r) + ": `" + Escape(r.ExtensionOf) + "` lasts longer"
	case symbot.StateRemovedOutside:
		t, _ := lastBy(r, symbot.StateRemovedOutside)
		s := ":warning: *Removed outside symbot*: the Okta membership was gone"
		if !t.At.IsZero() {
			s += " " + slackDate(t.At)
		}
		return s + "; access ended"
	}
	return "*" + Escape(string(r.State)) + "*"
}

func removal(r *symbot.Request) string {
	switch {
	case r.Removed && r.Kept:
		return " · Okta membership kept: " + escapeTrunc(symbot.OneLine(r.RemovalNote), 300)
	case r.Removed:
		return " · access removed"
	}
	return " · removing access…"
}

// renderRequest renders the approval message for r from its current state.
func renderRequest(f *symbot.Flow, r *symbot.Request) (string, []slack.Block) {
	tl, fl := Escape(targetLabel(f, r)), Escape(flowLabel(f, r))
	dur := symbot.FormatDuration(r.Duration)
	var head string
	switch {
	case r.BreakGlass: // never an extension, never starts later
		head = fmt.Sprintf(":rotating_light: *BREAK-GLASS*: %s took *%s* (%s) for *%s* without approval", mention(r.Requester.SlackID), tl, fl, dur)
	case r.ExtensionOf != "":
		head = fmt.Sprintf("%s requests *%s* more of *%s* (%s), extending `%s`", mention(r.Requester.SlackID), dur, tl, fl, Escape(r.ExtensionOf))
	default:
		head = fmt.Sprintf("%s requests *%s* (%s) for *%s*", mention(r.Requester.SlackID), tl, fl, dur)
	}
	if !r.BreakGlass && !r.StartAt.IsZero() {
		head += ", starting " + slackDate(r.StartAt)
	}
	text := fmt.Sprintf("%s · %s · request %s", head, stateWords(r.State), Escape(r.ID))
	blocks := []slack.Block{
		slack.NewSectionBlock(mrkdwn(head), nil, nil, slack.SectionBlockOptionBlockID("sym_head")),
		// The reason is the requester's text: plain_text without emoji,
		// on one line, so it cannot draw a status line of its own.
		slack.NewSectionBlock(reasonText(r.Reason), nil, nil, slack.SectionBlockOptionBlockID("sym_reason")),
		slack.NewSectionBlock(mrkdwn(stateLine(f, r)), nil, nil, slack.SectionBlockOptionBlockID("sym_state")),
		slack.NewContextBlock("sym_meta", mrkdwn(fmt.Sprintf("Request `%s` · requested %s", Escape(r.ID), slackDate(r.CreatedAt)))),
	}
	if s := rulesLine(f, r); s != "" {
		blocks = append(blocks, slack.NewContextBlock("sym_rules", mrkdwn(s)))
	}
	var btns []slack.BlockElement
	if r.BreakGlass {
		blocks = append(blocks, slack.NewSectionBlock(mrkdwn(reviewLine(f, r)), nil, nil, slack.SectionBlockOptionBlockID("sym_review")))
		if r.ReviewedBy == "" {
			btns = append(btns, button(ActionAcknowledge, "Acknowledge", r, "primary"))
		}
	}
	switch {
	case r.State == symbot.StatePending:
		btns = append(btns, button(ActionApprove, "Approve", r, "primary"), button(ActionApproveNote, "Approve with note…", r, ""), button(ActionDeny, "Deny", r, "danger"))
	case (r.State == symbot.StateActive || r.State == symbot.StateScheduled) && f != nil && f.AllowRevoke:
		btns = append(btns, button(ActionRevoke, "Revoke", r, "danger"))
	}
	if len(btns) > 0 {
		blocks = append(blocks, slack.NewActionBlock("sym_actions", btns...))
	}
	return text, blocks
}

// copyBlocks marks the blocks of r's approval message as the copy an
// escalation step re-posted in another channel.
func copyBlocks(r *symbot.Request, blocks []slack.Block) []slack.Block {
	note := slack.NewContextBlock("sym_copy", mrkdwn(fmt.Sprintf(":arrow_heading_up: Escalated here: waiting since %s in %s.", slackDate(r.CreatedAt), channelRef(r.Message.Channel))))
	return append(slices.Clone(blocks), note)
}

// reviewLine says where the review of break-glass access r stands.
func reviewLine(f *symbot.Flow, r *symbot.Request) string {
	if r.ReviewedBy != "" {
		return withNote(":white_check_mark: *Reviewed* by "+mention(r.ReviewedBy)+" "+slackDate(r.ReviewedAt), r.ReviewNote)
	}
	s := ":warning: *Review needed*: an approver of this flow (not the requester) must acknowledge it"
	if m := approverMentions(f); m != "" {
		s += " (" + m + ")"
	}
	if !r.ReviewDue.IsZero() {
		s += "; symbot alerts again " + slackDate(r.ReviewDue)
	}
	if r.ReviewAlerts > 0 {
		s += fmt.Sprintf(" (reminded %d time(s))", r.ReviewAlerts)
	}
	return s
}

// mentions mentions each Slack user id.
func mentions(ids []string) string {
	m := make([]string, len(ids))
	for i, u := range ids {
		m[i] = mention(u)
	}
	return strings.Join(m, ", ")
}

// approverMentions mentions the approvers f lists by Slack id (backup
// approvers included), for a reminder; "" when it lists none.
func approverMentions(f *symbot.Flow) string {
	if f == nil {
		return ""
	}
	var m []string
	for _, u := range f.Approvers.Users {
		m = append(m, mention(u))
	}
	return strings.Join(m, " ")
}

// threadLine is the short reply posted in the approval message's thread
// for an event.
func threadLine(f *symbot.Flow, r *symbot.Request, ev symbot.Event) string {
	switch ev {
	case symbot.EventRequested:
		return "Request received."
	case symbot.EventApproval:
		need := approvalsNeeded(f)
		last, note := "", ""
		if n := len(r.Approvals); n > 0 {
			last, note = mention(r.Approvals[n-1].By), r.Approvals[n-1].Note
		}
		return withNote(fmt.Sprintf("Approved by %s (%d of %d).", last, len(r.Approvals), need), note)
	case symbot.EventApproved:
		return "Approved by " + approvers(r) + ". Granting access…"
	case symbot.EventBreakGlass:
		return "Break-glass access granted without approval."
	case symbot.EventEscalated:
		return fmt.Sprintf("Waiting since %s: escalated to %s, who may now approve or deny it.", slackDate(r.CreatedAt), mentions(r.BackupApprovers))
	case symbot.EventReminder:
		s := fmt.Sprintf("Reminder: still waiting for approval, since %s.", slackDate(r.CreatedAt))
		if m := strings.TrimSpace(approverMentions(f)); m != "" {
			s += " " + m
		}
		return s
	case symbot.EventReviewOverdue:
		s := fmt.Sprintf(":rotating_light: Not reviewed yet (reminder %d): an approver must acknowledge this break-glass access.", r.ReviewAlerts)
		if m := approverMentions(f); m != "" {
			s += " " + m
		}
		return s
	case symbot.EventReviewed:
		return withNote("Break-glass access acknowledged by "+mention(r.ReviewedBy)+".", r.ReviewNote)
	case symbot.EventScheduled:
		return "Approved ahead by " + approvers(r) + ". Access starts " + slackDate(r.StartAt) + "."
	case symbot.EventStarted:
		return "Start time reached. Granting access…"
	case symbot.EventDenied:
		t, _ := lastBy(r, symbot.StateDenied)
		return withNote("Denied by "+who(t.By)+".", t.Note)
	case symbot.EventCancelled:
		if r.State == symbot.StateCancelled {
			if t, ok := lastBy(r, symbot.StateCancelled); ok && t.By == symbot.System {
				return withNote("Cancelled by symbot.", t.Note)
			}
		}
		return "Cancelled by the requester."
	case symbot.EventTimedOut:
		return "Timed out: nobody decided in time."
	case symbot.EventGranted:
		return "Access granted in Okta until " + slackDate(r.ExpiresAt) + "."
	case symbot.EventExtended:
		if r.State == symbot.StateExtended {
			return "Extension approved; `" + Escape(r.ExtensionOf) + "` lasts longer."
		}
		return "Extended until " + slackDate(r.ExpiresAt) + "."
	case symbot.EventWarning:
		return "Access ends " + slackDate(r.ExpiresAt) + "."
	case symbot.EventExpired:
		return "Time is up; removing access."
	case symbot.EventRevoked:
		t, _ := lastBy(r, symbot.StateRevoked)
		if t.From == symbot.StateScheduled {
			return withNote("Revoked by "+who(t.By)+" before it started.", t.Note)
		}
		if t.By == r.Requester.SlackID {
			return withNote("Relinquished by "+mention(t.By)+"; removing access.", t.Note)
		}
		return withNote("Revoked by "+who(t.By)+"; removing access.", t.Note)
	case symbot.EventRemoved:
		if r.Kept {
			return "Okta membership kept: " + escapeTrunc(symbot.OneLine(r.RemovalNote), 500) + "."
		}
		return "Access removed from Okta."
	case symbot.EventFailed:
		return "Failed: " + escapeTrunc(symbot.OneLine(failReason(r)), 1000)
	case symbot.EventRevokeStuck:
		return ":rotating_light: Removing access keeps failing; symbot keeps trying and the operators were alerted."
	case symbot.EventRemovedOutside:
		return "The Okta membership was removed outside symbot; this access has ended."
	}
	return "Now " + stateWords(r.State) + "."
}

// dmBody is the direct message to userID about ev on r, with its buttons.
// cmd is the slash command the texts suggest.
func dmBody(f *symbot.Flow, r *symbot.Request, ev symbot.Event, userID string, now time.Time, cmd string) (string, []slack.BlockElement) {
	tl := "*" + Escape(targetLabel(f, r)) + "*"
	// The requester reads "Your request"; anyone else reads "<@U1>'s request".
	mine := userID == r.Requester.SlackID
	yours, your, you := "Your request", "Your", "You"
	if !mine {
		m := mention(r.Requester.SlackID)
		yours, your, you = m+"'s request", m+"'s", m
	}
	ref := " (`" + Escape(r.ID) + "`)"
	var btns []slack.BlockElement
	relinquish := func() {
		if mine {
			btns = append(btns, button(ActionRelinquish, "Relinquish now", r, ""))
		}
	}
	var s string
	switch ev {
	case symbot.EventRequested:
		s = fmt.Sprintf("%s for %s (%s%s)%s is waiting for approval", yours, tl, symbot.FormatDuration(r.Duration), startingAt(r), ref)
		if f != nil {
			s += " in " + channelRef(f.Channel)
		}
		s += "."
		if mine {
			btns = append(btns, button(ActionCancel, "Cancel request", r, ""))
		}
	case symbot.EventApproval:
		need := approvalsNeeded(f)
		s = fmt.Sprintf("%s for %s%s has %d of %d approvals.", yours, tl, ref, len(r.Approvals), need)
	case symbot.EventEscalated:
		if mine {
			s = fmt.Sprintf("%s for %s%s has waited since %s, so it was escalated to %s, who may now approve it too.", yours, tl, ref, slackDate(r.CreatedAt), mentions(r.BackupApprovers))
			break
		}
		s = fmt.Sprintf("%s for %s (%s)%s has waited since %s, and you are a backup approver: you may approve or deny it", yours, tl, symbot.FormatDuration(r.Duration), ref, slackDate(r.CreatedAt))
		if r.Message.TS != "" {
			s += " here or in " + channelRef(r.Message.Channel)
		}
		s += "."
		btns = append(btns, button(ActionApprove, "Approve", r, "primary"), button(ActionDeny, "Deny", r, "danger"))
	case symbot.EventReminder:
		s = fmt.Sprintf("%s for %s%s is still waiting for approval, since %s; the approvers were reminded.", yours, tl, ref, slackDate(r.CreatedAt))
		if len(r.BackupApprovers) > 0 {
			s += " Backup approvers may decide it too: " + mentions(r.BackupApprovers) + "."
		}
		if mine {
			btns = append(btns, button(ActionCancel, "Cancel request", r, ""))
		}
	case symbot.EventScheduled:
		s = fmt.Sprintf("%s for %s%s was approved ahead by %s. Access starts %s and lasts %s from then.", yours, tl, ref, approvers(r), slackDate(r.StartAt), symbot.FormatDuration(r.Duration))
		if mine {
			s += " You can cancel it until it starts."
			btns = append(btns, button(ActionCancel, "Cancel request", r, ""))
		}
	case symbot.EventApproved:
		s = fmt.Sprintf("%s for %s%s was approved by %s. Access is being granted", yours, tl, ref, approvers(r))
		if !r.ExpiresAt.IsZero() {
			s += " until " + slackDate(r.ExpiresAt) + "."
		} else {
			// The clock starts when Okta has the membership; until then the
			// expiry is the approval time plus the duration, give or take.
			s += fmt.Sprintf(" for %s, until about %s.", symbot.FormatDuration(r.Duration), slackDate(approvedAt(r).Add(r.Duration)))
		}
		relinquish()
	case symbot.EventGranted:
		are := " is"
		if mine {
			are = " are"
		}
		s = fmt.Sprintf("%s%s now in %s in Okta until %s (%s left)%s.", you, are, tl, slackDate(r.ExpiresAt), left(now, r.ExpiresAt), ref)
		relinquish()
	case symbot.EventDenied:
		t, _ := lastBy(r, symbot.StateDenied)
		s = withNote(fmt.Sprintf("%s for %s%s was denied by %s.", yours, tl, ref, who(t.By)), t.Note)
	case symbot.EventCancelled:
		s = fmt.Sprintf("%s for %s%s was cancelled.", yours, tl, ref)
	case symbot.EventTimedOut:
		s = fmt.Sprintf("%s for %s%s timed out: nobody decided in time. Ask again with `%s req` if you still need it.", yours, tl, ref, Escape(cmd))
	case symbot.EventWarning:
		s = fmt.Sprintf("%s access to %s ends %s (%s left)%s.", your, tl, slackDate(r.ExpiresAt), left(now, r.ExpiresAt), ref)
		if mine {
			s += " Need more time? Extend asks for approval again."
			btns = append(btns, button(ActionExtend, "Extend", r, "primary"))
		}
		relinquish()
	case symbot.EventExtended:
		s = fmt.Sprintf("%s access to %s now lasts until %s%s.", your, tl, slackDate(r.ExpiresAt), ref)
		if r.State == symbot.StateExtended {
			s = fmt.Sprintf("%s extension of `%s` (%s) was approved by %s.", your, Escape(r.ExtensionOf), tl, approvers(r))
		}
	case symbot.EventExpired:
		s = fmt.Sprintf("%s access to %s expired%s; removing the membership.", your, tl, ref)
	case symbot.EventRevoked:
		t, _ := lastBy(r, symbot.StateRevoked)
		if t.From == symbot.StateScheduled {
			s = withNote(fmt.Sprintf("%s for %s%s, due to start %s, was revoked by %s before it started.", yours, tl, ref, slackDate(r.StartAt), who(t.By)), t.Note)
		} else if t.By == r.Requester.SlackID {
			s = withNote(fmt.Sprintf("%s access to %s was relinquished%s; removing the membership.", your, tl, ref), t.Note)
		} else {
			s = withNote(fmt.Sprintf("%s access to %s was revoked by %s%s; removing the membership.", your, tl, who(t.By), ref), t.Note)
		}
	case symbot.EventRemoved:
		if r.Kept {
			s = fmt.Sprintf("%s access to %s through symbot has ended%s. The Okta membership stays: %s.", your, tl, ref, escapeTrunc(symbot.OneLine(r.RemovalNote), 500))
		} else {
			s = fmt.Sprintf("%s access to %s has ended and was removed from Okta%s.", your, tl, ref)
		}
	case symbot.EventFailed:
		s = fmt.Sprintf("%s for %s%s failed: %s. No access was granted. Try again with `%s req`; if it fails again, tell the symbot admins and quote `%s`.", yours, tl, ref, escapeTrunc(symbot.OneLine(failReason(r)), 1000), Escape(cmd), Escape(r.ID))
	case symbot.EventRevokeStuck:
		s = fmt.Sprintf("%s access to %s%s is not removed yet: removing it keeps failing. symbot keeps trying and the operators were alerted.", your, tl, ref)
	case symbot.EventRemovedOutside:
		s = fmt.Sprintf("%s access to %s%s has ended: the Okta membership was removed outside symbot (in the Okta admin console, say). Ask again with `%s req` if you still need it.", your, tl, ref, Escape(cmd))
	default:
		s = fmt.Sprintf("%s for %s%s is now %s.", yours, tl, ref, stateWords(r.State))
	}
	return s, btns
}

// dmBlocks wraps a DM body and its buttons in blocks.
func dmBlocks(body string, btns []slack.BlockElement) []slack.Block {
	blocks := []slack.Block{slack.NewSectionBlock(mrkdwn(body), nil, nil, slack.SectionBlockOptionBlockID("sym_dm"))}
	if len(btns) > 0 {
		blocks = append(blocks, slack.NewActionBlock("sym_dm_actions", btns...))
	}
	return blocks
}

// modalMeta is the private_metadata of symbot's modals: where to answer
// and what the modal is about.
type modalMeta struct {
	Channel     string `json:"c,omitempty"`
	ResponseURL string `json:"u,omitempty"`
	Flow        string `json:"f,omitempty"`
	Target      string `json:"t,omitempty"` // with Flow: the target whose limits apply
	Action      string `json:"a,omitempty"`
	RequestID   string `json:"r,omitempty"`
	Nonce       string `json:"n,omitempty"` // the clicked button's nonce, checked again on submission
}

// requestModal is the request form for the given flows.
func requestModal(flows []symbot.Flow, meta string) slack.ModalViewRequest {
	var targetEl *slack.SelectBlockElement
	placeholder := plain("Choose what you need", 150)
	opt := func(f *symbot.Flow, t symbot.Target) *slack.OptionBlockObject {
		return slack.NewOptionBlockObject(f.Name+"/"+t.Name, plain(t.Label, 75), nil)
	}
	var initialTarget *slack.OptionBlockObject
	if len(flows) == 1 {
		var opts []*slack.OptionBlockObject
		for _, t := range flows[0].Targets {
			opts = append(opts, opt(&flows[0], t))
		}
		opts = opts[:min(len(opts), 100)]
		if len(opts) == 1 {
			initialTarget = opts[0]
		}
		targetEl = slack.NewOptionsSelectBlockElement(slack.OptTypeStatic, placeholder, BlockTarget, opts...)
	} else {
		var groups []*slack.OptionGroupBlockObject
		for i := range flows {
			var opts []*slack.OptionBlockObject
			for _, t := range flows[i].Targets {
				opts = append(opts, opt(&flows[i], t))
			}
			groups = append(groups, slack.NewOptionGroupBlockElement(plain(flows[i].Label, 75), opts[:min(len(opts), 100)]...))
		}
		targetEl = slack.NewOptionsGroupSelectBlockElement(slack.OptTypeStatic, placeholder, BlockTarget, groups[:min(len(groups), 100)]...)
	}
	targetEl.InitialOption = initialTarget

	var ds []time.Duration
	for _, f := range flows {
		ds = append(ds, f.Durations...)
	}
	slices.Sort(ds)
	ds = slices.Compact(ds)
	var dopts []*slack.OptionBlockObject
	for _, d := range ds[:min(len(ds), 100)] {
		s := symbot.FormatDuration(d)
		dopts = append(dopts, slack.NewOptionBlockObject(s, plain(s, 75), nil))
	}
	durEl := slack.NewOptionsSelectBlockElement(slack.OptTypeStatic, plain("How long", 150), BlockDuration, dopts...)
	if len(dopts) == 1 {
		durEl.InitialOption = dopts[0]
	}
	var durHint *slack.TextBlockObject
	if len(flows) > 1 {
		var parts []string
		for _, f := range flows {
			parts = append(parts, f.Label+": "+durationNames(f.Durations))
		}
		durHint = plain(strings.Join(parts, "; "), 2000)
	}

	reasonEl := slack.NewPlainTextInputBlockElement(plain("What is it for? Link the ticket or incident.", 150), BlockReason)
	reasonEl.Multiline = true
	reasonEl.MaxLength = symbot.MaxReasonLength

	startEl := slack.NewPlainTextInputBlockElement(plain("Now (as soon as approved)", 150), BlockStart)
	startEl.MaxLength = 40
	startIn := slack.NewInputBlock(BlockStart, plain("Start at", 2000), plain("Optional, in your Slack time zone: 18:30, 6:30pm, tomorrow 09:00, fri 14:00 or 2026-12-24 09:00. Approved ahead, granted then.", 2000), startEl)
	startIn.Optional = true

	return slack.ModalViewRequest{
		Type:            slack.VTModal,
		CallbackID:      CallbackRequest,
		Title:           plain("Request access", 24),
		Submit:          plain("Request", 24),
		Close:           plain("Cancel", 24),
		PrivateMetadata: meta,
		Blocks: slack.Blocks{BlockSet: []slack.Block{
			slack.NewInputBlock(BlockTarget, plain("Access to", 2000), nil, targetEl),
			slack.NewInputBlock(BlockDuration, plain("For how long", 2000), durHint, durEl),
			slack.NewInputBlock(BlockReason, plain("Reason", 2000), nil, reasonEl),
			startIn,
		}},
	}
}

// noteModal asks for an optional decision note before Approve, Deny or
// Revoke.
func noteModal(action string, f *symbot.Flow, r *symbot.Request, meta string) slack.ModalViewRequest {
	verb, hint := "Deny", "Optional: tell the requester why"
	switch action {
	case ActionRevoke:
		verb = "Revoke"
	case ActionApproveNote:
		verb, hint = "Approve", "Optional: a note for the requester and the channel"
	}
	noteEl := slack.NewPlainTextInputBlockElement(plain(hint, 150), BlockNote)
	noteEl.Multiline = true
	noteEl.MaxLength = 500
	in := slack.NewInputBlock(BlockNote, plain("Note", 2000), nil, noteEl)
	in.Optional = true
	summary := fmt.Sprintf("%s %s's request for *%s* (%s), `%s`?", verb, mention(r.Requester.SlackID), Escape(targetLabel(f, r)), symbot.FormatDuration(r.Duration), Escape(r.ID))
	return slack.ModalViewRequest{
		Type:            slack.VTModal,
		CallbackID:      CallbackNote,
		Title:           plain(verb+" request", 24),
		Submit:          plain(verb, 24),
		Close:           plain("Back", 24),
		PrivateMetadata: meta,
		Blocks: slack.Blocks{BlockSet: []slack.Block{
			slack.NewSectionBlock(mrkdwn(summary), nil, nil, slack.SectionBlockOptionBlockID("sym_summary")),
			in,
		}},
	}
}

// extendModal asks for the reason (and length) of an extension.
func extendModal(f *symbot.Flow, r *symbot.Request, meta string) slack.ModalViewRequest {
	var dopts []*slack.OptionBlockObject
	var initial *slack.OptionBlockObject
	ds := slices.Clone(f.Durations)
	slices.Sort(ds)
	for _, d := range ds {
		s := symbot.FormatDuration(d)
		o := slack.NewOptionBlockObject(s, plain(s, 75), nil)
		dopts = append(dopts, o)
		if d == r.Duration {
			initial = o
		}
	}
	durEl := slack.NewOptionsSelectBlockElement(slack.OptTypeStatic, plain("How much longer", 150), BlockDuration, dopts...)
	durEl.InitialOption = initial
	reasonEl := slack.NewPlainTextInputBlockElement(plain("Why do you need more time?", 150), BlockReason)
	reasonEl.Multiline = true
	reasonEl.MaxLength = symbot.MaxReasonLength
	reasonEl.InitialValue = plainTrunc("Extension: "+r.Reason, symbot.MaxReasonLength)
	summary := fmt.Sprintf("Extend your access to *%s* (`%s`), now until %s. This asks for approval again.", Escape(targetLabel(f, r)), Escape(r.ID), slackDate(r.ExpiresAt))
	return slack.ModalViewRequest{
		Type:            slack.VTModal,
		CallbackID:      CallbackExtend,
		Title:           plain("Extend access", 24),
		Submit:          plain("Request", 24),
		Close:           plain("Cancel", 24),
		PrivateMetadata: meta,
		Blocks: slack.Blocks{BlockSet: []slack.Block{
			slack.NewSectionBlock(mrkdwn(summary), nil, nil, slack.SectionBlockOptionBlockID("sym_summary")),
			slack.NewInputBlock(BlockDuration, plain("For how long", 2000), nil, durEl),
			slack.NewInputBlock(BlockReason, plain("Reason", 2000), nil, reasonEl),
		}},
	}
}

// listBlocks renders "<cmd> list".
func listBlocks(flowOf func(string) *symbot.Flow, rs []*symbot.Request, now time.Time, cmd string) (string, []slack.Block) {
	if len(rs) == 0 {
		s := "You have no pending requests and no active access. `" + Escape(cmd) + "` asks for some."
		return s, []slack.Block{slack.NewSectionBlock(mrkdwn(s), nil, nil, slack.SectionBlockOptionBlockID("sym_list_empty"))}
	}
	blocks := []slack.Block{slack.NewSectionBlock(mrkdwn("*Your requests and access*"), nil, nil, slack.SectionBlockOptionBlockID("sym_list_head"))}
	for _, r := range rs {
		f := flowOf(r.Flow)
		line := fmt.Sprintf("*%s* (%s) · `%s` · ", Escape(targetLabel(f, r)), Escape(flowLabel(f, r)), Escape(r.ID))
		var acc *slack.Accessory
		switch r.State {
		case symbot.StatePending:
			line += fmt.Sprintf("waiting for approval for %s%s, asked %s", symbot.FormatDuration(r.Duration), startingAt(r), slackDate(r.CreatedAt))
			acc = slack.NewAccessory(button(ActionCancel, "Cancel", r, ""))
		case symbot.StateScheduled:
			line += fmt.Sprintf("approved, starts %s for %s", slackDate(r.StartAt), symbot.FormatDuration(r.Duration))
			acc = slack.NewAccessory(button(ActionCancel, "Cancel", r, ""))
		case symbot.StateApproved:
			line += "approved, being granted"
		case symbot.StateActive:
			line += fmt.Sprintf("active until %s (%s left)", slackDate(r.ExpiresAt), left(now, r.ExpiresAt))
			if r.BreakGlass {
				line += " · break-glass"
			}
			acc = slack.NewAccessory(button(ActionRelinquish, "Relinquish", r, "danger"))
		default:
			line += stateWords(r.State)
		}
		blocks = append(blocks, slack.NewSectionBlock(mrkdwn(line), nil, acc, slack.SectionBlockOptionBlockID("sym_list_"+blockSafe(r.ID))))
		if len(blocks) >= 49 {
			blocks = append(blocks, slack.NewContextBlock("sym_list_more", mrkdwn("…and more not shown.")))
			break
		}
	}
	return fmt.Sprintf("You have %d pending or active requests.", len(rs)), blocks
}

// startingAt says when r's access is to start, if it asked for a time.
func startingAt(r *symbot.Request) string {
	if r.StartAt.IsZero() {
		return ""
	}
	return ", starting " + slackDate(r.StartAt)
}

// blockSafe keeps block ids short and plain.
func blockSafe(s string) string {
	return plainTrunc(strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, s), 200)
}

// approvedAt is when r reached its quorum (its last update when not found).
func approvedAt(r *symbot.Request) time.Time {
	if t, ok := lastBy(r, symbot.StateApproved); ok {
		return t.At
	}
	return r.UpdatedAt
}

// failReason is why r's grant failed, in words for people.
func failReason(r *symbot.Request) string {
	if r.FailReason == "" {
		return "the grant could not be made"
	}
	return r.FailReason
}

// rulesLine says what the flow's rules decided about r: the rule that
// changed who approves it, or why they fell back to manual approval.
func rulesLine(f *symbot.Flow, r *symbot.Request) string {
	switch {
	case r.RuleNote != "":
		return ":warning: " + escapeTrunc(symbot.OneLine(r.RuleNote), 1000)
	case r.Rule != "" && (r.RuleApprovals > 0 || r.RuleApprovers != nil):
		s := "Rule `" + Escape(r.Rule) + "` requires " + fmt.Sprint(approvalsNeeded(f)) + " approval"
		if approvalsNeeded(f) != 1 {
			s += "s"
		}
		if a := r.RuleApprovers; a != nil {
			s += " from " + approverWords(*a)
		}
		return s
	}
	return ""
}

// approverWords names an approver set.
func approverWords(a symbot.Approvers) string {
	var parts []string
	if a.Anyone {
		parts = append(parts, "anyone")
	}
	for _, u := range a.Users {
		parts = append(parts, mention(u))
	}
	if a.OktaGroup != "" {
		parts = append(parts, "members of Okta group `"+Escape(a.OktaGroup)+"`")
	}
	return strings.Join(parts, ", ")
}
