// Escaping user text for Slack mrkdwn and plain text (& < >), with
// truncation on character boundaries, and mention and channel references.

package bot

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/symbot/symbot"
)

// escaper turns the three characters Slack treats as control sequences in
// message text into entities, so user text can ping, link or mention nothing.
var escaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// Escape makes user text safe to show in Slack mrkdwn: `<!channel>`,
// `<@U123>` and `<http://evil|ok>` render literally instead of pinging or
// linking.
func Escape(s string) string { return escaper.Replace(s) }

// escapeKeepMentions escapes text written by symbot itself (policy
// reasons) but keeps plain user mentions like <@U012AB> working; anything
// else that looks like a control sequence is escaped.
func escapeKeepMentions(s string) string {
	e := Escape(s)
	var b strings.Builder
	for {
		i := strings.Index(e, "&lt;@")
		if i < 0 {
			b.WriteString(e)
			return b.String()
		}
		b.WriteString(e[:i])
		rest := e[i+len("&lt;@"):]
		j := strings.Index(rest, "&gt;")
		if j > 0 && isSlackID(rest[:j]) && (rest[0] == 'U' || rest[0] == 'W') {
			b.WriteString("<@" + rest[:j] + ">")
			e = rest[j+len("&gt;"):]
			continue
		}
		b.WriteString("&lt;@")
		e = rest
	}
}

// escapeTrunc cleans s of control and bidi characters (symbot.CleanText),
// escapes it and cuts the result to at most max bytes, never in the middle
// of an entity or a rune, marking the cut with an ellipsis.
func escapeTrunc(s string, max int) string {
	s = symbot.CleanText(s)
	e := Escape(s)
	if len(e) <= max {
		return e
	}
	const ell = "…"
	limit := max - len(ell)
	var b strings.Builder
	for _, r := range s {
		piece := Escape(string(r))
		if b.Len()+len(piece) > limit {
			break
		}
		b.WriteString(piece)
	}
	b.WriteString(ell)
	return b.String()
}

// plainTrunc cuts plain text (select labels, input values) to max runes.
func plainTrunc(s string, max int) string {
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	r := []rune(s)
	return string(r[:max-1]) + "…"
}

// mention renders a Slack user mention for an id symbot got from Slack
// itself; anything that does not look like a user id is escaped instead.
func mention(id string) string {
	if name, ok := symbot.RuleName(id); ok {
		// A rule approved it: never a person, never a mention.
		return "rule `" + Escape(name) + "`"
	}
	if !isSlackID(id) {
		if id == "" {
			return "someone"
		}
		return Escape(id)
	}
	return "<@" + id + ">"
}

// channelRef renders a channel link for a channel id, or the escaped name.
func channelRef(ch string) string {
	if isSlackID(ch) && (ch[0] == 'C' || ch[0] == 'G') {
		return "<#" + ch + ">"
	}
	return Escape(strings.TrimPrefix(ch, "#"))
}

func isSlackID(s string) bool {
	if len(s) < 2 || len(s) > 32 {
		return false
	}
	for _, r := range s {
		if !(r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// slackDate renders t with Slack's date formatting, which shows it in each
// reader's own time zone, with a UTC fallback for clients that cannot.
func slackDate(t time.Time) string {
	return fmt.Sprintf("<!date^%d^{date_short_pretty} {time}|%s>", t.Unix(), t.UTC().Format("2006-01-02 15:04 UTC"))
}

// left renders the time remaining until t, rounded to the minute.
func left(now, t time.Time) string {
	d := t.Sub(now)
	if d <= 0 {
		return "no time"
	}
	if d < time.Minute {
		return "less than a minute"
	}
	return symbot.FormatDuration(d.Round(time.Minute))
}

// quoteUser shows text a person typed (a decision note) inside symbot's
// mrkdwn so that it cannot pass for symbot's own words: cleaned of control
// and bidi characters, on one line (it cannot start a line that looks like
// a status line), escaped, at most max bytes, and set in an inline code
// span, where Slack applies no formatting: no *bold*, no _italics_, no
// :emoji:, no links. A backtick, which would end the span, becomes U+02CB.
func quoteUser(s string, max int) string {
	s = strings.ReplaceAll(symbot.OneLine(s), "`", "\u02cb")
	if s == "" {
		return ""
	}
	return "`" + escapeTrunc(s, max) + "`"
}

// maxEcho is the longest word symbot repeats back in a reply.
const maxEcho = 64

// echoWord returns a word a person typed (a target, flow or command name)
// ready to quote back in mrkdwn, in a code span, when it is short and made
// only of the characters names use; anything else is not repeated (a 100 KB
// name must not come back in the reply, nor a backtick that ends the span).
func echoWord(s string) (string, bool) {
	if !isNameLike(s) {
		return "", false
	}
	return "`" + s + "`", true
}

// isNameLike reports whether s is 1-maxEcho characters of A-Z a-z 0-9 and . _ / : -.
func isNameLike(s string) bool {
	if s == "" || len(s) > maxEcho {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '/' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}
