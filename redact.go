// The redactor: one function every error text passes before it reaches
// Slack, the audit trail or a log line, masking token-shaped strings.

package symbot

import (
	"regexp"
	"strings"
)

var (
	// Slack tokens: xoxb-, xoxp-, xoxa-, xoxe-, xoxs-, xoxr-, xoxe.xoxp-, and
	// app-level xapp- tokens.
	slackTokenRE = regexp.MustCompile(`\b(?:xox[a-z](?:\.xox[a-z])?|xapp)-[A-Za-z0-9-]+`)
	// Runs of the characters an Okta API token is made of; a run of 42
	// starting with "00" is one (SSWS tokens are "00" + 40 characters).
	oktaRunRE = regexp.MustCompile(`[A-Za-z0-9_-]{42,}`)
	// An Authorization header value: "SSWS <anything>".
	sswsRE = regexp.MustCompile(`(?i)\bSSWS\s+\S+`)
	// Runs of base64 characters; a run of exactly 40 with upper and lower
	// case letters and a digit or / or + is taken for an AWS secret key.
	awsRunRE = regexp.MustCompile(`[A-Za-z0-9/+]{40,}`)
)

// Redacted replaces a masked secret.
const Redacted = "[redacted]"

// Redact masks token-shaped substrings of s: Slack tokens (xox?-, xapp-),
// Okta API tokens (and any "SSWS ..." header value) and AWS secret access
// keys. It is the one redactor every error text passes before it reaches
// Slack, the audit trail or a log line.
func Redact(s string) string {
	if !maySecret(s) {
		return s
	}
	s = slackTokenRE.ReplaceAllStringFunc(s, func(t string) string {
		return t[:strings.IndexByte(t, '-')+1] + Redacted
	})
	s = sswsRE.ReplaceAllString(s, "SSWS "+Redacted)
	s = oktaRunRE.ReplaceAllStringFunc(s, func(t string) string {
		if LooksLikeOktaToken(t) {
			return Redacted
		}
		return t
	})
	s = awsRunRE.ReplaceAllStringFunc(s, func(t string) string {
		if looksLikeAWSSecret(t) {
			return Redacted
		}
		return t
	})
	return s
}

// LooksLikeOktaToken reports whether s has the shape of an Okta API token:
// "00" followed by 40 letters, digits, '-' or '_'.
func LooksLikeOktaToken(s string) bool {
	if len(s) != 42 || !strings.HasPrefix(s, "00") {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// looksLikeAWSSecret reports whether s (a run of base64 characters) has
// the shape of an AWS secret access key: 40 characters mixing upper and
// lower case letters with digits or / or +. Hex digests (one case only)
// do not match.
func looksLikeAWSSecret(s string) bool {
	if len(s) != 40 {
		return false
	}
	var upper, lower, other bool
	for _, c := range s {
		switch {
		case c >= 'A' && c <= 'Z':
			upper = true
		case c >= 'a' && c <= 'z':
			lower = true
		default:
			other = true
		}
	}
	return upper && lower && other
}

// maySecret is Redact's fast path: whether s has a token prefix or a run
// of 40 or more token characters at all.
func maySecret(s string) bool {
	if strings.Contains(s, "xox") || strings.Contains(s, "xapp-") || strings.Contains(s, "SSWS") || strings.Contains(strings.ToLower(s), "ssws") {
		return true
	}
	run := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '/' || c == '+' {
			run++
			if run >= 40 {
				return true
			}
		} else {
			run = 0
		}
	}
	return false
}
