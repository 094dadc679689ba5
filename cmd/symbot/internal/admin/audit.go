package admin

// The audit endpoints beyond listing and verifying: verifying against
// checkpoints exported earlier, exporting the trail, and the access report.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/symbot/symbot"
)

// AuditService is what a Service that also answers the audit export,
// report and verify-against endpoints implements.
type AuditService interface {
	// VerifyAuditAgainst checks the chain and every checkpoint.
	VerifyAuditAgainst(ctx context.Context, cps []symbot.AuditCheckpoint) (entries int, err error)
	// ExportAudit writes the entries of [since, until) as jsonl or csv.
	ExportAudit(ctx context.Context, since, until time.Time, format string, w io.Writer) error
	// Report writes the access report of [since, until) as md or csv.
	Report(ctx context.Context, since, until time.Time, format string, w io.Writer) error
}

// CheckpointJSON is a checkpoint on the admin wire.
type CheckpointJSON struct {
	Seq  uint64    `json:"seq"`
	Hash string    `json:"hash"`
	Key  string    `json:"key,omitempty"`
	At   time.Time `json:"at,omitzero"`
}

func (a *adminServer) addAudit(mux *http.ServeMux, as AuditService) {
	mux.HandleFunc("POST /audit/verify", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Checkpoints []CheckpointJSON `json:"checkpoints"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, 256<<20)).Decode(&in); err != nil {
			writeError(w, http.StatusBadRequest, "body must be JSON {\"checkpoints\": [...]}: "+err.Error())
			return
		}
		cps := make([]symbot.AuditCheckpoint, 0, len(in.Checkpoints))
		for _, c := range in.Checkpoints {
			cps = append(cps, symbot.AuditCheckpoint{Seq: c.Seq, Hash: c.Hash, Key: c.Key, At: c.At})
		}
		n, err := as.VerifyAuditAgainst(r.Context(), cps)
		a.verified(w, r, n, err)
	})
	stream := func(kind string, fn func(ctx context.Context, since, until time.Time, format string, w io.Writer) error) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			since, ok := queryTime(w, r, "since")
			if !ok {
				return
			}
			until, ok := queryTime(w, r, "until")
			if !ok {
				return
			}
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			if err := fn(r.Context(), since, until, r.URL.Query().Get("format"), w); err != nil {
				var fe *FormatError
				if errors.As(err, &fe) {
					writeError(w, http.StatusBadRequest, err.Error())
					return
				}
				a.log.ErrorContext(r.Context(), kind+" failed", "err", err)
				a.fail(w, r, err)
			}
		}
	}
	mux.HandleFunc("GET /audit/export", stream("audit export", as.ExportAudit))
	mux.HandleFunc("GET /report", stream("report", as.Report))
}

// FormatError is an output format the endpoint does not have.
type FormatError struct{ Format, Want string }

func (e *FormatError) Error() string {
	return fmt.Sprintf("format %q: use %s", e.Format, e.Want)
}

// VerifyAuditAgainst asks the daemon to verify the chain against cps.
func (c *Client) VerifyAuditAgainst(ctx context.Context, cps []symbot.AuditCheckpoint) (VerifyJSON, error) {
	in := struct {
		Checkpoints []CheckpointJSON `json:"checkpoints"`
	}{Checkpoints: make([]CheckpointJSON, 0, len(cps))}
	for _, cp := range cps {
		in.Checkpoints = append(in.Checkpoints, CheckpointJSON{Seq: cp.Seq, Hash: cp.Hash, Key: cp.Key, At: cp.At})
	}
	var out VerifyJSON
	err := c.getJSON(ctx, http.MethodPost, "/audit/verify", in, &out)
	return out, err
}

// Stream copies the answer of GET path?since&until&format to w (export,
// report).
func (c *Client) Stream(ctx context.Context, path string, since, until time.Time, format string, w io.Writer) error {
	q := url.Values{}
	if !since.IsZero() {
		q.Set("since", since.UTC().Format(time.RFC3339Nano))
	}
	if !until.IsZero() {
		q.Set("until", until.UTC().Format(time.RFC3339Nano))
	}
	if format != "" {
		q.Set("format", format)
	}
	resp, err := c.do(ctx, http.MethodGet, path+"?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	return nil
}
