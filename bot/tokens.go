// Symbot's two Slack tokens: checking that Slack accepts them, and the
// error that says which environment variable holds a refused one.

package bot

import (
	"context"
	"errors"
	"fmt"

	"github.com/slack-go/slack"
)

// The environment variables that hold the tokens (never the config file).
const (
	EnvBotToken = "SLACK_BOT_TOKEN"
	EnvAppToken = "SLACK_APP_TOKEN"
)

// TokenError says that Slack refused one of symbot's tokens, naming the
// environment variable that holds it and how to get a good one. It never
// holds the token.
type TokenError struct {
	Env    string // EnvBotToken or EnvAppToken
	Code   string // Slack's answer: invalid_auth, token_revoked, ...
	Method string // the Web API method that was refused
	Err    error
}

func (e *TokenError) Error() string {
	if e.Env == EnvAppToken {
		return fmt.Sprintf("slack %s: Slack refused the app-level token in %s (%s): set %s in symbot's environment to an app-level token (xapp-...) with the connections:write scope (Basic Information > App-Level Tokens), and enable Socket Mode", e.Method, EnvAppToken, e.Code, EnvAppToken)
	}
	return fmt.Sprintf("slack %s: Slack refused the bot token in %s (%s): set %s in symbot's environment to the app's Bot User OAuth Token (xoxb-..., OAuth & Permissions); reinstall the app if it was removed", e.Method, EnvBotToken, e.Code, EnvBotToken)
}

func (e *TokenError) Unwrap() error { return e.Err }

// refusedCode returns Slack's error code when err says a token was refused
// (revoked, invalid, expired, of the wrong kind, or its account inactive).
func refusedCode(err error) (string, bool) {
	var se slack.SlackErrorResponse
	if !errors.As(err, &se) {
		return "", false
	}
	return se.Err, refused(se.Err)
}

// refused reports whether Slack's error code says a token was refused.
func refused(code string) bool {
	switch code {
	case "invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive", "not_allowed_token_type":
		return true
	}
	return false
}

// tokenError is a *TokenError for env when Slack refused the token in err,
// else nil.
func tokenError(env, method string, err error) error {
	code, ok := refusedCode(err)
	if !ok {
		return nil
	}
	return &TokenError{Env: env, Code: code, Method: method, Err: err}
}

// CheckBotToken asks Slack whether it accepts the bot token (auth.test).
// It returns nil, a *TokenError when Slack refused the token, or another
// error when Slack could not be asked (network, rate limit, Slack down).
func (b *Bot) CheckBotToken(ctx context.Context) error {
	return b.checkToken(ctx, EnvBotToken, "auth.test", func(ctx context.Context) error {
		_, err := b.api.AuthTestContext(ctx)
		return err
	})
}

// CheckAppToken asks Slack whether it accepts the app-level token by
// opening a Socket Mode connection URL (apps.connections.open), which it
// does not dial: Slack lets an unused URL lapse. Errors as CheckBotToken.
func (b *Bot) CheckAppToken(ctx context.Context) error {
	return b.checkToken(ctx, EnvAppToken, "apps.connections.open", func(ctx context.Context) error {
		_, _, err := b.api.StartSocketModeContext(ctx)
		return err
	})
}

// checkToken calls Slack's method with the token in env: nil, a *TokenError
// when Slack refused the token, or the error wrapped with the method.
func (b *Bot) checkToken(ctx context.Context, env, method string, fn func(context.Context) error) error {
	err := b.try(ctx, durable, method, fn)
	if err == nil {
		return nil
	}
	if te := tokenError(env, method, err); te != nil {
		return te
	}
	return fmt.Errorf("slack %s: %w", method, err)
}
