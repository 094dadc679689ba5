package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
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
			if t, ok := types[strings.TrimSuffix(base, suf)]; ok && (t == "histogram" || t == "summary") {
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

func scrape(tb testing.TB, m *Metrics) (map[string]string, []promSample) {
	tb.Helper()
	return parseExposition(tb, strings.NewReader(scrapeText(tb, m)))
}

// scrapeText returns one scrape of m in the text exposition format.
func scrapeText(tb testing.TB, m *Metrics) string {
	tb.Helper()
	var b strings.Builder
	if err := m.WriteText(&b); err != nil {
		tb.Fatal(err)
	}
	return b.String()
}

func TestMetricsExposition(t *testing.T) {
	m := NewMetrics()
	m.RequestOutcome("prod", symbot.StatePending)
	m.RequestOutcome("prod", symbot.StatePending)
	m.RequestOutcome(`we"ird\flow`+"\n", symbot.StateDenied)
	m.GrantLatency("prod", 300*time.Millisecond)
	m.GrantLatency("prod", 2*time.Second)
	m.GrantLatency("prod", time.Hour)
	m.RevokeLag(3 * time.Second)
	m.JobResult(symbot.JobRevoke, "retry")
	m.SetStats(func() (symbot.Stats, error) {
		return symbot.Stats{PendingJobs: 4, FailingRevokes: 1, RevokeAlerts: 2}, nil
	})
	m.SetSocketReconnects(func() int64 { return 3 })
	m.SetExternalCalls("okta", func() ExternalCalls {
		return splitOktaStats(map[string]int64{"ok": 10, "rate_limited": 1, "attempts": 14, "retries": 3, "token_refreshes": 1})
	})
	m.SetExternalCalls("slack", func() ExternalCalls { return ExternalCalls{Outcomes: map[string]int64{"ok": 7}} })
	m.Reconciled(&symbot.ReconcileReport{Duration: 3 * time.Second, MembersChecked: 40, Drift: []symbot.Drift{
		{Kind: symbot.DriftUnmanaged}, {Kind: symbot.DriftUnmanaged}, {Kind: symbot.DriftVanished},
	}})
	m.Reconciled(&symbot.ReconcileReport{Duration: 2 * time.Second, MembersChecked: 42, Drift: []symbot.Drift{{Kind: symbot.DriftUnmanaged}}})

	types, samples := scrape(t, m)
	wantTypes := map[string]string{
		"symbot_requests_total":             "counter",
		"symbot_grant_latency_seconds":      "histogram",
		"symbot_revoke_lag_seconds":         "histogram",
		"symbot_jobs_total":                 "counter",
		"symbot_pending_jobs":               "gauge",
		"symbot_failing_revocations":        "gauge",
		"symbot_socket_reconnects_total":    "counter",
		"symbot_external_calls_total":       "counter",
		"symbot_external_call_events_total": "counter",
		"symbot_build_info":                 "gauge",
		"symbot_reconcile_duration_seconds": "histogram",
		"symbot_reconcile_members_checked":  "gauge",
		"symbot_reconcile_drift":            "gauge",
		"go_goroutines":                     "gauge",
		"process_start_time_seconds":        "gauge",
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
		{"symbot_external_call_events_total", map[string]string{"service": "okta", "event": "attempts"}, 14},
		{"symbot_external_call_events_total", map[string]string{"service": "okta", "event": "token_refreshes"}, 1},
		// The last pass's members and drift; every pass's duration.
		{"symbot_reconcile_duration_seconds_count", map[string]string{}, 2},
		{"symbot_reconcile_duration_seconds_sum", map[string]string{}, 5},
		{"symbot_reconcile_members_checked", map[string]string{}, 42},
		{"symbot_reconcile_drift", map[string]string{"kind": "unmanaged"}, 1},
		{"symbot_reconcile_drift", map[string]string{"kind": "vanished"}, 0},
		{"symbot_reconcile_drift", map[string]string{"kind": "standing"}, 0},
		{"symbot_reconcile_drift", map[string]string{"kind": "survived"}, 0},
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
	_, samples := scrape(t, NewMetrics())
	for _, s := range samples {
		if s.name == "symbot_pending_jobs" || s.name == "symbot_socket_reconnects_total" {
			t.Errorf("%s emitted without a callback", s.name)
		}
	}
}

// TestExternalCallOutcomesAddUp: symbot_external_calls_total holds one
// outcome per call, so a dashboard can sum it; attempts, retries and token
// refreshes are events in their own family.
func TestExternalCallOutcomesAddUp(t *testing.T) {
	m := NewMetrics()
	m.SetExternalCalls("okta", func() ExternalCalls {
		return splitOktaStats(map[string]int64{
			"ok": 10, "user_not_found": 2, "rate_limited": 1,
			"attempts": 20, "retries": 7, "token_refreshes": 1, "http_429": 4, "throttled": 2,
		})
	})
	_, samples := scrape(t, m)
	var calls float64
	results := map[string]bool{}
	for _, s := range samples {
		if s.name == "symbot_external_calls_total" && s.labels["service"] == "okta" {
			calls += s.value
			results[s.labels["result"]] = true
		}
	}
	if calls != 13 {
		t.Errorf("okta outcomes add up to %v, want 13 calls; results %v", calls, results)
	}
	for _, event := range []string{"attempts", "retries", "token_refreshes", "http_429", "throttled"} {
		if results[event] {
			t.Errorf("%s is counted as an outcome of symbot_external_calls_total", event)
		}
		if _, ok := find(samples, "symbot_external_call_events_total", map[string]string{"service": "okta", "event": event}); !ok {
			t.Errorf("symbot_external_call_events_total{event=%q} missing", event)
		}
	}
}

func TestMetricsConcurrent(t *testing.T) {
	m := NewMetrics()
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
					m.WriteText(&b)
				}
			}
		}()
	}
	wg.Wait()
	_, samples := scrape(t, m)
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
	m := NewMetrics()
	m.RequestOutcome("prod", symbot.StateActive)
	var mu sync.Mutex
	var readyErr error = fmt.Errorf("socket mode not connected")
	srv := httptest.NewServer(NewHTTPHandler(func(ctx context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		return readyErr
	}, m, nil))
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
	if code, body, _ := get("/readyz"); code != 503 || strings.Contains(body, "socket mode not connected") {
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
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/metrics", nil)
	req.Header.Set("Accept", "application/openmetrics-text; version=1.0.0")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	om, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/openmetrics-text") || !strings.HasSuffix(string(om), "# EOF\n") {
		t.Errorf("/metrics with Accept OpenMetrics: got %q, want OpenMetrics ending in # EOF", ct)
	}
	if code, _, _ := get("/nope"); code != 404 {
		t.Errorf("/nope: got %d, want 404", code)
	}
}

func BenchmarkMetricsObserve(b *testing.B) {
	m := NewMetrics()
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
	m := NewMetrics()
	calls := 0
	m.SetStats(func() (symbot.Stats, error) { calls++; return symbot.Stats{PendingJobs: 3, FailingRevokes: 1}, nil })
	var b strings.Builder
	if err := m.WriteText(&b); err != nil {
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

// TestStatsKeepTheLastGoodReadWhileTheStoreIsDown: a failed read of the
// engine's stats (database unreachable) must not turn the job gauges to 0,
// which would silence the alerts on piling jobs and stuck removals; the
// last good figures stay, and the next scrape reads again.
func TestStatsKeepTheLastGoodReadWhileTheStoreIsDown(t *testing.T) {
	m := NewMetrics()
	var down bool
	calls := 0
	m.SetStats(func() (symbot.Stats, error) {
		calls++
		if down {
			return symbot.Stats{}, errors.New("store unreachable")
		}
		return symbot.Stats{PendingJobs: 7, FailingRevokes: 2}, nil
	})
	if got := scrapeText(t, m); !strings.Contains(got, "symbot_pending_jobs 7") {
		t.Fatalf("first scrape lacks symbot_pending_jobs 7:\n%s", got)
	}
	down = true
	m.mu.Lock()
	m.statsAt = time.Time{} // the next scrape reads again
	m.mu.Unlock()
	got := scrapeText(t, m)
	for _, want := range []string{"symbot_pending_jobs 7", "symbot_failing_revocations 2"} {
		if !strings.Contains(got, want) {
			t.Errorf("scrape while the store is down lacks %q (the last good read):\n%s", want, got)
		}
	}
	if calls != 2 {
		t.Errorf("stats read %d times, want 2 (a failed read is tried at the next scrape)", calls)
	}
	// Before any good read, the job gauges are not shown at all.
	m2 := NewMetrics()
	m2.SetStats(func() (symbot.Stats, error) { return symbot.Stats{}, errors.New("store unreachable") })
	if got := scrapeText(t, m2); strings.Contains(got, "symbot_pending_jobs ") {
		t.Errorf("scrape with no good read shows symbot_pending_jobs:\n%s", got)
	}
}

// TestREADMEDocumentsEveryMetric: every symbot_* family with its labels is
// in the README's metrics table, and everything the table documents is
// exposed, with the same labels.
func TestREADMEDocumentsEveryMetric(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string][]string{} // name -> sorted labels
	for _, m := range regexp.MustCompile("(?m)^\\| `(symbot_[a-z_]+)(?:\\{([a-z_,]+)\\})?` \\|").FindAllStringSubmatch(string(readme), -1) {
		var labels []string
		if m[2] != "" {
			labels = strings.Split(m[2], ",")
		}
		slices.Sort(labels)
		documented[m[1]] = labels
	}
	if len(documented) < 10 {
		t.Fatalf("found %d metrics in the README's table, want the whole table", len(documented))
	}

	m := NewMetrics()
	m.RequestOutcome("prod", symbot.StateActive)
	m.GrantLatency("prod", time.Second)
	m.RevokeLag(time.Second)
	m.JobResult(symbot.JobGrant, "ok")
	m.SetStats(func() (symbot.Stats, error) { return symbot.Stats{}, nil })
	m.SetSocketReconnects(func() int64 { return 0 })
	m.SetSocketConnected(func() bool { return true })
	m.SetExternalCalls("okta", func() ExternalCalls { return splitOktaStats(map[string]int64{"ok": 1, "attempts": 1}) })
	m.Reconciled(&symbot.ReconcileReport{})
	m.CredentialChecked("slack_bot_token", true)
	m.ConfigReload("applied")
	_, samples := scrape(t, m)
	exposed := map[string][]string{}
	for _, s := range samples {
		name := s.name
		if !strings.HasPrefix(name, "symbot_") {
			continue
		}
		var labels []string
		for k := range s.labels {
			if k != "le" {
				labels = append(labels, k)
			}
		}
		slices.Sort(labels)
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if base := strings.TrimSuffix(name, suf); base != name && strings.HasSuffix(base, "_seconds") {
				name = base
			}
		}
		exposed[name] = labels
	}
	for name, labels := range exposed {
		doc, ok := documented[name]
		if !ok {
			t.Errorf("%s%v is exposed but not in the README's metrics table", name, labels)
		} else if !slices.Equal(doc, labels) {
			t.Errorf("%s: README documents labels %v, exposed %v", name, doc, labels)
		}
	}
	for name := range documented {
		if _, ok := exposed[name]; !ok {
			t.Errorf("%s is in the README's metrics table but not exposed", name)
		}
	}
}

// TestAlertedSeriesExistFromStart: the series the alert rules select by
// label (a refused credential, a refused reload) are exported by a symbot
// that has checked nothing and reloaded nothing yet, with their initial
// values, and change from there.
func TestAlertedSeriesExistFromStart(t *testing.T) {
	m := NewMetrics()
	value := func(name string, labels map[string]string) (float64, bool) {
		t.Helper()
		_, samples := scrape(t, m)
		for _, s := range samples {
			if s.name == name && maps.Equal(s.labels, labels) {
				return s.value, true
			}
		}
		return 0, false
	}
	tests := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"symbot_config_reloads_total", map[string]string{"result": "applied"}, 0},
		{"symbot_config_reloads_total", map[string]string{"result": "refused"}, 0},
		{"symbot_credential_valid", map[string]string{"credential": "slack_bot_token"}, 1},
		{"symbot_credential_valid", map[string]string{"credential": "okta_token"}, 1},
	}
	for _, tt := range tests {
		got, ok := value(tt.name, tt.labels)
		if !ok {
			t.Errorf("%s%v is not exported before anything happened", tt.name, tt.labels)
		} else if got != tt.want {
			t.Errorf("%s%v = %v at start, want %v", tt.name, tt.labels, got, tt.want)
		}
	}
	m.CredentialChecked("okta_token", false)
	m.ConfigReload("refused")
	if got, _ := value("symbot_credential_valid", map[string]string{"credential": "okta_token"}); got != 0 {
		t.Errorf("okta_token after a refusal = %v, want 0", got)
	}
	if got, _ := value("symbot_config_reloads_total", map[string]string{"result": "refused"}); got != 1 {
		t.Errorf("refused reloads after one = %v, want 1", got)
	}
}
