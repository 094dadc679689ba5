package main

// The admin protocol. The daemon holds the store's lock, so admin commands
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

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/symbot/symbot"
)

// AdminService is what the admin socket exposes; the wiring implements it
// with the engine and the store.
type AdminService interface {
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

func requestJSON(r *symbot.Request) RequestJSON {
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

func auditJSON(e symbot.AuditEntry) AuditJSON {
	return AuditJSON{Seq: e.Seq, At: e.At, RequestID: e.RequestID, Actor: e.Actor, Action: e.Action, Detail: e.Detail, PrevHash: e.PrevHash, Hash: e.Hash}
}

// NewAdminServer returns the admin protocol handler over svc.
func NewAdminServer(svc AdminService, logger *slog.Logger) http.Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	a := &adminServer{svc: svc, log: logger}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /requests", a.list(svc.Requests))
	mux.HandleFunc("GET /grants", a.list(svc.Grants))
	mux.HandleFunc("POST /revoke", a.revoke)
	mux.HandleFunc("GET /audit", a.audit)
	mux.HandleFunc("GET /audit/verify", a.verify)
	mux.HandleFunc("GET /backup", a.backup)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no admin endpoint %s %s", r.Method, r.URL.Path))
	})
	return mux
}

type adminServer struct {
	svc AdminService
	log *slog.Logger
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// fail maps a service error to a status and logs server errors.
func (a *adminServer) fail(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusInternalServerError
	var de *symbot.DecidedError
	var te *symbot.TransitionError
	switch {
	case errors.Is(err, symbot.ErrNotFound):
		status = http.StatusNotFound
	case errors.As(err, &de), errors.As(err, &te):
		status = http.StatusConflict
	case errors.Is(err, symbot.ErrNotAllowed):
		status = http.StatusForbidden
	case errors.Is(err, symbot.ErrInvalidRequest):
		status = http.StatusBadRequest
	case errors.Is(err, context.Canceled):
		status = http.StatusServiceUnavailable
	}
	if status >= 500 {
		a.log.ErrorContext(r.Context(), "admin request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeError(w, status, err.Error())
}

func (a *adminServer) list(fn func(context.Context) ([]*symbot.Request, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		reqs, err := fn(r.Context())
		if err != nil {
			a.fail(w, r, err)
			return
		}
		out := make([]RequestJSON, 0, len(reqs))
		for _, q := range reqs {
			out = append(out, requestJSON(q))
		}
		writeJSON(w, http.StatusOK, map[string]any{"requests": out})
	}
}

func (a *adminServer) revoke(w http.ResponseWriter, r *http.Request) {
	var in RevokeJSON
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		writeError(w, http.StatusBadRequest, "body must be JSON {\"id\": ..., \"reason\": ...}: "+err.Error())
		return
	}
	in.ID = strings.TrimSpace(in.ID)
	if in.ID == "" {
		writeError(w, http.StatusBadRequest, "id: missing")
		return
	}
	req, err := a.svc.Revoke(r.Context(), in.ID, in.Reason)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.log.InfoContext(r.Context(), "admin revoked grant", "request_id", in.ID)
	writeJSON(w, http.StatusOK, map[string]any{"request": requestJSON(req)})
}

func (a *adminServer) audit(w http.ResponseWriter, r *http.Request) {
	var since time.Time
	if s := r.URL.Query().Get("since"); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("since: %q is not an RFC 3339 time", s))
			return
		}
		since = t
	}
	entries, err := a.svc.Audit(r.Context(), since)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := make([]AuditJSON, 0, len(entries))
	for _, e := range entries {
		out = append(out, auditJSON(e))
	}
	writeJSON(w, http.StatusOK, map[string]any{"entries": out})
}

func (a *adminServer) verify(w http.ResponseWriter, r *http.Request) {
	n, err := a.svc.VerifyAudit(r.Context())
	var ae *symbot.AuditError
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, VerifyJSON{OK: true, Entries: n})
	case errors.As(err, &ae):
		a.log.ErrorContext(r.Context(), "audit chain broken", "seq", ae.Seq, "problem", ae.Problem)
		writeJSON(w, http.StatusOK, VerifyJSON{OK: false, Entries: n, Broken: &AuditBrokenJSON{Seq: ae.Seq, Index: ae.Index, Problem: ae.Problem}})
	default:
		a.fail(w, r, err)
	}
}

const (
	trailerBytes = "X-Backup-Bytes"
	trailerError = "X-Backup-Error"
)

func (a *adminServer) backup(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Trailer", trailerBytes+", "+trailerError)
	w.WriteHeader(http.StatusOK)
	n, err := a.svc.Backup(r.Context(), w)
	w.Header().Set(trailerBytes, strconv.FormatInt(n, 10))
	if err != nil {
		a.log.ErrorContext(r.Context(), "backup failed", "err", err)
		w.Header().Set(trailerError, oneLine(err.Error()))
		return
	}
	a.log.InfoContext(r.Context(), "backup written", "bytes", n)
}

// ListenAdmin creates the admin unix socket at path with mode 0600. A stale
// socket file is removed only when nothing answers on it; if a daemon is
// live it refuses. Closing the listener removes the socket file.
func ListenAdmin(path string) (net.Listener, error) {
	if st, err := os.Lstat(path); err == nil {
		if st.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("admin socket %s exists and is not a socket: remove it or change admin.socket", path)
		}
		c, err := net.DialTimeout("unix", path, 2*time.Second)
		if err == nil {
			c.Close()
			return nil, fmt.Errorf("admin socket %s: another symbot daemon is answering on it: stop it first, or give this one another admin.socket and store.path", path)
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("remove stale admin socket: %w", err)
		}
	}
	// Bind under a temporary name, restrict it, then link it into place so
	// that the socket is never reachable with looser permissions and a
	// socket created meanwhile by another daemon is never replaced.
	tmp := filepath.Join(filepath.Dir(path), fmt.Sprintf(".symbot-%d.sock", os.Getpid()))
	os.Remove(tmp)
	// The umask makes the socket 0600 from its creation (chmod below
	// confirms it); it is process-wide, so only held for the bind.
	old := syscall.Umask(0o077)
	ln, err := net.Listen("unix", tmp)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("listen on admin socket: %w", err)
	}
	ul := ln.(*net.UnixListener)
	ul.SetUnlinkOnClose(false)
	cleanup := func() { ln.Close(); os.Remove(tmp) }
	if err := os.Chmod(tmp, 0o600); err != nil {
		cleanup()
		return nil, fmt.Errorf("restrict admin socket: %w", err)
	}
	if err := os.Link(tmp, path); err != nil {
		cleanup()
		if errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("admin socket %s appeared while starting: is another symbot daemon starting?", path)
		}
		return nil, fmt.Errorf("place admin socket: %w", err)
	}
	os.Remove(tmp)
	st, err := os.Lstat(path)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("stat admin socket: %w", err)
	}
	return &adminListener{Listener: ln, path: path, st: st}, nil
}

type adminListener struct {
	net.Listener
	path string
	st   os.FileInfo
}

// Close stops listening and removes the socket file if it is still ours.
func (l *adminListener) Close() error {
	err := l.Listener.Close()
	if st, serr := os.Lstat(l.path); serr == nil && os.SameFile(st, l.st) {
		os.Remove(l.path)
	}
	return err
}

// ServeUntil serves h on ln until ctx ends, then shuts down gracefully
// (waiting up to 5 s for requests in flight) and closes ln.
func ServeUntil(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, BaseContext: func(net.Listener) context.Context { return ctx }}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	if err != nil {
		srv.Close()
	}
	<-errc
	return nil
}

// ErrNoDaemon means nothing answers on the admin socket.
var ErrNoDaemon = errors.New("no symbot daemon answering")

// AdminClient talks to a running daemon over its admin socket.
type AdminClient struct {
	Socket string
	hc     *http.Client
}

// NewAdminClient returns a client for the admin socket at path.
func NewAdminClient(path string) *AdminClient {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &AdminClient{
		Socket: path,
		hc: &http.Client{Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return d.DialContext(ctx, "unix", path)
			},
			DisableCompression: true,
		}},
	}
}

func (c *AdminClient) do(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encode admin request: %w", err)
		}
		rd = strings.NewReader(string(b))
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://symbot"+path, rd)
	if err != nil {
		return nil, fmt.Errorf("admin request: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("%w on %s: is `symbot run` running with this config?", ErrNoDaemon, c.Socket)
		}
		if errors.Is(err, syscall.EACCES) {
			return nil, fmt.Errorf("admin socket %s: permission denied: run this as the user that runs symbot", c.Socket)
		}
		return nil, fmt.Errorf("admin socket %s: %w", c.Socket, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		var e struct{ Error string }
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(b))
		}
		return nil, &AdminError{Status: resp.StatusCode, Message: e.Error}
	}
	return resp, nil
}

// AdminError is an error answer from the daemon.
type AdminError struct {
	Status  int
	Message string
}

func (e *AdminError) Error() string { return e.Message }

func (c *AdminClient) getJSON(ctx context.Context, method, path string, body, out any) error {
	resp, err := c.do(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode admin answer: %w", err)
	}
	return nil
}

// Requests lists pending and approved requests.
func (c *AdminClient) Requests(ctx context.Context) ([]RequestJSON, error) {
	var out struct{ Requests []RequestJSON }
	err := c.getJSON(ctx, http.MethodGet, "/requests", nil, &out)
	return out.Requests, err
}

// Grants lists active grants.
func (c *AdminClient) Grants(ctx context.Context) ([]RequestJSON, error) {
	var out struct{ Requests []RequestJSON }
	err := c.getJSON(ctx, http.MethodGet, "/grants", nil, &out)
	return out.Requests, err
}

// Revoke ends an active grant.
func (c *AdminClient) Revoke(ctx context.Context, id, reason string) (RequestJSON, error) {
	var out struct{ Request RequestJSON }
	err := c.getJSON(ctx, http.MethodPost, "/revoke", RevokeJSON{ID: id, Reason: reason}, &out)
	return out.Request, err
}

// Audit returns audit entries at or after since (zero: all).
func (c *AdminClient) Audit(ctx context.Context, since time.Time) ([]AuditJSON, error) {
	p := "/audit"
	if !since.IsZero() {
		p += "?since=" + url.QueryEscape(since.UTC().Format(time.RFC3339Nano))
	}
	var out struct{ Entries []AuditJSON }
	err := c.getJSON(ctx, http.MethodGet, p, nil, &out)
	return out.Entries, err
}

// VerifyAudit checks the audit hash chain.
func (c *AdminClient) VerifyAudit(ctx context.Context) (VerifyJSON, error) {
	var out VerifyJSON
	err := c.getJSON(ctx, http.MethodGet, "/audit/verify", nil, &out)
	return out, err
}

// Backup copies the store into w and returns the bytes written.
func (c *AdminClient) Backup(ctx context.Context, w io.Writer) (int64, error) {
	resp, err := c.do(ctx, http.MethodGet, "/backup", nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return n, fmt.Errorf("receive backup: %w", err)
	}
	if msg := resp.Trailer.Get(trailerError); msg != "" {
		return n, fmt.Errorf("backup failed in the daemon: %s", msg)
	}
	want, err := strconv.ParseInt(resp.Trailer.Get(trailerBytes), 10, 64)
	if err != nil {
		return n, errors.New("backup incomplete: the daemon did not confirm its size")
	}
	if want != n {
		return n, fmt.Errorf("backup incomplete: received %d of %d bytes", n, want)
	}
	return n, nil
}

// BackupToFile writes a backup atomically: to a temporary file beside path
// (mode 0600), synced, then renamed over path.
func (c *AdminClient) BackupToFile(ctx context.Context, path string) (int64, error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return 0, fmt.Errorf("create backup file: %w", err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return 0, fmt.Errorf("restrict backup file: %w", err)
	}
	n, err := c.Backup(ctx, f)
	if err != nil {
		return n, err
	}
	if err := f.Sync(); err != nil {
		return n, fmt.Errorf("sync backup file: %w", err)
	}
	if err := f.Close(); err != nil {
		return n, fmt.Errorf("close backup file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return n, fmt.Errorf("place backup file: %w", err)
	}
	ok = true
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return n, nil
}

// adminFlags are the flags every admin subcommand has.
type adminFlags struct {
	config *string
	socket *string
}

func addAdminFlags(fs *flag.FlagSet) adminFlags {
	return adminFlags{
		config: configFlag(fs),
		socket: fs.String("socket", "", "admin socket (default: admin.socket from the config)"),
	}
}

// client returns the admin client of the command cmd, from --socket or the
// config.
func (f adminFlags) client(cmd string, stderr io.Writer) (*AdminClient, bool) {
	if *f.socket != "" {
		return NewAdminClient(*f.socket), true
	}
	cfg, ok := loadConfig(cmd, *f.config, stderr)
	if !ok {
		return nil, false
	}
	return NewAdminClient(cfg.Admin.Socket), true
}

func adminFail(stderr io.Writer, cmd string, err error) int {
	fmt.Fprintf(stderr, "symbot %s: %v\n", cmd, err)
	return exitFail
}

func printJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func fmtTime(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

func person(p PersonJSON) string {
	if p.Name != "" {
		return oneLine(p.Name) + " (" + oneLine(p.SlackID) + ")"
	}
	return oneLine(p.SlackID)
}

func requestsCmd(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	return listCmd(ctx, "requests", args, stdout, stderr)
}

func grantsCmd(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	return listCmd(ctx, "grants", args, stdout, stderr)
}

func listCmd(ctx context.Context, name string, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet(name, "[--config FILE] [--json]", stderr)
	af := addAdminFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	if code, ok := parseNoArgs(fs, args, stderr); !ok {
		return code
	}
	c, ok := af.client(name, stderr)
	if !ok {
		return exitFail
	}
	var reqs []RequestJSON
	var err error
	if name == "grants" {
		reqs, err = c.Grants(ctx)
	} else {
		reqs, err = c.Requests(ctx)
	}
	if err != nil {
		return adminFail(stderr, name, err)
	}
	if *asJSON {
		if reqs == nil {
			reqs = []RequestJSON{}
		}
		printJSON(stdout, reqs)
		return exitOK
	}
	if len(reqs) == 0 {
		if name == "grants" {
			fmt.Fprintln(stdout, "no active grants")
		} else {
			fmt.Fprintln(stdout, "no pending or approved requests")
		}
		return exitOK
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	if name == "grants" {
		fmt.Fprintln(tw, "ID\tFLOW\tTARGET\tUSER\tOKTA LOGIN\tGRANTED\tEXPIRES\tLEFT")
		for _, r := range reqs {
			left := "-"
			if r.ExpiresAt != nil {
				left = symbot.FormatDuration(time.Until(*r.ExpiresAt).Round(time.Minute))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Flow, r.Target, person(r.Requester), dash(r.OktaLogin), fmtTime(r.GrantedAt), fmtTime(r.ExpiresAt), left)
		}
	} else {
		fmt.Fprintln(tw, "ID\tSTATE\tFLOW\tTARGET\tREQUESTER\tDURATION\tAPPROVALS\tCREATED\tREASON")
		for _, r := range reqs {
			created := r.CreatedAt
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", r.ID, r.State, r.Flow, r.Target, person(r.Requester), r.Duration, len(r.Approvals), fmtTime(&created), oneLine(truncate(r.Reason, 60)))
		}
	}
	tw.Flush()
	return exitOK
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func revokeCmd(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("revoke", "ID [--reason TEXT] [--config FILE]", stderr)
	af := addAdminFlags(fs)
	reason := fs.String("reason", "", "why (recorded in the audit trail and told to the user)")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		fmt.Fprintln(stderr, "symbot revoke: give exactly one request id (see `symbot grants`)")
		return exitUsage
	}
	c, ok := af.client("revoke", stderr)
	if !ok {
		return exitFail
	}
	r, err := c.Revoke(ctx, pos[0], *reason)
	var ae *AdminError
	if errors.As(err, &ae) {
		switch ae.Status {
		case http.StatusNotFound:
			err = fmt.Errorf("%w: check the id with `symbot grants`", err)
		case http.StatusConflict:
			err = fmt.Errorf("%w: it has already ended or been decided; `symbot grants` and `symbot requests` list what can still be revoked", err)
		}
	}
	if err != nil {
		return adminFail(stderr, "revoke", err)
	}
	if *asJSON {
		printJSON(stdout, r)
		return exitOK
	}
	if r.State == string(symbot.StateDenied) {
		fmt.Fprintf(stdout, "denied %s: the pending request of %s for %s/%s; nothing was granted\n", r.ID, person(r.Requester), r.Flow, r.Target)
		return exitOK
	}
	fmt.Fprintf(stdout, "revoked %s: %s/%s of %s is now %s; the Okta membership removal is queued\n", r.ID, r.Flow, r.Target, person(r.Requester), r.State)
	return exitOK
}

// parseSince reads --since: a duration back from now (24h, 7d) or an
// RFC 3339 time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" || s == "all" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	d, err := symbot.ParseDuration(s)
	if err != nil || d < 0 {
		return time.Time{}, fmt.Errorf("--since %q: use a duration back from now (24h, 7d) or an RFC 3339 time (2026-01-02T15:04:05Z), or all", s)
	}
	return now.Add(-d), nil
}

func auditCmd(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "verify" {
		return auditVerifyCmd(ctx, args[1:], stdout, stderr)
	}
	fs := newFlagSet("audit", "[verify] [--since DURATION|RFC3339|all] [--json] [--config FILE]", stderr)
	af := addAdminFlags(fs)
	sinceFlag := fs.String("since", "24h", "entries since this long ago (24h, 7d), since an RFC 3339 time, or all")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	if len(pos) == 1 && pos[0] == "verify" {
		return auditVerifyCmd(ctx, nil, stdout, stderr)
	}
	if len(pos) > 0 {
		fmt.Fprintf(stderr, "symbot audit: unexpected argument %q (did you mean `symbot audit verify`?)\n", pos[0])
		return exitUsage
	}
	since, err := parseSince(*sinceFlag, time.Now())
	if err != nil {
		fmt.Fprintf(stderr, "symbot audit: %v\n", err)
		return exitUsage
	}
	c, ok := af.client("audit", stderr)
	if !ok {
		return exitFail
	}
	entries, err := c.Audit(ctx, since)
	if err != nil {
		return adminFail(stderr, "audit", err)
	}
	if *asJSON {
		if entries == nil {
			entries = []AuditJSON{}
		}
		printJSON(stdout, entries)
		return exitOK
	}
	if len(entries) == 0 {
		fmt.Fprintln(stdout, "no audit entries in that period")
		return exitOK
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tTIME\tREQUEST\tACTOR\tACTION\tDETAIL")
	for _, e := range entries {
		at := e.At
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", e.Seq, fmtTime(&at), dash(e.RequestID), e.Actor, e.Action, oneLine(truncate(e.Detail, 80)))
	}
	tw.Flush()
	return exitOK
}

func auditVerifyCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("audit verify", "[--json] [--config FILE]", stderr)
	af := addAdminFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	if code, ok := parseNoArgs(fs, args, stderr); !ok {
		return code
	}
	c, ok := af.client("audit verify", stderr)
	if !ok {
		return exitFail
	}
	v, err := c.VerifyAudit(ctx)
	if err != nil {
		return adminFail(stderr, "audit verify", err)
	}
	if *asJSON {
		printJSON(stdout, v)
	} else if v.OK {
		fmt.Fprintf(stdout, "audit chain ok: %d entries\n", v.Entries)
	} else {
		fmt.Fprintf(stdout, "audit chain BROKEN at entry %d (position %d): %s\n", v.Broken.Seq, v.Broken.Index, v.Broken.Problem)
	}
	if !v.OK {
		return exitFail
	}
	return exitOK
}

func backupCmd(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("backup", "FILE [--config FILE]", stderr)
	af := addAdminFlags(fs)
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		fmt.Fprintln(stderr, "symbot backup: give exactly one file to write the backup to")
		return exitUsage
	}
	c, ok := af.client("backup", stderr)
	if !ok {
		return exitFail
	}
	n, err := c.BackupToFile(ctx, pos[0])
	if err != nil {
		return adminFail(stderr, "backup", err)
	}
	fmt.Fprintf(stdout, "wrote %s (%d bytes)\n", pos[0], n)
	return exitOK
}
