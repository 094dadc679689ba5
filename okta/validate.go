package okta

// The rules for the values an operator configures for Okta: the org URL,
// group ids and login overrides. New applies them, and the config loader
// reports them against the lines of the file.

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
)

// FieldError is a configured value that Okta cannot use. Field names the
// value as the okta section of symbot's config does (org_url, group_id,
// user_overrides); Problem says what is wrong and how to fix it.
type FieldError struct {
	Field   string
	Problem string
}

func (e *FieldError) Error() string { return "okta " + e.Field + ": " + e.Problem }

// ValidateOrgURL checks an Okta org URL: https with a host and nothing
// else (plain http only for loopback hosts), and not the admin console's
// URL. It returns a *FieldError.
func ValidateOrgURL(raw string) error {
	if _, _, problem := orgURL(raw); problem != "" {
		return &FieldError{Field: "org_url", Problem: problem}
	}
	return nil
}

// checkOrgURL returns the org URL without a trailing slash and whether it
// is plain http (allowed only on loopback).
func checkOrgURL(raw string) (string, bool, error) {
	org, insecure, problem := orgURL(raw)
	if problem != "" {
		return "", false, fmt.Errorf("okta org url %q: %s", strings.TrimSpace(raw), problem)
	}
	return org, insecure, nil
}

// adminHostRE matches the host of an Okta admin console, which is the org's
// host with -admin after the org name.
var adminHostRE = regexp.MustCompile(`^([a-z0-9-]+)-admin\.(okta|oktapreview|okta-emea|okta-gov|okta\.mil)\.(com|mil)$`)

func orgURL(raw string) (org string, insecure bool, problem string) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return "", false, "is empty: set it to your org, e.g. https://example.okta.com"
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", false, "is not a URL: use a form like https://example.okta.com"
	}
	if u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || (u.Path != "" && u.Path != "/") {
		return "", false, "want only a scheme and host, e.g. https://example.okta.com (the org URL alone, without a path)"
	}
	if m := adminHostRE.FindStringSubmatch(strings.ToLower(u.Hostname())); m != nil {
		org := strings.Replace(strings.ToLower(u.Host), m[1]+"-admin.", m[1]+".", 1)
		return "", false, fmt.Sprintf("%s is the admin console, not the org: use https://%s (the same host without -admin)", u.Host, org)
	}
	switch u.Scheme {
	case "https":
		return "https://" + u.Host, false, ""
	case "http":
		h := u.Hostname()
		ip := net.ParseIP(h)
		if h == "localhost" || (ip != nil && ip.IsLoopback()) {
			return "http://" + u.Host, true, ""
		}
		return "", false, "plain http is allowed only for loopback hosts (127.0.0.1, ::1, localhost); use https://"
	default:
		return "", false, "the scheme must be https"
	}
}

// groupIDRE is the shape of an Okta group id: 00g and 17 letters or digits.
var groupIDRE = regexp.MustCompile(`^00g[0-9A-Za-z]{17}$`)

// ValidateGroupID checks that id has the shape of an Okta group id (like
// 00g1ab2cd3EF4gh5IJ6k), not a group's name. It returns a *FieldError.
func ValidateGroupID(id string) error {
	if groupIDRE.MatchString(id) {
		return nil
	}
	return &FieldError{Field: "group_id", Problem: fmt.Sprintf("%q is not an Okta group id (20 characters starting with 00g, like 00g1ab2cd3EF4gh5IJ6k): in the Okta admin console open Directory > Groups > the group; its id is the last part of the page's URL", id)}
}

// ValidateOverride checks one user override, from a Slack user id or an
// email address to an Okta login. It returns a *FieldError.
func ValidateOverride(key, login string) error {
	key, login = strings.TrimSpace(key), strings.TrimSpace(login)
	switch {
	case key == "":
		return &FieldError{Field: "user_overrides", Problem: "a key is empty: use a Slack user id (U012AB3CD) or an email address"}
	case !slackUserIDRE.MatchString(key) && !strings.Contains(key, "@"):
		return &FieldError{Field: "user_overrides", Problem: fmt.Sprintf("key %q is neither a Slack user id (U012AB3CD) nor an email: use the person's Slack member ID (their Slack profile > More > Copy member ID) or their Slack email", key)}
	case login == "":
		return &FieldError{Field: "user_overrides", Problem: fmt.Sprintf("%s maps to an empty Okta login: set it to the person's Okta username (usually their work email)", key)}
	}
	return nil
}

var slackUserIDRE = regexp.MustCompile(`^[UW][A-Z0-9]{2,}$`)
