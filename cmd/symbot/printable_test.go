package main

import (
	"testing"

	"github.com/symbot/symbot/cmd/symbot/internal/admin"
)

func TestOneLineDropsTerminalControls(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain reason", "plain reason"},
		{"multi\nline\treason", "multi line reason"},
		{"evil \x1b[2J\x1b]0;pwned\x07name", "evil [2J]0;pwnedname"},
		{"bell\x07 and nul\x00", "bell and nul"},
		{"right-to-left \u202Eoverride\u202C and \u2066isolate\u2069", "right-to-left override and isolate"},
	}
	for _, tt := range tests {
		if got := oneLine(tt.in); got != tt.want {
			t.Errorf("oneLine(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if got := person(admin.PersonJSON{SlackID: "U1", Name: "\x1b[31mred"}); got != "[31mred (U1)" {
		t.Errorf("person = %q", got)
	}
}
