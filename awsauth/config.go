// Config: which role chain to follow and which secret to read (from
// symbot.yml), and the settings code passes, with their defaults.

package awsauth

import (
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
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

	// The fields below are set by code, not by the configuration file.

	// AWSConfig, when set, is used (its credentials, region, endpoints,
	// retryer, HTTP client) instead of config.LoadDefaultConfig; Region
	// still wins when set. See StaticEndpoint.
	AWSConfig *aws.Config
	// LoadOptions are passed to config.LoadDefaultConfig, e.g.
	// config.WithRetryer or config.WithSharedConfigProfile.
	LoadOptions []func(*config.LoadOptions) error
	// Logger receives reports (default: discard). The token is never logged.
	Logger *slog.Logger
	// Now is the token cache's clock (default time.Now). AWS credential
	// expiry always uses the wall clock.
	Now func() time.Time
	// ExpiryWindow refreshes assumed-role credentials this long before they
	// expire (default 5m).
	ExpiryWindow time.Duration
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
