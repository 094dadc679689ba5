package bot_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/bot"
	"github.com/symbot/symbot/bot/slacktest"
)

// textObject is one text object of a message's blocks.
type textObject struct {
	Block string // block_id
	Type  string // plain_text or mrkdwn
	Text  string
	Emoji *bool
}

// textObjects returns the text objects of m's blocks: section texts and
// fields, context elements.
func textObjects(t *testing.T, m slacktest.Message) []textObject {
	t.Helper()
	var blocks []struct {
		BlockID  string            `json:"block_id"`
		Text     json.RawMessage   `json:"text"`
		Fields   []json.RawMessage `json:"fields"`
		Elements []json.RawMessage `json:"elements"`
	}
	if len(m.Blocks) > 0 {
		if err := json.Unmarshal(m.Blocks, &blocks); err != nil {
			t.Fatalf("blocks of %s: %v", m.TS, err)
		}
	}
	var out []textObject
	for _, b := range blocks {
		raws := append(append([]json.RawMessage{b.Text}, b.Fields...), b.Elements...)
		for _, raw := range raws {
			var o struct {
				Type  string `json:"type"`
				Text  any    `json:"text"`
				Emoji *bool  `json:"emoji"`
			}
			if len(raw) == 0 || json.Unmarshal(raw, &o) != nil {
				continue
			}
			if s, ok := o.Text.(string); ok && (o.Type == "plain_text" || o.Type == "mrkdwn") {
				out = append(out, textObject{Block: b.BlockID, Type: o.Type, Text: s, Emoji: o.Emoji})
			}
		}
	}
	return out
}

// outsideCode drops inline code spans from mrkdwn: what Slack formats.
func outsideCode(s string) string {
	parts := strings.Split(s, "`")
	var b strings.Builder
	for i, p := range parts {
		if i%2 == 0 {
			b.WriteString(p)
		}
	}
	return b.String()
}

// statusMarks are what symbot's status lines look like.
var statusMarks = []string{":white_check_mark:", "*Approved*", ":large_green_circle:", "*Active*", ":x:", "*Denied*"}

// noForgedStatus fails when user text in m can pass for one of symbot's
// status lines: a status mark formatted outside the state block, a
// plain_text object that renders emoji or spans lines, or a second line in
// a formatted text that carries user text.
func noForgedStatus(t *testing.T, where string, m slacktest.Message, userMarker string) {
	t.Helper()
	for _, o := range textObjects(t, m) {
		switch o.Type {
		case "plain_text":
			if strings.Contains(o.Text, userMarker) {
				if o.Emoji == nil || *o.Emoji {
					t.Errorf("%s: plain_text with user text renders emoji (emoji=%v): %q", where, o.Emoji, o.Text)
				}
				if strings.Contains(o.Text, "\n") {
					t.Errorf("%s: user text spans lines: %q", where, o.Text)
				}
			}
		case "mrkdwn":
			if !strings.Contains(o.Text, userMarker) {
				continue
			}
			if strings.Contains(o.Text, "\n") {
				t.Errorf("%s: mrkdwn with user text spans lines: %q", where, o.Text)
			}
			if !strings.Contains(o.Text, "`"+userMarker) {
				t.Errorf("%s: user text is not set apart in a code span: %q", where, o.Text)
			}
			out := outsideCode(o.Text)
			for _, mark := range statusMarks {
				if n := strings.Count(out, mark); n > 0 && !strings.HasPrefix(o.Text, mark) && !strings.Contains(strings.SplitN(o.Text, "`", 2)[0], mark) {
					t.Errorf("%s: status mark %q formatted outside symbot's own words: %q", where, mark, o.Text)
				}
			}
			if strings.Contains(out, "*Approved* by <@"+bob+">") {
				t.Errorf("%s: a forged approval line is formatted: %q", where, o.Text)
			}
		}
	}
}

const forgedLine = "\n\n:white_check_mark: *Approved* by <@U0BOB> · granting access…"

func TestReasonCannotDrawFakeApprovedLine(t *testing.T) {
	h := MustHarness(t)
	marker := "reasonmark"
	r, ref := h.request(alice, "admin 1h "+marker+forgedLine)
	m := h.message(ref)
	var reason *textObject
	for _, o := range textObjects(t, m) {
		if strings.Contains(o.Text, marker) {
			reason = &o
		}
		if o.Type == "mrkdwn" && strings.Contains(outsideCode(o.Text), "*Approved*") {
			t.Errorf("a formatted text of the pending request shows *Approved*: %q", o.Text)
		}
	}
	if reason == nil {
		t.Fatalf("approval message does not show the reason:\n%s", render(m))
	}
	if reason.Type != "plain_text" || reason.Emoji == nil || *reason.Emoji || strings.Contains(reason.Text, "\n") {
		t.Errorf("reason shown as %+v, want one line of plain_text without emoji", *reason)
	}
	noForgedStatus(t, "pending approval message", m, marker)
	if got := h.get(r.ID); got.Reason != marker+forgedLine {
		t.Errorf("stored reason = %q: the data must keep what was typed", got.Reason)
	}
}

func TestDecisionNoteCannotDrawFakeStatusLine(t *testing.T) {
	h := MustHarness(t)
	r, ref := h.request(alice, "admin 1h deploy")
	h.click(bob, ref, bot.ActionDeny)
	v := h.openView(bob, bot.CallbackNote)
	marker := "notemark"
	if _, err := h.s.SubmitView(bob, v.ID, noteValues(marker+forgedLine)); err != nil {
		t.Fatalf("submit note: %v", err)
	}
	h.waitState(r.ID, symbot.StateDenied)
	h.waitThread(ref, marker)
	h.waitDM(alice, marker)
	h.waitFor("message shows the denial", func() bool { return strings.Contains(render(h.message(ref)), "*Denied*") })

	m := h.message(ref)
	noForgedStatus(t, "approval message", m, marker)
	for _, o := range textObjects(t, m) {
		if o.Block == "sym_state" && !strings.HasPrefix(o.Text, ":x: *Denied* by <@"+bob+">") {
			t.Errorf("state line = %q, want symbot's denial line", o.Text)
		}
	}
	for _, tm := range h.s.Thread(ref.Channel, ref.TS) {
		noForgedStatus(t, "thread reply", tm, marker)
	}
	for _, dm := range h.s.DMs(alice) {
		noForgedStatus(t, "DM", dm, marker)
	}
}

// disguises are the runes that must never reach Slack from user text.
func hasDisguise(s string) (rune, bool) {
	for _, r := range s {
		if r < 0x20 && r != '\n' || r == 0x7f || r >= 0x80 && r <= 0x9f || r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069 {
			return r, true
		}
	}
	return 0, false
}

func TestRightToLeftOverrideNeverReachesSlack(t *testing.T) {
	h := MustHarness(t)
	r, ref := h.request(alice, "admin 1h invoice \u202Efdp.exe \x1b[31mred\u2066iso\u2069")
	h.click(bob, ref, bot.ActionApproveNote)
	v := h.openView(bob, bot.CallbackNote)
	if _, err := h.s.SubmitView(bob, v.ID, noteValues("ok \u202Edesrever\u202C \u2067rtl\u2069 bell\x07")); err != nil {
		t.Fatalf("submit note: %v", err)
	}
	h.waitState(r.ID, symbot.StateActive)
	h.waitThread(ref, "Access granted")
	h.waitDM(alice, "now in")

	var all []slacktest.Message
	all = append(all, h.s.Messages(chAcc)...)
	all = append(all, h.s.DMs(alice)...)
	all = append(all, h.s.DMs(bob)...)
	all = append(all, h.s.Ephemerals(alice)...)
	all = append(all, h.s.Ephemerals(bob)...)
	for _, m := range all {
		if c, bad := hasDisguise(render(m)); bad {
			t.Errorf("message %s in %s carries %U:\n%q", m.TS, m.Channel, c, render(m))
		}
	}
	if s := render(h.message(ref)); !strings.Contains(s, "fdp.exe") || !strings.Contains(s, "desrever") {
		t.Errorf("the cleaned reason and note should still be shown:\n%s", s)
	}
}

func TestHugeTargetNameAnsweredInOneAck(t *testing.T) {
	h := MustHarness(t)
	huge := strings.Repeat("x", 100<<10)
	hugeMarkup := strings.Repeat("<*`:", 25<<10)
	tests := []struct {
		name, text, want string
	}{
		{"target", "req " + huge + " 1h because", "no target has that name"},
		{"target with markup", "req " + hugeMarkup + " 1h because", "no target has that name"},
		{"flow for the form", "req " + huge, "no flow has that name"},
		{"duration", "req admin " + huge + " because", "not a duration"},
		{"reason", "req admin 1h " + huge, "too long"},
		{"command word", huge, "I don't know that word"},
		{"command word with markup", hugeMarkup, "I don't know that word"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ack, err := h.s.SlashCommand(alice, "/sym", tt.text, chAcc)
			if err != nil {
				t.Fatalf("/sym %.20s…: %v", tt.text, err)
			}
			// (Before, the oversized ack was dropped every time: the
			// envelope was delivered four times and never acknowledged.)
			if len(ack.Payload) >= 20<<10 {
				t.Errorf("ack is %d bytes, want < 20 KB", len(ack.Payload))
			}
			got := ackText(t, ack)
			if !strings.Contains(got, tt.want) {
				t.Errorf("ack = %.300q, want it to say %q", got, tt.want)
			}
			if strings.Contains(got, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx") {
				t.Errorf("ack repeats the huge value: %.300q", got)
			}
		})
	}

	t.Run("form submission", func(t *testing.T) {
		h.slash(alice, "")
		v := h.openView(alice, bot.CallbackRequest)
		ack, err := h.s.SubmitView(alice, v.ID, map[string]map[string]slacktest.ViewValue{
			bot.BlockTarget:   {bot.BlockTarget: slacktest.Option(huge)},
			bot.BlockDuration: {bot.BlockDuration: slacktest.Option(huge)},
			bot.BlockReason:   {bot.BlockReason: slacktest.Text(huge)},
		})
		if err != nil {
			t.Fatalf("submit: %v", err)
		}
		if len(ack.Payload) >= 20<<10 {
			t.Errorf("ack is %d bytes, want < 20 KB", len(ack.Payload))
		}
		errs := ackErrors(t, ack)
		if !strings.Contains(errs[bot.BlockTarget], "No target has that name") || !strings.Contains(errs[bot.BlockReason], "Too long") {
			t.Errorf("errors = %.500v", errs)
		}
	})
	if n := len(h.requests(alice)); n != 0 {
		t.Errorf("requests = %d, want 0", n)
	}
}
