package awsauth_test

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/symbot/symbot/awsauth"
	"github.com/symbot/symbot/awsauth/awstest"
)

const (
	baseAKID   = "AKIAEXAMPLEBASE00001"
	baseSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	hopARN     = "arn:aws:iam::111111111111:role/symbot-hop"
	roleARN    = "arn:aws:iam::222222222222:role/symbot-connector"
	extID      = "symbot-ext-42"
	secretName = "symbot/okta"
	jsonKey    = "okta_api_token"
	oktaToken  = "00TokenValueMustNeverLeak-aZ9qW3eR5tY7uI"
	region     = "us-east-1"
)

// world is a simulator with a base user, a hop role trusted by the user, the
// connector role trusted by the hop (with an external id), and the secret
// the connector may read; the environment points the SDK at it.
type world struct {
	srv *awstest.Server
	cfg awsauth.Config
}

func newWorld(tb testing.TB) *world {
	tb.Helper()
	srv := awstest.NewServer()
	tb.Cleanup(srv.Close)
	srv.AddUser(baseAKID, baseSecret)
	srv.AddRole(awstest.Role{ARN: hopARN, TrustedPrincipals: []string{baseAKID}})
	srv.AddRole(awstest.Role{ARN: roleARN, ExternalID: extID, TrustedPrincipals: []string{hopARN}})
	srv.PutSecret(secretName, `{"`+jsonKey+`":"`+oktaToken+`","note":"rotated by hand"}`)
	srv.AllowSecret(roleARN, secretName)
	setAWSEnv(tb, srv.URL(), true)
	return &world{srv: srv, cfg: awsauth.Config{
		Region:        region,
		RoleARN:       roleARN,
		ExternalID:    extID,
		HopRoles:      []string{hopARN},
		SecretID:      secretName,
		SecretJSONKey: jsonKey,
	}}
}

// setAWSEnv isolates the SDK from the machine: no profile, no IMDS, empty
// shared files, endpoints on the simulator, and (if withKeys) base keys.
func setAWSEnv(tb testing.TB, url string, withKeys bool) {
	tb.Helper()
	dir := tb.TempDir()
	for _, f := range []string{"config", "credentials"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o600); err != nil {
			tb.Fatal(err)
		}
	}
	env := map[string]string{
		"AWS_EC2_METADATA_DISABLED":              "true",
		"AWS_CONFIG_FILE":                        filepath.Join(dir, "config"),
		"AWS_SHARED_CREDENTIALS_FILE":            filepath.Join(dir, "credentials"),
		"AWS_REGION":                             region,
		"AWS_DEFAULT_REGION":                     "",
		"AWS_PROFILE":                            "",
		"AWS_DEFAULT_PROFILE":                    "",
		"AWS_SESSION_TOKEN":                      "",
		"AWS_ROLE_ARN":                           "",
		"AWS_WEB_IDENTITY_TOKEN_FILE":            "",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI":     "",
		"AWS_ENDPOINT_URL":                       "",
		"AWS_CA_BUNDLE":                          "",
		"AWS_ENDPOINT_URL_STS":                   url,
		"AWS_ENDPOINT_URL_SECRETS_MANAGER":       url,
		"AWS_ACCESS_KEY_ID":                      "",
		"AWS_SECRET_ACCESS_KEY":                  "",
	}
	if withKeys {
		env["AWS_ACCESS_KEY_ID"] = baseAKID
		env["AWS_SECRET_ACCESS_KEY"] = baseSecret
	}
	for k, v := range env {
		tb.Setenv(k, v)
	}
}

// fastRetries keeps the SDK's standard retryer (3 attempts, 5xx and
// throttling retried) but backs off 1ms instead of up to seconds.
func fastRetries() func(*config.LoadOptions) error {
	return config.WithRetryer(func() aws.Retryer {
		return retry.NewStandard(func(o *retry.StandardOptions) {
			o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return time.Millisecond, nil })
		})
	})
}

// edited returns a copy of cfg changed by edit.
func edited(cfg awsauth.Config, edit func(*awsauth.Config)) awsauth.Config {
	edit(&cfg)
	return cfg
}

func mustNew(tb testing.TB, cfg awsauth.Config) *awsauth.Source {
	tb.Helper()
	cfg.LoadOptions = append([]func(*config.LoadOptions) error{fastRetries()}, cfg.LoadOptions...)
	src, err := awsauth.New(tb.Context(), cfg)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	tb.Cleanup(func() { src.Close() })
	return src
}

// fakeClock is a settable clock for the token cache.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// assumeCalls counts successful AssumeRole calls per role ARN.
func assumeCalls(srv *awstest.Server) map[string]int {
	n := map[string]int{}
	for _, c := range srv.Calls() {
		if c.Action == awstest.OpAssumeRole && c.Err == "" {
			n[c.RoleArn]++
		}
	}
	return n
}

// awsauthRoleTrustingBase is the connector role trusting both the hop and
// the base user, so it can be assumed with or without the hop.
func awsauthRoleTrustingBase() awstest.Role {
	return awstest.Role{ARN: roleARN, ExternalID: extID, TrustedPrincipals: []string{hopARN, baseAKID}}
}
