// The one place errors become words for people: Explain turns engine, policy
// and input errors into the text the bot shows.

package bot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/symbot/symbot"
)

// UsageError is a slash command symbot did not understand. Explain
// follows its Problem with the help of the slash command.
type UsageError struct {
	Problem string // in words for people, already safe for Slack
}

func (e *UsageError) Error() string { return e.Problem }

// errSlackProfile marks a failure to read someone's Slack profile.
var errSlackProfile = errors.New("read Slack profile")

// errBusy is returned when symbot has too much work queued.
var errBusy = errors.New("symbot is busy")

// Explain turns an error into words for the person who caused it. It never
// reveals internal details (those go to the log); the text is safe Slack
// mrkdwn. It is the only place where errors become user-facing text.
// The commands it suggests use the slash command cmd ("" means
// DefaultCommand); the Bot passes Config.Command. The text passes
// symbot.Redact, so no token-shaped string reaches Slack.
func Explain(err error, cmd string) string {
	return symbot.Redact(explain(err, cmd))
}

func explain(err error, cmd string) string {
	if err == nil {
		return ""
	}
	if cmd == "" {
		cmd = DefaultCommand
	}
	var (
		usage  *UsageError
		input  *symbot.InputError
		dup    *symbot.DuplicateError
		dec    *symbot.DecidedError
		policy *symbot.PolicyError
		trans  *symbot.TransitionError
		gone   *symbot.NotConfiguredError
		ident  *symbot.IdentityConflictError
		token  *TokenError
	)
	switch {
	case errors.As(err, &usage):
		return usage.Problem + "\n" + helpText(cmd)
	case errors.As(err, &input):
		return fmt.Sprintf("%s: %s", fieldName(input.Field), escapeTrunc(symbot.OneLine(input.Problem), 1000))
	case errors.As(err, &dup):
		return fmt.Sprintf("You already have a pending request (`%s`) for this target. Wait for a decision, or cancel it from `%s list` and ask again.", Escape(dup.ExistingID), Escape(cmd))
	case errors.As(err, &dec):
		return explainDecided(dec)
	case errors.As(err, &ident):
		// The login the account is bound to is its own; the one its email
		// finds now may be someone else's, so it is not named.
		return fmt.Sprintf("You can't do that: your Slack account is bound to the Okta account %s, but the email on your Slack profile now finds a different Okta account. "+
			"Until the symbot operators have checked this, symbot refuses every request and decision from this Slack account. They have been alerted: ask them to check it and run `symbot identity reset %s`.",
			escapeTrunc(symbot.OneLine(ident.BoundLogin), 200), Escape(ident.SlackID))
	case errors.As(err, &policy):
		return "You can't do that: " + escapeKeepMentions(policy.Reason)
	case errors.As(err, &trans):
		return fmt.Sprintf("Request `%s` is %s now, so that is no longer possible. `%s list` shows your requests as they are now.", Escape(trans.ID), stateWords(trans.From), Escape(cmd))
	case errors.As(err, &gone):
		what := "flow `" + Escape(gone.Flow) + "`"
		if gone.TargetOnly {
			what = "target `" + Escape(gone.Target) + "` of flow `" + Escape(gone.Flow) + "`"
		}
		return fmt.Sprintf("Request `%s` is for %s, which is no longer in symbot's configuration, so it can't be decided here. Nothing was changed. The symbot admins can end it with `symbot revoke %s`.", Escape(gone.ID), what, Escape(gone.ID))
	case errors.As(err, &token):
		// Tokens live in symbot's environment, never in its config file.
		return fmt.Sprintf("Slack refused symbot's token, so it can't do that now. The symbot admins need to set %s in symbot's environment (not its config file) and restart it.", token.Env)
	case errors.Is(err, symbot.ErrStoreUnavailable):
		// Before the timeout case: a store that cannot be reached often
		// fails with a connect timeout too.
		return "symbot can't reach its database; try again in a minute."
	case errors.Is(err, symbot.ErrOutOfDate):
		return "This message is out of date: it does not belong to a current request (it may be from before symbot's data was restored). Nothing was changed. `" + Escape(cmd) + " list` shows your requests as they are now."
	case errors.Is(err, symbot.ErrNotFound):
		return "I can't find that request. It may have been removed; `" + Escape(cmd) + " list` shows yours."
	case errors.Is(err, symbot.ErrNotAllowed):
		return "You are not allowed to do that. `" + Escape(cmd) + " whoami` shows what you may request and approve."
	case errors.Is(err, symbot.ErrInvalidRequest):
		return "That request is not valid. " + helpHint(cmd)
	case errors.Is(err, errEmailUnconfirmed):
		return "The email on your Slack profile is not confirmed, so symbot cannot use it to find your Okta account. Confirm it in Slack (the confirmation email Slack sent you), then try again."
	case errors.Is(err, symbot.ErrUserNotFound):
		return "I could not find your Okta account from the email on your Slack profile. Ask your Okta admins to check that your Okta email matches your Slack email."
	case errors.Is(err, symbot.ErrUserNotActive):
		return "Your Okta account is not active, so access can't be granted. Ask your Okta admins to reactivate it."
	case errors.Is(err, symbot.ErrGroupNotFound):
		return "The Okta group behind this target does not exist any more. Tell the symbot admins so they can fix the flow configuration."
	case errors.Is(err, symbot.ErrTokenRejected), errors.Is(err, symbot.ErrSecretNotFound), errors.Is(err, symbot.ErrAccessDenied):
		return "symbot can't reach Okta because its Okta API token was refused, is not allowed to do this, or could not be read. The symbot admins need to check the token in AWS Secrets Manager (`okta.token_secret`), its Okta admin role, and the AWS role that reads it: `symbot check --live` names the failing step."
	case errors.Is(err, symbot.ErrChannelNotFound), errors.Is(err, symbot.ErrNotInChannel), errors.Is(err, symbot.ErrMissingScope):
		return "symbot's Slack app is not set up for this yet (a channel or permission is missing). The symbot admins have been told; try again once they fix it."
	case errors.Is(err, symbot.ErrRateLimited), errors.Is(err, symbot.ErrUnavailable), errors.Is(err, errBusy):
		return "symbot or one of the services it uses is busy right now. Please try again in a minute."
	case errors.Is(err, errSlackProfile):
		return "I could not read your Slack profile just now. Please try again in a minute."
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return "That took too long and was stopped. Please try again."
	case errors.Is(err, symbot.ErrStoreLocked), errors.Is(err, symbot.ErrSchemaTooNew):
		return "symbot can't open its database right now. The symbot admins need to look at it."
	}
	return "Something went wrong on symbot's side. Please try again; if it keeps happening, tell the symbot admins (the details are in symbot's log)."
}

// explain is Explain naming the configured slash command.
func (b *Bot) explain(err error) string { return Explain(err, b.cfg.Command) }

func explainDecided(e *symbot.DecidedError) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Request `%s` is already %s", Escape(e.ID), stateWords(e.State))
	if e.By != "" && e.State != symbot.StateTimedOut {
		if e.By == symbot.System {
			b.WriteString(" by symbot")
		} else {
			b.WriteString(" by " + mention(e.By))
		}
	}
	if !e.At.IsZero() {
		b.WriteString(" " + slackDate(e.At))
	}
	b.WriteString(".")
	if e.Note != "" {
		if q := quoteUser(e.Note, 500); q != "" {
			b.WriteString(" Note: " + q)
		}
	}
	b.WriteString(" Nothing was changed.")
	return b.String()
}

func fieldName(f string) string {
	switch f {
	case "flow":
		return "Flow"
	case "target":
		return "Target"
	case "duration":
		return "Duration"
	case "reason":
		return "Reason"
	case "start":
		return "Start"
	case "":
		return "Request"
	}
	return Escape(f)
}

// stateWords says a state as people would.
func stateWords(s symbot.State) string {
	switch s {
	case symbot.StatePending:
		return "waiting for approval"
	case symbot.StateApproved:
		return "approved"
	case symbot.StateScheduled:
		return "approved, waiting for its start time"
	case symbot.StateActive:
		return "active"
	case symbot.StateExpired:
		return "expired"
	case symbot.StateRevoked:
		return "revoked"
	case symbot.StateDenied:
		return "denied"
	case symbot.StateCancelled:
		return "cancelled"
	case symbot.StateTimedOut:
		return "timed out"
	case symbot.StateFailed:
		return "failed"
	case symbot.StateExtended:
		return "approved as an extension"
	case symbot.StateRemovedOutside:
		return "ended (removed outside symbot)"
	}
	return Escape(string(s))
}

// slogLevelFor logs refusals (people clicking what they may not) at info and
// real failures at error.
func slogLevelFor(err error, refusal bool) slog.Level {
	if refusal || errors.Is(err, context.Canceled) {
		return slog.LevelInfo
	}
	return slog.LevelError
}
