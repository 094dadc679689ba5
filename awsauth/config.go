package awsauth

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/arn"
)

// Config says which role chain to follow and which secret to read. The zero
// values of the optional fields take the documented defaults.
type Config struct {
	// Region of STS and Secrets Manager; "" uses AWS_REGION or the profile.
	Region string
	// RoleARN is the runtime connector role that may read the secret. Empty
	// means the base credentials read the secret themselves (then HopRoles
	// and ExternalID must be empty).
	RoleARN string
	// ExternalID is sent when assuming RoleARN (the sts:ExternalId condition).
	ExternalID string
	// HopRoles are assumed in order before RoleARN (role chaining): the
	// first with the base credentials, each next one with the previous
	// one's credentials, and RoleARN with the last one's.
	HopRoles []string
	// HopExternalIDs optionally gives HopRoles[i] the external id
	// HopExternalIDs[i]; it may be shorter than HopRoles.
	HopExternalIDs []string
	// SessionName is the RoleSessionName (default "symbot"); it shows in
	// CloudTrail.
	SessionName string
	// SessionDuration of each assumed role (default 1h, 15m..12h; at most
	// 1h when HopRoles is not empty, since AWS limits chained sessions).
	SessionDuration time.Duration
	// SecretID is the secret's name or ARN.
	SecretID string
	// SecretJSONKey, when set, means the SecretString is a JSON object and
	// the token is its string value under this key (e.g. "okta_api_token").
	SecretJSONKey string
	// SecretTTL is how long a fetched token is used before it is read again
	// (default 5m).
	SecretTTL time.Duration
}

// Defaults.
const (
	DefaultSessionName     = "symbot"
	DefaultSessionDuration = time.Hour
	DefaultSecretTTL       = 5 * time.Minute
	DefaultExpiryWindow    = 5 * time.Minute

	minSessionDuration     = 15 * time.Minute
	maxSessionDuration     = 12 * time.Hour
	maxChainedSessDuration = time.Hour
)

var (
	sessionNameRE = regexp.MustCompile(`^[\w+=,.@-]{2,64}$`)
	externalIDRE  = regexp.MustCompile(`^[\w+=,.@:/-]+$`)
)

// withDefaults returns c with defaults filled in, or a *ConfigError.
func (c Config) withDefaults() (Config, error) {
	if c.SessionName == "" {
		c.SessionName = DefaultSessionName
	}
	if c.SessionDuration == 0 {
		c.SessionDuration = DefaultSessionDuration
	}
	if c.SecretTTL == 0 {
		c.SecretTTL = DefaultSecretTTL
	}
	c.HopRoles = append([]string(nil), c.HopRoles...)
	c.HopExternalIDs = append([]string(nil), c.HopExternalIDs...)
	return c, c.Validate()
}

// Validate reports the first problem with c as a *ConfigError. Zero
// optional fields are valid (they take defaults).
func (c Config) Validate() error {
	if strings.TrimSpace(c.SecretID) == "" {
		return &ConfigError{"secret_id", "is empty: set it to the name or ARN of the Secrets Manager secret that holds the Okta API token"}
	}
	if strings.HasPrefix(c.SecretID, "arn:") {
		a, err := arn.Parse(c.SecretID)
		if err != nil || a.Service != "secretsmanager" || !strings.HasPrefix(a.Resource, "secret:") {
			return &ConfigError{"secret_id", fmt.Sprintf("%q is not a Secrets Manager secret ARN (arn:aws:secretsmanager:<region>:<account>:secret:<name>)", c.SecretID)}
		}
		if c.Region != "" && a.Region != c.Region {
			return &ConfigError{"secret_id", fmt.Sprintf("the ARN is in region %s but region is %s: make them agree", a.Region, c.Region)}
		}
	}
	if c.RoleARN == "" {
		if len(c.HopRoles) > 0 {
			return &ConfigError{"role_arn", "is empty but hop_roles is set: set role_arn to the role that reads the secret"}
		}
		if c.ExternalID != "" {
			return &ConfigError{"role_arn", "is empty but external_id is set: set role_arn to the role whose trust policy checks the external id"}
		}
	} else if err := checkRoleARN("role_arn", c.RoleARN); err != nil {
		return err
	}
	for i, h := range c.HopRoles {
		if err := checkRoleARN(fmt.Sprintf("hop_roles[%d]", i), h); err != nil {
			return err
		}
	}
	if len(c.HopExternalIDs) > len(c.HopRoles) {
		return &ConfigError{"hop_external_ids", fmt.Sprintf("has %d entries but hop_roles has %d", len(c.HopExternalIDs), len(c.HopRoles))}
	}
	if c.ExternalID != "" && !validExternalID(c.ExternalID) {
		return &ConfigError{"external_id", "must be 2-1224 characters of letters, digits and +=,.@:/-_"}
	}
	for i, x := range c.HopExternalIDs {
		if x != "" && !validExternalID(x) {
			return &ConfigError{fmt.Sprintf("hop_external_ids[%d]", i), "must be 2-1224 characters of letters, digits and +=,.@:/-_"}
		}
	}
	if c.SessionName != "" && !sessionNameRE.MatchString(c.SessionName) {
		return &ConfigError{"session_name", fmt.Sprintf("%q must be 2-64 characters of letters, digits and +=,.@-_", c.SessionName)}
	}
	if d := c.SessionDuration; d != 0 {
		switch {
		case d < minSessionDuration:
			return &ConfigError{"session_duration", fmt.Sprintf("%v is shorter than the 15m AWS allows", d)}
		case len(c.HopRoles) > 0 && d > maxChainedSessDuration:
			return &ConfigError{"session_duration", fmt.Sprintf("%v is too long: role chaining limits sessions to 1 hour (%d roles are chained): use at most 1h", d, len(c.HopRoles)+1)}
		case d > maxSessionDuration:
			return &ConfigError{"session_duration", fmt.Sprintf("%v is longer than the 12h AWS allows", d)}
		case d%time.Second != 0:
			return &ConfigError{"session_duration", fmt.Sprintf("%v is not a whole number of seconds", d)}
		}
	}
	if c.SecretTTL < 0 {
		return &ConfigError{"secret_ttl", fmt.Sprintf("%v is negative", c.SecretTTL)}
	}
	return nil
}

func checkRoleARN(field, s string) error {
	a, err := arn.Parse(s)
	if err != nil || a.Service != "iam" || !strings.HasPrefix(a.Resource, "role/") || a.AccountID == "" {
		return &ConfigError{field, fmt.Sprintf("%q is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)", s)}
	}
	return nil
}

func validExternalID(s string) bool {
	return len(s) >= 2 && len(s) <= 1224 && externalIDRE.MatchString(s)
}
