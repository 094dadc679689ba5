package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/symbot/symbot"
)

// promSample is one parsed exposition line.
type promSample struct {
	name   string
	labels map[string]string
	value  float64
}

// parseExposition parses the Prometheus text format strictly enough to
// catch malformed output: every sample belongs to a family announced by
// HELP and TYPE, label values are properly quoted and escaped.
func parseExposition(tb testing.TB, r io.Reader) (types map[string]string, samples []promSample) {
	tb.Helper()
	types = map[string]string{}
	helps := map[string]bool{}
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		s := sc.Text()
		if strings.HasPrefix(s, "# HELP ") {
			name, _, _ := strings.Cut(strings.TrimPrefix(s, "# HELP "), " ")
			helps[name] = true
			continue
		}
		if strings.HasPrefix(s, "# TYPE ") {
			f := strings.Fields(strings.TrimPrefix(s, "# TYPE "))
			if len(f) != 2 || !helps[f[0]] {
				tb.Fatalf("line %d: TYPE without HELP or malformed: %q", line, s)
			}
			types[f[0]] = f[1]
			continue
		}
		if s == "" || strings.HasPrefix(s, "#") {
			tb.Fatalf("line %d: unexpected line %q", line, s)
		}
		var ps promSample
		ps.labels = map[string]string{}
		i := strings.IndexAny(s, "{ ")
		ps.name = s[:i]
		rest := s[i:]
		if rest[0] == '{' {
			rest = rest[1:]
			for rest[0] != '}' {
				eq := strings.Index(rest, `="`)
				if eq < 0 {
					tb.Fatalf("line %d: bad labels in %q", line, s)
				}
				key := rest[:eq]
				rest = rest[eq+2:]
				var val strings.Builder
				for {
					c := rest[0]
					rest = rest[1:]
					if c == '\\' {
						switch rest[0] {
						case 'n':
							val.WriteByte('\n')
						case '\\', '"':
							val.WriteByte(rest[0])
						default:
							tb.Fatalf("line %d: bad escape in %q", line, s)
						}
						rest = rest[1:]
						continue
					}
					if c == '"' {
						break
					}
					val.WriteByte(c)
				}
				ps.labels[key] = val.String()
				rest = strings.TrimPrefix(rest, ",")
			}
			rest = rest[1:]
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
		if err != nil {
			tb.Fatalf("line %d: bad value in %q: %v", line, s, err)
		}
		ps.value = v
		base := ps.name
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if t, ok := types[strings.TrimSuffix(base, suf)]; ok && t == "histogram" {
				base = strings.TrimSuffix(base, suf)
			}
		}
		if _, ok := types[base]; !ok {
			tb.Fatalf("line %d: sample %s of no announced family", line, ps.name)
		}
		samples = append(samples, ps)
	}
	return types, samples
}

func find(samples []promSample, name string, labels map[string]string) (float64, bool) {
	for _, s := range samples {
		if s.name != name || len(s.labels) != len(labels) {
			continue
		}
		match := true
		for k, v := range labels {
			match = match && s.labels[k] == v
		}
		if match {
			return s.value, true
		}
	}
	return 0, false
}

func scrape(tb testing.TB, reg *Registry) (map[string]string, []promSample) {
	tb.Helper()
	var b strings.Builder
	if _, err := reg.WriteTo(&b); err != nil {
		tb.Fatal(err)
	}
	return parseExposition(tb, strings.NewReader(b.String()))
}

func TestMetricsExposition(t *testing.T) {
	reg := NewRegistry()
	m := NewMetrics(reg)
	m.RequestOutcome("prod", symbot.StatePending)
	m.RequestOutcome("prod", symbot.StatePending)
	m.RequestOutcome(`we"ird\flow`+"\n", symbot.StateDenied)
	m.GrantLatency("prod", 300*time.Millisecond)
	m.GrantLatency("prod", 2*time.Second)
	m.GrantLatency("prod", time.Hour)
	m.RevokeLag(3 * time.Second)
	m.JobResult(symbot.JobRevoke, "retry")
	m.SetStats(func() symbot.Stats { return symbot.Stats{PendingJobs: 4, FailingRevokes: 1, RevokeAlerts: 2} })
	m.SetSocketReconnects(func() int64 { return 3 })
	m.SetExternalCalls("okta", func() map[string]int64 { return map[string]int64{"ok": 10, "rate_limited": 1} })
	m.SetExternalCalls("slack", func() map[string]int64 { return map[string]int64{"ok": 7} })

	types, samples := scrape(t, reg)
	wantTypes := map[string]string{
		"symbot_requests_total":          "counter",
		"symbot_grant_latency_seconds":   "histogram",
		"symbot_revoke_lag_seconds":      "histogram",
		"symbot_jobs_total":              "counter",
		"symbot_pending_jobs":            "gauge",
		"symbot_failing_revocations":     "gauge",
		"symbot_socket_reconnects_total": "counter",
		"symbot_external_calls_total":    "counter",
	}
	for name, want := range wantTypes {
		if got := types[name]; got != want {
			t.Errorf("TYPE %s: got %q, want %q", name, got, want)
		}
	}
	tests := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"symbot_requests_total", map[string]string{"flow": "prod", "outcome": "pending"}, 2},
		{"symbot_requests_total", map[string]string{"flow": `we"ird\flow` + "\n", "outcome": "denied"}, 1},
		{"symbot_grant_latency_seconds_bucket", map[string]string{"le": "0.25"}, 0},
		{"symbot_grant_latency_seconds_bucket", map[string]string{"le": "0.5"}, 1},
		{"symbot_grant_latency_seconds_bucket", map[string]string{"le": "2.5"}, 2},
		{"symbot_grant_latency_seconds_bucket", map[string]string{"le": "600"}, 2},
		{"symbot_grant_latency_seconds_bucket", map[string]string{"le": "+Inf"}, 3},
		{"symbot_grant_latency_seconds_count", map[string]string{}, 3},
		{"symbot_grant_latency_seconds_sum", map[string]string{}, 3602.3},
		{"symbot_revoke_lag_seconds_count", map[string]string{}, 1},
		{"symbot_jobs_total", map[string]string{"kind": "revoke", "result": "retry"}, 1},
		{"symbot_pending_jobs", map[string]string{}, 4},
		{"symbot_failing_revocations", map[string]string{}, 1},
		{"symbot_revoke_alerts_total", map[string]string{}, 2},
		{"symbot_socket_reconnects_total", map[string]string{}, 3},
		{"symbot_external_calls_total", map[string]string{"service": "okta", "result": "rate_limited"}, 1},
		{"symbot_external_calls_total", map[string]string{"service": "slack", "result": "ok"}, 7},
	}
	for _, tt := range tests {
		got, ok := find(samples, tt.name, tt.labels)
		if !ok {
			t.Errorf("%s%v: missing", tt.name, tt.labels)
			continue
		}
		if diff := got - tt.want; diff > 1e-9 || diff < -1e-9 {
			t.Errorf("%s%v: got %v, want %v", tt.name, tt.labels, got, tt.want)
		}
	}
}

func TestMetricsCallbacksUnsetEmitNothing(t *testing.T) {
	reg := NewRegistry()
	NewMetrics(reg)
	_, samples := scrape(t, reg)
	for _, s := range samples {
		if s.name == "symbot_pending_jobs" || s.name == "symbot_socket_reconnects_total" {
			t.Errorf("%s emitted without a callback", s.name)
		}
	}
}

func TestRegistryMisuse(t *testing.T) {
	tests := []struct {
		name string
		fn   func(r *Registry)
	}{
		{"duplicate", func(r *Registry) { r.Counter("a_total", "x"); r.Counter("a_total", "x") }},
		{"bad name", func(r *Registry) { r.Gauge("a-b", "x") }},
		{"bad label", func(r *Registry) { r.Gauge("a", "x", "le-x") }},
		{"le on histogram", func(r *Registry) { r.Histogram("h", "x", []float64{1}, "le") }},
		{"label count", func(r *Registry) { r.Counter("c_total", "x", "a").Inc() }},
		{"negative counter", func(r *Registry) { r.Counter("c_total", "x").Add(-1) }},
		{"buckets not increasing", func(r *Registry) { r.Histogram("h", "x", []float64{2, 1}) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			tt.fn(NewRegistry())
		})
	}
}

func TestMetricsConcurrent(t *testing.T) {
	reg := NewRegistry()
	m := NewMetrics(reg)
	const workers, each = 8, 200
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				m.RequestOutcome(fmt.Sprintf("flow%d", i%3), symbot.StateActive)
				m.GrantLatency("f", time.Duration(i)*time.Millisecond)
				m.JobResult(symbot.JobGrant, "ok")
				if i%50 == 0 {
					m.SetSocketReconnects(func() int64 { return int64(w) })
					var b strings.Builder
					reg.WriteTo(&b)
				}
			}
		}()
	}
	wg.Wait()
	_, samples := scrape(t, reg)
	if got, _ := find(samples, "symbot_jobs_total", map[string]string{"kind": "grant", "result": "ok"}); got != workers*each {
		t.Errorf("jobs: got %v, want %d", got, workers*each)
	}
	if got, _ := find(samples, "symbot_grant_latency_seconds_count", map[string]string{}); got != workers*each {
		t.Errorf("latency count: got %v, want %d", got, workers*each)
	}
	var total float64
	for i := range 3 {
		v, _ := find(samples, "symbot_requests_total", map[string]string{"flow": fmt.Sprintf("flow%d", i), "outcome": "active"})
		total += v
	}
	if total != workers*each {
		t.Errorf("requests: got %v, want %d", total, workers*each)
	}
}

func TestHTTPHandler(t *testing.T) {
	reg := NewRegistry()
	m := NewMetrics(reg)
	m.RequestOutcome("prod", symbot.StateActive)
	var mu sync.Mutex
	var readyErr error = fmt.Errorf("socket mode not connected")
	srv := httptest.NewServer(NewHTTPHandler(func(ctx context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		return readyErr
	}, reg, nil))
	defer srv.Close()

	get := func(path string) (int, string, http.Header) {
		t.Helper()
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	if code, body, _ := get("/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: got %d %q", code, body)
	}
	if code, body, _ := get("/readyz"); code != 503 || !strings.Contains(body, "socket mode not connected") {
		t.Errorf("/readyz not ready: got %d %q", code, body)
	}
	mu.Lock()
	readyErr = nil
	mu.Unlock()
	if code, body, _ := get("/readyz"); code != 200 || body != "ready\n" {
		t.Errorf("/readyz ready: got %d %q", code, body)
	}
	code, body, h := get("/metrics")
	if code != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Errorf("/metrics: got %d %q", code, h.Get("Content-Type"))
	}
	_, samples := parseExposition(t, strings.NewReader(body))
	if v, ok := find(samples, "symbot_requests_total", map[string]string{"flow": "prod", "outcome": "active"}); !ok || v != 1 {
		t.Errorf("/metrics requests: got %v %v", v, ok)
	}
	if code, _, _ := get("/nope"); code != 404 {
		t.Errorf("/nope: got %d, want 404", code)
	}
}

func BenchmarkMetricsObserve(b *testing.B) {
	m := NewMetrics(NewRegistry())
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.GrantLatency("prod", 1500*time.Millisecond)
			m.RequestOutcome("prod", symbot.StateActive)
		}
	})
}

// TestOneStatsReadPerScrape: the engine's Stats scans the stored jobs, so
// the gauges of one scrape must share one read.
func TestOneStatsReadPerScrape(t *testing.T) {
	m := NewMetrics(NewRegistry())
	calls := 0
	m.SetStats(func() symbot.Stats { calls++; return symbot.Stats{PendingJobs: 3, FailingRevokes: 1} })
	var b strings.Builder
	if _, err := m.Registry.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Errorf("Stats read %d times for one scrape, want 1", calls)
	}
	for _, want := range []string{"symbot_pending_jobs 3", "symbot_failing_revocations 1"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
}
