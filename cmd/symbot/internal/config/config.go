// Package config loads symbot's configuration: the YAML file and the Slack
// tokens from the environment. It reports every problem at once, each with
// its file:line, and leaves the AWS and Okta rules to the awsauth and okta
// packages, mapping their findings back to the file.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/symbot/symbot"
)

// Config defaults.
const (
	DefaultPath            = "symbot.yml"
	DefaultSlashCommand    = "/sym"
	DefaultSessionDuration = time.Hour
	DefaultSessionName     = "symbot"
	DefaultTokenCacheTTL   = 5 * time.Minute
	DefaultStorePath       = "symbot.db"
	DefaultAdminSocket     = "symbot.sock"
	// MaxChainedSession is the longest session AWS grants to a role assumed
	// with credentials of another role (role chaining).
	MaxChainedSession = time.Hour
)

// Config is symbot's configuration: the YAML file plus the Slack tokens from
// the environment. Relative paths are resolved against the directory of the
// config file.
type Config struct {
	File  string // the file it was loaded from, for messages
	Slack Slack
	AWS   AWS
	Okta  Okta
	Store Store
	HTTP  HTTP
	Admin Admin
	Log   Log
	Flows []symbot.Flow
}

// Slack is the slack section plus the tokens from the environment.
type Slack struct {
	ErrorsChannel string // channel for operator alerts (stuck revocations, failures)
	Command       string // slash command, default /sym

	BotToken string // SLACK_BOT_TOKEN (xoxb-...)
	AppToken string // SLACK_APP_TOKEN (xapp-..., Socket Mode)
	APIURL   string // SLACK_API_URL, with a trailing slash; "" = slack.com
}

// AWS says how symbot reaches the secret holding the Okta token.
type AWS struct {
	Region          string
	RoleARN         string // the runtime connector role, assumed with ExternalID
	ExternalID      string
	HopRoles        []string // roles assumed in order after RoleARN
	SessionDuration time.Duration
	SessionName     string
}

// Okta says where Okta is and where its API token lives.
type Okta struct {
	OrgURL        string
	TokenSecret   string // Secrets Manager secret name or ARN
	TokenJSONKey  string // key inside a JSON secret; "" = the whole secret string
	TokenCacheTTL time.Duration
	// UserOverrides maps a Slack user id or email to an Okta login, for
	// people whose Slack email is not their Okta login.
	UserOverrides map[string]string
}

// Store locates the bbolt database.
type Store struct{ Path string }

// HTTP is the health and metrics listener; Listen "" turns it off.
type HTTP struct{ Listen string }

// Admin locates the admin unix socket.
type Admin struct{ Socket string }

// Log selects the log format and level.
type Log struct {
	Format string // text or json
	Level  string // debug, info, warn, error
}

// Problem is one problem with the configuration.
type Problem struct {
	Line    int    // 1-based line in the file; 0 when not tied to a line
	Path    string // key path, like flows[1].targets[0].group_id
	Problem string
}

// Error lists every problem found in a configuration at once.
type Error struct {
	File     string
	Problems []Problem
}

func (e *Error) Error() string {
	var b strings.Builder
	n := len(e.Problems)
	fmt.Fprintf(&b, "%s: %d problem", e.File, n)
	if n != 1 {
		b.WriteString("s")
	}
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(e.Format(p))
	}
	return b.String()
}

// Format renders one problem as "file:line: path: problem".
func (e *Error) Format(p Problem) string {
	var b strings.Builder
	switch {
	case p.Line > 0:
		fmt.Fprintf(&b, "%s:%d: ", e.File, p.Line)
	case strings.HasPrefix(p.Path, "env "):
		b.WriteString("environment: ")
	default:
		fmt.Fprintf(&b, "%s: ", e.File)
	}
	if p.Path != "" {
		b.WriteString(strings.TrimPrefix(p.Path, "env "))
		b.WriteString(": ")
	}
	b.WriteString(p.Problem)
	return b.String()
}

// Load reads and validates the config file at path. getenv supplies the
// Slack tokens (os.Getenv in production). Errors are a *Error holding
// every problem, or a plain error when the file cannot be read.
func Load(path string, getenv func(string) string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("config file %s does not exist: copy symbot.example.yml to it and edit it, or pass --config", path)
		}
		return nil, fmt.Errorf("read config: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("config path: %w", err)
	}
	return Parse(path, data, filepath.Dir(abs), getenv)
}

// Parse parses and validates config data. name is used in messages;
// relative paths are resolved against dir.
func Parse(name string, data []byte, dir string, getenv func(string) string) (*Config, error) {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	d := &decoder{lines: map[string]int{}}
	cfg := &Config{File: name}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			d.add(0, "", "the file is empty: start from symbot.example.yml")
		} else {
			line, msg := yamlErrorLine(err)
			d.add(line, "", "not valid YAML: %s", msg)
		}
		return nil, d.err(name)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	d.config(root, cfg)
	cfg.env(d, getenv)
	// Validate even when decoding found problems, so that every problem is
	// reported at once, but say nothing more about keys already reported.
	d.bad = map[string]bool{}
	for _, p := range d.problems {
		d.bad[p.Path] = true
	}
	cfg.applyDefaults(dir)
	cfg.validate(d)
	if len(d.problems) > 0 {
		return nil, d.err(name)
	}
	return cfg, nil
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

// RequireTokens reports whether the Slack tokens that `symbot run` needs are
// present in the environment.
func (c *Config) RequireTokens() error {
	var missing []string
	if c.Slack.BotToken == "" {
		missing = append(missing, "SLACK_BOT_TOKEN (the bot token, xoxb-..., from OAuth & Permissions after installing the app)")
	}
	if c.Slack.AppToken == "" {
		missing = append(missing, "SLACK_APP_TOKEN (an app-level token, xapp-..., with the connections:write scope, from Basic Information > App-Level Tokens)")
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing Slack tokens in the environment: %s", strings.Join(missing, "; "))
	}
	return nil
}

// decoder walks a yaml.Node tree, collecting every problem with its line.
type decoder struct {
	problems []Problem
	lines    map[string]int
	bad      map[string]bool // paths with decoding problems
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
			d.mapping(n, p, []field{{"path", d.str(&c.Store.Path)}})
		}},
		{"http", func(n *yaml.Node, p string) {
			d.mapping(n, p, []field{{"listen", d.str(&c.HTTP.Listen)}})
		}},
		{"admin", func(n *yaml.Node, p string) {
			d.mapping(n, p, []field{{"socket", d.str(&c.Admin.Socket)}})
		}},
		{"log", func(n *yaml.Node, p string) {
			d.mapping(n, p, []field{
				{"format", d.str(&c.Log.Format)},
				{"level", d.str(&c.Log.Level)},
			})
		}},
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
		{"durations", func(n *yaml.Node, p string) {
			f.Durations = []time.Duration{}
			d.list(n, p, func(item *yaml.Node, ip string) {
				var v time.Duration
				d.duration(&v, nil)(item, ip)
				f.Durations = append(f.Durations, v)
			})
		}},
		{"approval_timeout", func(n *yaml.Node, p string) {
			var set bool
			d.duration(&f.ApprovalTimeout, &set)(n, p)
			if set && f.ApprovalTimeout <= 0 {
				d.add(n.Line, p, "must be more than 0 (leave it out for the default 24h)")
			}
		}},
		{"expiry_warning", d.duration(&f.ExpiryWarning, &fd.expiryWarningSet)},
		{"targets", func(n *yaml.Node, p string) {
			d.list(n, p, func(item *yaml.Node, ip string) {
				var t symbot.Target
				d.mapping(item, ip, []field{
					{"name", d.str(&t.Name)},
					{"label", d.str(&t.Label)},
					{"group_id", d.str(&t.GroupID)},
				})
				f.Targets = append(f.Targets, t)
			})
		}},
	})
}

func (c *Config) env(d *decoder, getenv func(string) string) {
	c.Slack.BotToken = strings.TrimSpace(getenv("SLACK_BOT_TOKEN"))
	c.Slack.AppToken = strings.TrimSpace(getenv("SLACK_APP_TOKEN"))
	c.Slack.APIURL = strings.TrimSpace(getenv("SLACK_API_URL"))
	// As in every AWS tool, the region may come from the environment.
	if c.AWS.Region == "" {
		c.AWS.Region = strings.TrimSpace(getenv("AWS_REGION"))
	}
	if c.AWS.Region == "" {
		c.AWS.Region = strings.TrimSpace(getenv("AWS_DEFAULT_REGION"))
	}
	// Never echo a token value: only say what shape it should have.
	if t := c.Slack.BotToken; t != "" && !strings.HasPrefix(t, "xoxb-") {
		d.add(0, "env SLACK_BOT_TOKEN", "is not a bot token: it must start with xoxb- (OAuth & Permissions > Bot User OAuth Token)")
	}
	if t := c.Slack.AppToken; t != "" && !strings.HasPrefix(t, "xapp-") {
		d.add(0, "env SLACK_APP_TOKEN", "is not an app-level token: it must start with xapp- (Basic Information > App-Level Tokens, scope connections:write)")
	}
	if u := c.Slack.APIURL; u != "" {
		if err := checkURL(u); err != nil {
			d.add(0, "env SLACK_API_URL", "%v", err)
		} else if !strings.HasSuffix(u, "/") {
			c.Slack.APIURL = u + "/"
		}
	}
}

func (c *Config) applyDefaults(dir string) {
	if c.Slack.Command == "" {
		c.Slack.Command = DefaultSlashCommand
	}
	if c.AWS.SessionDuration == 0 {
		c.AWS.SessionDuration = DefaultSessionDuration
	}
	if c.AWS.SessionName == "" {
		c.AWS.SessionName = DefaultSessionName
	}
	if c.AWS.Region == "" {
		if a, ok := parseARN(c.Okta.TokenSecret); ok && a.service == "secretsmanager" {
			c.AWS.Region = a.region
		}
	}
	if c.Okta.TokenCacheTTL == 0 {
		c.Okta.TokenCacheTTL = DefaultTokenCacheTTL
	}
	c.Okta.OrgURL = strings.TrimSuffix(c.Okta.OrgURL, "/")
	if c.Store.Path == "" {
		c.Store.Path = DefaultStorePath
	}
	if c.Admin.Socket == "" {
		c.Admin.Socket = DefaultAdminSocket
	}
	if !filepath.IsAbs(c.Store.Path) {
		c.Store.Path = filepath.Join(dir, c.Store.Path)
	}
	if !filepath.IsAbs(c.Admin.Socket) {
		c.Admin.Socket = filepath.Join(dir, c.Admin.Socket)
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	for i := range c.Flows {
		c.Flows[i].ApplyDefaults()
	}
}

var (
	roleARNRE     = regexp.MustCompile(`^arn:aws(-[a-z]+)*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$`)
	externalIDRE  = regexp.MustCompile(`^[\w+=,.@:/-]+$`)
	sessionNameRE = regexp.MustCompile(`^[\w+=,.@-]{2,64}$`)
	regionRE      = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-\d$`)
	secretNameRE  = regexp.MustCompile(`^[\w/+=.@-]{1,512}$`)
	commandRE     = regexp.MustCompile(`^/[a-z0-9_-]{1,31}$`)
	slackIDRE     = regexp.MustCompile(`^[UW][A-Z0-9]{2,}$`)
)

// arn is a parsed Amazon Resource Name.
type arn struct {
	partition, service, region, account, resource string
}

func parseARN(s string) (arn, bool) {
	parts := strings.SplitN(s, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" {
		return arn{}, false
	}
	return arn{partition: parts[1], service: parts[2], region: parts[3], account: parts[4], resource: parts[5]}, true
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkURL accepts https URLs, and http only for loopback hosts.
func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%q is not a URL: use a form like https://example.okta.com", s)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopback(u.Hostname()) {
			return fmt.Errorf("must use https (plain http is only allowed for 127.0.0.1 or localhost)")
		}
	default:
		return fmt.Errorf("must be an https:// URL, not %q", u.Scheme)
	}
	if u.User != nil {
		return fmt.Errorf("must not contain credentials")
	}
	return nil
}

func dirExists(path string) error {
	st, err := os.Stat(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("directory %s does not exist: create it first", filepath.Dir(path))
	}
	if !st.IsDir() {
		return fmt.Errorf("%s is not a directory", filepath.Dir(path))
	}
	return nil
}

func (c *Config) validate(d *decoder) {
	at := func(path, format string, args ...any) {
		if !d.reported(path) {
			d.add(d.lineOf(path), path, format, args...)
		}
	}

	// slack
	if c.Slack.ErrorsChannel == "" {
		at("slack.errors_channel", "missing: the channel where symbot reports failures (stuck revocations); invite the bot to it")
	}
	if !commandRE.MatchString(c.Slack.Command) {
		at("slack.command", "%q is not a slash command: use a form like /sym (lowercase, starting with /)", c.Slack.Command)
	}

	// aws
	switch {
	case c.AWS.RoleARN == "":
		at("aws.role_arn", "missing: the runtime connector role symbot assumes, like arn:aws:iam::123456789012:role/symbot-runtime")
	case !roleARNRE.MatchString(c.AWS.RoleARN):
		at("aws.role_arn", "%q is not an IAM role ARN: use a form like arn:aws:iam::123456789012:role/symbot-runtime", c.AWS.RoleARN)
	}
	switch {
	case c.AWS.ExternalID == "":
		at("aws.external_id", "missing: the external id in the role's trust policy (run `symbot iam-policy` to see it)")
	case len(c.AWS.ExternalID) < 2 || len(c.AWS.ExternalID) > 1224 || !externalIDRE.MatchString(c.AWS.ExternalID):
		at("aws.external_id", "must be 2 to 1224 characters of letters, digits and +=,.@:/-")
	}
	for i, h := range c.AWS.HopRoles {
		if !roleARNRE.MatchString(h) {
			at(fmt.Sprintf("aws.hop_roles[%d]", i), "%q is not an IAM role ARN: use a form like arn:aws:iam::123456789012:role/name", h)
		}
	}
	sd := c.AWS.SessionDuration
	switch {
	case sd < 15*time.Minute:
		at("aws.session_duration", "%s is under the AWS minimum of 15m", symbot.FormatDuration(sd))
	case sd > 12*time.Hour:
		at("aws.session_duration", "%s is over the AWS maximum of 12h", symbot.FormatDuration(sd))
	case sd > MaxChainedSession && len(c.AWS.HopRoles) > 0:
		at("aws.session_duration", "%s is over 1h: with hop_roles the sessions are chained, and AWS limits a chained role session to 1 hour", symbot.FormatDuration(sd))
	}
	if !sessionNameRE.MatchString(c.AWS.SessionName) {
		at("aws.session_name", "must be 2 to 64 characters of letters, digits and +=,.@-")
	}
	switch {
	case c.AWS.Region == "":
		at("aws.region", "missing: the AWS region of the secret, like us-east-1 (or set AWS_REGION)")
	case !regionRE.MatchString(c.AWS.Region):
		at("aws.region", "%q is not an AWS region: use a form like us-east-1", c.AWS.Region)
	}

	// okta
	switch {
	case c.Okta.OrgURL == "":
		at("okta.org_url", "missing: your Okta org URL, like https://example.okta.com")
	default:
		if err := checkURL(c.Okta.OrgURL); err != nil {
			at("okta.org_url", "%v", err)
		} else if u, _ := url.Parse(c.Okta.OrgURL); u.Path != "" || u.RawQuery != "" {
			at("okta.org_url", "must be the org URL alone, like https://example.okta.com, without a path")
		}
	}
	ts := c.Okta.TokenSecret
	switch a, isARN := parseARN(ts); {
	case ts == "":
		at("okta.token_secret", "missing: the Secrets Manager secret (name or ARN) holding the Okta API token")
	case isARN:
		if a.service != "secretsmanager" || !strings.HasPrefix(a.resource, "secret:") || len(a.account) != 12 {
			at("okta.token_secret", "%q is not a Secrets Manager secret ARN: use arn:aws:secretsmanager:<region>:<account>:secret:<name> or just the secret name", ts)
		} else if c.AWS.Region != "" && a.region != c.AWS.Region {
			at("okta.token_secret", "the secret is in %s but aws.region is %s: Secrets Manager is called in aws.region", a.region, c.AWS.Region)
		}
	case !secretNameRE.MatchString(ts):
		at("okta.token_secret", "%q is not a secret name: use letters, digits and /_+=.@-", ts)
	}
	if c.Okta.TokenCacheTTL < 0 {
		at("okta.token_cache_ttl", "must not be negative")
	}
	for k, v := range c.Okta.UserOverrides {
		p := "okta.user_overrides." + k
		if !slackIDRE.MatchString(k) && !strings.Contains(k, "@") {
			at(p, "key %q is neither a Slack user id (U012AB3CD) nor an email", k)
		}
		if v == "" {
			at(p, "empty Okta login")
		}
	}

	// store, admin, http, log
	if err := dirExists(c.Store.Path); err != nil {
		at("store.path", "%v", err)
	}
	if err := dirExists(c.Admin.Socket); err != nil {
		at("admin.socket", "%v", err)
	} else if len(c.Admin.Socket) > 88 {
		at("admin.socket", "path %s is %d bytes long; unix socket paths must be at most 88: use a shorter path", c.Admin.Socket, len(c.Admin.Socket))
	}
	if c.Admin.Socket == c.Store.Path {
		at("admin.socket", "must differ from store.path")
	}
	if l := c.HTTP.Listen; l != "" {
		if _, port, err := net.SplitHostPort(l); err != nil || port == "" {
			at("http.listen", "%q is not host:port: use a form like 127.0.0.1:9090 or :9090", l)
		}
	}
	if !slices.Contains([]string{"text", "json"}, c.Log.Format) {
		at("log.format", "%q: use text or json", c.Log.Format)
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.Log.Level) {
		at("log.level", "%q: use debug, info, warn or error", c.Log.Level)
	}

	// flows
	if err := symbot.ValidateFlows(c.Flows); err != nil {
		var ve *symbot.ValidationError
		if errors.As(err, &ve) {
			for _, p := range ve.Problems {
				at(p.Path, "%s", p.Problem)
			}
		} else {
			at("flows", "%v", err)
		}
	}
	for i, f := range c.Flows {
		if f.ExpiryWarning > 0 && f.MaxDuration() > 0 && f.ExpiryWarning >= f.MaxDuration() {
			at(fmt.Sprintf("flows[%d].expiry_warning", i), "%s is not shorter than the longest duration %s: shorten it or set 0 to turn it off",
				symbot.FormatDuration(f.ExpiryWarning), symbot.FormatDuration(f.MaxDuration()))
		}
	}
}

// closest returns the known key nearest to s by edit distance, if near.
func closest(s string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if d := editDistance(s, k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
