package main

import (
	"strings"
	"testing"

	"github.com/symbot/symbot/cmd/symbot/internal/config"
)

// baseYAML is a small valid config (the same as the config package's tests use).
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

// edit replaces old with new in s, failing when old is absent.
func edit(tb testing.TB, s, old, new string) string {
	tb.Helper()
	if !strings.Contains(s, old) {
		tb.Fatalf("edit: %q not in config", old)
	}
	return strings.Replace(s, old, new, 1)
}

// MustParse parses yml with no environment and fails the test on any problem.
func MustParse(tb testing.TB, yml string) *config.Config {
	tb.Helper()
	cfg, err := config.Parse("symbot.yml", []byte(yml), tb.TempDir(), func(string) string { return "" })
	if err != nil {
		tb.Fatalf("config.Parse: %v", err)
	}
	return cfg
}
