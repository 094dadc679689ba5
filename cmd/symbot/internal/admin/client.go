package admin

// The client side, used by the admin commands.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrNoDaemon means nothing answers on the admin socket.
var ErrNoDaemon = errors.New("no symbot daemon answering")

// Client talks to a running daemon over its admin socket.
type Client struct {
	Socket string
	hc     *http.Client
	close  func() // a local client's (NewLocalClient)
}

// NewClient returns a client for the admin socket at path.
func NewClient(path string) *Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &Client{
		Socket: path,
		hc: &http.Client{Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return d.DialContext(ctx, "unix", path)
			},
			DisableCompression: true,
		}},
	}
}

func (c *Client) do(ctx context.Context, method, path string, body any) (*http.Response, error) {
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
		return nil, &Error{Status: resp.StatusCode, Message: e.Error}
	}
	return resp, nil
}

// Error is an error answer from the daemon.
type Error struct {
	Status  int
	Message string
}

func (e *Error) Error() string { return e.Message }

func (c *Client) getJSON(ctx context.Context, method, path string, body, out any) error {
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
func (c *Client) Requests(ctx context.Context) ([]RequestJSON, error) {
	var out struct{ Requests []RequestJSON }
	err := c.getJSON(ctx, http.MethodGet, "/requests", nil, &out)
	return out.Requests, err
}

// Grants lists active grants.
func (c *Client) Grants(ctx context.Context) ([]RequestJSON, error) {
	var out struct{ Requests []RequestJSON }
	err := c.getJSON(ctx, http.MethodGet, "/grants", nil, &out)
	return out.Requests, err
}

// Revoke ends an active grant.
func (c *Client) Revoke(ctx context.Context, id, reason string) (RequestJSON, error) {
	var out struct{ Request RequestJSON }
	err := c.getJSON(ctx, http.MethodPost, "/revoke", RevokeJSON{ID: id, Reason: reason}, &out)
	return out.Request, err
}

// Audit returns audit entries at or after since (zero: all).
func (c *Client) Audit(ctx context.Context, since time.Time) ([]AuditJSON, error) {
	p := "/audit"
	if !since.IsZero() {
		p += "?since=" + url.QueryEscape(since.UTC().Format(time.RFC3339Nano))
	}
	var out struct{ Entries []AuditJSON }
	err := c.getJSON(ctx, http.MethodGet, p, nil, &out)
	return out.Entries, err
}

// VerifyAudit checks the audit hash chain.
func (c *Client) VerifyAudit(ctx context.Context) (VerifyJSON, error) {
	var out VerifyJSON
	err := c.getJSON(ctx, http.MethodGet, "/audit/verify", nil, &out)
	return out, err
}

// Backup copies the store into w and returns the bytes written.
func (c *Client) Backup(ctx context.Context, w io.Writer) (int64, error) {
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
func (c *Client) BackupToFile(ctx context.Context, path string) (int64, error) {
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
