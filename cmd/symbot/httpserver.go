package main

// The health and metrics listener: /healthz, /readyz and /metrics.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Readiness reports why symbot cannot serve yet (Socket Mode not connected,
// store not open), or nil when it can.
type Readiness func(ctx context.Context) error

// NotReady is a readiness error whose public text (fixed words, never
// internal error text) /readyz may show; err, if any, goes to the log only.
func NotReady(public string, err error) error { return &notReadyError{public, err} }

type notReadyError struct {
	public string
	err    error
}

func (e *notReadyError) Error() string {
	if e.err == nil {
		return e.public
	}
	return e.public + ": " + e.err.Error()
}

func (e *notReadyError) Unwrap() error { return e.err }

// ReadinessTimeout bounds one readiness evaluation.
const ReadinessTimeout = 5 * time.Second

// NewHTTPHandler serves /healthz (the process is alive), /readyz (ready
// says it can serve; 503 otherwise, the reason going to the log only) and
// /metrics (m in the Prometheus text format, or OpenMetrics). It has no
// authentication: bind it to loopback
// or a private interface.
func NewHTTPHandler(ready Readiness, m *Metrics, logger *slog.Logger) http.Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		var err error
		if ready != nil {
			ctx, cancel := context.WithTimeout(r.Context(), ReadinessTimeout)
			err = ready(ctx)
			cancel()
		}
		if err != nil {
			// /readyz has no authentication: it says only what NotReady
			// made public; the error itself goes to the log.
			logger.WarnContext(r.Context(), "not ready", "reason", err)
			w.WriteHeader(http.StatusServiceUnavailable)
			var nr *notReadyError
			if errors.As(err, &nr) && nr.public != "" {
				fmt.Fprintf(w, "not ready: %s\n", nr.public)
				return
			}
			fmt.Fprintln(w, "not ready (the reason is in symbot's log)")
			return
		}
		fmt.Fprintln(w, "ready")
	})
	if m != nil {
		mux.Handle("GET /metrics", m.Handler())
	}
	return mux
}

// ListenHTTP opens the health and metrics listener, or returns nil when
// addr is empty (turned off).
func ListenHTTP(addr string) (net.Listener, error) {
	if addr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on http.listen %s: %w", addr, err)
	}
	return ln, nil
}
