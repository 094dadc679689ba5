package admin

// The server side: the HTTP handler over a Service, the unix socket
// listener and graceful serving.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/symbot/symbot"
)

// NewServer returns the admin protocol handler over svc.
func NewServer(svc Service, logger *slog.Logger) http.Handler {
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
	if in, ok := svc.(Inspector); ok {
		a.addInspector(mux, in)
	}
	if as, ok := svc.(AuditService); ok {
		a.addAudit(mux, as)
	}
	if is, ok := svc.(IdentityService); ok {
		a.addIdentities(mux, is)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no admin endpoint %s %s", r.Method, r.URL.Path))
	})
	return mux
}

type adminServer struct {
	svc Service
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
			out = append(out, RequestToJSON(q))
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
	writeJSON(w, http.StatusOK, map[string]any{"request": RequestToJSON(req)})
}

// queryTime returns the RFC 3339 time in query parameter name, zero when
// it is absent; when it is malformed it answers 400 and ok is false.
func queryTime(w http.ResponseWriter, r *http.Request, name string) (t time.Time, ok bool) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return time.Time{}, true
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("%s: %q is not an RFC 3339 time", name, s))
		return time.Time{}, false
	}
	return t, true
}

func (a *adminServer) audit(w http.ResponseWriter, r *http.Request) {
	since, ok := queryTime(w, r, "since")
	if !ok {
		return
	}
	entries, err := a.svc.Audit(r.Context(), since)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := make([]AuditJSON, 0, len(entries))
	for _, e := range entries {
		out = append(out, AuditToJSON(e))
	}
	writeJSON(w, http.StatusOK, map[string]any{"entries": out})
}

func (a *adminServer) verify(w http.ResponseWriter, r *http.Request) {
	n, err := a.svc.VerifyAudit(r.Context())
	a.verified(w, r, n, err)
}

// verified answers a verification of n entries that ended with err.
func (a *adminServer) verified(w http.ResponseWriter, r *http.Request, n int, err error) {
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
		w.Header().Set(trailerError, strings.Join(strings.Fields(err.Error()), " "))
		return
	}
	a.log.InfoContext(r.Context(), "backup written", "bytes", n)
}

// Listen creates the admin unix socket at path with mode 0600. A stale
// socket file is removed only when nothing answers on it; if a daemon is
// live it refuses. Closing the listener removes the socket file.
func Listen(path string) (net.Listener, error) {
	if err := CheckSocketDir(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("admin socket %s: %w", path, err)
	}
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

// ShutdownGrace is how long ServeUntil lets requests in flight finish
// after its context ends.
const ShutdownGrace = 5 * time.Second

// ServeUntil serves h on ln until ctx ends, then shuts down gracefully
// (waiting up to grace, ShutdownGrace when 0, for requests in flight) and
// closes ln. Requests in flight keep a live context during the grace: their
// context ends only when the grace runs out, not when ctx does, so an admin
// command that was already running (a backup, a revoke) can finish.
func ServeUntil(ctx context.Context, ln net.Listener, h http.Handler) error {
	return serveUntil(ctx, ln, h, ShutdownGrace)
}

func serveUntil(ctx context.Context, ln net.Listener, h http.Handler, grace time.Duration) error {
	base, cancelBase := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelBase()
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second,
		BaseContext: func(net.Listener) context.Context { return base },
		ConnContext: operatorContext}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(base, grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		// The grace ran out: end the requests still running, then the
		// connections.
		cancelBase()
		srv.Close()
	}
	<-errc
	return nil
}

// CheckSocketDir refuses a directory for the admin socket that other users
// can write: one of them could remove the socket and put their own in its
// place, and the admin commands would then talk to it.
func CheckSocketDir(dir string) error {
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("check admin socket directory: %w", err)
	}
	if st.Mode().Perm()&0o002 != 0 {
		return fmt.Errorf("directory %s has mode %s, so other users can replace the socket: run chmod o-w %s, or set admin.socket to a path in a directory only symbot's user can write (e.g. /run/symbot/symbot.sock)", dir, st.Mode().Perm(), dir)
	}
	return nil
}
