// Package admin is symbot's admin protocol: the service the daemon exposes,
// its wire types, the HTTP server on the unix socket and the client that the
// admin commands use.
//
// The daemon holds the store's lock, so admin commands
// ask it over a unix socket (mode 0600: only the user that runs symbot, and
// root, may connect). The protocol is HTTP/1.1 with JSON bodies:
//
//	GET  /requests            -> {"requests": [Request...]}   pending + approved
//	GET  /grants              -> {"requests": [Request...]}   active
//	POST /revoke {id, reason} -> {"request": Request}
//	GET  /audit?since=RFC3339 -> {"entries": [AuditEntry...]}
//	GET  /audit/verify        -> {"ok": bool, "entries": n, "broken": {...}}
//	GET  /backup              -> the store file (application/octet-stream);
//	                             trailers X-Backup-Bytes and X-Backup-Error
//
// Errors are {"error": "..."} with 400, 403, 404, 409 or 500.
package admin

import (
	"context"
	"io"
	"time"

	"github.com/symbot/symbot"
)

// Service is what the admin socket exposes; the wiring implements it
// with the engine and the store.
type Service interface {
	// Requests returns pending and approved requests.
	Requests(ctx context.Context) ([]*symbot.Request, error)
	// Grants returns active grants.
	Grants(ctx context.Context) ([]*symbot.Request, error)
	// Revoke ends an active grant now, as an administrator.
	Revoke(ctx context.Context, id, reason string) (*symbot.Request, error)
	// Audit returns the audit entries at or after since (zero: all).
	Audit(ctx context.Context, since time.Time) ([]symbot.AuditEntry, error)
	// VerifyAudit checks the whole hash chain; a broken chain is an
	// *symbot.AuditError.
	VerifyAudit(ctx context.Context) (entries int, err error)
	// Backup writes a consistent copy of the store to w.
	Backup(ctx context.Context, w io.Writer) (int64, error)
}

// PersonJSON is a person on the admin wire.
type PersonJSON struct {
	SlackID string `json:"slack_id"`
	Name    string `json:"name,omitempty"`
	Email   string `json:"email,omitempty"`
}

// DecisionJSON is an approval on the admin wire.
type DecisionJSON struct {
	By   string    `json:"by"`
	Name string    `json:"name,omitempty"`
	At   time.Time `json:"at"`
	Note string    `json:"note,omitempty"`
}

// RequestJSON is a request on the admin wire and in --json output.
type RequestJSON struct {
	ID              string         `json:"id"`
	Flow            string         `json:"flow"`
	Target          string         `json:"target"`
	GroupID         string         `json:"group_id"`
	Requester       PersonJSON     `json:"requester"`
	Duration        string         `json:"duration"`
	DurationSeconds int64          `json:"duration_seconds"`
	Reason          string         `json:"reason,omitempty"`
	State           string         `json:"state"`
	CreatedAt       time.Time      `json:"created_at"`
	UpdatedAt       time.Time      `json:"updated_at"`
	TimeoutAt       *time.Time     `json:"timeout_at,omitempty"`
	GrantedAt       *time.Time     `json:"granted_at,omitempty"`
	ExpiresAt       *time.Time     `json:"expires_at,omitempty"`
	Approvals       []DecisionJSON `json:"approvals,omitempty"`
	ExtensionOf     string         `json:"extension_of,omitempty"`
	ExtendedBy      []string       `json:"extended_by,omitempty"`
	OktaLogin       string         `json:"okta_login,omitempty"`
	Preexisting     bool           `json:"preexisting,omitempty"`
	Removed         bool           `json:"removed,omitempty"`
	RemovalNote     string         `json:"removal_note,omitempty"`
	FailReason      string         `json:"fail_reason,omitempty"`
	Channel         string         `json:"channel,omitempty"`
	MessageTS       string         `json:"message_ts,omitempty"`
	// For an ended grant whose Okta removal is not done yet (symbot
	// grants): failed attempts, the last error and since when it is queued.
	RemovalAttempts int        `json:"removal_attempts,omitempty"`
	RemovalError    string     `json:"removal_error,omitempty"`
	RemovalSince    *time.Time `json:"removal_since,omitempty"`
}

// AuditJSON is an audit entry on the admin wire.
type AuditJSON struct {
	Seq       uint64    `json:"seq"`
	At        time.Time `json:"at"`
	RequestID string    `json:"request_id,omitempty"`
	Actor     string    `json:"actor"`
	Action    string    `json:"action"`
	Detail    string    `json:"detail,omitempty"`
	PrevHash  string    `json:"prev_hash"`
	Hash      string    `json:"hash"`
}

// VerifyJSON is the answer of GET /audit/verify.
type VerifyJSON struct {
	OK      bool             `json:"ok"`
	Entries int              `json:"entries"`
	Broken  *AuditBrokenJSON `json:"broken,omitempty"`
}

// AuditBrokenJSON names the first broken audit entry.
type AuditBrokenJSON struct {
	Seq     uint64 `json:"seq"`
	Index   int    `json:"index"`
	Problem string `json:"problem"`
}

// RevokeJSON is the body of POST /revoke.
type RevokeJSON struct {
	ID     string `json:"id"`
	Reason string `json:"reason"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func RequestToJSON(r *symbot.Request) RequestJSON {
	out := RequestJSON{
		ID:              r.ID,
		Flow:            r.Flow,
		Target:          r.Target,
		GroupID:         r.GroupID,
		Requester:       PersonJSON{SlackID: r.Requester.SlackID, Name: r.Requester.Name, Email: r.Requester.Email},
		Duration:        symbot.FormatDuration(r.Duration),
		DurationSeconds: int64(r.Duration / time.Second),
		Reason:          r.Reason,
		State:           string(r.State),
		CreatedAt:       r.CreatedAt,
		UpdatedAt:       r.UpdatedAt,
		TimeoutAt:       timePtr(r.TimeoutAt),
		GrantedAt:       timePtr(r.GrantedAt),
		ExpiresAt:       timePtr(r.ExpiresAt),
		ExtensionOf:     r.ExtensionOf,
		ExtendedBy:      r.ExtendedBy,
		OktaLogin:       r.OktaLogin,
		Preexisting:     r.Preexisting,
		Removed:         r.Removed,
		RemovalNote:     r.RemovalNote,
		FailReason:      r.FailReason,
		Channel:         r.Message.Channel,
		MessageTS:       r.Message.TS,
	}
	for _, a := range r.Approvals {
		out.Approvals = append(out.Approvals, DecisionJSON{By: a.By, Name: a.Name, At: a.At, Note: a.Note})
	}
	return out
}

func AuditToJSON(e symbot.AuditEntry) AuditJSON {
	return AuditJSON{Seq: e.Seq, At: e.At, RequestID: e.RequestID, Actor: e.Actor, Action: e.Action, Detail: e.Detail, PrevHash: e.PrevHash, Hash: e.Hash}
}
