package bot

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/symbot/symbot"
)

const helpHint = "Type `/sym help` to see what I understand."

// helpText is the answer to /sym help (the command name is /sym in the
// manifest; a different Config.Command only changes the parsing).
const helpText = "*symbot: temporary access, approved by a colleague*\n" +
	"• `/sym` or `/sym req [flow]`: open the request form\n" +
	"• `/sym req <target> <duration> <reason…>`: request without the form, e.g. `/sym req prod-admin 1h fix incident 42` (write `flow/target` when a target name exists in several flows)\n" +
	"• `/sym list`: your pending requests and active access, with Cancel and Relinquish buttons\n" +
	"• `/sym whoami`: who you are to symbot and what you may request and approve\n" +
	"• `/sym help`: this message"

type cmdKind int

const (
	cmdModal   cmdKind = iota // open the request modal (Flow optional)
	cmdRequest                // request without the modal
	cmdList
	cmdWhoami
	cmdHelp
)

// command is one parsed /sym invocation.
type command struct {
	Kind     cmdKind
	Flow     string // cmdModal: restrict to this flow
	Target   string // cmdRequest: "target" or "flow/target"
	Duration string // cmdRequest: as typed
	Reason   string // cmdRequest: the rest of the line, spacing kept
}

// parseCommand parses the text after the slash command name.
func parseCommand(text string) (command, error) {
	words, rest := nextWord(text)
	switch strings.ToLower(words) {
	case "":
		return command{Kind: cmdModal}, nil
	case "help", "-h", "--help", "?":
		return command{Kind: cmdHelp}, nil
	case "list", "ls":
		if strings.TrimSpace(rest) != "" {
			return command{}, &UsageError{Problem: "`/sym list` takes nothing after it."}
		}
		return command{Kind: cmdList}, nil
	case "whoami":
		if strings.TrimSpace(rest) != "" {
			return command{}, &UsageError{Problem: "`/sym whoami` takes nothing after it."}
		}
		return command{Kind: cmdWhoami}, nil
	case "req", "request":
		target, rest := nextWord(rest)
		if target == "" {
			return command{Kind: cmdModal}, nil
		}
		dur, rest := nextWord(rest)
		if dur == "" {
			return command{Kind: cmdModal, Flow: target}, nil
		}
		reason := strings.TrimSpace(rest)
		if reason == "" {
			return command{}, &UsageError{Problem: "The reason is missing. Expected `/sym req <target> <duration> <reason…>`, e.g. `/sym req prod-admin 1h fix incident 42`."}
		}
		return command{Kind: cmdRequest, Target: target, Duration: dur, Reason: reason}, nil
	}
	return command{}, &UsageError{Problem: fmt.Sprintf("I don't know `%s`. Expected `req`, `list`, `whoami` or `help`.", escapeTrunc(words, 40))}
}

// nextWord splits off the first whitespace-separated word of s.
func nextWord(s string) (word, rest string) {
	s = strings.TrimLeftFunc(s, unicode.IsSpace)
	i := strings.IndexFunc(s, unicode.IsSpace)
	if i < 0 {
		return s, ""
	}
	return s[:i], s[i:]
}

// checkDuration parses a typed duration and checks the flow offers it.
func checkDuration(f *symbot.Flow, s string) (time.Duration, error) {
	d, err := symbot.ParseDuration(s)
	if err != nil {
		return 0, &symbot.InputError{Field: "duration", Problem: err.Error()}
	}
	if !f.AllowsDuration(d) {
		return 0, &symbot.InputError{Field: "duration", Problem: fmt.Sprintf("%s is not offered by %s; choose one of %s", symbot.FormatDuration(d), f.Name, durationNames(f.Durations))}
	}
	return d, nil
}

// checkReason validates a reason typed by a person.
func checkReason(s string) (string, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return "", &symbot.InputError{Field: "reason", Problem: "missing: say why you need this access"}
	case len(s) > symbot.MaxReasonLength:
		return "", &symbot.InputError{Field: "reason", Problem: fmt.Sprintf("too long (%d bytes; at most %d)", len(s), symbot.MaxReasonLength)}
	}
	return s, nil
}

func durationNames(ds []time.Duration) string {
	ds = slices.Clone(ds)
	slices.Sort(ds)
	var n []string
	for _, d := range ds {
		n = append(n, symbot.FormatDuration(d))
	}
	return strings.Join(n, ", ")
}
