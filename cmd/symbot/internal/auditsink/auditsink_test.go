package auditsink_test

import (
	"context"
	"crypto/hmac"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/cmd/symbot/internal/auditsink"
	"github.com/symbot/symbot/store/memstore"
)

func auditStore(t *testing.T, n int) *memstore.Store {
	t.Helper()
	st := memstore.New()
	appendN(t, st, n)
	return st
}

func appendN(t *testing.T, st symbot.Store, n int) {
	t.Helper()
	for i := range n {
		if err := st.Update(context.Background(), func(tx symbot.Tx) error {
			return symbot.AppendAudit(tx, nil, &symbot.AuditEntry{At: time.Now(), RequestID: "SYM-1", Actor: "UBOB", Action: "approve", Detail: fmt.Sprint("n=", i)})
		}); err != nil {
			t.Fatal(err)
		}
	}
}

// run ships st into sink until cond holds, then stops the shipper (which
// delivers a final checkpoint).
func run(t *testing.T, st symbot.Store, sink symbot.AuditSink, cond func(symbot.AuditSinkStats) bool, tune func(*symbot.AuditShipper)) symbot.AuditSinkStats {
	t.Helper()
	sh, err := symbot.NewAuditShipper(st, map[string]symbot.AuditSink{"siem": sink})
	if err != nil {
		t.Fatal(err)
	}
	sh.BatchSize = 25
	sh.Poll = 10 * time.Millisecond
	sh.RetryBase = 10 * time.Millisecond
	sh.RetryMax = 40 * time.Millisecond
	if tune != nil {
		tune(sh)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- sh.Run(ctx) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s := sh.Stats()[0]
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within 30s: %+v", s)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestFileSinkRotatesBySize(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	f, err := auditsink.OpenFile(path, 17000, 2) // batches of 25 are about 8 KB
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st := auditStore(t, 125)
	run(t, st, f, func(s symbot.AuditSinkStats) bool { return s.Delivered == 125 }, nil)
	var all strings.Builder
	for _, p := range []string{path + ".2", path + ".1", path} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("read %s: %v", p, err)
		}
		if len(b) > 17000 || len(b) == 0 {
			t.Errorf("%s is %d bytes, want 1..17000", p, len(b))
		}
		all.Write(b)
		if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", p, fi.Mode().Perm())
		}
	}
	if _, err := os.Stat(path + ".3"); err == nil {
		t.Errorf("a third rotated file is kept; keep is 2")
	}
	anchors, err := symbot.ParseAuditAnchors(strings.NewReader(all.String()))
	if err != nil {
		t.Fatal(err)
	}
	if last := anchors[len(anchors)-1]; last.Seq != 125 {
		t.Errorf("last anchor in the kept files = %d, want 125", last.Seq)
	}
}

// receiver is a webhook endpoint that checks signatures and keeps records
// by id (dropping redeliveries). It answers 503 to the first failN posts
// and takes delay for each.
type receiver struct {
	secret []byte
	mu     sync.Mutex
	failN  int
	delay  time.Duration
	posts  int
	ids    map[string]bool
	seqs   []uint64
	cps    []uint64
	badSig int
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	rc.posts++
	fail := rc.failN > 0
	if fail {
		rc.failN--
	}
	delay := rc.delay
	rc.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	ts, _ := strconv.ParseInt(r.Header.Get(auditsink.HeaderTimestamp), 10, 64)
	if !hmac.Equal([]byte(auditsink.Sign(rc.secret, ts, body)), []byte(r.Header.Get(auditsink.HeaderSignature))) || r.Header.Get(auditsink.HeaderBatch) == "" {
		rc.mu.Lock()
		rc.badSig++
		rc.mu.Unlock()
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	if fail {
		http.Error(w, "try later", http.StatusServiceUnavailable)
		return
	}
	var p struct {
		Sink    string `json:"sink"`
		Records []struct {
			Type string `json:"type"`
			ID   string `json:"id"`
			Seq  uint64 `json:"seq"`
		} `json:"records"`
	}
	if err := json.Unmarshal(body, &p); err != nil || p.Sink != "siem" {
		http.Error(w, "bad payload", http.StatusBadRequest)
		return
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, r := range p.Records {
		if rc.ids[r.ID] {
			continue
		}
		rc.ids[r.ID] = true
		if r.Type == "entry" {
			rc.seqs = append(rc.seqs, r.Seq)
		} else {
			rc.cps = append(rc.cps, r.Seq)
		}
	}
}

func (rc *receiver) inOrder(t *testing.T, n int) {
	t.Helper()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.seqs) != n {
		t.Fatalf("receiver has %d entries, want %d", len(rc.seqs), n)
	}
	for i, s := range rc.seqs {
		if s != uint64(i+1) {
			t.Fatalf("entry %d is seq %d: out of order", i, s)
		}
	}
	if rc.badSig != 0 {
		t.Errorf("%d posts had a bad signature", rc.badSig)
	}
}

func newReceiver(t *testing.T, failN int, delay time.Duration) (*receiver, *auditsink.Webhook) {
	rc := &receiver{secret: []byte("0123456789abcdef-webhook"), failN: failN, delay: delay, ids: map[string]bool{}}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	wh, err := auditsink.NewWebhook(srv.URL+"/hook?token=hunter2", rc.secret, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	return rc, wh
}

func TestWebhookDeliversSignedBatches(t *testing.T) {
	rc, wh := newReceiver(t, 0, 0)
	st := auditStore(t, 60)
	run(t, st, wh, func(s symbot.AuditSinkStats) bool { return s.Delivered == 60 }, nil)
	rc.inOrder(t, 60)
	if rc.posts > 4 {
		t.Errorf("%d posts for 60 entries in batches of 25 (and a checkpoint)", rc.posts)
	}
}

func TestWebhookReceiverFailingForAWhile(t *testing.T) {
	rc, wh := newReceiver(t, 6, 0)
	st := auditStore(t, 40)
	var alerts []symbot.Alert
	var amu sync.Mutex
	s := run(t, st, wh, func(s symbot.AuditSinkStats) bool { return s.Delivered == 40 }, func(sh *symbot.AuditShipper) {
		sh.AlertAfter = 3
		sh.Alert = func(_ context.Context, a symbot.Alert) error {
			amu.Lock()
			alerts = append(alerts, a)
			amu.Unlock()
			return nil
		}
	})
	rc.inOrder(t, 40)
	if s.Failing != 0 {
		t.Errorf("still failing after recovery: %+v", s)
	}
	amu.Lock()
	defer amu.Unlock()
	if len(alerts) != 1 || !strings.Contains(alerts[0].Text, "503") {
		t.Fatalf("alerts = %+v, want one naming the 503", alerts)
	}
	if strings.Contains(alerts[0].Text, "hunter2") || strings.Contains(alerts[0].Text, "webhook\"") {
		t.Errorf("alert leaks the URL's token or the secret: %s", alerts[0].Text)
	}
}

func TestWebhookSlowReceiver(t *testing.T) {
	rc, wh := newReceiver(t, 0, 400*time.Millisecond)
	st := auditStore(t, 10)
	var sawFailing bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		// While the receiver is slow, the first attempts time out.
		time.Sleep(time.Second)
		rc.mu.Lock()
		rc.delay = 0
		rc.mu.Unlock()
	}()
	run(t, st, wh, func(s symbot.AuditSinkStats) bool {
		sawFailing = sawFailing || (s.Failing > 0 && strings.Contains(s.LastError, "deadline"))
		return s.Delivered == 10
	}, func(sh *symbot.AuditShipper) { sh.DeliverTimeout = 100 * time.Millisecond })
	<-done
	if !sawFailing {
		t.Errorf("a receiver slower than DeliverTimeout was not reported failing")
	}
	rc.inOrder(t, 10)
}

func TestNewWebhookRefuses(t *testing.T) {
	tests := []struct{ name, url, secret, want string }{
		{"plain http elsewhere", "http://siem.example.com/hook", "0123456789abcdef", "use https"},
		{"not a URL", "siem", "0123456789abcdef", "not an http(s) URL"},
		{"short secret", "https://siem.example.com/hook", "short", "shorter than 16"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := auditsink.NewWebhook(tt.url, []byte(tt.secret), nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

// BenchmarkWebhookDelivery is the cost per entry of delivering the trail
// over HTTP to a local receiver, in batches of 100.
func BenchmarkWebhookDelivery(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.Copy(io.Discard, r.Body) }))
	defer srv.Close()
	wh, _ := auditsink.NewWebhook(srv.URL, []byte("0123456789abcdef"), srv.Client())
	es := make([]symbot.AuditEntry, 100)
	for i := range es {
		es[i] = symbot.AuditEntry{Seq: uint64(i + 1), At: time.Now(), RequestID: "SYM-1", Actor: "UBOB", Action: "approve", Detail: "approval 1 of 1", PrevHash: strings.Repeat("a", 64), Key: "k1-0011223344556677", Hash: strings.Repeat("b", 64)}
	}
	for b.Loop() {
		if err := wh.Deliver(context.Background(), symbot.AuditBatch{Sink: "b", Entries: es}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(es)), "ns/entry")
}

// BenchmarkFileDelivery is the cost per entry of appending the trail to a
// file (synced per batch of 100).
func BenchmarkFileDelivery(b *testing.B) {
	f, err := auditsink.OpenFile(filepath.Join(b.TempDir(), "a.jsonl"), 64<<20, 2)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	es := make([]symbot.AuditEntry, 100)
	for i := range es {
		es[i] = symbot.AuditEntry{Seq: uint64(i + 1), At: time.Now(), RequestID: "SYM-1", Actor: "UBOB", Action: "approve", Detail: "approval 1 of 1", PrevHash: strings.Repeat("a", 64), Key: "k1-0011223344556677", Hash: strings.Repeat("b", 64)}
	}
	for b.Loop() {
		if err := f.Deliver(context.Background(), symbot.AuditBatch{Sink: "f", Entries: es}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(es)), "ns/entry")
}
