package main

// `symbot iam-policy`: the IAM trust and permission policies of the role
// chain, built from the config, ready to paste into AWS.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws/arn"

	"github.com/symbot/symbot/cmd/symbot/internal/config"
)

// PolicyDocument is an IAM policy document.
type PolicyDocument struct {
	Version   string            `json:"Version"`
	Statement []PolicyStatement `json:"Statement"`
}

// PolicyStatement is one statement of an IAM policy.
type PolicyStatement struct {
	Sid       string                       `json:"Sid,omitempty"`
	Effect    string                       `json:"Effect"`
	Principal map[string]string            `json:"Principal,omitempty"`
	Action    string                       `json:"Action"`
	Resource  any                          `json:"Resource,omitempty"` // string or []string
	Condition map[string]map[string]string `json:"Condition,omitempty"`
}

// RolePolicies is what one role of the chain needs.
type RolePolicies struct {
	RoleARN string `json:"role_arn"`
	Purpose string `json:"purpose"`
	// MaxSessionDurationSeconds is the role's minimum "Maximum session
	// duration" setting for aws.session_duration to be granted.
	MaxSessionDurationSeconds int64          `json:"max_session_duration_seconds"`
	TrustPolicy               PolicyDocument `json:"trust_policy"`
	PermissionPolicy          PolicyDocument `json:"permission_policy"`
}

// IAMPolicies is the output of `symbot iam-policy`.
type IAMPolicies struct {
	// Principal is the identity symbot runs as (its base credentials).
	Principal string `json:"principal"`
	// PrincipalPolicy lets the principal assume the first role; attach it
	// to the principal (needed across accounts, or when the trust policy
	// names the account root).
	PrincipalPolicy PolicyDocument `json:"principal_policy"`
	// Roles in the order symbot assumes them; the last is aws.role_arn.
	Roles []RolePolicies `json:"roles"`
	Notes []string       `json:"notes,omitempty"`
}

const policyVersion = "2012-10-17"

var (
	principalRE    = regexp.MustCompile(`^arn:aws(-[a-z]+)*:iam::\d{12}:(root|user/.+|role/.+)$`)
	assumedRoleRE  = regexp.MustCompile(`^arn:(aws(?:-[a-z]+)*):sts::(\d{12}):assumed-role/([^/]+)/.+$`)
	accountIDRE    = regexp.MustCompile(`^\d{12}$`)
	secretSuffixRE = regexp.MustCompile(`-[A-Za-z0-9]{6}$`)
	tagKeyRE       = regexp.MustCompile(`^[\w .:/=+@-]{1,128}$`)
)

// normalizePrincipal accepts an IAM user or role ARN, an account id, or an
// assumed-role session ARN (as `aws sts get-caller-identity` prints it),
// and returns the ARN to trust plus a note when it had to guess.
func normalizePrincipal(p, partition string) (string, string, error) {
	switch {
	case principalRE.MatchString(p):
		return p, "", nil
	case accountIDRE.MatchString(p):
		return fmt.Sprintf("arn:%s:iam::%s:root", partition, p), "", nil
	}
	if m := assumedRoleRE.FindStringSubmatch(p); m != nil {
		role := fmt.Sprintf("arn:%s:iam::%s:role/%s", m[1], m[2], m[3])
		return role, fmt.Sprintf("--principal was a role session; trusting the role %s instead (if the role has a path, add it to the ARN)", role), nil
	}
	return "", "", fmt.Errorf("--principal %q is not an IAM user or role ARN, an account id, or an assumed-role ARN: use the Arn that `aws sts get-caller-identity` prints where symbot runs", p)
}

// BuildIAMPolicies computes the policies for cfg's role chain. principal
// may be empty (then the account of the first role is trusted); tags, when
// given, scope secret access by resource tags instead of the secret's ARN.
func BuildIAMPolicies(cfg *config.Config, principal string, tags map[string]string) (*IAMPolicies, error) {
	chain := append(append([]string(nil), cfg.AWS.HopRoles...), cfg.AWS.RoleARN)
	first, err := arn.Parse(chain[0])
	if err != nil {
		return nil, fmt.Errorf("role %q is not an ARN", chain[0])
	}
	out := &IAMPolicies{}
	if principal == "" {
		out.Principal = fmt.Sprintf("arn:%s:iam::%s:root", first.Partition, first.AccountID)
		out.Notes = append(out.Notes, fmt.Sprintf("no --principal given: the first role trusts every identity in account %s that is allowed to assume it; pass --principal with the ARN symbot runs as (aws sts get-caller-identity) to narrow it", first.AccountID))
	} else {
		p, note, err := normalizePrincipal(principal, first.Partition)
		if err != nil {
			return nil, err
		}
		out.Principal = p
		if note != "" {
			out.Notes = append(out.Notes, note)
		}
	}
	out.PrincipalPolicy = PolicyDocument{Version: policyVersion, Statement: []PolicyStatement{{
		Sid: "SymbotAssumeFirstRole", Effect: "Allow", Action: "sts:AssumeRole", Resource: chain[0],
	}}}

	secretStmts := secretStatements(cfg, tags)
	prev := out.Principal
	for i, role := range chain {
		last := i == len(chain)-1
		trust := PolicyStatement{
			Sid: "TrustSymbot", Effect: "Allow", Principal: map[string]string{"AWS": prev}, Action: "sts:AssumeRole",
		}
		rp := RolePolicies{RoleARN: role, MaxSessionDurationSeconds: int64(cfg.AWS.SessionDuration.Seconds())}
		if last {
			trust.Condition = map[string]map[string]string{"StringEquals": {"sts:ExternalId": cfg.AWS.ExternalID}}
			rp.Purpose = "runtime connector role: assumed with the external id; reads the Okta API token secret"
			if len(secretStmts) > 1 {
				rp.Purpose += " and the other secrets the config names (audit key, PagerDuty API key)"
			}
			rp.PermissionPolicy = PolicyDocument{Version: policyVersion, Statement: append(secretStmts, s3SinkStatements(cfg, partitionOf(role))...)}
		} else {
			rp.Purpose = fmt.Sprintf("hop role %d of %d: assumes the next role in the chain", i+1, len(chain)-1)
			rp.PermissionPolicy = PolicyDocument{Version: policyVersion, Statement: []PolicyStatement{{
				Sid: "SymbotAssumeNextRole", Effect: "Allow", Action: "sts:AssumeRole", Resource: chain[i+1],
			}}}
		}
		rp.TrustPolicy = PolicyDocument{Version: policyVersion, Statement: []PolicyStatement{trust}}
		out.Roles = append(out.Roles, rp)
		prev = role
	}
	if len(cfg.AWS.HopRoles) > 0 {
		out.Notes = append(out.Notes, "the roles are chained: AWS limits each chained session to 1 hour, so aws.session_duration is at most 1h")
	} else if cfg.AWS.SessionDuration > config.MaxChainedSession {
		out.Notes = append(out.Notes, fmt.Sprintf("set the role's Maximum session duration to at least %d seconds", int64(cfg.AWS.SessionDuration.Seconds())))
	}
	out.Notes = append(out.Notes, "if the secret is encrypted with a customer managed KMS key, also allow kms:Decrypt on that key for the runtime connector role (via secretsmanager.<region>.amazonaws.com)")
	return out, nil
}

// secretStatements allow the runtime connector role to read every secret
// the config names: the Okta API token, and the audit key and the PagerDuty
// API key when they are set. With tags, one statement allows the secrets
// carrying them instead.
func secretStatements(cfg *config.Config, tags map[string]string) []PolicyStatement {
	role, _ := arn.Parse(cfg.AWS.RoleARN)
	partition, account, region := role.Partition, role.AccountID, cfg.AWS.Region
	if a, err := arn.Parse(cfg.Okta.TokenSecret); err == nil {
		partition, account, region = a.Partition, a.AccountID, a.Region
	}
	if len(tags) > 0 {
		st := PolicyStatement{Sid: "ReadOktaTokenSecret", Effect: "Allow", Action: "secretsmanager:GetSecretValue"}
		st.Resource = fmt.Sprintf("arn:%s:secretsmanager:%s:%s:secret:*", partition, region, account)
		cond := map[string]string{}
		for k, v := range tags {
			cond["aws:ResourceTag/"+k] = v
		}
		st.Condition = map[string]map[string]string{"StringEquals": cond}
		return []PolicyStatement{st}
	}
	secrets := []struct{ sid, secret string }{
		{"ReadOktaTokenSecret", cfg.Okta.TokenSecret},
		{"ReadAuditKeySecret", cfg.Audit.KeySecret},
		{"ReadPagerDutyTokenSecret", cfg.PagerDuty.TokenSecret},
	}
	var out []PolicyStatement
	for _, s := range secrets {
		if s.secret == "" {
			continue
		}
		out = append(out, PolicyStatement{Sid: s.sid, Effect: "Allow", Action: "secretsmanager:GetSecretValue",
			Resource: secretResource(s.secret, partition, region, account)})
	}
	return out
}

// secretResource is the resource of a secret given by name or ARN; a name
// is in the partition, region and account given.
func secretResource(ts, partition, region, account string) any {
	if strings.HasPrefix(ts, "arn:") {
		if secretSuffixRE.MatchString(ts) {
			// Probably the full ARN with its random suffix; in case the
			// name itself ends like one, allow the suffixed form too.
			return []string{ts, ts + "-??????"}
		}
		return ts + "-??????"
	}
	// A secret's ARN ends in a random 6-character suffix after its name.
	return fmt.Sprintf("arn:%s:secretsmanager:%s:%s:secret:%s-??????", partition, region, account, ts)
}

// s3SinkStatements allow the runtime connector role to write the audit
// trail's objects to each s3 sink: s3:PutObject under the sink's prefix.
func s3SinkStatements(cfg *config.Config, partition string) []PolicyStatement {
	var out []PolicyStatement
	for i, s := range cfg.Audit.Sinks {
		if s.Type != config.SinkS3 {
			continue
		}
		out = append(out, PolicyStatement{
			Sid: fmt.Sprintf("WriteAuditSink%d%s", i+1, sidPart(s.Name)), Effect: "Allow", Action: "s3:PutObject",
			Resource: fmt.Sprintf("arn:%s:s3:::%s/%s*", partition, s.Bucket, s.Prefix),
		})
	}
	return out
}

// sidPart keeps the letters and digits of name: a statement id allows no
// others.
func sidPart(name string) string {
	var b strings.Builder
	for _, r := range name {
		if (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// partitionOf is the partition of a role's ARN ("aws" when it has none).
func partitionOf(roleARN string) string {
	if a, err := arn.Parse(roleARN); err == nil && a.Partition != "" {
		return a.Partition
	}
	return "aws"
}

// tagFlags collects repeated --tag key=value flags.
type tagFlags map[string]string

func (t tagFlags) String() string {
	var parts []string
	for k, v := range t {
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, ",")
}

func (t tagFlags) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	k = strings.TrimSpace(k)
	if !ok || k == "" {
		return fmt.Errorf("%q: use key=value, like symbot=okta-token", s)
	}
	if !tagKeyRE.MatchString(k) || strings.HasPrefix(strings.ToLower(k), "aws:") {
		return fmt.Errorf("%q is not a usable tag key", k)
	}
	t[k] = v
	return nil
}

func iamPolicyCmd(_ context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("iam-policy", "", stderr)
	cfgPath := configFlag(fs)
	principal := fs.String("principal", "", "the ARN symbot runs as (aws sts get-caller-identity); default: the first role's account")
	tags := tagFlags{}
	fs.Var(tags, "tag", "allow secrets with this resource tag (key=value, repeatable) instead of the configured secret's ARN")
	if code, ok := parseNoArgs(fs, args, stderr); !ok {
		return code
	}
	cfg, ok := loadConfig("iam-policy", *cfgPath, stderr)
	if !ok {
		return exitFail
	}
	p, err := BuildIAMPolicies(cfg, *principal, tags)
	if err != nil {
		fmt.Fprintf(stderr, "symbot iam-policy: %v\n", err)
		return exitUsage
	}
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		fmt.Fprintf(stderr, "symbot iam-policy: %v\n", err)
		return exitFail
	}
	fmt.Fprintf(stdout, "%s\n", b)
	return exitOK
}
