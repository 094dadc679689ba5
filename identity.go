// Identity bindings: the first resolution of a Slack account to an Okta
// user is stored, every later resolution must find the same Okta user, and
// an account whose resolution changed may not act until an operator resets
// its binding.

package symbot

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// IdentityConflictError refuses an action of a Slack account whose binding
// has a conflict: its profile now resolves to another Okta user than the
// one it is bound to (a renamed or re-used email, a takeover). It wraps
// ErrNotAllowed. Nothing the account does is accepted until an operator
// resets the binding (Engine.ResetIdentity, `symbot identity reset`).
type IdentityConflictError struct {
	SlackID             string
	BoundID, BoundLogin string // the Okta user the account is bound to
	FoundID, FoundLogin string // the one a later resolution found
	Email               string // the email that found FoundID ("" for an override)
	BoundSince, FoundAt time.Time
}

func (e *IdentityConflictError) Error() string {
	return fmt.Sprintf("slack user %s is bound to okta user %s (%s) but now resolves to okta user %s (%s): refused until an operator runs `symbot identity reset %s`",
		e.SlackID, e.BoundLogin, e.BoundID, e.FoundLogin, e.FoundID, e.SlackID)
}

func (e *IdentityConflictError) Unwrap() error { return ErrNotAllowed }

func conflictOf(b Identity) *IdentityConflictError {
	return &IdentityConflictError{SlackID: b.SlackID, BoundID: b.OktaUserID, BoundLogin: b.OktaLogin,
		FoundID: b.ConflictOktaUserID, FoundLogin: b.ConflictOktaLogin, Email: b.ConflictEmail,
		BoundSince: b.Since(), FoundAt: b.ConflictAt}
}

// Audit actions of the identity bindings.
const (
	ActionIdentityBound    = "identity:bound"
	ActionIdentityConflict = "identity:conflict"
	ActionIdentityReset    = "admin:identity-reset"
)

// ResolveUser finds the directory user of a Slack person through their
// binding: the bound user while the binding is younger than IdentityTTL
// and the profile email unchanged, else what the directory says now, which
// must be the bound user. The first resolution makes the binding. An
// account whose binding has a conflict gets an *IdentityConflictError
// without the directory being asked.
func (e *Engine) ResolveUser(ctx context.Context, p Person) (DirUser, error) {
	u, _, err := e.resolveBound(ctx, p, false, false)
	return u, err
}

// resolveBound resolves p through the binding; with fresh, the directory
// is always asked (the grant, approver groups: a deactivated user must not
// pass on a cached answer). It returns the binding as it was before, if
// there was one (had). With late, a binding to record is written with
// updateLater, for callers no one waits on (the early look-ups): it is
// still committed before resolveBound returns.
func (e *Engine) resolveBound(ctx context.Context, p Person, fresh, late bool) (u DirUser, before *Identity, err error) {
	u, before, bind, err := e.resolveBinding(ctx, p, fresh)
	if err != nil || bind == nil {
		return u, before, err
	}
	update := e.store.Update
	if late {
		update = e.updateLater
	}
	if err := update(ctx, bind.write); err != nil {
		return DirUser{}, before, fmt.Errorf("record the identity binding of %s: %w", p.SlackID, err)
	}
	if err := e.bound(p, bind); err != nil {
		return DirUser{}, before, err
	}
	return u, before, nil
}

// binding is the write that records what the directory said of a person
// (a new binding, a refreshed one, or a conflict), and after it ran, the
// conflict it found, if any.
type binding struct {
	write    func(tx Tx) error
	conflict *IdentityConflictError
}

// bound reports the conflict b's committed write found (and raises it).
func (e *Engine) bound(p Person, b *binding) error {
	if b.conflict == nil {
		return nil
	}
	e.kick()
	e.log().Warn("identity conflict: refusing the account until an operator resets it", "user", p.SlackID,
		"bound_okta_user", b.conflict.BoundID, "found_okta_user", b.conflict.FoundID)
	return b.conflict
}

// resolveBinding is resolveBound without the write: it returns the
// binding to record (nil when there is nothing new), for the caller to
// commit (and then to call e.bound) before it relies on the binding.
func (e *Engine) resolveBinding(ctx context.Context, p Person, fresh bool) (u DirUser, before *Identity, bind *binding, err error) {
	now := e.now()
	var b Identity
	var ok bool
	err = e.store.View(ctx, func(tx Tx) error {
		var err error
		b, ok, err = tx.Identity(p.SlackID)
		return err
	})
	if err != nil {
		return DirUser{}, nil, nil, fmt.Errorf("read the identity binding of %s: %w", p.SlackID, err)
	}
	if ok {
		before = &b
		if b.Conflicted() {
			return DirUser{}, before, nil, conflictOf(b)
		}
	}
	current := ok && b.Email == p.Email && now.Sub(b.CachedAt) < orDefault(e.IdentityTTL, 10*time.Minute)
	if current && !fresh {
		return DirUser{ID: b.OktaUserID, Login: b.OktaLogin, Email: b.Email, Status: "ACTIVE", Via: b.Via}, before, nil, nil
	}
	u, err = e.dir.ResolveUser(ctx, p)
	if err != nil {
		return DirUser{}, before, nil, err
	}
	if current && u.ID == b.OktaUserID && u.Login == b.OktaLogin {
		return u, before, nil, nil // nothing new to record
	}
	bind = &binding{}
	bind.write = func(tx Tx) error {
		bind.conflict = nil // the store may run this more than once
		cur, ok, err := tx.Identity(p.SlackID)
		if err != nil {
			return err
		}
		switch {
		case !ok:
			nb := Identity{SlackID: p.SlackID, Email: p.Email, OktaUserID: u.ID, OktaLogin: u.Login, CachedAt: now, BoundAt: now, Via: u.Via}
			if err := tx.PutIdentity(nb); err != nil {
				return err
			}
			return e.audit(tx, now, "", System, ActionIdentityBound, fmt.Sprintf("slack_user=%s okta_user=%s login=%s via=%s", p.SlackID, u.ID, u.Login, orUnknown(u.Via)))
		case cur.Conflicted():
			bind.conflict = conflictOf(cur) // found by another resolution meanwhile
			return nil
		case cur.OktaUserID == u.ID:
			if cur.BoundAt.IsZero() {
				cur.BoundAt = cur.CachedAt // cached before bindings: bound since then
			}
			cur.Email, cur.OktaLogin, cur.CachedAt = p.Email, u.Login, now
			if cur.Via == "" {
				cur.Via = u.Via
			}
			return tx.PutIdentity(cur)
		}
		if cur.BoundAt.IsZero() {
			cur.BoundAt = cur.CachedAt
		}
		cur.ConflictOktaUserID, cur.ConflictOktaLogin, cur.ConflictEmail, cur.ConflictAt = u.ID, u.Login, p.Email, now
		if err := tx.PutIdentity(cur); err != nil {
			return err
		}
		bind.conflict = conflictOf(cur)
		if err := e.audit(tx, now, "", System, ActionIdentityConflict, fmt.Sprintf("slack_user=%s bound_okta_user=%s bound_login=%s found_okta_user=%s found_login=%s email=%s via=%s",
			p.SlackID, cur.OktaUserID, cur.OktaLogin, u.ID, u.Login, p.Email, orUnknown(u.Via))); err != nil {
			return err
		}
		// Raised once: later resolutions find the conflict recorded and
		// refuse without asking the directory.
		return e.addJob(tx, now, &Job{Kind: JobAlert, Event: EventIdentityConflict, Text: conflictAlert(cur, u)})
	}
	return u, before, bind, nil
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func conflictAlert(b Identity, u DirUser) string {
	how := "its Slack email " + b.ConflictEmail
	if u.Via == ViaOverride || b.ConflictEmail == "" {
		how = "its override"
	}
	return fmt.Sprintf("Identity conflict: Slack user %s is bound to Okta user %s (%s) since %s (by %s), but %s now finds Okta user %s (%s): a renamed or re-used email, or a takeover? "+
		"symbot refuses every request and decision of this account, and its grants, until you check it and run `symbot identity reset %s`.",
		b.SlackID, b.OktaLogin, b.OktaUserID, b.Since().UTC().Format(time.RFC3339), orUnknown(b.Via), how, u.Login, u.ID, b.SlackID)
}

// personOf returns the Okta user id a Slack person is bound to, for
// telling people apart: the binding as stored (refreshed through the
// directory once it is older than IdentityTTL, falling back to the stored
// binding when the directory cannot answer), or a new binding. "" when the
// person is not in the directory (and was never bound). An account with a
// conflict gets an *IdentityConflictError.
func (e *Engine) personOf(ctx context.Context, p Person) (string, error) {
	u, before, err := e.resolveBound(ctx, p, false, false)
	var ce *IdentityConflictError
	switch {
	case err == nil:
		return u.ID, nil
	case errors.As(err, &ce):
		return "", err
	case before != nil:
		return before.OktaUserID, nil // bound: the person stays who they were
	case errors.Is(err, ErrUserNotFound), errors.Is(err, ErrUserNotActive):
		return "", nil
	}
	return "", err
}

// Identities returns the identity bindings, in Slack id order.
func (e *Engine) Identities(ctx context.Context) ([]Identity, error) {
	var out []Identity
	for after := ""; ; {
		var page []Identity
		err := e.store.View(ctx, func(tx Tx) error {
			var err error
			page, err = tx.Identities(after, 500)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("list identity bindings: %w", err)
		}
		out = append(out, page...)
		if len(page) < 500 {
			return out, nil
		}
		after = page[len(page)-1].SlackID
	}
}

// ResetIdentity removes the binding of a Slack account on an operator's
// command (audited with the operator): its next resolution binds it anew
// to whatever Okta user its profile finds then. It returns the binding
// that was removed; an account with no binding is an error wrapping
// ErrNotFound.
func (e *Engine) ResetIdentity(ctx context.Context, slackID string) (Identity, error) {
	now := e.now()
	var old Identity
	err := e.store.Update(ctx, func(tx Tx) error {
		b, ok, err := tx.Identity(slackID)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("slack user %q has no identity binding (`symbot identities` lists them): %w", slackID, ErrNotFound)
		}
		old = b
		if err := tx.DeleteIdentity(slackID); err != nil {
			return err
		}
		detail := fmt.Sprintf("slack_user=%s was bound to okta_user=%s login=%s since %s via=%s", slackID, b.OktaUserID, b.OktaLogin, b.Since().UTC().Format(time.RFC3339), orUnknown(b.Via))
		if b.Conflicted() {
			detail += fmt.Sprintf("; conflict: found okta_user=%s login=%s at %s", b.ConflictOktaUserID, b.ConflictOktaLogin, b.ConflictAt.UTC().Format(time.RFC3339))
		}
		return e.audit(tx, now, "", adminActor(ctx), ActionIdentityReset, detail)
	})
	if err != nil {
		return Identity{}, fmt.Errorf("reset identity: %w", err)
	}
	e.log().Info("identity binding reset", "user", slackID, "okta_user", old.OktaUserID, "conflict", old.Conflicted(), "by", adminActor(ctx))
	return old, nil
}

// refuseConflicted refuses an account whose binding has a conflict, from
// the stored binding alone (no directory call): it may not act until an
// operator resets it.
func refuseConflicted(tx Tx, slackID string) error {
	b, ok, err := tx.Identity(slackID)
	if err != nil {
		return fmt.Errorf("read the identity binding of %s: %w", slackID, err)
	}
	if ok && b.Conflicted() {
		return conflictOf(b)
	}
	return nil
}

// checkActor is refuseConflicted in its own read transaction.
func (e *Engine) checkActor(ctx context.Context, slackID string) error {
	return e.store.View(ctx, func(tx Tx) error { return refuseConflicted(tx, slackID) })
}
