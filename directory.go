// The Directory port (Okta): people, group membership, the token source, and
// the cached Slack-to-Okta identity.

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
}

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

// Identity caches the mapping from a Slack user to an Okta user.
type Identity struct {
	SlackID    string
	Email      string
	OktaUserID string
	OktaLogin  string
	CachedAt   time.Time
}
