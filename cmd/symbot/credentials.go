package main

// The credentials symbot cannot serve without: both Slack tokens, checked
// before anything is served, and the bot token and the Okta token (through
// the AWS chain and Secrets Manager) checked again every
// runtime.credential_check_interval while it runs, for /readyz and the
// metrics.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/awsauth"
	"github.com/symbot/symbot/bot"
	"github.com/symbot/symbot/cmd/symbot/internal/config"
)

// DefaultCredentialCheckEvery is how often a running symbot asks Slack
// (auth.test) and Okta (one group read) whether they still accept its
// tokens, unless runtime.credential_check_interval says otherwise: one
// call each, far below either's rate limits.
const DefaultCredentialCheckEvery = config.DefaultCredentialCheckInterval

// credentialInterval is how often the credentials are checked now.
func (d *daemon) credentialInterval() time.Duration {
	if every := time.Duration(d.credentialEvery.Load()); every > 0 {
		return every
	}
	return DefaultCredentialCheckEvery
}

// setCredentialInterval changes how often the credentials are checked
// (zero: the default); a running watcher waits the new interval from now.
func (d *daemon) setCredentialInterval(every time.Duration) {
	if time.Duration(d.credentialEvery.Swap(int64(every))) == every {
		return
	}
	select {
	case d.credentialWake <- struct{}{}:
	default:
	}
}

// credentialCheckTimeout bounds one check while running;
// startupCheckTimeout one check before serving, shorter because removals
// of expired access wait for it (an unanswered check does not stop
// start-up).
const (
	credentialCheckTimeout = 30 * time.Second
	startupCheckTimeout    = 10 * time.Second
)

// A credential symbot checks while it runs.
type credential struct {
	name   string // metric label: slack_bot_token, okta_token
	public string // what /readyz says while it is refused: fixed words
	// check returns nil when the credential works, errRefused-wrapped
	// errors when it was refused, and other errors when it could not be
	// checked (the service is down): those change nothing.
	check func(ctx context.Context) error
}

// errRefused marks a check that proved a credential bad.
var errRefused = errors.New("credential refused")

// credentials holds the outcome of the last check of each credential.
type credentials struct {
	mu      sync.Mutex
	refused map[string]refusal // by credential name
}

type refusal struct {
	public string
	err    error
}

// set records one check's outcome: ok, refused (err wraps errRefused), or
// unknown (any other error: the last outcome stands). It reports whether
// the credential's state changed.
func (c *credentials) set(cr credential, err error) (changed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.refused == nil {
		c.refused = map[string]refusal{}
	}
	_, was := c.refused[cr.name]
	switch {
	case err == nil:
		delete(c.refused, cr.name)
		return was
	case errors.Is(err, errRefused):
		c.refused[cr.name] = refusal{cr.public, err}
		return !was
	}
	return false
}

// notReady returns a NotReady error for the first refused credential, in
// the order of names, or nil.
func (c *credentials) notReady(names []string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range names {
		if r, ok := c.refused[n]; ok {
			return NotReady(r.public, r.err)
		}
	}
	return nil
}

// credentialList is what the daemon checks while it runs.
func (d *daemon) credentialList() []credential {
	return []credential{
		{
			name:   "slack_bot_token",
			public: "slack refuses the bot token (SLACK_BOT_TOKEN)",
			check: func(ctx context.Context) error {
				err := d.bot.CheckBotToken(ctx)
				var te *bot.TokenError
				if errors.As(err, &te) {
					return fmt.Errorf("%w: %w", errRefused, err)
				}
				return err
			},
		},
		{
			name:   "okta_token",
			public: "the okta api token is refused, lacks permissions, or cannot be read from aws secrets manager",
			check:  d.checkOktaToken,
		},
	}
}

// checkOktaToken reads one target group through the whole chain: AWS base
// credentials, the role, the secret, and the Okta token in it. A token
// Okta refuses, or a secret that cannot be read, is a refusal; a missing
// group is a config problem for `symbot check --live`, not a credential's.
func (d *daemon) checkOktaToken(ctx context.Context) error {
	var gid string
	for _, f := range d.engine.Flows() {
		if len(f.Targets) > 0 {
			gid = f.Targets[0].GroupID
			break
		}
	}
	if gid == "" {
		return nil
	}
	_, err := d.dir.Group(ctx, gid)
	switch {
	case err == nil, errors.Is(err, symbot.ErrGroupNotFound):
		return nil
	case errors.Is(err, symbot.ErrTokenRejected), errors.Is(err, symbot.ErrSecretNotFound),
		errors.Is(err, symbot.ErrAccessDenied), errors.Is(err, awsauth.ErrNoCredentials),
		errors.Is(err, awsauth.ErrSecretFormat):
		return fmt.Errorf("%w: %w", errRefused, err)
	}
	return err
}

// checkSlackTokens asks Slack, before anything is served, whether it
// accepts both tokens. A refused token stops start-up with an error naming
// its environment variable (never the token). Slack being unreachable does
// not: Socket Mode keeps retrying and /readyz says not ready until it
// connects, while revocations, which need only Okta, go on.
func (d *daemon) checkSlackTokens(ctx context.Context) error {
	var refused []error
	for _, check := range []func(context.Context) error{d.bot.CheckBotToken, d.bot.CheckAppToken} {
		cctx, cancel := context.WithTimeout(ctx, startupCheckTimeout)
		err := check(cctx)
		cancel()
		var te *bot.TokenError
		switch {
		case errors.As(err, &te):
			refused = append(refused, err)
		case err != nil && ctx.Err() == nil:
			d.log.Warn("could not ask Slack whether it accepts symbot's tokens; starting anyway", "err", err)
		}
	}
	if len(refused) > 0 {
		return fmt.Errorf("not started: %w", errors.Join(refused...))
	}
	return nil
}

// watchCredentials checks each credential now and then every
// credentialInterval until ctx ends, logging each change of state; the
// details go to the log and the metrics, /readyz says only which one.
func (d *daemon) watchCredentials(ctx context.Context) {
	creds := d.credentialList()
	t := time.NewTimer(d.credentialInterval())
	defer t.Stop()
	for {
		for _, cr := range creds {
			cctx, cancel := context.WithTimeout(ctx, credentialCheckTimeout)
			err := cr.check(cctx)
			cancel()
			if ctx.Err() != nil {
				return
			}
			changed := d.creds.set(cr, err)
			switch {
			case err == nil:
				d.metrics.CredentialChecked(cr.name, true)
				if changed {
					d.log.Info("credential accepted again", "credential", cr.name)
				}
			case errors.Is(err, errRefused):
				d.metrics.CredentialChecked(cr.name, false)
				if changed {
					d.log.Error("credential refused: symbot is not ready until it works again", "credential", cr.name, "err", err)
				}
			default:
				d.log.Warn("could not check a credential", "credential", cr.name, "err", err)
			}
		}
		if !d.waitCredentialCheck(ctx, t) {
			return
		}
	}
}

// waitCredentialCheck waits for the next check on t: it returns false when
// ctx ends, true when t fires (reset for the check after), and it resets t
// to the new interval from now when a reload changes the interval.
func (d *daemon) waitCredentialCheck(ctx context.Context, t *time.Timer) bool {
	for {
		select {
		case <-ctx.Done():
			return false
		case <-d.credentialWake:
			t.Reset(d.credentialInterval())
		case <-t.C:
			t.Reset(d.credentialInterval())
			return true
		}
	}
}
