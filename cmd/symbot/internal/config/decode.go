package config

// Decoding the YAML: a walk over the node tree that knows every key, records
// the line of each, and reports unknown keys, wrong types and token-looking
// values with their lines.

import (
	"bytes"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/symbot/symbot"
	"gopkg.in/yaml.v3"
)

// decoder walks a yaml.Node tree, collecting every problem with its line.
type decoder struct {
	problems []Problem
	lines    map[string]int
	bad      map[string]bool    // paths with decoding problems
	exprs    map[string]exprPos // rule expressions by path (flows[0].rules[1].when)
}

// reported reports whether path or one of its ancestors or descendants
// already has a decoding problem.
func (d *decoder) reported(path string) bool {
	for p := range d.bad {
		if p == path || strings.HasPrefix(path, p+".") || strings.HasPrefix(path, p+"[") ||
			strings.HasPrefix(p, path+".") || strings.HasPrefix(p, path+"[") {
			return true
		}
	}
	return false
}

func (d *decoder) add(line int, path, format string, args ...any) {
	d.problems = append(d.problems, Problem{Line: line, Path: path, Problem: fmt.Sprintf(format, args...)})
}

// lineOf finds the line of path or of its nearest ancestor.
func (d *decoder) lineOf(path string) int {
	for path != "" {
		if l, ok := d.lines[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return 0
}

func (d *decoder) err(name string) error {
	sort.SliceStable(d.problems, func(i, j int) bool {
		li, lj := d.problems[i].Line, d.problems[j].Line
		if li == 0 || lj == 0 {
			return li != 0 && lj == 0
		}
		return li < lj
	})
	return &Error{File: name, Problems: d.problems}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return "nothing"
		case "!!bool":
			return "a boolean"
		case "!!int":
			return "a number"
		case "!!float":
			return "a number"
		}
		return fmt.Sprintf("%q", n.Value)
	}
	return "something else"
}

// field is one known key of a mapping.
type field struct {
	key string
	set func(n *yaml.Node, path string)
}

// tokenKeys are keys that people might use to put a token in the file.
var tokenKeyHint = map[string]string{
	"bot_token":      "put the bot token in the SLACK_BOT_TOKEN environment variable, not in the file",
	"app_token":      "put the app-level token in the SLACK_APP_TOKEN environment variable, not in the file",
	"token":          "put tokens in the environment (SLACK_BOT_TOKEN, SLACK_APP_TOKEN); the Okta token is read from AWS Secrets Manager (okta.token_secret)",
	"api_token":      "the Okta API token is read from AWS Secrets Manager: set okta.token_secret, never the token itself",
	"signing_secret": "symbot uses Socket Mode and needs no signing secret; put tokens in the environment",
}

// mapping decodes a mapping node, reporting unknown and duplicate keys.
func (d *decoder) mapping(n *yaml.Node, path string, fields []field) {
	if n.Kind != yaml.MappingNode {
		d.add(n.Line, path, "expected a mapping of keys, got %s", kindName(n))
		return
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		kp := join(path, k.Value)
		if l, dup := seen[k.Value]; dup {
			d.add(k.Line, kp, "duplicate key (first on line %d)", l)
			continue
		}
		seen[k.Value] = k.Line
		idx := slices.IndexFunc(fields, func(f field) bool { return f.key == k.Value })
		if idx < 0 {
			if hint, ok := tokenKeyHint[k.Value]; ok {
				d.add(k.Line, kp, "not allowed: %s", hint)
				continue
			}
			known := make([]string, len(fields))
			for j, f := range fields {
				known[j] = f.key
			}
			msg := fmt.Sprintf("unknown key %q", k.Value)
			if s := closest(k.Value, known); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			} else {
				msg += " (known keys: " + strings.Join(known, ", ") + ")"
			}
			d.add(k.Line, kp, "%s", msg)
			continue
		}
		d.lines[kp] = k.Line
		if v.Kind == yaml.AliasNode && v.Alias != nil {
			v = v.Alias
		}
		if v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
			d.add(k.Line, kp, "has no value: give one or remove the key")
			continue
		}
		fields[idx].set(v, kp)
	}
}

// checkSecretValue refuses scalars that look like tokens.
func (d *decoder) checkSecretValue(n *yaml.Node, path string) bool {
	v := strings.TrimSpace(n.Value)
	for _, p := range []string{"xoxb-", "xoxp-", "xoxa-", "xoxe", "xoxs-", "xapp-"} {
		if strings.HasPrefix(v, p) {
			d.add(n.Line, path, "looks like a Slack token: put tokens in the environment (SLACK_BOT_TOKEN, SLACK_APP_TOKEN), never in the file")
			return false
		}
	}
	if tok := strings.TrimSpace(strings.TrimPrefix(strings.TrimPrefix(v, "SSWS "), "ssws ")); symbot.LooksLikeOktaToken(tok) || tok != v {
		// An Okta API token pasted where a name belongs: never echo it.
		fix := "never put tokens in the file"
		if path == "okta.token_secret" {
			fix = "okta.token_secret is the name or ARN of the Secrets Manager secret that holds the token, not the token itself: store the token in Secrets Manager, put the secret's name here, and revoke the pasted token (it is now written in this file)"
		}
		d.add(n.Line, path, "looks like an Okta API token (value not shown): %s", fix)
		return false
	}
	return true
}

func (d *decoder) str(dst *string) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		if n.Kind != yaml.ScalarNode {
			d.add(n.Line, path, "expected a string, got %s", kindName(n))
			return
		}
		if n.Tag == "!!bool" {
			d.add(n.Line, path, "expected a string, got a boolean (quote it if you mean the text %q)", n.Value)
			return
		}
		if !d.checkSecretValue(n, path) {
			return
		}
		*dst = strings.TrimSpace(n.Value)
	}
}

func (d *decoder) boolean(dst *bool, set *bool) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
			d.add(n.Line, path, "expected true or false, got %s", kindName(n))
			return
		}
		var b bool
		if err := n.Decode(&b); err != nil {
			d.add(n.Line, path, "expected true or false, got %s", kindName(n))
			return
		}
		*dst = b
		if set != nil {
			*set = true
		}
	}
}

func (d *decoder) integer(dst *int) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
			d.add(n.Line, path, "expected a whole number, got %s", kindName(n))
			return
		}
		var i int
		if err := n.Decode(&i); err != nil {
			d.add(n.Line, path, "expected a whole number, got %s", kindName(n))
			return
		}
		*dst = i
	}
}

// positive decodes a whole number of at least 1.
func (d *decoder) positive(dst *int) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		var i int
		before := len(d.problems)
		d.integer(&i)(n, path)
		switch {
		case len(d.problems) > before:
		case i < 1:
			d.add(n.Line, path, "must be at least 1 (leave it out for the default)")
		default:
			*dst = i
		}
	}
}

func (d *decoder) duration(dst *time.Duration, set *bool) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		if n.Kind != yaml.ScalarNode || n.Tag == "!!bool" || n.Tag == "!!float" {
			d.add(n.Line, path, "expected a duration like 15m, 1h or 1d, got %s", kindName(n))
			return
		}
		v, err := symbot.ParseDuration(n.Value)
		if err != nil {
			d.add(n.Line, path, "%q is not a duration: use a form like 15m, 1h or 1d", n.Value)
			return
		}
		*dst = v
		if set != nil {
			*set = true
		}
	}
}

func (d *decoder) list(n *yaml.Node, path string, each func(n *yaml.Node, path string)) {
	if n.Kind != yaml.SequenceNode {
		d.add(n.Line, path, "expected a list, got %s", kindName(n))
		return
	}
	for i, item := range n.Content {
		ip := fmt.Sprintf("%s[%d]", path, i)
		d.lines[ip] = item.Line
		if item.Kind == yaml.AliasNode && item.Alias != nil {
			item = item.Alias
		}
		if item.Kind == yaml.ScalarNode && item.Tag == "!!null" {
			d.add(item.Line, ip, "empty list item")
			continue
		}
		each(item, ip)
	}
}

func (d *decoder) strList(dst *[]string) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		*dst = []string{}
		d.list(n, path, func(item *yaml.Node, ip string) {
			var s string
			d.str(&s)(item, ip)
			if item.Kind == yaml.ScalarNode {
				*dst = append(*dst, s)
			}
		})
	}
}

// durations decodes a list of durations, as a flow's or a target's
// durations.
func (d *decoder) durations(dst *[]time.Duration) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		*dst = []time.Duration{}
		d.list(n, path, func(item *yaml.Node, ip string) {
			var v time.Duration
			d.duration(&v, nil)(item, ip)
			*dst = append(*dst, v)
		})
	}
}

func (d *decoder) strMap(dst *map[string]string) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		if n.Kind != yaml.MappingNode {
			d.add(n.Line, path, "expected a mapping, got %s", kindName(n))
			return
		}
		m := map[string]string{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			kp := join(path, k.Value)
			d.lines[kp] = k.Line
			if _, dup := m[k.Value]; dup {
				d.add(k.Line, kp, "duplicate key")
				continue
			}
			var s string
			d.str(&s)(v, kp)
			m[k.Value] = s
		}
		*dst = m
	}
}

// flowDoc collects what a flow's YAML said before conversion.
type flowDoc struct {
	f                symbot.Flow
	allowRevokeSet   bool
	expiryWarningSet bool
}

func (d *decoder) config(root *yaml.Node, c *Config) {
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		d.add(root.Line, "", "the file is empty: start from symbot.example.yml")
		return
	}
	var flows []flowDoc
	d.mapping(root, "", []field{
		{"slack", func(n *yaml.Node, p string) {
			d.mapping(n, p, []field{
				{"errors_channel", d.str(&c.Slack.ErrorsChannel)},
				{"command", d.str(&c.Slack.Command)},
			})
		}},
		{"aws", func(n *yaml.Node, p string) {
			d.mapping(n, p, []field{
				{"region", d.str(&c.AWS.Region)},
				{"role_arn", d.str(&c.AWS.RoleARN)},
				{"external_id", d.str(&c.AWS.ExternalID)},
				{"hop_roles", d.strList(&c.AWS.HopRoles)},
				{"session_duration", d.duration(&c.AWS.SessionDuration, nil)},
				{"session_name", d.str(&c.AWS.SessionName)},
			})
		}},
		{"okta", func(n *yaml.Node, p string) {
			d.mapping(n, p, []field{
				{"org_url", d.str(&c.Okta.OrgURL)},
				{"token_secret", d.str(&c.Okta.TokenSecret)},
				{"token_json_key", d.str(&c.Okta.TokenJSONKey)},
				{"token_cache_ttl", d.duration(&c.Okta.TokenCacheTTL, nil)},
				{"user_overrides", d.strMap(&c.Okta.UserOverrides)},
			})
		}},
		{"store", func(n *yaml.Node, p string) {
			d.mapping(n, p, []field{{"path", d.str(&c.Store.Path)}, {"url", d.str(&c.Store.URL)}})
		}},
		{"http", func(n *yaml.Node, p string) {
			d.mapping(n, p, []field{{"listen", d.str(&c.HTTP.Listen)}})
		}},
		{"admin", func(n *yaml.Node, p string) {
			d.mapping(n, p, []field{{"socket", d.str(&c.Admin.Socket)}})
		}},
		{"reconcile", func(n *yaml.Node, p string) {
			d.mapping(n, p, []field{{"interval", func(n *yaml.Node, p string) {
				var set bool
				d.duration(&c.Reconcile.Interval, &set)(n, p)
				if set && c.Reconcile.Interval < MinReconcileInterval {
					d.add(n.Line, p, "must be at least 1m (leave it out for the default 10m)")
				}
			}}})
		}},
		{"runtime", func(n *yaml.Node, p string) {
			d.mapping(n, p, []field{
				{"credential_check_interval", func(n *yaml.Node, p string) {
					var set bool
					d.duration(&c.Runtime.CredentialCheckInterval, &set)(n, p)
					if v := c.Runtime.CredentialCheckInterval; set && (v < MinCredentialCheckInterval || v > MaxCredentialCheckInterval) {
						d.add(n.Line, p, "must be between 10s and 1h (leave it out for the default 1m)")
					}
				}},
				{"grant_check_ttl", func(n *yaml.Node, p string) {
					var set bool
					d.duration(&c.Runtime.GrantCheckTTL, &set)(n, p)
					switch v := c.Runtime.GrantCheckTTL; {
					case !set:
					case v == 0:
						c.Runtime.GrantCheckOff = true
					case v < 0:
						d.add(n.Line, p, "%s is negative: use a duration from 1s to 1h such as 5m, or 0 to turn the early look-ups off (leave it out for the default 5m)", n.Value)
					case v > MaxGrantCheckTTL:
						d.add(n.Line, p, "must be at most 1h (0 turns the early look-ups off; leave it out for the default 5m)")
					}
				}},
				{"job_workers", func(n *yaml.Node, p string) {
					d.positive(&c.Runtime.JobWorkers)(n, p)
					if c.Runtime.JobWorkers > MaxJobWorkers {
						d.add(n.Line, p, "must be at most 256 (leave it out for the default 16)")
					}
				}},
			})
		}},
		{"log", func(n *yaml.Node, p string) {
			d.mapping(n, p, []field{
				{"format", d.str(&c.Log.Format)},
				{"level", d.str(&c.Log.Level)},
			})
		}},
		{"limits", func(n *yaml.Node, p string) {
			d.mapping(n, p, []field{
				{"requests_per_minute", d.positive(&c.Limits.RequestsPerMinute)},
				{"pending_requests", d.positive(&c.Limits.PendingRequests)},
				{"commands_per_minute", d.positive(&c.Limits.CommandsPerMinute)},
				{"approver_cache_ttl", func(n *yaml.Node, p string) {
					var set bool
					d.duration(&c.Limits.ApproverCacheTTL, &set)(n, p)
					c.Limits.ApproverCacheOff = set && c.Limits.ApproverCacheTTL == 0
				}},
			})
		}},
		{"audit", d.audit(c)},
		{"pagerduty", d.pagerduty(c)},
		{"flows", func(n *yaml.Node, p string) {
			d.list(n, p, func(item *yaml.Node, ip string) {
				fd := flowDoc{}
				d.flow(item, ip, &fd)
				flows = append(flows, fd)
			})
		}},
	})
	for _, fd := range flows {
		f := fd.f
		if !fd.allowRevokeSet {
			f.AllowRevoke = true
		}
		if !fd.expiryWarningSet {
			f.ExpiryWarning = symbot.DefaultExpiryWarning
		}
		c.Flows = append(c.Flows, f)
	}
}

func (d *decoder) flow(n *yaml.Node, path string, fd *flowDoc) {
	f := &fd.f
	d.mapping(n, path, []field{
		{"name", d.str(&f.Name)},
		{"label", d.str(&f.Label)},
		{"channel", d.str(&f.Channel)},
		{"approvers", func(n *yaml.Node, p string) {
			d.mapping(n, p, []field{
				{"users", d.strList(&f.Approvers.Users)},
				{"okta_group", d.str(&f.Approvers.OktaGroup)},
				{"anyone", d.boolean(&f.Approvers.Anyone, nil)},
			})
		}},
		{"approvals_required", func(n *yaml.Node, p string) {
			d.integer(&f.ApprovalsRequired)(n, p)
			if f.ApprovalsRequired < 1 && n.Tag == "!!int" {
				d.add(n.Line, p, "must be at least 1")
				f.ApprovalsRequired = 1
			}
		}},
		{"allow_self_approval", d.boolean(&f.AllowSelfApproval, nil)},
		{"allow_revoke", d.boolean(&f.AllowRevoke, &fd.allowRevokeSet)},
		{"allow_guests", d.boolean(&f.AllowGuests, nil)},
		{"durations", d.durations(&f.Durations)},
		{"approval_timeout", func(n *yaml.Node, p string) {
			var set bool
			d.duration(&f.ApprovalTimeout, &set)(n, p)
			if set && f.ApprovalTimeout <= 0 {
				d.add(n.Line, p, "must be more than 0 (leave it out for the default 24h)")
			}
		}},
		{"expiry_warning", d.duration(&f.ExpiryWarning, &fd.expiryWarningSet)},
		{"schedule_horizon", func(n *yaml.Node, p string) {
			var set bool
			d.duration(&f.ScheduleHorizon, &set)(n, p)
			switch {
			case set && f.ScheduleHorizon <= 0:
				d.add(n.Line, p, "must be more than 0 (leave it out for the default %s)", symbot.FormatDuration(symbot.DefaultScheduleHorizon))
				f.ScheduleHorizon = 0
			case f.ScheduleHorizon > symbot.MaxScheduleHorizon:
				d.add(n.Line, p, "%s is over the %s maximum", symbot.FormatDuration(f.ScheduleHorizon), symbot.FormatDuration(symbot.MaxScheduleHorizon))
				f.ScheduleHorizon = 0
			}
		}},
		{"unmanaged_members", d.unmanaged(&f.UnmanagedMembers)},
		{"reason", d.reasonRule(&f.Reason)},
		{"escalation", func(n *yaml.Node, p string) {
			x := &symbot.Escalation{}
			d.mapping(n, p, []field{
				{"remind", func(n *yaml.Node, p string) {
					var set bool
					d.duration(&x.Remind, &set)(n, p)
					if set && x.Remind <= 0 {
						d.add(n.Line, p, "must be more than 0 (leave it out for no reminders)")
						x.Remind = 0
					}
				}},
				{"steps", func(n *yaml.Node, p string) {
					d.list(n, p, func(item *yaml.Node, ip string) {
						var st symbot.EscalationStep
						d.mapping(item, ip, []field{
							{"after", d.duration(&st.After, nil)},
							{"approvers", d.strList(&st.Approvers)},
							{"channel", d.str(&st.Channel)},
						})
						x.Steps = append(x.Steps, st)
					})
				}},
			})
			f.Escalation = x
		}},
		{"break_glass", func(n *yaml.Node, p string) {
			bg := &symbot.BreakGlass{}
			var maxSet, reviewSet bool
			d.mapping(n, p, []field{
				{"max_duration", d.duration(&bg.MaxDuration, &maxSet)},
				{"channel", d.str(&bg.Channel)},
				{"review_within", d.duration(&bg.ReviewWithin, &reviewSet)},
			})
			if !maxSet {
				d.add(n.Line, p+".max_duration", "missing: the longest break-glass grant, like 1h")
				bg.MaxDuration = time.Hour // reported; keep checking the rest
			} else if bg.MaxDuration <= 0 {
				d.add(n.Line, p+".max_duration", "must be more than 0")
				bg.MaxDuration = time.Hour
			}
			if reviewSet && bg.ReviewWithin <= 0 {
				d.add(n.Line, p+".review_within", "must be more than 0 (leave it out for the default %s)", symbot.FormatDuration(symbot.DefaultBreakGlassReview))
				bg.ReviewWithin = 0
			}
			f.BreakGlass = bg
		}},
		{"rules", d.rules(&f.Rules)},
		{"targets", func(n *yaml.Node, p string) {
			d.list(n, p, func(item *yaml.Node, ip string) {
				var t symbot.Target
				d.mapping(item, ip, []field{
					{"name", d.str(&t.Name)},
					{"label", d.str(&t.Label)},
					{"group_id", d.str(&t.GroupID)},
					{"unmanaged_members", d.unmanaged(&t.UnmanagedMembers)},
					{"reason", d.reasonRule(&t.Reason)},
					{"rules", d.rules(&t.Rules)},
					{"durations", d.durations(&t.Durations)},
					{"max_duration", func(n *yaml.Node, p string) {
						var set bool
						d.duration(&t.MaxDuration, &set)(n, p)
						if set && t.MaxDuration <= 0 {
							d.add(n.Line, p, "must be more than 0 (leave it out for the flow's longest duration)")
						}
					}},
					{"approvers", func(n *yaml.Node, p string) {
						a := &symbot.Approvers{}
						d.mapping(n, p, []field{
							{"users", d.strList(&a.Users)},
							{"okta_group", d.str(&a.OktaGroup)},
							{"anyone", d.boolean(&a.Anyone, nil)},
						})
						t.Approvers = a
					}},
					{"approvals_required", func(n *yaml.Node, p string) {
						d.integer(&t.ApprovalsRequired)(n, p)
						if t.ApprovalsRequired < 1 && n.Tag == "!!int" {
							d.add(n.Line, p, "must be at least 1")
							t.ApprovalsRequired = 0
						}
					}},
					{"allow_guests", func(n *yaml.Node, p string) {
						var v, set bool
						d.boolean(&v, &set)(n, p)
						if set {
							t.AllowGuests = &v
						}
					}},
				})
				f.Targets = append(f.Targets, t)
			})
		}},
	})
}

// reasonRule decodes a reason rule: pattern (a Go regexp, compiled here so
// that a bad one is reported at its line), message and min_length.
func (d *decoder) reasonRule(dst **symbot.ReasonRule) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		r := &symbot.ReasonRule{}
		d.mapping(n, path, []field{
			{"pattern", func(n *yaml.Node, p string) {
				d.str(&r.Pattern)(n, p)
				if err := r.Compile(); err != nil {
					d.add(n.Line, p, "not a valid Go regular expression: %v", err)
					r.Pattern, r.Message = "", ""
				}
			}},
			{"message", d.str(&r.Message)},
			{"min_length", func(n *yaml.Node, p string) {
				d.integer(&r.MinLength)(n, p)
				if r.MinLength < 0 {
					d.add(n.Line, p, "must not be negative (0 means any length)")
					r.MinLength = 0
				}
			}},
		})
		*dst = r
	}
}

// rules decodes a list of rules: name, when (an expression, compiled in
// validate) and one outcome: approve: true, require: {approvals,
// approvers} or refuse: "message".
func (d *decoder) rules(dst *[]symbot.Rule) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		*dst = []symbot.Rule{}
		d.list(n, path, func(item *yaml.Node, ip string) {
			var r symbot.Rule
			var outcomes []string
			outcome := func(a symbot.RuleAction, key string) {
				outcomes = append(outcomes, key)
				r.Action = a
			}
			d.mapping(item, ip, []field{
				{"name", d.str(&r.Name)},
				{"when", func(n *yaml.Node, p string) {
					if n.Kind != yaml.ScalarNode {
						d.add(n.Line, p, "expected an expression, got %s", kindName(n))
						return
					}
					r.When = n.Value // `when: true` is an expression too
					d.exprs[p] = exprPos{line: n.Line, style: n.Style}
				}},
				{"approve", func(n *yaml.Node, p string) {
					var v bool
					d.boolean(&v, nil)(n, p)
					if n.Tag == "!!bool" && !v {
						d.add(n.Line, p, "approve: false does nothing: write approve: true, or remove the rule")
					}
					outcome(symbot.RuleApprove, "approve")
				}},
				{"require", func(n *yaml.Node, p string) {
					d.mapping(n, p, []field{
						{"approvals", d.positive(&r.Approvals)},
						{"approvers", func(n *yaml.Node, p string) {
							a := &symbot.Approvers{}
							d.mapping(n, p, []field{
								{"users", d.strList(&a.Users)},
								{"okta_group", d.str(&a.OktaGroup)},
								{"anyone", d.boolean(&a.Anyone, nil)},
							})
							r.Approvers = a
						}},
					})
					outcome(symbot.RuleRequire, "require")
				}},
				{"refuse", func(n *yaml.Node, p string) {
					d.str(&r.Message)(n, p)
					outcome(symbot.RuleRefuse, "refuse")
				}},
			})
			if len(outcomes) > 1 {
				d.add(item.Line, ip, "has %s: give a rule exactly one outcome", strings.Join(outcomes, " and "))
			}
			*dst = append(*dst, r)
		})
	}
}

// exprPos is where an expression's text starts in the file.
type exprPos struct {
	line  int
	style yaml.Style
}

// fileLine maps line (1-based) of an expression to its line in the file.
func (p exprPos) fileLine(line int) int {
	if line < 1 {
		line = 1
	}
	if p.style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		return p.line + line // the text starts below the | or >
	}
	return p.line + line - 1
}

// unmanaged decodes an unmanaged_members policy: alert, remove or ignore.
func (d *decoder) unmanaged(dst *symbot.UnmanagedPolicy) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		var v string
		d.str(&v)(n, path)
		switch p := symbot.UnmanagedPolicy(strings.ToLower(strings.TrimSpace(v))); p {
		case symbot.UnmanagedAlert, symbot.UnmanagedRemove, symbot.UnmanagedIgnore:
			*dst = p
		default:
			if n.Kind == yaml.ScalarNode && n.Tag != "!!bool" {
				d.add(n.Line, path, "%q is not a policy: use alert, remove or ignore", v)
			}
		}
	}
}

var yamlLineRE = regexp.MustCompile(`line (\d+): `)

func yamlErrorLine(err error) (int, string) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if m := yamlLineRE.FindStringSubmatchIndex(msg); m != nil {
		var line int
		fmt.Sscanf(msg[m[2]:m[3]], "%d", &line)
		return line, msg[:m[0]] + msg[m[1]:]
	}
	return 0, msg
}

// mistakeLine finds the line of a YAML syntax mistake that yaml.v3
// reported at reported, the start of the block that holds it, which can be
// far above it: the mistake is on the line after the longest prefix of the
// file that still parses. It returns reported when it finds nothing better.
func mistakeLine(data []byte, reported int) int {
	lines := bytes.SplitAfter(data, []byte("\n"))
	if reported < 1 {
		return reported
	}
	last := 0 // the longest prefix, in lines, that parses
	for k := reported; k <= len(lines) && k <= reported+maxScanLines; k++ {
		var n yaml.Node
		if yaml.Unmarshal(bytes.Join(lines[:k], nil), &n) == nil {
			last = k
		} else if k-last > 20 {
			break // the mistake is behind us; stop parsing ever longer prefixes
		}
	}
	if last < reported || last >= len(lines) {
		return reported
	}
	return last + 1
}

// maxScanLines bounds how far below the reported line mistakeLine looks,
// so that a long file costs at most that many parses.
const maxScanLines = 200
