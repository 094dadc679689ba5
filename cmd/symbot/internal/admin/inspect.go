package admin

// Revocation you can prove: the reconciler, pending removals, standing
// members, failed grants and one request's whole story on the admin wire.
//
//	POST /reconcile[?dry_run=true] -> ReconcileJSON
//	GET  /standing                 -> {"standing": [StandingJSON...]}
//	GET  /removals                 -> {"removals": [RemovalJSON...]}
//	GET  /failures?since=RFC3339   -> {"requests": [Request...]}   failed grants
//	GET  /show?id=ID               -> StoryJSON

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/symbot/symbot"
)

// Inspector is implemented by a Service that also offers the reconciler
// and the views of removals, failures and one request's story. NewServer
// adds their endpoints when the Service implements it.
type Inspector interface {
	Reconcile(ctx context.Context, dryRun bool) (*symbot.ReconcileReport, error)
	Standing(ctx context.Context) ([]symbot.StandingMember, error)
	PendingRemovals(ctx context.Context) ([]symbot.PendingRemoval, error)
	Failures(ctx context.Context, since time.Time) ([]*symbot.Request, error)
	Story(ctx context.Context, id string) (*symbot.Story, error)
}

// DriftJSON is one difference the reconciler found.
type DriftJSON struct {
	Kind      string `json:"kind"`
	GroupID   string `json:"group_id"`
	Flow      string `json:"flow,omitempty"`
	Target    string `json:"target,omitempty"`
	UserID    string `json:"okta_user_id"`
	Login     string `json:"login,omitempty"`
	RequestID string `json:"request_id,omitempty"`
	Action    string `json:"action"`
}

// ReconcileJSON is the report of one reconcile pass.
type ReconcileJSON struct {
	Started         time.Time      `json:"started"`
	DurationSeconds float64        `json:"duration_seconds"`
	DryRun          bool           `json:"dry_run"`
	Groups          int            `json:"groups"`
	MembersChecked  int            `json:"members_checked"`
	Counts          map[string]int `json:"counts"`
	Drift           []DriftJSON    `json:"drift"`
	Errors          []string       `json:"errors,omitempty"`
}

// StandingJSON is a standing member.
type StandingJSON struct {
	GroupID string    `json:"group_id"`
	Flow    string    `json:"flow,omitempty"`
	Target  string    `json:"target,omitempty"`
	UserID  string    `json:"okta_user_id"`
	Login   string    `json:"login,omitempty"`
	Since   time.Time `json:"since"`
}

// RemovalJSON is an ended grant whose removal is not done yet.
type RemovalJSON struct {
	Request     RequestJSON `json:"request"`
	Attempts    int         `json:"attempts"`
	LastError   string      `json:"last_error,omitempty"`
	Since       time.Time   `json:"since"`
	NextAttempt *time.Time  `json:"next_attempt,omitempty"`
	Alerted     bool        `json:"alerted,omitempty"`
}

// TransitionJSON is one state change of a request.
type TransitionJSON struct {
	From string    `json:"from"`
	To   string    `json:"to"`
	By   string    `json:"by"`
	At   time.Time `json:"at"`
	Note string    `json:"note,omitempty"`
}

// JobJSON is a queued job.
type JobJSON struct {
	ID        uint64    `json:"id"`
	Kind      string    `json:"kind"`
	Event     string    `json:"event,omitempty"`
	To        string    `json:"to,omitempty"`
	Attempts  int       `json:"attempts"`
	LastError string    `json:"last_error,omitempty"`
	NotBefore time.Time `json:"not_before"`
	CreatedAt time.Time `json:"created_at"`
	Alerted   bool      `json:"alerted,omitempty"`
}

// StoryJSON is one request's whole story.
type StoryJSON struct {
	Request     RequestJSON      `json:"request"`
	Transitions []TransitionJSON `json:"transitions"`
	Jobs        []JobJSON        `json:"jobs"`
	Audit       []AuditJSON      `json:"audit"`
}

// ReconcileToJSON maps a report to the wire.
func ReconcileToJSON(r *symbot.ReconcileReport) ReconcileJSON {
	out := ReconcileJSON{Started: r.Started, DurationSeconds: r.Duration.Seconds(), DryRun: r.DryRun, Groups: r.Groups, MembersChecked: r.MembersChecked,
		Counts: map[string]int{}, Drift: []DriftJSON{}, Errors: r.Errors}
	for _, k := range symbot.DriftKinds {
		out.Counts[string(k)] = r.Count(k)
	}
	for _, d := range r.Drift {
		out.Drift = append(out.Drift, DriftJSON{Kind: string(d.Kind), GroupID: d.GroupID, Flow: d.Flow, Target: d.Target, UserID: d.UserID, Login: d.Login, RequestID: d.RequestID, Action: d.Action})
	}
	return out
}

// StoryToJSON maps a story to the wire.
func StoryToJSON(s *symbot.Story) StoryJSON {
	out := StoryJSON{Request: RequestToJSON(s.Request), Transitions: []TransitionJSON{}, Jobs: []JobJSON{}, Audit: []AuditJSON{}}
	for _, t := range s.Request.Transitions {
		out.Transitions = append(out.Transitions, TransitionJSON{From: string(t.From), To: string(t.To), By: t.By, At: t.At, Note: t.Note})
	}
	for _, j := range s.Jobs {
		out.Jobs = append(out.Jobs, JobJSON{ID: j.ID, Kind: string(j.Kind), Event: string(j.Event), To: j.To, Attempts: j.Attempts, LastError: j.LastError, NotBefore: j.NotBefore, CreatedAt: j.CreatedAt, Alerted: j.Alerted})
	}
	for _, a := range s.Audit {
		out.Audit = append(out.Audit, AuditToJSON(a))
	}
	return out
}

func (a *adminServer) addInspector(mux *http.ServeMux, in Inspector) {
	mux.HandleFunc("POST /reconcile", func(w http.ResponseWriter, r *http.Request) {
		dry, _ := strconv.ParseBool(r.URL.Query().Get("dry_run"))
		rep, err := in.Reconcile(r.Context(), dry)
		if rep == nil {
			a.fail(w, r, err)
			return
		}
		// A pass with failed groups still reports what it found; the
		// failures are in its errors.
		writeJSON(w, http.StatusOK, ReconcileToJSON(rep))
	})
	mux.HandleFunc("GET /standing", func(w http.ResponseWriter, r *http.Request) {
		ms, err := in.Standing(r.Context())
		if err != nil {
			a.fail(w, r, err)
			return
		}
		out := make([]StandingJSON, 0, len(ms))
		for _, m := range ms {
			out = append(out, StandingJSON{GroupID: m.GroupID, Flow: m.Flow, Target: m.Target, UserID: m.UserID, Login: m.Login, Since: m.Since})
		}
		writeJSON(w, http.StatusOK, map[string]any{"standing": out})
	})
	mux.HandleFunc("GET /removals", func(w http.ResponseWriter, r *http.Request) {
		prs, err := in.PendingRemovals(r.Context())
		if err != nil {
			a.fail(w, r, err)
			return
		}
		out := make([]RemovalJSON, 0, len(prs))
		for _, p := range prs {
			out = append(out, RemovalJSON{Request: RequestToJSON(p.Request), Attempts: p.Attempts, LastError: p.LastError, Since: p.Since, NextAttempt: timePtr(p.NextAttempt), Alerted: p.Alerted})
		}
		writeJSON(w, http.StatusOK, map[string]any{"removals": out})
	})
	mux.HandleFunc("GET /failures", func(w http.ResponseWriter, r *http.Request) {
		since, ok := queryTime(w, r, "since")
		if !ok {
			return
		}
		a.list(func(ctx context.Context) ([]*symbot.Request, error) { return in.Failures(ctx, since) })(w, r)
	})
	mux.HandleFunc("GET /show", func(w http.ResponseWriter, r *http.Request) {
		id := strings.TrimSpace(r.URL.Query().Get("id"))
		if id == "" {
			writeError(w, http.StatusBadRequest, "id: missing")
			return
		}
		s, err := in.Story(r.Context(), id)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, StoryToJSON(s))
	})
}

// Reconcile runs one reconcile pass on the daemon.
func (c *Client) Reconcile(ctx context.Context, dryRun bool) (ReconcileJSON, error) {
	var out ReconcileJSON
	err := c.getJSON(ctx, http.MethodPost, "/reconcile?dry_run="+strconv.FormatBool(dryRun), nil, &out)
	return out, err
}

// Standing lists the standing members.
func (c *Client) Standing(ctx context.Context) ([]StandingJSON, error) {
	var out struct{ Standing []StandingJSON }
	err := c.getJSON(ctx, http.MethodGet, "/standing", nil, &out)
	return out.Standing, err
}

// Removals lists ended grants whose removal is pending.
func (c *Client) Removals(ctx context.Context) ([]RemovalJSON, error) {
	var out struct{ Removals []RemovalJSON }
	err := c.getJSON(ctx, http.MethodGet, "/removals", nil, &out)
	return out.Removals, err
}

// Failures lists grants that failed since the given time.
func (c *Client) Failures(ctx context.Context, since time.Time) ([]RequestJSON, error) {
	var out struct{ Requests []RequestJSON }
	err := c.getJSON(ctx, http.MethodGet, "/failures?since="+url.QueryEscape(since.UTC().Format(time.RFC3339Nano)), nil, &out)
	return out.Requests, err
}

// Show returns one request's whole story.
func (c *Client) Show(ctx context.Context, id string) (StoryJSON, error) {
	var out StoryJSON
	err := c.getJSON(ctx, http.MethodGet, "/show?id="+url.QueryEscape(id), nil, &out)
	return out, err
}
