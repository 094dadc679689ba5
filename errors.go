// Domain errors: the sentinels and typed errors the engine and the adapters
// return; branch on them with errors.Is and errors.As.

package symbot

import (
	"errors"
	"fmt"
	"time"
)

// Errors the engine returns. Branch on them with errors.Is and errors.As.
var (
	ErrNotFound        = errors.New("not found")
	ErrNotAllowed      = errors.New("not allowed")
	ErrInvalidRequest  = errors.New("invalid request")
	ErrUserNotFound    = errors.New("no such user in the directory")
	ErrUserNotActive   = errors.New("directory user is not active")
	ErrGroupNotFound   = errors.New("no such group in the directory")
	ErrTokenRejected   = errors.New("directory API token rejected")
	ErrRateLimited     = errors.New("rate limited")
	ErrUnavailable     = errors.New("service unavailable")
	ErrSecretNotFound  = errors.New("secret not found")
	ErrAccessDenied    = errors.New("access denied")
	ErrChannelNotFound = errors.New("channel not found")
	ErrNotInChannel    = errors.New("bot is not in the channel")
	ErrMissingScope    = errors.New("missing OAuth scope")
	ErrStoreLocked     = errors.New("store is locked by another process")
	ErrSchemaTooNew    = errors.New("store schema is newer than this symbot")
	// ErrStoreUnavailable: the store cannot be reached just now (its
	// database is down or unreachable); the same call may work later.
	ErrStoreUnavailable = errors.New("store unavailable")
	// ErrOutOfDate: a button whose request id or nonce does not match a
	// stored request (another request's message, or one from before a
	// restore). Nothing is changed.
	ErrOutOfDate = errors.New("this message is out of date")
)

// Permanent wraps err to tell the executor not to retry it.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }

func (e *permanentError) Unwrap() error { return e.err }

// IsPermanent reports whether retrying err cannot help: it was wrapped with
// Permanent, or it is a directory error about a missing or inactive user or
// group, or a Slack channel or scope problem.
func IsPermanent(err error) bool {
	var p *permanentError
	if errors.As(err, &p) {
		return true
	}
	for _, e := range []error{ErrUserNotFound, ErrUserNotActive, ErrGroupNotFound, ErrChannelNotFound, ErrNotInChannel, ErrMissingScope} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// RetryAfterError asks the executor to wait at least After before the next
// attempt (a Slack or Okta rate limit said so).
type RetryAfterError struct {
	After time.Duration
	Err   error
}

func (e *RetryAfterError) Error() string { return e.Err.Error() }

func (e *RetryAfterError) Unwrap() error { return e.Err }

// TransitionError is returned for an illegal state change.
type TransitionError struct {
	ID       string
	From, To State
}

func (e *TransitionError) Error() string {
	return fmt.Sprintf("request %s: cannot go from %s to %s", e.ID, e.From, e.To)
}

// DecidedError is returned when someone acts on a request that is already
// decided; it says who decided and how.
type DecidedError struct {
	ID    string
	State State
	By    string // Slack user id, or System
	At    time.Time
	Note  string
}

func (e *DecidedError) Error() string {
	return fmt.Sprintf("request %s is already %s (by %s)", e.ID, e.State, e.By)
}

// DuplicateError is returned when the person already has a pending request
// for the same target.
type DuplicateError struct {
	ExistingID string
	Message    MessageRef
}

func (e *DuplicateError) Error() string {
	return fmt.Sprintf("you already have a pending request %s for this target", e.ExistingID)
}

// PolicyError explains why an actor may not do something.
type PolicyError struct {
	Reason string // in words for people
}

func (e *PolicyError) Error() string { return e.Reason }

func (e *PolicyError) Unwrap() error { return ErrNotAllowed }

// InputError explains what is wrong with a request's input, per field.
type InputError struct {
	Field   string // flow, target, duration, reason
	Problem string
}

func (e *InputError) Error() string { return e.Field + ": " + e.Problem }

func (e *InputError) Unwrap() error { return ErrInvalidRequest }

// NotConfiguredError is returned for acting on a request whose flow (or
// target) is no longer in the configuration. It wraps ErrNotFound.
type NotConfiguredError struct {
	ID, Flow, Target string
	TargetOnly       bool // the flow exists; its target does not
}

func (e *NotConfiguredError) Error() string {
	if e.TargetOnly {
		return fmt.Sprintf("request %s: target %q of flow %q is no longer configured", e.ID, e.Target, e.Flow)
	}
	return fmt.Sprintf("request %s: flow %q is no longer configured", e.ID, e.Flow)
}

func (e *NotConfiguredError) Unwrap() error { return ErrNotFound }
