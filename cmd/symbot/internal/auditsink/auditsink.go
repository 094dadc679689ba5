// Package auditsink holds the audit sinks that need no cloud SDK: a
// JSON-lines file rotated by size, and an HTTP webhook that signs its
// payloads. Both implement symbot.AuditSink; the S3 sink is in awsauth.
package auditsink

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/symbot/symbot"
)

// File appends the audit trail as JSON lines (symbot.AppendAuditJSONL) to
// a file, synced before Deliver returns. When a batch would take the file
// past MaxBytes, the file is rotated first: path becomes path.1, path.1
// becomes path.2, ..., and the oldest beyond Keep is removed. A batch is
// never split, so a file exceeds MaxBytes only by a batch bigger than it.
type File struct {
	path     string
	maxBytes int64
	keep     int

	mu   sync.Mutex
	f    *os.File
	size int64
}

// OpenFile opens (or creates, mode 0600) the file sink at path. maxBytes
// <= 0 never rotates; keep is how many rotated files are kept (at least 1).
func OpenFile(path string, maxBytes int64, keep int) (*File, error) {
	s := &File{path: path, maxBytes: maxBytes, keep: max(keep, 1)}
	if err := s.open(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *File) open() error {
	f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open audit file %s: %w (its directory must exist and be writable by symbot)", s.path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("open audit file %s: %w", s.path, err)
	}
	s.f, s.size = f, st.Size()
	return nil
}

// Deliver appends b and syncs the file.
func (s *File) Deliver(ctx context.Context, b symbot.AuditBatch) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	data := symbot.AppendAuditJSONL(nil, b)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		if err := s.open(); err != nil {
			return err
		}
	}
	if s.maxBytes > 0 && s.size > 0 && s.size+int64(len(data)) > s.maxBytes {
		if err := s.rotate(); err != nil {
			return err
		}
	}
	n, err := s.f.Write(data)
	s.size += int64(n)
	if err != nil {
		return fmt.Errorf("write audit file %s: %w", s.path, err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("sync audit file %s: %w", s.path, err)
	}
	return nil
}

func (s *File) rotate() error {
	if err := s.f.Close(); err != nil {
		return fmt.Errorf("rotate audit file %s: %w", s.path, err)
	}
	s.f = nil
	name := func(i int) string { return s.path + "." + strconv.Itoa(i) }
	if err := os.Remove(name(s.keep)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("rotate audit file %s: %w", s.path, err)
	}
	for i := s.keep - 1; i >= 1; i-- {
		if err := os.Rename(name(i), name(i+1)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("rotate audit file %s: %w", s.path, err)
		}
	}
	if err := os.Rename(s.path, name(1)); err != nil {
		return fmt.Errorf("rotate audit file %s: %w", s.path, err)
	}
	return s.open()
}

// Close closes the file.
func (s *File) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}

// Webhook headers.
const (
	HeaderTimestamp = "X-Symbot-Timestamp" // unix seconds when the payload was signed
	HeaderSignature = "X-Symbot-Signature" // v1=<hex HMAC-SHA-256(secret, timestamp + "." + body)>
	HeaderBatch     = "Idempotency-Key"    // <first record id>..<last record id>: the same on a redelivery
)

// Webhook POSTs each batch as one JSON payload:
//
//	{"sink":"siem","records":[{"type":"entry",...},...,{"type":"checkpoint",...}]}
//
// signed with HMAC-SHA-256 under a shared secret (HeaderSignature over
// HeaderTimestamp + "." + body). Any 2xx answer is success; anything else
// is an error and the shipper retries the batch with back-off, forever.
type Webhook struct {
	url    string
	secret []byte
	client *http.Client

	Now func() time.Time // default time.Now
}

// NewWebhook returns a webhook sink. endpoint must be http(s); plain http
// is accepted only for loopback hosts. secret signs every payload.
func NewWebhook(endpoint string, secret []byte, client *http.Client) (*Webhook, error) {
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("audit webhook: %q is not an http(s) URL", redact(endpoint))
	}
	if u.Scheme == "http" && u.Hostname() != "127.0.0.1" && u.Hostname() != "localhost" && u.Hostname() != "::1" {
		return nil, fmt.Errorf("audit webhook: %s is plain http: use https (http is accepted only for 127.0.0.1/localhost)", redact(endpoint))
	}
	if len(secret) < 16 {
		return nil, errors.New("audit webhook: the signing secret is shorter than 16 bytes: use a long random secret")
	}
	if client == nil {
		client = &http.Client{}
	}
	return &Webhook{url: endpoint, secret: append([]byte(nil), secret...), client: client}, nil
}

// Sign returns the HeaderSignature value for body sent at ts; receivers
// compute it the same way (and compare with hmac.Equal).
func Sign(secret []byte, ts int64, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(strconv.FormatInt(ts, 10)))
	m.Write([]byte("."))
	m.Write(body)
	return "v1=" + hex.EncodeToString(m.Sum(nil))
}

// Payload returns the JSON body for b.
func Payload(b symbot.AuditBatch) []byte {
	lines := bytes.Split(bytes.TrimRight(symbot.AppendAuditJSONL(nil, b), "\n"), []byte("\n"))
	var buf bytes.Buffer
	buf.WriteString(`{"sink":`)
	buf.WriteString(strconv.Quote(b.Sink))
	buf.WriteString(`,"records":[`)
	buf.Write(bytes.Join(lines, []byte(",")))
	buf.WriteString("]}")
	return buf.Bytes()
}

func batchID(b symbot.AuditBatch) string {
	var first, last string
	if n := len(b.Entries); n > 0 {
		first, last = symbot.AuditRecordID(&b.Entries[0]), symbot.AuditRecordID(&b.Entries[n-1])
	}
	if b.Checkpoint != nil {
		if first == "" {
			first = b.Checkpoint.ID()
		}
		last = b.Checkpoint.ID()
	}
	return first + ".." + last
}

// Deliver POSTs b.
func (w *Webhook) Deliver(ctx context.Context, b symbot.AuditBatch) error {
	body := Payload(b)
	now := time.Now
	if w.Now != nil {
		now = w.Now
	}
	ts := now().Unix()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("audit webhook %s: %w", redact(w.url), err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "symbot-audit")
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderSignature, Sign(w.secret, ts, body))
	req.Header.Set(HeaderBatch, batchID(b))
	resp, err := w.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its text repeats the URL, query string and all
		}
		return fmt.Errorf("audit webhook %s: %w", redact(w.url), err)
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("audit webhook %s answered %s: %s", redact(w.url), resp.Status, bytes.TrimSpace(snippet))
	}
	return nil
}

// redact drops the user info, query and fragment of a URL, where tokens
// tend to hide.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}
