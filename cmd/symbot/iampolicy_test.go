package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// decodePolicies runs `symbot iam-policy` with args on the config yml and
// decodes its JSON into a generic tree, as a person pasting it would see it.
func decodePolicies(t *testing.T, yml string, args ...string) map[string]any {
	t.Helper()
	path := filepath.Join(t.TempDir(), "symbot.yml")
	if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), append([]string{"iam-policy", "--config", path}, args...), nil, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var out map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, stdout.String())
	}
	return out
}

// at walks a decoded JSON tree by keys and list indexes.
func at(t *testing.T, v any, path ...any) any {
	t.Helper()
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				t.Fatalf("at %v: %v is not an object", path, v)
			}
			v, ok = m[k]
			if !ok {
				t.Fatalf("at %v: no key %q in %v", path, k, m)
			}
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				t.Fatalf("at %v: no index %d in %v", path, k, v)
			}
			v = l[k]
		}
	}
	return v
}

func TestIAMPolicySingleRole(t *testing.T) {
	out := decodePolicies(t, baseYAML, "--principal", "arn:aws:iam::111122223333:role/symbot-host")
	roles := at(t, out, "roles").([]any)
	if len(roles) != 1 {
		t.Fatalf("roles: got %d, want 1", len(roles))
	}
	tests := []struct {
		name string
		path []any
		want any
	}{
		{"principal", []any{"principal"}, "arn:aws:iam::111122223333:role/symbot-host"},
		{"principal may assume the role", []any{"principal_policy", "Statement", 0, "Resource"}, "arn:aws:iam::123456789012:role/symbot-runtime"},
		{"role", []any{"roles", 0, "role_arn"}, "arn:aws:iam::123456789012:role/symbot-runtime"},
		{"trust version", []any{"roles", 0, "trust_policy", "Version"}, "2012-10-17"},
		{"trust effect", []any{"roles", 0, "trust_policy", "Statement", 0, "Effect"}, "Allow"},
		{"trust action", []any{"roles", 0, "trust_policy", "Statement", 0, "Action"}, "sts:AssumeRole"},
		{"trust principal", []any{"roles", 0, "trust_policy", "Statement", 0, "Principal", "AWS"}, "arn:aws:iam::111122223333:role/symbot-host"},
		{"external id", []any{"roles", 0, "trust_policy", "Statement", 0, "Condition", "StringEquals", "sts:ExternalId"}, "ext-123"},
		{"secret action", []any{"roles", 0, "permission_policy", "Statement", 0, "Action"}, "secretsmanager:GetSecretValue"},
		{"secret by name with suffix wildcard", []any{"roles", 0, "permission_policy", "Statement", 0, "Resource"}, "arn:aws:secretsmanager:us-east-1:123456789012:secret:symbot/okta-??????"},
		{"session", []any{"roles", 0, "max_session_duration_seconds"}, float64(3600)},
	}
	for _, tt := range tests {
		if got := at(t, out, tt.path...); got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestIAMPolicyHopRolesAndTags(t *testing.T) {
	yml := edit(t, baseYAML, "  external_id: ext-123\n", "  external_id: ext-123\n  hop_roles: [arn:aws:iam::999988887777:role/hop1, arn:aws:iam::999988887777:role/hop2]\n")
	out := decodePolicies(t, yml, "--tag", "symbot=okta-token")
	roles := at(t, out, "roles").([]any)
	if len(roles) != 3 {
		t.Fatalf("roles: got %d, want 3 (two hops, then role_arn)", len(roles))
	}
	tests := []struct {
		name string
		path []any
		want any
	}{
		{"default principal is the first role's account", []any{"principal"}, "arn:aws:iam::999988887777:root"},
		{"principal assumes hop1", []any{"principal_policy", "Statement", 0, "Resource"}, "arn:aws:iam::999988887777:role/hop1"},
		{"hop1 trusts the principal", []any{"roles", 0, "trust_policy", "Statement", 0, "Principal", "AWS"}, "arn:aws:iam::999988887777:root"},
		{"hop1 may assume hop2", []any{"roles", 0, "permission_policy", "Statement", 0, "Resource"}, "arn:aws:iam::999988887777:role/hop2"},
		{"hop2 trusts hop1", []any{"roles", 1, "trust_policy", "Statement", 0, "Principal", "AWS"}, "arn:aws:iam::999988887777:role/hop1"},
		{"hop2 may assume the runtime role", []any{"roles", 1, "permission_policy", "Statement", 0, "Resource"}, "arn:aws:iam::123456789012:role/symbot-runtime"},
		{"runtime role trusts hop2", []any{"roles", 2, "trust_policy", "Statement", 0, "Principal", "AWS"}, "arn:aws:iam::999988887777:role/hop2"},
		{"runtime role checks the external id", []any{"roles", 2, "trust_policy", "Statement", 0, "Condition", "StringEquals", "sts:ExternalId"}, "ext-123"},
		{"secrets by tag", []any{"roles", 2, "permission_policy", "Statement", 0, "Resource"}, "arn:aws:secretsmanager:us-east-1:123456789012:secret:*"},
		{"tag condition", []any{"roles", 2, "permission_policy", "Statement", 0, "Condition", "StringEquals", "aws:ResourceTag/symbot"}, "okta-token"},
	}
	for _, tt := range tests {
		if got := at(t, out, tt.path...); got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
	// Hops have no external id condition.
	if _, ok := at(t, out, "roles", 0, "trust_policy", "Statement", 0).(map[string]any)["Condition"]; ok {
		t.Error("hop role trust policy has a condition; want none")
	}
	notes, _ := json.Marshal(at(t, out, "notes"))
	if !strings.Contains(string(notes), "1 hour") {
		t.Errorf("notes do not mention the 1 hour chaining limit: %s", notes)
	}
}

func TestIAMPolicySecretARN(t *testing.T) {
	cfg := MustParse(t, edit(t, baseYAML, "token_secret: symbot/okta", "token_secret: arn:aws:secretsmanager:us-east-1:444455556666:secret:okta-AbC123"))
	p, err := BuildIAMPolicies(cfg, "444455556666", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.Principal, "arn:aws:iam::444455556666:root"; got != want {
		t.Errorf("principal from account id: got %q, want %q", got, want)
	}
	res, ok := p.Roles[0].PermissionPolicy.Statement[0].Resource.([]string)
	if !ok || len(res) != 2 || res[0] != "arn:aws:secretsmanager:us-east-1:444455556666:secret:okta-AbC123" {
		t.Errorf("resource for a full secret ARN: got %#v", p.Roles[0].PermissionPolicy.Statement[0].Resource)
	}
}

func TestIAMPolicyPrincipal(t *testing.T) {
	tests := []struct {
		name, in, want string
		note, bad      bool
	}{
		{name: "role", in: "arn:aws:iam::111122223333:role/x", want: "arn:aws:iam::111122223333:role/x"},
		{name: "user", in: "arn:aws:iam::111122223333:user/ci", want: "arn:aws:iam::111122223333:user/ci"},
		{name: "account", in: "111122223333", want: "arn:aws:iam::111122223333:root"},
		{name: "assumed role session", in: "arn:aws:sts::111122223333:assumed-role/ec2-symbot/i-0abc", want: "arn:aws:iam::111122223333:role/ec2-symbot", note: true},
		{name: "garbage", in: "me", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, note, err := normalizePrincipal(tt.in, "aws")
			if tt.bad {
				if err == nil {
					t.Fatalf("got %q, want an error", got)
				}
				return
			}
			if err != nil || got != tt.want || (note != "") != tt.note {
				t.Errorf("got %q, %q, %v; want %q (note %v)", got, note, err, tt.want, tt.note)
			}
		})
	}
}

func TestIAMPolicyBadTag(t *testing.T) {
	path := filepath.Join(t.TempDir(), "symbot.yml")
	os.WriteFile(path, []byte(baseYAML), 0o600)
	var stdout, stderr bytes.Buffer
	if code := run(t.Context(), []string{"iam-policy", "--config", path, "--tag", "novalue"}, nil, &stdout, &stderr); code != exitUsage {
		t.Errorf("exit: got %d, want %d", code, exitUsage)
	}
	if !strings.Contains(stderr.String(), "use key=value") {
		t.Errorf("stderr: got %q", stderr.String())
	}
}

// TestIAMPolicyCoversEverySecret: the runtime role may read every secret
// the config names, not only the Okta token, and write to every s3 audit
// sink: without the audit key or the PagerDuty API key, a role built from
// `symbot iam-policy` fails at start (audit key) or leaves every on-call
// rule on manual approval (PagerDuty); without s3:PutObject the trail is
// never shipped.
func TestIAMPolicyCoversEverySecret(t *testing.T) {
	yml := edit(t, baseYAML, "flows:\n", `audit:
  key_secret: symbot/audit-key
  sinks:
    - {name: archive, type: s3, bucket: acme-audit, prefix: symbot/}
pagerduty:
  token_secret: arn:aws:secretsmanager:us-east-1:123456789012:secret:symbot/pagerduty
  schedules: [PSRE123]
flows:
`)
	out := decodePolicies(t, yml)
	want := map[string]any{
		"ReadOktaTokenSecret":      "arn:aws:secretsmanager:us-east-1:123456789012:secret:symbot/okta-??????",
		"ReadAuditKeySecret":       "arn:aws:secretsmanager:us-east-1:123456789012:secret:symbot/audit-key-??????",
		"ReadPagerDutyTokenSecret": "arn:aws:secretsmanager:us-east-1:123456789012:secret:symbot/pagerduty-??????",
		"WriteAuditSink1archive":   "arn:aws:s3:::acme-audit/symbot/*",
	}
	actions := map[string]string{"WriteAuditSink1archive": "s3:PutObject"}
	stmts := at(t, out, "roles", 0, "permission_policy", "Statement").([]any)
	if len(stmts) != len(want) {
		t.Fatalf("statements: got %d, want %d: %v", len(stmts), len(want), stmts)
	}
	for i := range stmts {
		sid := at(t, stmts[i], "Sid").(string)
		if got := at(t, stmts[i], "Resource"); got != want[sid] {
			t.Errorf("%s resource: got %v, want %v", sid, got, want[sid])
		}
		wantAction := "secretsmanager:GetSecretValue"
		if a, ok := actions[sid]; ok {
			wantAction = a
		}
		if got := at(t, stmts[i], "Action"); got != wantAction {
			t.Errorf("%s action: got %v, want %v", sid, got, wantAction)
		}
	}
}
