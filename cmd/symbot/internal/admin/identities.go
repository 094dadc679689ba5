package admin

// Identity bindings on the admin wire: list them, and reset one.
//
//	GET  /identities                        -> {"identities": [IdentityJSON...]}
//	POST /identity/reset {"slack_id": "U.."} -> {"identity": IdentityJSON}  the binding removed

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/symbot/symbot"
)

// IdentityService is implemented by a Service that also offers the
// identity bindings. NewServer adds their endpoints when it does.
type IdentityService interface {
	Identities(ctx context.Context) ([]symbot.Identity, error)
	// ResetIdentity removes a Slack account's binding (audited with the
	// operator) and returns it.
	ResetIdentity(ctx context.Context, slackID string) (symbot.Identity, error)
}

// IdentityJSON is one binding of a Slack account to an Okta user.
type IdentityJSON struct {
	SlackID    string    `json:"slack_id"`
	OktaUserID string    `json:"okta_user_id"`
	OktaLogin  string    `json:"okta_login"`
	Email      string    `json:"email,omitempty"`
	Via        string    `json:"via,omitempty"` // email, override; empty when not known
	BoundAt    time.Time `json:"bound_at"`
	CheckedAt  time.Time `json:"checked_at"`         // when a resolution last confirmed it
	Status     string    `json:"status"`             // "ok" or "mismatch"
	Conflict   *Conflict `json:"conflict,omitempty"` // with status mismatch
}

// Conflict is the other Okta user a later resolution found.
type Conflict struct {
	OktaUserID string    `json:"okta_user_id"`
	OktaLogin  string    `json:"okta_login"`
	Email      string    `json:"email,omitempty"`
	At         time.Time `json:"at"`
}

// The binding statuses.
const (
	IdentityOK       = "ok"
	IdentityMismatch = "mismatch"
)

// IdentityToJSON maps a binding to the wire.
func IdentityToJSON(id symbot.Identity) IdentityJSON {
	out := IdentityJSON{SlackID: id.SlackID, OktaUserID: id.OktaUserID, OktaLogin: id.OktaLogin, Email: id.Email, Via: id.Via,
		BoundAt: id.Since(), CheckedAt: id.CachedAt, Status: IdentityOK}
	if id.Conflicted() {
		out.Status = IdentityMismatch
		out.Conflict = &Conflict{OktaUserID: id.ConflictOktaUserID, OktaLogin: id.ConflictOktaLogin, Email: id.ConflictEmail, At: id.ConflictAt}
	}
	return out
}

// ResetIdentityJSON is the body of POST /identity/reset.
type ResetIdentityJSON struct {
	SlackID string `json:"slack_id"`
}

func (a *adminServer) addIdentities(mux *http.ServeMux, is IdentityService) {
	mux.HandleFunc("GET /identities", func(w http.ResponseWriter, r *http.Request) {
		ids, err := is.Identities(r.Context())
		if err != nil {
			a.fail(w, r, err)
			return
		}
		out := make([]IdentityJSON, 0, len(ids))
		for _, id := range ids {
			out = append(out, IdentityToJSON(id))
		}
		writeJSON(w, http.StatusOK, map[string]any{"identities": out})
	})
	mux.HandleFunc("POST /identity/reset", func(w http.ResponseWriter, r *http.Request) {
		var in ResetIdentityJSON
		dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in); err != nil {
			writeError(w, http.StatusBadRequest, "body must be JSON {\"slack_id\": ...}: "+err.Error())
			return
		}
		in.SlackID = strings.TrimSpace(in.SlackID)
		if in.SlackID == "" {
			writeError(w, http.StatusBadRequest, "slack_id: missing")
			return
		}
		old, err := is.ResetIdentity(r.Context(), in.SlackID)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		a.log.InfoContext(r.Context(), "admin reset identity binding", "user", in.SlackID)
		writeJSON(w, http.StatusOK, map[string]any{"identity": IdentityToJSON(old)})
	})
}

// Identities lists the identity bindings.
func (c *Client) Identities(ctx context.Context) ([]IdentityJSON, error) {
	var out struct{ Identities []IdentityJSON }
	err := c.getJSON(ctx, http.MethodGet, "/identities", nil, &out)
	return out.Identities, err
}

// ResetIdentity removes a Slack account's binding and returns it.
func (c *Client) ResetIdentity(ctx context.Context, slackID string) (IdentityJSON, error) {
	var out struct{ Identity IdentityJSON }
	err := c.getJSON(ctx, http.MethodPost, "/identity/reset", ResetIdentityJSON{SlackID: slackID}, &out)
	return out.Identity, err
}
