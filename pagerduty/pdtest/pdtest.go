// Package pdtest is a PagerDuty REST API v2 simulator on 127.0.0.1, for
// tests and the demo: the parts symbot uses, on the wire as PagerDuty
// speaks them, with fault injection.
//
//	GET /oncalls          schedule_ids[], escalation_policy_ids[], user_ids[],
//	                      include[]=users, limit (<= 100, default 25), offset;
//	                      answers {"oncalls": [...], "limit", "offset", "more", "total": null}
//	GET /schedules/{id}   {"schedule": {...}}, or 404
//	GET /escalation_policies/{id}   {"escalation_policy": {...}}, or 404
//
// Every request needs `Authorization: Token token=<Token()>`; errors are
// PagerDuty's {"error": {"message", "code"}}. On-calls are what PagerDuty
// computes: one entry per escalation policy level and person on call at it
// (through a schedule, or named directly). A schedule in no escalation
// policy has no on-calls, as in PagerDuty. Unknown ids in the filters
// match nothing.
package pdtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Server is the simulator.
type Server struct {
	srv   *httptest.Server
	token string

	mu        sync.Mutex
	users     map[string]user
	schedules map[string]*schedule
	policies  []*policy
	faults    []fault
	down      int // answer every request with this status (0: up)
	calls     []string
}

type user struct{ id, name, email string }

type schedule struct {
	id, name string
	onCall   []string // user ids on call now
}

type policy struct {
	id, name string
	levels   [][]string // per level: schedule ids or user ids
}

type fault struct{ status int }

// New starts a simulator that accepts token.
func New(token string) *Server {
	s := &Server{token: token, users: map[string]user{}, schedules: map[string]*schedule{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /oncalls", s.oncalls)
	mux.HandleFunc("GET /schedules/{id}", s.getSchedule)
	mux.HandleFunc("GET /escalation_policies/{id}", s.getPolicy)
	s.srv = httptest.NewServer(s.gate(mux))
	return s
}

// URL is the API base, http://127.0.0.1:port.
func (s *Server) URL() string { return s.srv.URL }

// Token is the API token the server accepts.
func (s *Server) Token() string { return s.token }

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// AddUser adds a PagerDuty user.
func (s *Server) AddUser(id, name, email string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[id] = user{id: id, name: name, email: email}
}

// SetSchedule creates or replaces a schedule with the users on call in it now.
func (s *Server) SetSchedule(id, name string, onCall ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.schedules[id] = &schedule{id: id, name: name, onCall: onCall}
}

// AddEscalationPolicy adds a policy; each level lists schedule ids or
// user ids.
func (s *Server) AddEscalationPolicy(id, name string, levels ...[]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.policies = append(s.policies, &policy{id: id, name: name, levels: levels})
}

// FailNext answers the next requests with these HTTP statuses, one each.
func (s *Server) FailNext(statuses ...int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range statuses {
		s.faults = append(s.faults, fault{status: st})
	}
}

// SetDown answers every request with status (503, say) until SetDown(0).
func (s *Server) SetDown(status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = status
}

// Calls returns the requests served so far, as "GET /oncalls?...".
func (s *Server) Calls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status, code int, msg string, errs ...string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{"message": msg, "code": code, "errors": errs}})
}

func (s *Server) gate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.calls = append(s.calls, r.Method+" "+r.URL.RequestURI())
		status := s.down
		if status == 0 && len(s.faults) > 0 {
			status = s.faults[0].status
			s.faults = s.faults[1:]
		}
		s.mu.Unlock()
		switch {
		case status == http.StatusTooManyRequests:
			w.Header().Set("Retry-After", "1")
			writeError(w, status, 2020, "Rate Limit Exceeded")
			return
		case status != 0:
			writeError(w, status, 2001, http.StatusText(status))
			return
		}
		if r.Header.Get("Authorization") != "Token token="+s.token {
			writeError(w, http.StatusUnauthorized, 2006, "Invalid Credentials", "You must provide a valid API key in the Authorization header")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) userRef(id string, full bool) map[string]any {
	u := s.users[id]
	if !full {
		return map[string]any{"id": id, "type": "user_reference", "summary": u.name, "self": s.srv.URL + "/users/" + id}
	}
	return map[string]any{"id": id, "type": "user", "name": u.name, "summary": u.name, "email": u.email, "self": s.srv.URL + "/users/" + id}
}

func (s *Server) oncalls(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, offset := 25, 0
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			writeError(w, http.StatusBadRequest, 2001, "Invalid Input Provided", "Limit must be a positive integer.")
			return
		}
		limit = min(n, 100)
	}
	if v := q.Get("offset"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, 2001, "Invalid Input Provided", "Offset must be a non-negative integer.")
			return
		}
		offset = n
	}
	scheds, eps, users := q["schedule_ids[]"], q["escalation_policy_ids[]"], q["user_ids[]"]
	full := slices.Contains(q["include[]"], "users")

	now := time.Now().UTC()
	s.mu.Lock()
	var all []map[string]any
	for _, p := range s.policies {
		if len(eps) > 0 && !slices.Contains(eps, p.id) {
			continue
		}
		for lvl, targets := range p.levels {
			for _, t := range targets {
				var who []string
				var sched any // null for a person named directly
				if sc, ok := s.schedules[t]; ok {
					who = sc.onCall
					sched = map[string]any{"id": sc.id, "type": "schedule_reference", "summary": sc.name}
				} else {
					who = []string{t}
				}
				if len(scheds) > 0 {
					if sc, ok := sched.(map[string]any); !ok || !slices.Contains(scheds, sc["id"].(string)) {
						continue
					}
				}
				for _, uid := range who {
					if len(users) > 0 && !slices.Contains(users, uid) {
						continue
					}
					all = append(all, map[string]any{
						"user":              s.userRef(uid, full),
						"schedule":          sched,
						"escalation_policy": map[string]any{"id": p.id, "type": "escalation_policy_reference", "summary": p.name},
						"escalation_level":  lvl + 1,
						"start":             now.Add(-time.Hour).Format(time.RFC3339),
						"end":               now.Add(time.Hour).Format(time.RFC3339),
					})
				}
			}
		}
	}
	s.mu.Unlock()
	page := []map[string]any{}
	if offset < len(all) {
		page = all[offset:min(offset+limit, len(all))]
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"oncalls": page, "limit": limit, "offset": offset,
		"more": offset+limit < len(all), "total": nil,
	})
}

func (s *Server) getSchedule(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.mu.Lock()
	sc, ok := s.schedules[id]
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, 2100, "Not Found")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"schedule": map[string]any{
		"id": sc.id, "type": "schedule", "name": sc.name, "summary": sc.name, "time_zone": "UTC",
		"html_url": fmt.Sprintf("https://example.pagerduty.com/schedules/%s", strings.ToLower(sc.id)),
	}})
}

func (s *Server) getPolicy(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.mu.Lock()
	var p *policy
	for _, x := range s.policies {
		if x.id == id {
			p = x
		}
	}
	s.mu.Unlock()
	if p == nil {
		writeError(w, http.StatusNotFound, 2100, "Not Found")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"escalation_policy": map[string]any{
		"id": p.id, "type": "escalation_policy", "name": p.name, "summary": p.name, "num_loops": 0,
	}})
}
