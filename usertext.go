package symbot

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// CleanText returns s without the characters that can disguise text on a
// screen: C0 control characters other than tab and newline (so no carriage
// return, backspace or ANSI escape), DEL, C1 control characters, the
// bidirectional embeddings, overrides and isolates (U+202A-U+202E,
// U+2066-U+2069), the direction marks U+200E, U+200F and U+061C, and the
// line and paragraph separators U+2028 and U+2029. Invalid UTF-8 becomes
// U+FFFD. Everything a person typed passes through it before it is shown,
// in Slack and in the admin CLI; stored data keeps what was typed.
func CleanText(s string) string {
	if isClean(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s { // ranging over invalid UTF-8 yields U+FFFD
		if !dropRune(r) {
			b.WriteRune(r)
		}
	}
	return b.String()
}

func isClean(s string) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if dropRune(rune(c)) {
				return false
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 || dropRune(r) {
			return false
		}
		i += n
	}
	return true
}

func dropRune(r rune) bool {
	switch {
	case r == '\t' || r == '\n':
		return false
	case r < 0x20, r == 0x7f, r >= 0x80 && r <= 0x9f:
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
		return true
	case r == 0x200e, r == 0x200f, r == 0x061c, r == 0x2028, r == 0x2029:
		return true
	}
	return false
}

// OneLine is CleanText with every run of white space, newlines and tabs
// included, turned into one space and the ends trimmed: text that cannot
// start a line of its own.
func OneLine(s string) string {
	return strings.Join(strings.FieldsFunc(CleanText(s), unicode.IsSpace), " ")
}

// TruncateRunes cuts s to at most max runes, the last of them "…" when it
// had to cut; it never cuts inside a rune.
func TruncateRunes(s string, max int) string {
	if max <= 0 {
		return ""
	}
	if len(s) <= max || utf8.RuneCountInString(s) <= max {
		return s
	}
	n := 0
	for i := range s {
		if n == max-1 {
			return s[:i] + "…"
		}
		n++
	}
	return s
}
