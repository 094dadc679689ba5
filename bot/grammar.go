// The /sym command grammar: parsing the words after the command, and the
// help text.

package bot

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/symbot/symbot"
)

// DefaultCommand is the slash command symbot answers unless Config.Command
// names another.
const DefaultCommand = "/sym"

// helpHint points to the help of the slash command cmd.
func helpHint(cmd string) string {
	return "Type `" + Escape(cmd) + " help` to see what I understand."
}

// helpText is the answer to "<cmd> help".
func helpText(cmd string) string {
	c := Escape(cmd)
	return "*symbot: temporary access, approved by a colleague*\n" +
		"• `" + c + "` or `" + c + " req [flow]`: open the request form\n" +
		"• `" + c + " req <target> <duration> <reason…>`: request without the form, e.g. `" + c + " req prod/admin 1h fix incident 42` (write `flow/target` when a target name exists in several flows)\n" +
		"• `" + c + " req <target> <duration> at <time> <reason…>`: start later, approved ahead, e.g. `" + c + " req prod/admin 2h at tomorrow 22:00 db upgrade OPS-7` (your Slack time zone; " + symbot.StartFormats + ")\n" +
		"• `" + c + " breakglass <target> <duration> <reason…>`: emergency access at once, without approval, where the flow allows it; it is announced loudly and approvers review it afterwards\n" +
		"• `" + c + " list`: your pending requests and active access, with Cancel and Relinquish buttons\n" +
		"• `" + c + " whoami`: who you are to symbot and what you may request and approve\n" +
		"• `" + c + " help`: this message"
}

type cmdKind int

const (
	cmdModal      cmdKind = iota // open the request modal (Flow optional)
	cmdRequest                   // request without the modal
	cmdBreakGlass                // break-glass access: granted at once, reviewed later
	cmdList
	cmdWhoami
	cmdHelp
)

// command is one parsed slash command invocation.
type command struct {
	Kind     cmdKind
	Flow     string // cmdModal: restrict to this flow
	Target   string // cmdRequest: "target" or "flow/target"
	Duration string // cmdRequest: as typed
	Start    string // cmdRequest: the start time after "at", as typed; "" for at once
	Reason   string // cmdRequest: the rest of the line, spacing kept
}

// parseCommand parses the text after the slash command name cmd (which
// its usage errors quote).
func parseCommand(text, cmd string) (command, error) {
	c := Escape(cmd)
	words, rest := nextWord(text)
	switch strings.ToLower(words) {
	case "":
		return command{Kind: cmdModal}, nil
	case "help", "-h", "--help", "?":
		return command{Kind: cmdHelp}, nil
	case "list", "ls":
		if strings.TrimSpace(rest) != "" {
			return command{}, &UsageError{Problem: "`" + c + " list` takes nothing after it."}
		}
		return command{Kind: cmdList}, nil
	case "whoami":
		if strings.TrimSpace(rest) != "" {
			return command{}, &UsageError{Problem: "`" + c + " whoami` takes nothing after it."}
		}
		return command{Kind: cmdWhoami}, nil
	case "breakglass", "break-glass":
		target, rest := nextWord(rest)
		dur, rest := nextWord(rest)
		reason := strings.TrimSpace(rest)
		if target == "" || dur == "" || reason == "" {
			return command{}, &UsageError{Problem: "Expected `" + c + " breakglass <target> <duration> <reason…>`, e.g. `" + c + " breakglass prod/admin 30m database down, incident 42`."}
		}
		return command{Kind: cmdBreakGlass, Target: target, Duration: dur, Reason: reason}, nil
	case "req", "request":
		target, rest := nextWord(rest)
		if target == "" {
			return command{Kind: cmdModal}, nil
		}
		dur, rest := nextWord(rest)
		if dur == "" {
			return command{Kind: cmdModal, Flow: target}, nil
		}
		start := ""
		if w, after := nextWord(rest); strings.EqualFold(w, "at") {
			start, rest = startWords(after)
			if start == "" {
				return command{}, &UsageError{Problem: "The start time after `at` is missing. Expected `" + c + " req <target> <duration> at <time> <reason…>`, e.g. `" + c + " req prod/admin 1h at 18:30 deploy OPS-7`; the time is one of " + symbot.StartFormats + "."}
			}
		}
		reason := strings.TrimSpace(rest)
		if reason == "" {
			return command{}, &UsageError{Problem: "The reason is missing. Expected `" + c + " req <target> <duration> <reason…>`, e.g. `" + c + " req prod/admin 1h fix incident 42`."}
		}
		return command{Kind: cmdRequest, Target: target, Duration: dur, Start: start, Reason: reason}, nil
	}
	if w, ok := echoWord(words); ok {
		return command{}, &UsageError{Problem: fmt.Sprintf("I don't know %s. Expected `req`, `breakglass`, `list`, `whoami` or `help`.", w)}
	}
	return command{}, &UsageError{Problem: "I don't know that word. Expected `req`, `breakglass`, `list`, `whoami` or `help`."}
}

// startWords splits the start time off the words after "at": one word
// (18:30, 6pm, 2026-12-24T09:00), or a day and a time (tomorrow 09:00,
// fri 14:00, 2026-12-24 09:00), with an optional am/pm word after it.
func startWords(s string) (start, rest string) {
	w, rest := nextWord(s)
	if w == "" {
		return "", rest
	}
	words := []string{w}
	lw := strings.ToLower(w)
	if isDayWord(lw) {
		if t, r := nextWord(rest); t != "" {
			words, rest = append(words, t), r
		}
	}
	if m, r := nextWord(rest); strings.EqualFold(m, "am") || strings.EqualFold(m, "pm") {
		words, rest = append(words, m), r
	}
	return strings.Join(words, " "), rest
}

// isDayWord reports whether w names a day that a time of day follows.
func isDayWord(w string) bool {
	switch w {
	case "today", "tomorrow", "tmrw":
		return true
	}
	for d := time.Sunday; d <= time.Saturday; d++ {
		n := strings.ToLower(d.String())
		if w == n || w == n[:3] {
			return true
		}
	}
	return len(w) == 10 && w[4] == '-' && w[7] == '-' // 2026-12-24
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
	if !isNameLike(s) || len(s) > 16 {
		// Not repeated back: it may be anything, of any length.
		return 0, &symbot.InputError{Field: "duration", Problem: fmt.Sprintf("not a duration: use a form like 15m, 1h or 1d; %s offers %s", f.Name, durationNames(f.Durations))}
	}
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

// checkTargetName refuses a typed target or flow name that could not be a
// name symbot knows, without repeating it: the engine's answer quotes what
// was typed, and that must stay short and free of formatting.
func checkTargetName(flows []symbot.Flow, field, s string) error {
	if isNameLike(s) {
		return nil
	}
	var names []string
	for _, f := range flows {
		if field == "flow" {
			names = append(names, f.Name)
			continue
		}
		for _, t := range f.Targets {
			names = append(names, f.Name+"/"+t.Name)
		}
	}
	return &symbot.InputError{Field: field, Problem: fmt.Sprintf("no %s has that name; choose one of: %s", field, strings.Join(names, ", "))}
}
