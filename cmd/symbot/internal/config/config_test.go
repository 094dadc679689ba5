package config

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/symbot/symbot"
)

// baseYAML is a small valid config. Line numbers matter to the tests.
const baseYAML = `slack:
  errors_channel: C0ERRORS
aws:
  region: us-east-1
  role_arn: arn:aws:iam::123456789012:role/symbot-runtime
  external_id: ext-123
okta:
  org_url: https://example.okta.com
  token_secret: symbot/okta
  token_json_key: okta_api_token
flows:
  - name: prod
    channel: C0PROD
    approvers:
      users: [U0APPROVER]
    durations: [15m, 1h, 1d]
    targets:
      - name: admin
        group_id: 00gADMIN000000000001
`

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

// edit replaces old with new in s, failing when old is absent.
func edit(tb testing.TB, s, old, new string) string {
	tb.Helper()
	if !strings.Contains(s, old) {
		tb.Fatalf("edit: %q not in config", old)
	}
	return strings.Replace(s, old, new, 1)
}

func parse(tb testing.TB, yml string, getenv func(string) string) (*Config, error) {
	tb.Helper()
	return Parse("symbot.yml", []byte(yml), tb.TempDir(), getenv)
}

// MustParse parses yml and fails the test on any problem.
func MustParse(tb testing.TB, yml string) *Config {
	tb.Helper()
	cfg, err := parse(tb, yml, env())
	if err != nil {
		tb.Fatalf("Parse: %v", err)
	}
	return cfg
}

func TestConfigDefaults(t *testing.T) {
	dir := t.TempDir()
	cfg, err := Parse("symbot.yml", []byte(baseYAML), dir, env())
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"slack.command", cfg.Slack.Command, "/sym"},
		{"aws.session_duration", cfg.AWS.SessionDuration, time.Hour},
		{"aws.session_name", cfg.AWS.SessionName, "symbot"},
		{"okta.token_cache_ttl", cfg.Okta.TokenCacheTTL, 5 * time.Minute},
		{"store.path", cfg.Store.Path, filepath.Join(dir, "symbot.db")},
		{"admin.socket", cfg.Admin.Socket, filepath.Join(dir, "symbot.sock")},
		{"http.listen", cfg.HTTP.Listen, ""},
		{"log.format", cfg.Log.Format, "text"},
		{"log.level", cfg.Log.Level, "info"},
		{"flows", len(cfg.Flows), 1},
		{"label", cfg.Flows[0].Label, "prod"},
		{"target label", cfg.Flows[0].Targets[0].Label, "admin"},
		{"approvals_required", cfg.Flows[0].ApprovalsRequired, 1},
		{"approval_timeout", cfg.Flows[0].ApprovalTimeout, 24 * time.Hour},
		{"expiry_warning", cfg.Flows[0].ExpiryWarning, 10 * time.Minute},
		{"schedule_horizon", cfg.Flows[0].ScheduleHorizon, time.Duration(0)},
		{"allow_revoke", cfg.Flows[0].AllowRevoke, true},
		{"allow_self_approval", cfg.Flows[0].AllowSelfApproval, false},
		{"durations", cfg.Flows[0].Durations[2], 24 * time.Hour},
		{"bot token", cfg.Slack.BotToken, ""},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestConfigExplicitValues(t *testing.T) {
	yml := edit(t, baseYAML, "    durations:", `    allow_revoke: false
    expiry_warning: 0
    approval_timeout: 2h
    allow_self_approval: true
    allow_guests: true
    durations:`)
	yml = edit(t, yml, "  token_json_key: okta_api_token\n", `  token_json_key: okta_api_token
  user_overrides:
    U0ABC: jane@example.com
    bob@example.com: robert@example.com
store:
  path: data.db
http:
  listen: 127.0.0.1:9090
log:
  format: json
  level: debug
`)
	cfg := MustParse(t, yml)
	f := cfg.Flows[0]
	if f.AllowRevoke {
		t.Error("allow_revoke: got true, want false")
	}
	if f.ExpiryWarning != 0 {
		t.Errorf("expiry_warning: got %v, want 0 (explicit 0 turns it off)", f.ExpiryWarning)
	}
	if f.ApprovalTimeout != 2*time.Hour || !f.AllowSelfApproval || !f.AllowGuests {
		t.Errorf("flow: got %+v", f)
	}
	if got, want := cfg.Okta.UserOverrides["bob@example.com"], "robert@example.com"; got != want {
		t.Errorf("user_overrides: got %q, want %q", got, want)
	}
	if got := filepath.Base(cfg.Store.Path); got != "data.db" || !filepath.IsAbs(cfg.Store.Path) {
		t.Errorf("store.path: got %q, want an absolute path ending in data.db", cfg.Store.Path)
	}
	if cfg.HTTP.Listen != "127.0.0.1:9090" || cfg.Log.Format != "json" || cfg.Log.Level != "debug" {
		t.Errorf("http/log: got %+v %+v", cfg.HTTP, cfg.Log)
	}
}

func TestConfigEnvironment(t *testing.T) {
	cfg, err := parse(t, baseYAML, env("SLACK_BOT_TOKEN", "xoxb-1-2-abc", "SLACK_APP_TOKEN", "xapp-1-A-2-def", "SLACK_API_URL", "http://127.0.0.1:4000/api"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Slack.BotToken != "xoxb-1-2-abc" || cfg.Slack.AppToken != "xapp-1-A-2-def" {
		t.Errorf("tokens not read from the environment: %q %q", cfg.Slack.BotToken, cfg.Slack.AppToken)
	}
	if got, want := cfg.Slack.APIURL, "http://127.0.0.1:4000/api/"; got != want {
		t.Errorf("SLACK_API_URL: got %q, want %q (trailing slash added)", got, want)
	}
	if err := cfg.RequireTokens(); err != nil {
		t.Errorf("RequireTokens: %v", err)
	}
	cfg = MustParse(t, baseYAML)
	if err := cfg.RequireTokens(); err == nil || !strings.Contains(err.Error(), "SLACK_APP_TOKEN") {
		t.Errorf("RequireTokens without tokens: got %v, want an error naming SLACK_APP_TOKEN", err)
	}
}

func TestConfigRegionFromSecretARN(t *testing.T) {
	yml := edit(t, baseYAML, "  region: us-east-1\n", "")
	yml = edit(t, yml, "token_secret: symbot/okta", "token_secret: arn:aws:secretsmanager:eu-west-1:123456789012:secret:symbot/okta-AbC123")
	cfg := MustParse(t, yml)
	if cfg.AWS.Region != "eu-west-1" {
		t.Errorf("region: got %q, want eu-west-1 from the secret ARN", cfg.AWS.Region)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name   string
		yml    func(t *testing.T) string
		getenv func(string) string
		want   []string // substrings of the error, each must appear
		not    string   // must not appear (secrets)
	}{
		{
			name: "unknown top-level key with line and suggestion",
			yml:  func(t *testing.T) string { return baseYAML + "slak:\n  command: /x\n" },
			want: []string{`symbot.yml:20: slak: unknown key "slak" (did you mean "slack"?)`},
		},
		{
			name: "unknown flow key with line",
			yml: func(t *testing.T) string {
				return edit(t, baseYAML, "    channel: C0PROD\n", "    channel: C0PROD\n    aproval_timeout: 1h\n")
			},
			want: []string{`symbot.yml:14: flows[0].aproval_timeout: unknown key "aproval_timeout" (did you mean "approval_timeout"?)`},
		},
		{
			name: "unknown key lists known keys when nothing is close",
			yml:  func(t *testing.T) string { return edit(t, baseYAML, "  region:", "  zzzzzzzz: 1\n  region:") },
			want: []string{`aws.zzzzzzzz: unknown key "zzzzzzzz" (known keys: region, role_arn`},
		},
		{
			name: "missing group id at the target's line",
			yml: func(t *testing.T) string {
				return edit(t, baseYAML, "        group_id: 00gADMIN000000000001\n", "        label: Admin\n")
			},
			want: []string{"symbot.yml:18: flows[0].targets[0].group_id: missing"},
		},
		{
			name: "wrong types are named",
			yml: func(t *testing.T) string {
				y := edit(t, baseYAML, "    channel: C0PROD\n", "    channel: C0PROD\n    approvals_required: two\n    allow_revoke: yes\n")
				return edit(t, y, "users: [U0APPROVER]", "users: U0APPROVER")
			},
			want: []string{
				`symbot.yml:14: flows[0].approvals_required: expected a whole number, got "two"`,
				`symbot.yml:15: flows[0].allow_revoke: expected true or false, got "yes"`,
				`symbot.yml:17: flows[0].approvers.users: expected a list, got "U0APPROVER"`,
			},
		},
		{
			name: "bad duration",
			yml:  func(t *testing.T) string { return edit(t, baseYAML, "[15m, 1h, 1d]", "[15m, 1x]") },
			want: []string{`symbot.yml:16: flows[0].durations[1]: "1x" is not a duration`},
		},
		{
			name: "duplicate key",
			yml: func(t *testing.T) string {
				return edit(t, baseYAML, "    channel: C0PROD\n", "    channel: C0PROD\n    channel: C0OTHER\n")
			},
			want: []string{"symbot.yml:14: flows[0].channel: duplicate key (first on line 13)"},
		},
		{
			name: "key without value",
			yml:  func(t *testing.T) string { return edit(t, baseYAML, "  external_id: ext-123", "  external_id:") },
			want: []string{"symbot.yml:6: aws.external_id: has no value"},
		},
		{
			name: "token key in the file",
			yml: func(t *testing.T) string {
				return edit(t, baseYAML, "  errors_channel: C0ERRORS\n", "  errors_channel: C0ERRORS\n  bot_token: xoxb-123-456-secretvalue\n")
			},
			want: []string{"symbot.yml:3: slack.bot_token: not allowed: put the bot token in the SLACK_BOT_TOKEN environment variable"},
			not:  "secretvalue",
		},
		{
			name: "okta token in token_secret",
			yml: func(t *testing.T) string {
				return edit(t, baseYAML, "  token_secret: symbot/okta\n", "  token_secret: 00AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_xY\n")
			},
			want: []string{"symbot.yml:9: okta.token_secret: looks like an Okta API token (value not shown)", "revoke the pasted token"},
			not:  "AbCdEfGhIjKlMnOp",
		},
		{
			name: "ssws value in a label",
			yml: func(t *testing.T) string {
				return edit(t, baseYAML, "    channel: C0PROD", "    channel: C0PROD\n    label: SSWS secretvalue")
			},
			want: []string{"flows[0].label: looks like an Okta API token (value not shown)"},
			not:  "secretvalue",
		},
		{
			name: "token value anywhere in the file",
			yml: func(t *testing.T) string {
				return edit(t, baseYAML, "    channel: C0PROD", "    channel: C0PROD\n    label: xapp-1-A0-secretvalue")
			},
			want: []string{"symbot.yml:14: flows[0].label: looks like a Slack token: put tokens in the environment"},
			not:  "secretvalue",
		},
		{
			name:   "env token with the wrong prefix is not echoed",
			yml:    func(*testing.T) string { return baseYAML },
			getenv: env("SLACK_BOT_TOKEN", "xapp-secretvalue", "SLACK_APP_TOKEN", "xoxb-secretvalue"),
			want: []string{
				"environment: SLACK_BOT_TOKEN: is not a bot token: it must start with xoxb-",
				"environment: SLACK_APP_TOKEN: is not an app-level token: it must start with xapp-",
			},
			not: "secretvalue",
		},
		{
			name:   "SLACK_API_URL over plain http to a remote host",
			yml:    func(*testing.T) string { return baseYAML },
			getenv: env("SLACK_API_URL", "http://slack.example.com/api/"),
			want:   []string{"SLACK_API_URL: must use https"},
		},
		{
			name: "role arn",
			yml:  func(t *testing.T) string { return edit(t, baseYAML, "role/symbot-runtime", "user/symbot") },
			want: []string{`symbot.yml:5: aws.role_arn: "arn:aws:iam::123456789012:user/symbot" is not an IAM role ARN`},
		},
		{
			name: "missing aws and okta essentials",
			yml: func(t *testing.T) string {
				y := edit(t, baseYAML, "  role_arn: arn:aws:iam::123456789012:role/symbot-runtime\n  external_id: ext-123\n", "")
				return edit(t, y, "  org_url: https://example.okta.com\n  token_secret: symbot/okta\n", "")
			},
			want: []string{"aws.role_arn: missing", "aws.external_id: missing", "okta.org_url: missing", "okta.token_secret: missing"},
		},
		{
			name: "chained session over an hour",
			yml: func(t *testing.T) string {
				return edit(t, baseYAML, "  external_id: ext-123\n", "  external_id: ext-123\n  hop_roles: [arn:aws:iam::210987654321:role/hop]\n  session_duration: 2h\n")
			},
			want: []string{"symbot.yml:8: aws.session_duration: 2h is over 1h: with hop_roles the sessions are chained"},
		},
		{
			name: "session duration bounds",
			yml: func(t *testing.T) string {
				return edit(t, baseYAML, "  external_id: ext-123\n", "  external_id: ext-123\n  session_duration: 5m\n")
			},
			want: []string{"aws.session_duration: 5m is under the AWS minimum of 15m"},
		},
		{
			name: "bad hop role",
			yml: func(t *testing.T) string {
				return edit(t, baseYAML, "  external_id: ext-123\n", "  external_id: ext-123\n  hop_roles: [nope]\n")
			},
			want: []string{`symbot.yml:7: aws.hop_roles[0]: "nope" is not an IAM role ARN`},
		},
		{
			name: "okta over plain http",
			yml: func(t *testing.T) string {
				return edit(t, baseYAML, "https://example.okta.com", "http://example.okta.com")
			},
			want: []string{"symbot.yml:8: okta.org_url: plain http is allowed only for loopback hosts (127.0.0.1, ::1, localhost); use https://"},
		},
		{
			name: "okta url with a path",
			yml: func(t *testing.T) string {
				return edit(t, baseYAML, "https://example.okta.com", "https://example.okta.com/admin")
			},
			want: []string{"okta.org_url: want only a scheme and host, e.g. https://example.okta.com (the org URL alone, without a path)"},
		},
		{
			name: "secret ARN in another region",
			yml: func(t *testing.T) string {
				return edit(t, baseYAML, "token_secret: symbot/okta", "token_secret: arn:aws:secretsmanager:eu-west-1:123456789012:secret:symbot/okta")
			},
			want: []string{"symbot.yml:9: okta.token_secret: the secret is in eu-west-1 but the region is us-east-1"},
		},
		{
			name: "channel names where ids are needed",
			yml: func(t *testing.T) string {
				y := edit(t, baseYAML, "errors_channel: C0ERRORS", "errors_channel: symbot-errors")
				return edit(t, y, "channel: C0PROD", `channel: "#access-requests"`)
			},
			want: []string{
				`symbot.yml:2: slack.errors_channel: "symbot-errors" is not a Slack channel id (like C0123ABCDEF): the config needs the id, not the name; in Slack open the channel, click its name, and copy the Channel ID`,
				`symbot.yml:13: flows[0].channel: "#access-requests" is not a Slack channel id`,
			},
		},
		{
			name: "group names where ids are needed",
			yml: func(t *testing.T) string {
				y := edit(t, baseYAML, "group_id: 00gADMIN000000000001", "group_id: prod-admin")
				return edit(t, y, "users: [U0APPROVER]", "users: [U0APPROVER]\n      okta_group: approvers")
			},
			want: []string{
				`symbot.yml:16: flows[0].approvers.okta_group: "approvers" is not an Okta group id (20 characters starting with 00g`,
				`symbot.yml:20: flows[0].targets[0].group_id: "prod-admin" is not an Okta group id (20 characters starting with 00g, like 00g1ab2cd3EF4gh5IJ6k): in the Okta admin console open Directory > Groups > the group; its id is the last part of the page's URL`,
			},
		},
		{
			name: "okta admin console url",
			yml: func(t *testing.T) string {
				return edit(t, baseYAML, "https://example.okta.com", "https://example-admin.okta.com/")
			},
			want: []string{"symbot.yml:8: okta.org_url: example-admin.okta.com is the admin console, not the org: use https://example.okta.com (the same host without -admin)"},
		},
		{
			name: "store directory missing",
			yml:  func(t *testing.T) string { return baseYAML + "store:\n  path: /nonexistent-symbot-dir/symbot.db\n" },
			want: []string{"symbot.yml:21: store.path: directory /nonexistent-symbot-dir does not exist"},
		},
		{
			name: "log and http",
			yml: func(t *testing.T) string {
				return baseYAML + "log:\n  format: xml\n  level: loud\nhttp:\n  listen: nine\n"
			},
			want: []string{`log.format: "xml": use text or json`, `log.level: "loud"`, `http.listen: "nine" is not host:port`},
		},
		{
			name: "slash command",
			yml: func(t *testing.T) string {
				return edit(t, baseYAML, "  errors_channel: C0ERRORS\n", "  errors_channel: C0ERRORS\n  command: sym\n")
			},
			want: []string{`slack.command: "sym" is not a slash command`},
		},
		{
			name: "flow validation from the domain with lines",
			yml: func(t *testing.T) string {
				y := edit(t, baseYAML, "users: [U0APPROVER]", "users: [U0APPROVER, bob]")
				return edit(t, y, "    channel: C0PROD\n", "")
			},
			want: []string{
				"symbot.yml:12: flows[0].channel: missing",
				`symbot.yml:14: flows[0].approvers.users[1]: "bob" is not a Slack user id`,
			},
		},
		{
			name: "approval timeout zero and approvals zero are refused, not defaulted",
			yml: func(t *testing.T) string {
				return edit(t, baseYAML, "    channel: C0PROD\n", "    channel: C0PROD\n    approval_timeout: 0s\n    approvals_required: 0\n")
			},
			want: []string{"flows[0].approval_timeout: must be more than 0", "flows[0].approvals_required: must be at least 1"},
		},
		{
			name: "escalation step that does nothing, and one out of order",
			yml: func(t *testing.T) string {
				return edit(t, baseYAML, "    channel: C0PROD\n", "    channel: C0PROD\n    escalation:\n      steps:\n        - after: 1h\n          channel: C0LEADS\n        - after: 30m\n")
			},
			want: []string{"flows[0].escalation.steps[1].after: 30m is not later than the step before (1h)", "flows[0].escalation.steps[1]: does nothing"},
		},
		{
			name: "break-glass without max_duration",
			yml: func(t *testing.T) string {
				return edit(t, baseYAML, "    channel: C0PROD\n", "    channel: C0PROD\n    break_glass:\n      channel: C0SEC\n")
			},
			want: []string{"flows[0].break_glass.max_duration: missing"},
		},
		{
			name: "schedule horizon zero",
			yml: func(t *testing.T) string {
				return edit(t, baseYAML, "    channel: C0PROD\n", "    channel: C0PROD\n    schedule_horizon: 0s\n")
			},
			want: []string{"symbot.yml:14: flows[0].schedule_horizon: must be more than 0 (leave it out for the default 14d)"},
		},
		{
			name: "schedule horizon too far",
			yml: func(t *testing.T) string {
				return edit(t, baseYAML, "    channel: C0PROD\n", "    channel: C0PROD\n    schedule_horizon: 100d\n")
			},
			want: []string{"symbot.yml:14: flows[0].schedule_horizon: 100d is over the 90d maximum"},
		},
		{
			name: "expiry warning not shorter than the longest duration",
			yml: func(t *testing.T) string {
				return edit(t, baseYAML, "    channel: C0PROD\n", "    channel: C0PROD\n    expiry_warning: 2d\n")
			},
			want: []string{"flows[0].expiry_warning: 2d is not shorter than the longest duration 1d"},
		},
		{
			name: "no flows",
			yml: func(t *testing.T) string {
				return baseYAML[:strings.Index(baseYAML, "flows:")]
			},
			want: []string{"flows: missing: define at least one flow"},
		},
		{
			name: "not YAML",
			yml:  func(*testing.T) string { return "slack:\n  command: [\n" },
			want: []string{"not valid YAML"},
		},
		{
			name: "empty file",
			yml:  func(*testing.T) string { return "" },
			want: []string{"the file is empty"},
		},
		{
			name: "a list at the top",
			yml:  func(*testing.T) string { return "- a\n- b\n" },
			want: []string{"symbot.yml:1: expected a mapping of keys, got a list"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := tt.getenv
			if getenv == nil {
				getenv = env()
			}
			_, err := parse(t, tt.yml(t), getenv)
			if err == nil {
				t.Fatalf("got no error, want %q", tt.want)
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("got %T %v, want *Error", err, err)
			}
			msg := err.Error()
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error lacks %q; got:\n%s", w, msg)
				}
			}
			if tt.not != "" && strings.Contains(msg, tt.not) {
				t.Errorf("error echoes %q:\n%s", tt.not, msg)
			}
		})
	}
}

func TestConfigReportsEveryProblemAtOnce(t *testing.T) {
	yml := edit(t, baseYAML, "  region: us-east-1\n", "  regoin: us-east-1\n")
	yml = edit(t, yml, "role/symbot-runtime", "bad")
	yml = edit(t, yml, "        group_id: 00gADMIN000000000001\n", "")
	yml = edit(t, yml, "[15m, 1h, 1d]", "[15m, soon]")
	_, err := parse(t, yml, env())
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("got %v, want *Error", err)
	}
	var paths []string
	for _, p := range ce.Problems {
		paths = append(paths, p.Path)
	}
	for _, want := range []string{"aws.regoin", "aws.role_arn", "flows[0].targets[0].group_id", "flows[0].durations[1]"} {
		found := false
		for _, p := range paths {
			found = found || p == want
		}
		if !found {
			t.Errorf("no problem reported for %s; got %v", want, paths)
		}
	}
	// Problems come in line order, and a type error is not repeated as
	// "missing" by validation.
	for i := 1; i < len(ce.Problems); i++ {
		if a, b := ce.Problems[i-1].Line, ce.Problems[i].Line; b != 0 && a > b {
			t.Errorf("problems out of line order: %d before %d", a, b)
		}
	}
	if n := strings.Count(err.Error(), "durations"); n != 1 {
		t.Errorf("durations mentioned %d times, want 1:\n%v", n, err)
	}
	if !regexp.MustCompile(`^symbot.yml: \d+ problems\n`).MatchString(err.Error()) {
		t.Errorf("error header: got %q", strings.SplitN(err.Error(), "\n", 2)[0])
	}
}

func TestExampleConfigLoads(t *testing.T) {
	data, err := os.ReadFile("../../../../symbot.example.yml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse("symbot.example.yml", data, t.TempDir(), env())
	if err != nil {
		t.Fatalf("the example config does not load: %v", err)
	}
	if len(cfg.Flows) < 2 {
		t.Fatalf("flows: got %d, want at least 2", len(cfg.Flows))
	}
	if got := cfg.Flows[1].ExpiryWarning; got != 0 {
		t.Errorf("support flow expiry_warning: got %v, want 0", got)
	}
	if got, want := cfg.Okta.TokenJSONKey, "okta_api_token"; got != want {
		t.Errorf("token_json_key: got %q, want %q", got, want)
	}
	if err := symbot.ValidateFlows(cfg.Flows); err != nil {
		t.Errorf("ValidateFlows: %v", err)
	}
}

func TestLoadConfigMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yml"), env())
	if err == nil || !strings.Contains(err.Error(), "does not exist: copy symbot.example.yml") {
		t.Errorf("got %v, want a hint to copy the example", err)
	}
}

// TestYAMLMistakeLine: an indentation mistake is reported on its own line,
// not at the start of the block that holds it (yaml.v3 reports that).
func TestYAMLMistakeLine(t *testing.T) {
	yml := edit(t, baseYAML, "        group_id: 00gADMIN000000000001\n", "       group_id: 00gADMIN000000000001\n")
	_, err := parse(t, yml, env())
	if err == nil || !strings.Contains(err.Error(), "symbot.yml:19: not valid YAML: ") || !strings.Contains(err.Error(), "check the indentation of this line") {
		t.Errorf("got %v, want the mistake at symbot.yml:19", err)
	}
	long := baseYAML + strings.Repeat("# a comment\n", 30) + "log:\n  format: text\n   level: info\n"
	_, err = parse(t, long, env())
	if err == nil || !strings.Contains(err.Error(), "symbot.yml:52: not valid YAML") {
		t.Errorf("got %v, want the mistake at symbot.yml:52", err)
	}
}
