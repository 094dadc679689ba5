// The Directory port (Okta): people, group membership, the token source, and
// the binding of a Slack account to one Okta user.

package symbot

import (
	"context"
	"time"
)

// DirUser is a person in the directory (Okta).
type DirUser struct {
	ID     string
	Login  string
	Email  string
	Status string // ACTIVE, SUSPENDED, ...
	// Via says how ResolveUser found the user: ViaEmail or ViaOverride
	// ("" when the directory does not say).
	Via string
}

// How a Slack account was resolved to its directory user (DirUser.Via,
// Identity.Via).
const (
	ViaEmail    = "email"    // by the email on the Slack profile
	ViaOverride = "override" // by an okta.user_overrides entry
)

// Directory is the identity provider: Okta. Errors wrap ErrUserNotFound,
// ErrUserNotActive, ErrGroupNotFound, ErrTokenRejected, ErrRateLimited or
// ErrUnavailable.
type Directory interface {
	// ResolveUser finds the active directory user for a Slack person.
	ResolveUser(ctx context.Context, p Person) (DirUser, error)
	IsMember(ctx context.Context, userID, groupID string) (bool, error)
	// AddMember and RemoveMember are idempotent.
	AddMember(ctx context.Context, userID, groupID string) error
	RemoveMember(ctx context.Context, userID, groupID string) error
	// ListMembers returns every member of the group (all pages). The
	// reconciler calls it once per target group per pass.
	ListMembers(ctx context.Context, groupID string) ([]DirUser, error)
}

// Identity binds a Slack account to one Okta user. The first resolution
// stores it; later resolutions (refreshing the cached login and email)
// must find the same Okta user. When one finds another (a renamed or
// re-used email, a takeover), the binding records the conflict and every
// action of the account is refused until an operator resets it
// (Engine.ResetIdentity).
type Identity struct {
	SlackID    string
	Email      string // the Slack email it was last resolved from
	OktaUserID string // the bound Okta user: never changes but by a reset
	OktaLogin  string
	CachedAt   time.Time // when a resolution last confirmed it
	// BoundAt is when the binding was made (zero for an identity cached
	// before bindings existed: it counts as bound at CachedAt), and Via how
	// (ViaEmail, ViaOverride; "" when not known).
	BoundAt time.Time
	Via     string
	// The conflict, when a later resolution found another Okta user:
	// which, from which email, and when. Empty when there is none.
	ConflictOktaUserID string
	ConflictOktaLogin  string
	ConflictEmail      string
	ConflictAt         time.Time
}

// Conflicted reports whether a resolution found another Okta user than the
// bound one: the account may not act until an operator resets the binding.
func (i Identity) Conflicted() bool { return i.ConflictOktaUserID != "" }

// Since returns when the binding was made (CachedAt for an identity cached
// before bindings existed).
func (i Identity) Since() time.Time {
	if i.BoundAt.IsZero() {
		return i.CachedAt
	}
	return i.BoundAt
}
