package awsauth

// The AWS rules for the values an operator configures: role ARNs, the
// external id, the session name and duration, the region and the secret.
// New applies them; symbot's config loader reports each problem against the
// line of the file that holds the value.

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/arn"

	"github.com/symbot/symbot"
)

var (
	sessionNameRE = regexp.MustCompile(`^[\w+=,.@-]{2,64}$`)
	externalIDRE  = regexp.MustCompile(`^[\w+=,.@:/-]+$`)
	regionRE      = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-\d$`)
	secretNameRE  = regexp.MustCompile(`^[\w/+=.@-]{1,512}$`)
	accountRE     = regexp.MustCompile(`^\d{12}$`)
	roleNameRE    = regexp.MustCompile(`^role/[\w+=,.@/-]{1,512}$`)
)

// Validate reports the first problem with c as a *ConfigError. Zero
// optional fields are valid (they take defaults).
func (c Config) Validate() error {
	if ps := c.Problems(); len(ps) > 0 {
		return ps[0]
	}
	return nil
}

// Problems returns every problem with c, each a *ConfigError naming its
// field (role_arn, hop_roles[1], external_id, session_duration, region,
// secret_id, ...). Zero optional fields are valid (they take defaults).
func (c Config) Problems() []*ConfigError {
	var ps []*ConfigError
	add := func(err *ConfigError) {
		if err != nil {
			ps = append(ps, err)
		}
	}
	add(ValidateSecretID(c.SecretID, c.Region))
	if c.Region != "" {
		add(ValidateRegion(c.Region))
	}
	if c.RoleARN == "" {
		if len(c.HopRoles) > 0 {
			add(&ConfigError{"role_arn", "is empty but hop_roles is set: set role_arn to the role that reads the secret"})
		}
		if c.ExternalID != "" {
			add(&ConfigError{"role_arn", "is empty but external_id is set: set role_arn to the role whose trust policy checks the external id"})
		}
	} else {
		add(ValidateRoleARN("role_arn", c.RoleARN))
	}
	for i, h := range c.HopRoles {
		add(ValidateRoleARN(fmt.Sprintf("hop_roles[%d]", i), h))
	}
	if len(c.HopExternalIDs) > len(c.HopRoles) {
		add(&ConfigError{"hop_external_ids", fmt.Sprintf("has %d entries but hop_roles has %d: give at most one per hop role, in the same order", len(c.HopExternalIDs), len(c.HopRoles))})
	}
	if c.ExternalID != "" {
		add(ValidateExternalID("external_id", c.ExternalID))
	}
	for i, x := range c.HopExternalIDs {
		if x != "" {
			add(ValidateExternalID(fmt.Sprintf("hop_external_ids[%d]", i), x))
		}
	}
	if c.SessionName != "" {
		add(ValidateSessionName(c.SessionName))
	}
	if c.SessionDuration != 0 {
		add(ValidateSessionDuration(c.SessionDuration, len(c.HopRoles)))
	}
	if c.SecretTTL < 0 {
		add(&ConfigError{"secret_ttl", fmt.Sprintf("%v is negative: use a positive duration such as 5m, or leave it out for the default", c.SecretTTL)})
	}
	return ps
}

// ValidateRoleARN checks that s is an IAM role ARN; field names it in the
// error (role_arn, hop_roles[0]).
func ValidateRoleARN(field, s string) *ConfigError {
	a, err := arn.Parse(s)
	if err != nil || a.Service != "iam" || a.Region != "" || !accountRE.MatchString(a.AccountID) || !roleNameRE.MatchString(a.Resource) {
		return &ConfigError{field, fmt.Sprintf("%q is not an IAM role ARN: use a form like arn:aws:iam::123456789012:role/symbot-runtime", s)}
	}
	return nil
}

// ValidateExternalID checks an sts:ExternalId value; field names it.
func ValidateExternalID(field, s string) *ConfigError {
	if len(s) < 2 || len(s) > 1224 || !externalIDRE.MatchString(s) {
		return &ConfigError{field, "must be 2 to 1224 characters of letters, digits and _+=,.@:/-"}
	}
	return nil
}

// ValidateSessionName checks a RoleSessionName.
func ValidateSessionName(s string) *ConfigError {
	if !sessionNameRE.MatchString(s) {
		return &ConfigError{"session_name", fmt.Sprintf("%q must be 2 to 64 characters of letters, digits and _+=,.@-", s)}
	}
	return nil
}

// ValidateSessionDuration checks the duration of each role session when
// hops roles are chained before the last one: 15m to 12h, at most 1h when
// roles are chained (AWS limits chained sessions), whole seconds.
func ValidateSessionDuration(d time.Duration, hops int) *ConfigError {
	switch {
	case d < minSessionDuration:
		return &ConfigError{"session_duration", fmt.Sprintf("%s is under the AWS minimum of 15m", symbot.FormatDuration(d))}
	case hops > 0 && d > maxChainedSessDuration:
		return &ConfigError{"session_duration", fmt.Sprintf("%s is over 1h: with hop_roles the sessions are chained (%d roles), and role chaining limits sessions to 1 hour: set at most 1h", symbot.FormatDuration(d), hops+1)}
	case d > maxSessionDuration:
		return &ConfigError{"session_duration", fmt.Sprintf("%s is over the AWS maximum of 12h", symbot.FormatDuration(d))}
	case d%time.Second != 0:
		return &ConfigError{"session_duration", fmt.Sprintf("%v is not a whole number of seconds: round it, e.g. to %s", d, symbot.FormatDuration(d.Round(time.Second)))}
	}
	return nil
}

// ValidateRegion checks the shape of an AWS region name.
func ValidateRegion(s string) *ConfigError {
	if !regionRE.MatchString(s) {
		return &ConfigError{"region", fmt.Sprintf("%q is not an AWS region: use a form like us-east-1", s)}
	}
	return nil
}

// ValidateSecretID checks a Secrets Manager secret name or ARN; an ARN's
// region must agree with region when both are set.
func ValidateSecretID(id, region string) *ConfigError {
	switch {
	case strings.TrimSpace(id) == "":
		return &ConfigError{"secret_id", "is empty: set it to the name or ARN of the Secrets Manager secret that holds the Okta API token"}
	case strings.HasPrefix(id, "arn:"):
		a, err := arn.Parse(id)
		if err != nil || a.Service != "secretsmanager" || !strings.HasPrefix(a.Resource, "secret:") || !accountRE.MatchString(a.AccountID) {
			return &ConfigError{"secret_id", fmt.Sprintf("%q is not a Secrets Manager secret ARN: use arn:aws:secretsmanager:<region>:<account>:secret:<name> or just the secret name", id)}
		}
		if region != "" && a.Region != region {
			return &ConfigError{"secret_id", fmt.Sprintf("the secret is in %s but the region is %s: Secrets Manager is called in the configured region; make them agree", a.Region, region)}
		}
	case !secretNameRE.MatchString(id):
		return &ConfigError{"secret_id", fmt.Sprintf("%q is not a secret name: use letters, digits and /_+=.@-", id)}
	}
	return nil
}

// SecretRegion returns the region of a secret given by ARN.
func SecretRegion(id string) (string, bool) {
	a, err := arn.Parse(id)
	if err != nil || a.Service != "secretsmanager" {
		return "", false
	}
	return a.Region, true
}
