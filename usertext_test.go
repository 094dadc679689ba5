package symbot_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/symbot/symbot"
)

func TestCleanTextRemovesDisguises(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"plain", "fix incident 42", "fix incident 42"},
		{"keeps tab and newline", "a\tb\nc", "a\tb\nc"},
		{"right-to-left override", "invoice\u202Etxt.exe", "invoicetxt.exe"},
		{"every bidi control", "a\u202A\u202B\u202C\u202D\u202Eb\u2066\u2067\u2068\u2069c\u200E\u200F\u061Cd", "abcd"},
		{"C0 and DEL", "bell\x07 esc\x1b[2J cr\r nul\x00 del\x7f", "bell esc[2J cr nul del"},
		{"C1", "a\u0085b\u009bc", "abc"},
		{"line separators", "a\u2028b\u2029c", "abc"},
		{"invalid UTF-8", "a\xffb", "a\uFFFDb"},
		{"emoji and accents stay", "café ✅ 日本", "café ✅ 日本"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := symbot.CleanText(tt.in); got != tt.want {
				t.Errorf("CleanText(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestOneLine(t *testing.T) {
	in := "  fix\n:white_check_mark: *Approved* by <@U1>\r\n\t\u2028done  "
	if got, want := symbot.OneLine(in), "fix :white_check_mark: *Approved* by <@U1> done"; got != want {
		t.Errorf("OneLine = %q, want %q", got, want)
	}
}

func TestTruncateRunes(t *testing.T) {
	tests := []struct {
		in   string
		max  int
		want string
	}{
		{"short", 10, "short"},
		{"exactly", 7, "exactly"},
		{"abcdefgh", 5, "abcd…"},
		{"日本語テキスト", 3, "日本…"},
		{"x", 0, ""},
	}
	for _, tt := range tests {
		got := symbot.TruncateRunes(tt.in, tt.max)
		if got != tt.want {
			t.Errorf("TruncateRunes(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
		}
		if !utf8.ValidString(got) || utf8.RuneCountInString(got) > max(tt.max, 0) {
			t.Errorf("TruncateRunes(%q, %d) = %q: invalid or too long", tt.in, tt.max, got)
		}
	}
}

func FuzzCleanText(f *testing.F) {
	for _, s := range []string{"", "a\u202Eb", "\x1b[31m", "a\xffb", "line\nnext"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := symbot.CleanText(s)
		if !utf8.ValidString(got) {
			t.Fatalf("CleanText(%q) = %q: invalid UTF-8", s, got)
		}
		for _, r := range got {
			if r < 0x20 && r != '\t' && r != '\n' || r >= 0x7f && r <= 0x9f || r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069 {
				t.Fatalf("CleanText(%q) = %q keeps %U", s, got, r)
			}
		}
		if one := symbot.OneLine(s); strings.ContainsAny(one, "\n\t") {
			t.Fatalf("OneLine(%q) = %q has a line break or tab", s, one)
		}
	})
}
