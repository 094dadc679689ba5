package main

import (
	"regexp"
	"strings"
	"testing"
)

func TestDispatch(t *testing.T) {
	tests := []struct {
		name        string
		args        []string
		code        int
		stdout      string // substring; "" = no check
		stderr      string
		emptyStdout bool
	}{
		{name: "no command", args: nil, code: exitUsage, stderr: "Usage: symbot COMMAND", emptyStdout: true},
		{name: "help", args: []string{"help"}, code: exitOK, stdout: "iam-policy"},
		{name: "--help", args: []string{"--help"}, code: exitOK, stdout: "audit [--since"},
		{name: "help for a command", args: []string{"help", "revoke"}, code: exitOK, stdout: "Usage: symbot revoke ID"},
		{name: "help for an unknown command", args: []string{"help", "frobnicate"}, code: exitUsage, stderr: `unknown command "frobnicate"`},
		{name: "-h on a command", args: []string{"check", "-h"}, code: exitOK, stderr: "-live"},
		{name: "unknown command", args: []string{"frobnicate"}, code: exitUsage, stderr: `unknown command "frobnicate"`},
		{name: "version", args: []string{"version"}, code: exitOK, stdout: "symbot dev"},
		{name: "--version", args: []string{"--version"}, code: exitOK, stdout: "symbot "},
		{name: "unknown flag", args: []string{"check", "--frob"}, code: exitUsage, stderr: "flag provided but not defined: -frob"},
		{name: "extra argument", args: []string{"grants", "extra", "--socket", "/nonexistent"}, code: exitUsage, stderr: `unexpected argument "extra"`},
		{name: "missing config file", args: []string{"iam-policy", "--config", "/nonexistent/symbot.yml"}, code: exitFail, stderr: "config file /nonexistent/symbot.yml does not exist"},
		{name: "audit verify takes no argument", args: []string{"audit", "verify", "x"}, code: exitUsage, stderr: `unexpected argument "x"`},
		{name: "audit with a stray argument", args: []string{"audit", "verfy"}, code: exitUsage, stderr: "did you mean `symbot audit verify`"},
		{name: "demo takes no argument", args: []string{"demo", "fast"}, code: exitUsage, stderr: `unexpected argument "fast"`},
		{name: "demo warning not shorter", args: []string{"demo", "--duration", "5s", "--warning", "5s"}, code: exitUsage, stderr: "lower --warning or raise --duration"},
		{name: "backup needs a file", args: []string{"backup"}, code: exitUsage, stderr: "give exactly one file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := cli(t, tt.args...)
			if code != tt.code {
				t.Errorf("exit: got %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, out, errOut)
			}
			if tt.stdout != "" && !strings.Contains(out, tt.stdout) {
				t.Errorf("stdout lacks %q:\n%s", tt.stdout, out)
			}
			if tt.stderr != "" && !strings.Contains(errOut, tt.stderr) {
				t.Errorf("stderr lacks %q:\n%s", tt.stderr, errOut)
			}
			if tt.emptyStdout && out != "" {
				t.Errorf("stdout: got %q, want nothing", out)
			}
		})
	}
}

func TestFlagsAfterPositionalArguments(t *testing.T) {
	f := newFakeAdmin()
	sock := startAdmin(t, f)
	// Flags before and after the id both work.
	if code, _, errOut := cli(t, "revoke", "--socket", sock, "--reason", "offboarding", "r-active"); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	f.mu.Lock()
	got := f.revoked
	f.mu.Unlock()
	if len(got) != 1 || got[0] != "r-active:offboarding" {
		t.Errorf("revoked: got %v", got)
	}
}

func TestEveryCommandHasHelp(t *testing.T) {
	for _, c := range commands() {
		if c.run == nil {
			continue // help itself
		}
		t.Run(c.name, func(t *testing.T) {
			code, out, _ := cli(t, "help", c.name)
			if code != exitOK || !strings.Contains(out, "Usage: symbot "+c.name) {
				t.Errorf("exit %d, %q", code, out)
			}
		})
	}
}

// TestUsageNamesEveryFlag: the top-level usage line of each command names
// every flag the command takes (as `symbot help COMMAND` lists them).
func TestUsageNamesEveryFlag(t *testing.T) {
	flagRE := regexp.MustCompile(`(?m)^  -([a-z-]+)`)
	for _, c := range commands() {
		if c.run == nil {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			_, out, _ := cli(t, "help", c.name)
			for _, m := range flagRE.FindAllStringSubmatch(out, -1) {
				if !strings.Contains(c.args, "--"+m[1]) {
					t.Errorf("symbot %s takes --%s but its usage line %q does not name it", c.name, m[1], c.args)
				}
			}
		})
	}
}

// TestHelpUsageIsTheTableLine: `symbot help COMMAND` opens with the usage
// line of the command table, the one `symbot help` lists, so the two never
// disagree (they did: several commands' own lines lacked --socket).
func TestHelpUsageIsTheTableLine(t *testing.T) {
	for _, c := range commands() {
		if c.run == nil {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			_, out, _ := cli(t, "help", c.name)
			first, _, _ := strings.Cut(out, "\n")
			if want := "Usage: symbot " + c.name + " " + c.args; first != want {
				t.Errorf("first line %q, want %q", first, want)
			}
		})
	}
}

func TestHelpHelp(t *testing.T) {
	code, out, errOut := cli(t, "help", "help")
	if code != exitOK || !strings.Contains(out, "Usage: symbot help [COMMAND]") || errOut != "" {
		t.Errorf("help help: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}
