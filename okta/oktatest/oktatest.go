// Package oktatest is an Okta management API simulator on 127.0.0.1 that
// speaks the wire protocol okta-sdk-golang expects: SSWS token auth, Okta's
// error bodies, Link paging, rate-limit headers with 429s, recorded calls,
// and fault injection. It uses only the standard library and does not import
// testing, so `symbot demo` can run it too.
//
// Endpoints (and the operation names used by Inject, Hold and Call.Op):
//
//	GET    /api/v1/users/{idOrLogin}           "GET user"
//	GET    /api/v1/users?search=|filter=|q=    "search"
//	GET    /api/v1/users/{id}/groups           "GET user groups"
//	GET    /api/v1/groups/{gid}                "GET group"
//	GET    /api/v1/groups/{gid}/users          "LIST members"  (limit, after; Link rel="next")
//	PUT    /api/v1/groups/{gid}/users/{uid}    "PUT membership"    (204)
//	DELETE /api/v1/groups/{gid}/users/{uid}    "DELETE membership" (204)
//
// The op "*" in Inject or Hold matches every operation.
package oktatest

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Operation names for Inject, Hold and Call.Op.
const (
	OpGetUser       = "GET user"
	OpSearch        = "search"
	OpUserGroups    = "GET user groups"
	OpGetGroup      = "GET group"
	OpListMembers   = "LIST members"
	OpPutMembership = "PUT membership"
	OpDelMembership = "DELETE membership"
	OpAll           = "*"
)

// User is an Okta user as the simulator stores it.
type User struct {
	ID        string // generated ("00u...") when empty
	Login     string // defaults to Email
	Email     string // defaults to Login
	FirstName string
	LastName  string
	Status    string // ACTIVE (default), SUSPENDED, DEPROVISIONED, STAGED, ...
}

// Group is an Okta group as the simulator stores it.
type Group struct {
	ID          string // generated ("00g...") when empty
	Name        string
	Description string
	Type        string // OKTA_GROUP (default)
}

// Call is one recorded HTTP request.
type Call struct {
	Method string
	Path   string
	Query  string    // raw query
	Op     string    // operation name, "" for unknown routes
	Status int       // -1 when no answer was written (dropped, or the client left)
	At     time.Time // when the request arrived
}

// MembershipChange is one membership PUT or DELETE the simulator applied,
// whether or not it changed anything (Okta answers 204 either way).
type MembershipChange struct {
	Group, User string
	Add         bool      // PUT (true) or DELETE
	Changed     bool      // false: already a member (PUT) or not one (DELETE)
	At          time.Time // when it took effect
}

// Fault changes how requests of one operation are answered.
type Fault struct {
	// Latency delays the answer (the request's context still ends it).
	Latency time.Duration
	// ErrorRate is the fraction (0..1) of requests answered with Status
	// (500 when Status is 0). When ErrorRate is 0 and Status is set, every
	// matched request gets Status.
	ErrorRate float64
	// Status is the HTTP status of an injected error: 5xx, or 429 (answered
	// as Okta's rate-limit error with Remaining 0).
	Status int
	// Drop closes the connection without an answer instead of an error status.
	Drop bool
	// Count limits the fault to the next Count matched requests (0: forever).
	Count int
}

type faultState struct {
	Fault
	used int
}

type hold struct {
	before      bool // hold before the effect (true) or after it, before the answer
	release     chan struct{}
	arrived     chan struct{}
	once        sync.Once // closes release
	arrivedOnce sync.Once // closes arrived
}

// Server is a running simulator. Its methods are safe for concurrent use.
type Server struct {
	srv *httptest.Server
	mux *http.ServeMux

	mu       sync.Mutex
	token    string
	seq      int
	users    map[string]*User           // by id
	byLogin  map[string]string          // lower-case login -> id
	groups   map[string]*Group          // by id
	members  map[string]map[string]bool // gid -> uid set
	created  time.Time
	limit    int
	window   time.Duration
	winStart time.Time
	winCount int
	calls    []Call
	changes  []MembershipChange
	faults   map[string]*faultState
	holds    map[string]*hold
	rng      *mrand.Rand
}

// NewServer starts a simulator on 127.0.0.1 with a random API token, no
// users or groups, and a rate limit of 100,000 calls a minute.
func NewServer() *Server {
	s := &Server{
		token:   "sim-" + randHex(16),
		users:   map[string]*User{},
		byLogin: map[string]string{},
		groups:  map[string]*Group{},
		members: map[string]map[string]bool{},
		created: time.Now().UTC().Truncate(time.Second),
		limit:   100000,
		window:  time.Minute,
		faults:  map[string]*faultState{},
		holds:   map[string]*hold{},
		rng:     mrand.New(mrand.NewPCG(1, 2)),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/users/{id}", s.getUser)
	mux.HandleFunc("GET /api/v1/users", s.searchUsers)
	mux.HandleFunc("GET /api/v1/users/{id}/groups", s.userGroups)
	mux.HandleFunc("GET /api/v1/groups/{gid}", s.getGroup)
	mux.HandleFunc("GET /api/v1/groups/{gid}/users", s.listMembers)
	mux.HandleFunc("PUT /api/v1/groups/{gid}/users/{uid}", s.putMember)
	mux.HandleFunc("DELETE /api/v1/groups/{gid}/users/{uid}", s.deleteMember)
	s.mux = mux
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

var opByPattern = map[string]string{
	"GET /api/v1/users/{id}":                  OpGetUser,
	"GET /api/v1/users":                       OpSearch,
	"GET /api/v1/users/{id}/groups":           OpUserGroups,
	"GET /api/v1/groups/{gid}":                OpGetGroup,
	"GET /api/v1/groups/{gid}/users":          OpListMembers,
	"PUT /api/v1/groups/{gid}/users/{uid}":    OpPutMembership,
	"DELETE /api/v1/groups/{gid}/users/{uid}": OpDelMembership,
}

// URL returns the org URL, http://127.0.0.1:port, without a trailing slash.
func (s *Server) URL() string { return s.srv.URL }

// Close shuts the server down, releasing any held requests first.
func (s *Server) Close() {
	s.mu.Lock()
	for op, h := range s.holds {
		h.once.Do(func() { close(h.release) })
		delete(s.holds, op)
	}
	s.mu.Unlock()
	s.srv.CloseClientConnections()
	s.srv.Close()
}

// Token returns the API token the server accepts.
func (s *Server) Token() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.token
}

// SetToken rotates the accepted API token; the old one is rejected from now on.
func (s *Server) SetToken(t string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.token = t
}

// AddUser stores u (replacing a user with the same ID) and returns it with
// defaults filled in.
func (s *Server) AddUser(u User) User {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u.ID == "" {
		s.seq++
		u.ID = fmt.Sprintf("00u%017d", s.seq)
	}
	if u.Login == "" {
		u.Login = u.Email
	}
	if u.Email == "" {
		u.Email = u.Login
	}
	if u.Status == "" {
		u.Status = "ACTIVE"
	}
	if old, ok := s.users[u.ID]; ok {
		delete(s.byLogin, strings.ToLower(old.Login))
	}
	s.users[u.ID] = &u
	s.byLogin[strings.ToLower(u.Login)] = u.ID
	return u
}

// SetUserStatus changes a stored user's status; it panics for an unknown id.
func (s *Server) SetUserStatus(id, status string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[id]
	if !ok {
		panic("oktatest: SetUserStatus: no user " + id)
	}
	u.Status = status
}

// User returns the stored user with the id.
func (s *Server) User(id string) (User, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[id]
	if !ok {
		return User{}, false
	}
	return *u, true
}

// AddGroup stores g and returns it with defaults filled in.
func (s *Server) AddGroup(g Group) Group {
	s.mu.Lock()
	defer s.mu.Unlock()
	if g.ID == "" {
		s.seq++
		g.ID = fmt.Sprintf("00g%017d", s.seq)
	}
	if g.Name == "" {
		g.Name = g.ID
	}
	if g.Type == "" {
		g.Type = "OKTA_GROUP"
	}
	s.groups[g.ID] = &g
	if s.members[g.ID] == nil {
		s.members[g.ID] = map[string]bool{}
	}
	return g
}

// AddMember makes uid a member of gid directly (no HTTP call recorded).
// It panics when either is unknown: that is a mistake in the test setup.
func (s *Server) AddMember(gid, uid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.groups[gid] == nil {
		panic("oktatest: AddMember: no group " + gid)
	}
	if s.users[uid] == nil {
		panic("oktatest: AddMember: no user " + uid)
	}
	s.members[gid][uid] = true
}

// RemoveMember removes uid from gid directly (no HTTP call recorded).
func (s *Server) RemoveMember(gid, uid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.members[gid], uid)
}

// Members returns the user ids in gid, sorted.
func (s *Server) Members(gid string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.memberIDs(gid)
}

// IsMember reports whether uid is in gid.
func (s *Server) IsMember(gid, uid string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.members[gid][uid]
}

// SetRateLimit allows limit calls per window (windows aligned to the wall
// clock, like Okta's per-minute buckets); further calls get 429 E0000047.
// Every response carries X-Rate-Limit-Limit, -Remaining and -Reset (epoch
// seconds). One bucket counts every endpoint.
func (s *Server) SetRateLimit(limit int, window time.Duration) {
	if window < time.Second {
		window = time.Second
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limit, s.window = limit, window
	s.winStart, s.winCount = time.Time{}, 0
}

// Calls returns a copy of every recorded request, in the order their
// handling finished.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// MembershipLog returns every membership PUT and DELETE that took effect
// (answered or not: a client that left after the effect still changed the
// group), in order. AddMember and RemoveMember are not in it.
func (s *Server) MembershipLog() []MembershipChange {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.changes)
}

// ResetCalls forgets the recorded requests.
func (s *Server) ResetCalls() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = nil
}

// CountCalls counts recorded requests with the method ("" for any) whose
// path starts with pathPrefix.
func (s *Server) CountCalls(method, pathPrefix string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.calls {
		if (method == "" || c.Method == method) && strings.HasPrefix(c.Path, pathPrefix) {
			n++
		}
	}
	return n
}

// CountStatus counts recorded requests answered with status.
func (s *Server) CountStatus(status int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.calls {
		if c.Status == status {
			n++
		}
	}
	return n
}

// Inject sets the fault for an operation (see the package doc for names),
// replacing any earlier one for it.
func (s *Server) Inject(op string, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[op] = &faultState{Fault: f}
}

// ClearFaults removes every injected fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.faults)
}

// Hold blocks requests of op before they take effect until release is
// called (or the client goes away, in which case nothing changes).
// arrived is closed when the first such request is blocked. Use it to
// crash a process while a membership change is in flight.
func (s *Server) Hold(op string) (arrived <-chan struct{}, release func()) {
	return s.hold(op, true)
}

// HoldAnswer lets requests of op take effect and then blocks their answer
// until release is called: the change happened but the client has not
// heard so.
func (s *Server) HoldAnswer(op string) (arrived <-chan struct{}, release func()) {
	return s.hold(op, false)
}

func (s *Server) hold(op string, before bool) (<-chan struct{}, func()) {
	h := &hold{before: before, release: make(chan struct{}), arrived: make(chan struct{})}
	s.mu.Lock()
	s.holds[op] = h
	s.mu.Unlock()
	return h.arrived, func() {
		s.mu.Lock()
		if s.holds[op] == h {
			delete(s.holds, op)
		}
		s.mu.Unlock()
		h.once.Do(func() { close(h.release) })
	}
}

// --- request handling ---

type ctxKey struct{}

type reqState struct {
	op   string
	hold *hold
}

type recorder struct {
	http.ResponseWriter
	status int
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	_, pattern := s.mux.Handler(r)
	op := opByPattern[pattern]
	rec := &recorder{ResponseWriter: w}
	now := time.Now()
	defer func() {
		st := rec.status
		if st == 0 {
			st = -1 // dropped, or the client left first
		}
		s.mu.Lock()
		s.calls = append(s.calls, Call{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Op: op, Status: st, At: now})
		s.mu.Unlock()
	}()

	s.mu.Lock()
	limit, remaining, reset, limited := s.countLocked(now)
	token := s.token
	fault := s.matchFaultLocked(op)
	h := s.holds[op]
	if h == nil {
		h = s.holds[OpAll]
	}
	s.mu.Unlock()

	hd := w.Header()
	hd.Set("Date", now.UTC().Format(http.TimeFormat))
	hd.Set("X-Okta-Request-Id", randHex(10))
	hd.Set("X-Rate-Limit-Limit", strconv.Itoa(limit))
	hd.Set("X-Rate-Limit-Remaining", strconv.Itoa(remaining))
	hd.Set("X-Rate-Limit-Reset", strconv.FormatInt(reset, 10))

	if limited {
		writeError(rec, http.StatusTooManyRequests, "E0000047", "API call exceeded rate limit due to too many requests.")
		return
	}
	if !checkToken(r.Header.Get("Authorization"), token) {
		writeError(rec, http.StatusUnauthorized, "E0000011", "Invalid token provided")
		return
	}
	if fault != nil {
		if fault.Latency > 0 {
			t := time.NewTimer(fault.Latency)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		if fault.Drop {
			if hj, ok := w.(http.Hijacker); ok {
				if conn, _, err := hj.Hijack(); err == nil {
					_ = conn.Close()
					return
				}
			}
			panic(http.ErrAbortHandler)
		}
		switch {
		case fault.Status == http.StatusTooManyRequests:
			hd.Set("X-Rate-Limit-Remaining", "0")
			writeError(rec, http.StatusTooManyRequests, "E0000047", "API call exceeded rate limit due to too many requests.")
			return
		case fault.Status != 0:
			writeError(rec, fault.Status, "E0000009", "Internal Server Error")
			return
		}
	}
	if h != nil && h.before {
		if !waitHold(r.Context(), h) {
			return
		}
	}
	ctx := context.WithValue(r.Context(), ctxKey{}, &reqState{op: op, hold: h})
	if op == "" {
		writeError(rec, http.StatusNotFound, "E0000022", "The endpoint does not support the provided HTTP method")
		return
	}
	s.mux.ServeHTTP(rec, r.WithContext(ctx))
}

// afterEffect blocks on a HoldAnswer hold, if any; false when the client left.
func afterEffect(r *http.Request) bool {
	st, _ := r.Context().Value(ctxKey{}).(*reqState)
	if st == nil || st.hold == nil || st.hold.before {
		return true
	}
	return waitHold(r.Context(), st.hold)
}

func waitHold(ctx context.Context, h *hold) bool {
	h.arrivedOnce.Do(func() { close(h.arrived) })
	select {
	case <-h.release:
		return true
	case <-ctx.Done():
		return false
	}
}

// matchFaultLocked returns the fault to apply to this request of op, if any.
func (s *Server) matchFaultLocked(op string) *Fault {
	fs := s.faults[op]
	if fs == nil {
		fs = s.faults[OpAll]
	}
	if fs == nil || op == "" {
		return nil
	}
	if fs.Count > 0 && fs.used >= fs.Count {
		return nil
	}
	f := fs.Fault
	if f.ErrorRate > 0 {
		if s.rng.Float64() >= f.ErrorRate {
			// not this one: only latency applies
			if f.Latency == 0 {
				return nil
			}
			f.Status, f.Drop = 0, false
		} else if f.Status == 0 && !f.Drop {
			f.Status = http.StatusInternalServerError
		}
	}
	fs.used++
	return &f
}

// countLocked counts one call against the current window and reports the
// headers and whether it exceeds the limit.
func (s *Server) countLocked(now time.Time) (limit, remaining int, reset int64, limited bool) {
	start := now.Truncate(s.window)
	if !start.Equal(s.winStart) {
		s.winStart, s.winCount = start, 0
	}
	s.winCount++
	end := start.Add(s.window)
	reset = end.Unix()
	if end.Nanosecond() != 0 {
		reset++
	}
	remaining = max(s.limit-s.winCount, 0)
	return s.limit, remaining, reset, s.limit > 0 && s.winCount > s.limit
}

func checkToken(header, token string) bool {
	got, ok := strings.CutPrefix(header, "SSWS ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(token)) == 1
}

// --- endpoints ---

func (s *Server) getUser(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.mu.Lock()
	u := s.findUserLocked(id)
	var body map[string]any
	if u != nil {
		body = s.userJSON(u)
	}
	s.mu.Unlock()
	if u == nil {
		notFound(w, id, "User")
		return
	}
	writeJSON(w, http.StatusOK, body)
}

func (s *Server) findUserLocked(idOrLogin string) *User {
	if u := s.users[idOrLogin]; u != nil {
		return u
	}
	if id, ok := s.byLogin[strings.ToLower(idOrLogin)]; ok {
		return s.users[id]
	}
	return nil
}

func (s *Server) searchUsers(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	expr := q.Get("search")
	if expr == "" {
		expr = q.Get("filter")
	}
	var match func(*User) bool
	switch {
	case expr != "":
		m, err := parseExpr(expr)
		if err != nil {
			writeError(w, http.StatusBadRequest, "E0000031", "Invalid search criteria.")
			return
		}
		match = m
	case q.Get("q") != "":
		prefix := strings.ToLower(q.Get("q"))
		match = func(u *User) bool {
			for _, v := range []string{u.FirstName, u.LastName, u.Email, u.Login} {
				if strings.HasPrefix(strings.ToLower(v), prefix) {
					return true
				}
			}
			return false
		}
	default:
		match = func(u *User) bool { return u.Status != "DEPROVISIONED" }
	}
	limit, after, ok := pageParams(w, q, 200, 200)
	if !ok {
		return
	}
	s.mu.Lock()
	ids := make([]string, 0, len(s.users))
	for id, u := range s.users {
		if match(u) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	page, next := pageOf(ids, after, limit)
	out := make([]map[string]any, 0, len(page))
	for _, id := range page {
		out = append(out, s.userJSON(s.users[id]))
	}
	s.mu.Unlock()
	s.links(w, r, limit, next)
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) userGroups(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	limit, after, ok := pageParams(w, r.URL.Query(), 10000, 10000)
	if !ok {
		return
	}
	s.mu.Lock()
	u := s.findUserLocked(id)
	var out []map[string]any
	next := ""
	if u != nil {
		var gids []string
		for gid, m := range s.members {
			if m[u.ID] {
				gids = append(gids, gid)
			}
		}
		slices.Sort(gids)
		var page []string
		page, next = pageOf(gids, after, limit)
		out = make([]map[string]any, 0, len(page))
		for _, gid := range page {
			out = append(out, s.groupJSON(s.groups[gid]))
		}
	}
	s.mu.Unlock()
	if u == nil {
		notFound(w, id, "User")
		return
	}
	s.links(w, r, limit, next)
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getGroup(w http.ResponseWriter, r *http.Request) {
	gid := r.PathValue("gid")
	s.mu.Lock()
	g := s.groups[gid]
	var body map[string]any
	if g != nil {
		body = s.groupJSON(g)
	}
	s.mu.Unlock()
	if g == nil {
		notFound(w, gid, "UserGroup")
		return
	}
	writeJSON(w, http.StatusOK, body)
}

func (s *Server) listMembers(w http.ResponseWriter, r *http.Request) {
	gid := r.PathValue("gid")
	limit, after, ok := pageParams(w, r.URL.Query(), 1000, 10000)
	if !ok {
		return
	}
	s.mu.Lock()
	g := s.groups[gid]
	var out []map[string]any
	next := ""
	if g != nil {
		var page []string
		page, next = pageOf(s.memberIDs(gid), after, limit)
		out = make([]map[string]any, 0, len(page))
		for _, uid := range page {
			out = append(out, s.userJSON(s.users[uid]))
		}
	}
	s.mu.Unlock()
	if g == nil {
		notFound(w, gid, "UserGroup")
		return
	}
	s.links(w, r, limit, next)
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) putMember(w http.ResponseWriter, r *http.Request) {
	s.changeMember(w, r, true)
}

func (s *Server) deleteMember(w http.ResponseWriter, r *http.Request) {
	s.changeMember(w, r, false)
}

func (s *Server) changeMember(w http.ResponseWriter, r *http.Request, add bool) {
	gid, uid := r.PathValue("gid"), r.PathValue("uid")
	s.mu.Lock()
	g, u := s.groups[gid], s.users[uid]
	if g != nil && u != nil {
		was := s.members[gid][uid]
		if add {
			s.members[gid][uid] = true
		} else {
			delete(s.members[gid], uid)
		}
		s.changes = append(s.changes, MembershipChange{Group: gid, User: uid, Add: add, Changed: was != add, At: time.Now()})
	}
	s.mu.Unlock()
	switch {
	case g == nil:
		notFound(w, gid, "UserGroup")
	case u == nil:
		notFound(w, uid, "User")
	default:
		if !afterEffect(r) {
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

// --- helpers ---

func (s *Server) memberIDs(gid string) []string {
	ids := make([]string, 0, len(s.members[gid]))
	for uid := range s.members[gid] {
		ids = append(ids, uid)
	}
	slices.Sort(ids)
	return ids
}

func pageParams(w http.ResponseWriter, q map[string][]string, def, maxLimit int) (limit int, after string, ok bool) {
	limit = def
	if v := first(q["limit"]); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			writeError(w, http.StatusBadRequest, "E0000001", "Api validation failed: limit")
			return 0, "", false
		}
		limit = min(n, maxLimit)
	}
	return limit, first(q["after"]), true
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// pageOf returns up to limit sorted ids after the cursor and the next cursor.
func pageOf(ids []string, after string, limit int) (page []string, next string) {
	i := 0
	if after != "" {
		i, _ = slices.BinarySearch(ids, after)
		if i < len(ids) && ids[i] == after {
			i++
		}
	}
	end := min(i+limit, len(ids))
	page = ids[i:end]
	if end < len(ids) && len(page) > 0 {
		next = page[len(page)-1]
	}
	return page, next
}

// links writes Okta's Link headers: rel="self" and, when there is more,
// rel="next" with the after cursor, each in its own header line.
func (s *Server) links(w http.ResponseWriter, r *http.Request, limit int, next string) {
	base := s.srv.URL + r.URL.Path
	self := r.URL.Query()
	w.Header().Add("Link", "<"+base+"?"+self.Encode()+`>; rel="self"`)
	if next != "" {
		q := r.URL.Query()
		q.Set("after", next)
		q.Set("limit", strconv.Itoa(limit))
		w.Header().Add("Link", "<"+base+"?"+q.Encode()+`>; rel="next"`)
	}
}

func (s *Server) userJSON(u *User) map[string]any {
	ts := s.created.Format(time.RFC3339)
	return map[string]any{
		"id":            u.ID,
		"status":        u.Status,
		"created":       ts,
		"activated":     ts,
		"statusChanged": ts,
		"lastLogin":     nil,
		"lastUpdated":   ts,
		"type":          map[string]any{"id": "oty00000000000000000"},
		"profile": map[string]any{
			"firstName":   u.FirstName,
			"lastName":    u.LastName,
			"mobilePhone": nil,
			"secondEmail": nil,
			"login":       u.Login,
			"email":       u.Email,
		},
		"_links": map[string]any{"self": map[string]any{"href": s.srv.URL + "/api/v1/users/" + u.ID}},
	}
}

func (s *Server) groupJSON(g *Group) map[string]any {
	ts := s.created.Format(time.RFC3339)
	return map[string]any{
		"id":                    g.ID,
		"created":               ts,
		"lastUpdated":           ts,
		"lastMembershipUpdated": ts,
		"objectClass":           []string{"okta:user_group"},
		"type":                  g.Type,
		"profile":               map[string]any{"name": g.Name, "description": g.Description},
		"_links":                map[string]any{"self": map[string]any{"href": s.srv.URL + "/api/v1/groups/" + g.ID}},
	}
}

func notFound(w http.ResponseWriter, id, kind string) {
	writeError(w, http.StatusNotFound, "E0000007", fmt.Sprintf("Not found: Resource not found: %s (%s)", id, kind))
}

// writeError writes an error in Okta's shape.
func writeError(w http.ResponseWriter, status int, code, summary string) {
	writeJSON(w, status, map[string]any{
		"errorCode":    code,
		"errorSummary": summary,
		"errorLink":    code,
		"errorId":      "oae" + randHex(11),
		"errorCauses":  []any{},
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)[:n]
}
