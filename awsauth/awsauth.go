// Package awsauth reads the Okta API token from AWS Secrets Manager through
// a chain of AWS credentials: the default chain, then AssumeRole (with
// ExternalId) through optional hop roles, and serves it as a cached,
// refreshable token source (okta.TokenSource).
package awsauth

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

const (
	// fetchTimeout bounds one secret read (with its role chain and retries)
	// that runs on behalf of every caller waiting for it.
	fetchTimeout = time.Minute
	// staleRetryAfter is how long Token keeps serving an expired token
	// after a failed read before it tries Secrets Manager again.
	staleRetryAfter = 30 * time.Second
)

// StaticEndpoint is an AWS configuration (for Config.AWSConfig) that
// ignores the environment and the shared AWS files: STS and Secrets Manager
// are reached at url with the given base keys. It is meant for `symbot
// demo` and tests against awstest; Config.Region must be set.
func StaticEndpoint(url, accessKeyID, secretAccessKey string) *aws.Config {
	return &aws.Config{
		Credentials:  credentials.NewStaticCredentialsProvider(accessKeyID, secretAccessKey, ""),
		BaseEndpoint: aws.String(url),
	}
}

// Identity is who a set of AWS credentials belongs to.
type Identity struct {
	ARN     string // e.g. arn:aws:sts::123456789012:assumed-role/symbot-connector/symbot
	Account string
	UserID  string
	Expires time.Time // zero when the credentials do not expire
}

// SecretInfo describes the secret version read; it never holds the value.
type SecretInfo struct {
	Name      string
	ARN       string
	VersionID string
	Created   time.Time
	Region    string
}

// Source is the credential chain and the Okta token cache. It implements
// okta.TokenSource (Token and Refresh) and is safe for concurrent use.
type Source struct {
	cfg    Config
	region string
	log    *slog.Logger
	now    func() time.Time

	base     aws.CredentialsProvider // base credentials, cached
	creds    aws.CredentialsProvider // final (RoleARN) credentials, cached
	baseSTS  *sts.Client
	finalSTS *sts.Client
	sm       *secretsmanager.Client
	awsCfg   aws.Config // for the clients of other services (S3)

	// life is the base context of the shared secret reads: New's context
	// without its cancellation (a read serves every caller, so one
	// impatient caller does not fail the others), ended by Close.
	life  context.Context
	close context.CancelFunc

	mu       sync.Mutex
	token    string
	info     SecretInfo
	fetched  time.Time
	retryAt  time.Time // after a failed refresh while serving a stale token
	inflight *fetchCall
}

type fetchCall struct {
	done  chan struct{}
	token string
	info  SecretInfo
	err   error
}

// New builds the chain from cfg. It makes no network calls: the first
// Token, ReadSecret or AssumeRole does. Close the Source when done: that
// ends a secret read still in flight. Base credentials come from
// config.LoadDefaultConfig (environment, AWS_PROFILE, web identity,
// container or instance role), which also honours AWS_ENDPOINT_URL,
// AWS_ENDPOINT_URL_STS and AWS_ENDPOINT_URL_SECRETS_MANAGER.
func New(ctx context.Context, cfg Config) (*Source, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if cfg.ExpiryWindow <= 0 {
		cfg.ExpiryWindow = DefaultExpiryWindow
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}

	var awsCfg aws.Config
	if cfg.AWSConfig != nil {
		awsCfg = cfg.AWSConfig.Copy()
	} else {
		lo := cfg.LoadOptions
		if cfg.Region != "" {
			lo = append([]func(*config.LoadOptions) error{config.WithRegion(cfg.Region)}, lo...)
		}
		awsCfg, err = config.LoadDefaultConfig(ctx, lo...)
		if err != nil {
			return nil, fmt.Errorf("load AWS configuration (environment, shared config and credentials files): %w", err)
		}
	}
	if cfg.Region != "" {
		awsCfg.Region = cfg.Region
	}
	if awsCfg.Region == "" {
		return nil, &ConfigError{"region", "is not set: set aws.region in symbot.yml or AWS_REGION in the environment"}
	}

	s := &Source{cfg: cfg, region: awsCfg.Region, log: cfg.Logger, now: cfg.Now, awsCfg: awsCfg}
	s.life, s.close = context.WithCancel(context.WithoutCancel(ctx))
	s.base = aws.NewCredentialsCache(&baseProvider{p: awsCfg.Credentials})
	withCreds := func(p aws.CredentialsProvider) func(*sts.Options) {
		return func(so *sts.Options) { so.Credentials = p }
	}
	s.baseSTS = sts.NewFromConfig(awsCfg, withCreds(s.base))

	prev := s.base
	roles := slices.Clip(cfg.HopRoles)
	if cfg.RoleARN != "" {
		roles = append(roles, cfg.RoleARN)
	}
	for i, role := range roles {
		ext := cfg.ExternalID
		if i < len(cfg.HopRoles) {
			ext = ""
			if i < len(cfg.HopExternalIDs) {
				ext = cfg.HopExternalIDs[i]
			}
		}
		client := sts.NewFromConfig(awsCfg, withCreds(prev))
		ap := stscreds.NewAssumeRoleProvider(client, role, func(ao *stscreds.AssumeRoleOptions) {
			ao.RoleSessionName = cfg.SessionName
			ao.Duration = cfg.SessionDuration
			if ext != "" {
				ao.ExternalID = aws.String(ext)
			}
		})
		rp := &roleProvider{arn: role, region: s.region, hop: i, p: ap, log: s.log}
		prev = aws.NewCredentialsCache(rp, func(co *aws.CredentialsCacheOptions) {
			co.ExpiryWindow = cfg.ExpiryWindow
		})
	}
	s.creds = prev
	s.finalSTS = sts.NewFromConfig(awsCfg, withCreds(s.creds))
	s.sm = secretsmanager.NewFromConfig(awsCfg, func(so *secretsmanager.Options) { so.Credentials = s.creds })
	return s, nil
}

// Region is the AWS region the clients use.
func (s *Source) Region() string { return s.region }

// Credentials returns the final credentials of the chain (the RoleARN
// session), cached and refreshed before expiry.
func (s *Source) Credentials() aws.CredentialsProvider { return s.creds }

// String describes the chain without any secret.
func (s *Source) String() string {
	return fmt.Sprintf("awsauth.Source{region=%s role=%s hops=%d secret=%s}", s.region, s.cfg.RoleARN, len(s.cfg.HopRoles), s.cfg.SecretID)
}

// GoString is String, so %#v cannot print the cached token.
func (s *Source) GoString() string { return s.String() }

// LogValue keeps the token out of structured logs.
func (s *Source) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("region", s.region),
		slog.String("role_arn", s.cfg.RoleARN),
		slog.Int("hops", len(s.cfg.HopRoles)),
		slog.String("secret_id", s.cfg.SecretID),
	)
}

// Token returns the Okta API token, from cache when it was read less than
// SecretTTL ago. When a re-read fails and a token is cached, it logs a
// warning and returns the cached token (the consumer calls Refresh when the
// directory rejects it), trying Secrets Manager again 30s later.
func (s *Source) Token(ctx context.Context) (string, error) {
	s.mu.Lock()
	now := s.now()
	if s.token != "" && (now.Before(s.fetched.Add(s.cfg.SecretTTL)) || now.Before(s.retryAt)) {
		t := s.token
		s.mu.Unlock()
		return t, nil
	}
	c := s.startFetchLocked()
	s.mu.Unlock()

	tok, _, err := s.wait(ctx, c)
	if err == nil {
		return tok, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.token != "" && ctx.Err() == nil {
		s.retryAt = s.now().Add(staleRetryAfter)
		s.log.WarnContext(ctx, "okta token re-read failed; using the cached token",
			"secret_id", s.cfg.SecretID, "version_id", s.info.VersionID, "err", err)
		return s.token, nil
	}
	return "", err
}

// Refresh reads the token again unless the cached one already differs from
// stale (someone refreshed it meanwhile). Concurrent calls share one read.
func (s *Source) Refresh(ctx context.Context, stale string) (string, error) {
	s.mu.Lock()
	c := s.inflight
	if c == nil {
		if s.token != "" && s.token != stale {
			t := s.token
			s.mu.Unlock()
			return t, nil
		}
		c = s.startFetchLocked()
	}
	s.mu.Unlock()
	tok, _, err := s.wait(ctx, c)
	return tok, err
}

// ReadSecret reads the secret now (through the whole chain), checks it
// holds a token, caches it, and describes the version read. It is the
// preflight for the secret step.
func (s *Source) ReadSecret(ctx context.Context) (SecretInfo, error) {
	s.mu.Lock()
	c := s.inflight
	if c == nil {
		c = s.startFetchLocked()
	}
	s.mu.Unlock()
	_, info, err := s.wait(ctx, c)
	return info, err
}

// AssumeRole runs the role chain (base credentials, hops, RoleARN) and
// returns who the final credentials are, via sts:GetCallerIdentity. It is
// the preflight for the role steps. With no RoleARN it returns the base
// identity.
func (s *Source) AssumeRole(ctx context.Context) (Identity, error) {
	return s.identity(ctx, s.creds, s.finalSTS)
}

// BaseIdentity returns who the base credentials are (sts:GetCallerIdentity
// with them). It is the preflight for the base credentials step.
func (s *Source) BaseIdentity(ctx context.Context) (Identity, error) {
	return s.identity(ctx, s.base, s.baseSTS)
}

// identity retrieves creds (running their part of the chain) and asks STS,
// through client signed with them, who they are.
func (s *Source) identity(ctx context.Context, creds aws.CredentialsProvider, client *sts.Client) (Identity, error) {
	c, err := creds.Retrieve(ctx)
	if err != nil {
		return Identity{}, chainError(ctx, err)
	}
	out, err := client.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return Identity{}, callerIdentityError(s.region, err)
	}
	id := Identity{ARN: aws.ToString(out.Arn), Account: aws.ToString(out.Account), UserID: aws.ToString(out.UserId)}
	if c.CanExpire {
		id.Expires = c.Expires
	}
	return id, nil
}

func chainError(ctx context.Context, err error) error {
	if e, ok := earlier(err); ok {
		return e
	}
	if ctx.Err() != nil {
		return fmt.Errorf("aws credentials: %w", ctx.Err())
	}
	return fmt.Errorf("aws credentials: %w", err)
}

// Close ends a secret read in flight and makes later reads fail at once.
// It does not wait for anything and is safe to call more than once.
func (s *Source) Close() error {
	s.close()
	return nil
}

// startFetchLocked starts a read of the secret that every caller can wait
// for. It runs on the Source's base context, not a caller's: one impatient
// caller does not fail the others, and Close ends it. s.mu must be held.
func (s *Source) startFetchLocked() *fetchCall {
	if s.inflight != nil {
		return s.inflight
	}
	c := &fetchCall{done: make(chan struct{})}
	s.inflight = c
	go func() {
		fctx, cancel := context.WithTimeout(s.life, fetchTimeout)
		defer cancel()
		tok, info, err := s.fetch(fctx)
		s.mu.Lock()
		if err == nil {
			s.token, s.info, s.fetched, s.retryAt = tok, info, s.now(), time.Time{}
		}
		c.token, c.info, c.err = tok, info, err
		s.inflight = nil
		s.mu.Unlock()
		close(c.done)
	}()
	return c
}

func (s *Source) wait(ctx context.Context, c *fetchCall) (string, SecretInfo, error) {
	select {
	case <-c.done:
		return c.token, c.info, c.err
	case <-ctx.Done():
		return "", SecretInfo{}, fmt.Errorf("read okta token from secret %q: %w", s.cfg.SecretID, ctx.Err())
	}
}

func (s *Source) fetch(ctx context.Context) (string, SecretInfo, error) {
	out, err := s.getSecretValue(ctx, s.cfg.SecretID, "okta.token_secret")
	if err != nil {
		s.log.DebugContext(ctx, "read okta token failed", "secret_id", s.cfg.SecretID, "err", err)
		return "", SecretInfo{}, err
	}
	info := SecretInfo{
		Name:      aws.ToString(out.Name),
		ARN:       aws.ToString(out.ARN),
		VersionID: aws.ToString(out.VersionId),
		Created:   aws.ToTime(out.CreatedDate),
		Region:    s.region,
	}
	tok, err := parseSecret(s.cfg.SecretID, s.cfg.SecretJSONKey, "okta.token_json_key", "the Okta API token", out.SecretString, out.SecretBinary)
	if err != nil {
		if e, ok := err.(*Error); ok {
			e.Region = s.region
		}
		return "", info, err
	}
	s.log.InfoContext(ctx, "read okta token", "secret_id", s.cfg.SecretID, "version_id", info.VersionID)
	return tok, info, nil
}

// getSecretValue reads the secret id, which the config key setting names
// (okta.token_secret, audit.key_secret), with the chain's final
// credentials. A failure is an *Error saying, as whom, what to check.
func (s *Source) getSecretValue(ctx context.Context, id, setting string) (*secretsmanager.GetSecretValueOutput, error) {
	out, err := s.sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(id)})
	if err != nil {
		principal := s.cfg.RoleARN
		if principal == "" {
			principal = "the base credentials"
		}
		return nil, secretError(id, setting, s.region, principal, err)
	}
	return out, nil
}

// baseProvider names a failure of the default credential chain.
type baseProvider struct{ p aws.CredentialsProvider }

func (b *baseProvider) Retrieve(ctx context.Context) (aws.Credentials, error) {
	if b.p == nil {
		return aws.Credentials{}, &Error{Step: StepBaseCredentials, Kind: ErrNoCredentials, msg: noCredsHint}
	}
	c, err := b.p.Retrieve(ctx)
	if err != nil && ctx.Err() == nil {
		return c, &Error{Step: StepBaseCredentials, Kind: ErrNoCredentials, msg: noCredsHint, Err: err}
	}
	return c, err
}

// roleProvider names a failure of one AssumeRole in the chain.
type roleProvider struct {
	arn    string
	region string
	hop    int
	p      *stscreds.AssumeRoleProvider
	log    *slog.Logger
}

func (r *roleProvider) Retrieve(ctx context.Context) (aws.Credentials, error) {
	c, err := r.p.Retrieve(ctx)
	if err != nil {
		if e, ok := earlier(err); ok {
			return c, e
		}
		if ctx.Err() != nil {
			return c, err
		}
		return c, assumeRoleError(r.arn, r.region, err)
	}
	r.log.DebugContext(ctx, "assumed role", "role_arn", r.arn, "hop", r.hop, "expires", c.Expires)
	return c, nil
}
