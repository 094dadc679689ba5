package main

// symbot's Prometheus metrics, on github.com/prometheus/client_golang: the
// engine's counters and histograms, gauges read from the engine and the
// adapters at scrape time, the process and Go runtime collectors, and the
// /metrics handler (text format, or OpenMetrics when the scraper asks).

import (
	"io"
	"maps"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"

	"github.com/symbot/symbot"
)

// Histogram buckets, in seconds.
var (
	grantLatencyBuckets = []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}
	revokeLagBuckets    = []float64{0.5, 1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600}
	reconcileBuckets    = []float64{0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}
)

// Metrics is symbot's metric set on its own Prometheus registry. It
// implements symbot.Metrics for the engine, and reads gauges from callbacks
// that the wiring plugs in (engine stats, Socket Mode reconnects, adapter
// call counts). It is safe for concurrent use.
type Metrics struct {
	// Registry holds symbot's metrics and the process and Go runtime
	// collectors.
	Registry *prometheus.Registry

	requests     *prometheus.CounterVec
	grantLatency prometheus.Histogram
	revokeLag    prometheus.Histogram
	jobs         *prometheus.CounterVec

	reconcileDuration prometheus.Histogram
	reconcileMembers  prometheus.Gauge
	reconcileDrift    *prometheus.GaugeVec

	credentialValid *prometheus.GaugeVec
	configReloads   *prometheus.CounterVec

	mu         sync.Mutex
	stats      func() (symbot.Stats, error)
	statsAt    time.Time    // when statsLast was read
	statsLast  symbot.Stats // shared by the gauges of one scrape
	statsOK    bool         // statsLast holds a good read
	reconnects func() int64
	connected  func() bool
	storeUp    func() bool
	external   map[string]func() ExternalCalls // by service
}

var (
	_ symbot.Metrics          = (*Metrics)(nil)
	_ symbot.ReconcileMetrics = (*Metrics)(nil)
)

// ExternalCalls are one service's call counts. Outcomes has one count per
// call, by how it ended (ok, rate_limited, ...), so the outcomes of a
// service add up to its calls. Events counts what happened along the way
// (HTTP attempts, retries, token refreshes, ...); they are not outcomes and
// must not be added to them.
type ExternalCalls struct {
	Outcomes map[string]int64
	Events   map[string]int64
}

// NewMetrics returns symbot's metrics on a new registry.
func NewMetrics() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{Registry: reg, external: map[string]func() ExternalCalls{}}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "symbot_requests_total", Help: "Requests reaching a state (outcome), by flow.",
	}, []string{"flow", "outcome"})
	m.grantLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "symbot_grant_latency_seconds", Help: "Time from final approval to the Okta membership taking effect.",
		Buckets: grantLatencyBuckets,
	})
	m.revokeLag = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "symbot_revoke_lag_seconds", Help: "Time from a grant's end to the Okta membership being removed.",
		Buckets: revokeLagBuckets,
	})
	m.jobs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "symbot_jobs_total", Help: "Durable job attempts, by kind and result (ok, retry, failed).",
	}, []string{"kind", "result"})
	m.reconcileDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "symbot_reconcile_duration_seconds", Help: "How long each reconcile pass (not a dry run) took; its count is the passes run.",
		Buckets: reconcileBuckets,
	})
	m.reconcileMembers = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "symbot_reconcile_members_checked", Help: "Okta group members the last reconcile pass compared with the grants.",
	})
	m.reconcileDrift = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "symbot_reconcile_drift", Help: "Differences between Okta and the grants the last reconcile pass found, by kind (standing, unmanaged, vanished, survived).",
	}, []string{"kind"})
	m.credentialValid = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "symbot_credential_valid", Help: "0 when the credential was refused at its last check, else 1 (also before the first check answers) (slack_bot_token, okta_token).",
	}, []string{"credential"})
	m.configReloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "symbot_config_reloads_total", Help: "Config reloads (SIGHUP), by result: applied, or refused (the file is invalid; the running config stays).",
	}, []string{"result"})
	reg.MustRegister(m.configReloads, m.requests, m.grantLatency, m.revokeLag, m.jobs,
		m.reconcileDuration, m.reconcileMembers, m.reconcileDrift, m.credentialValid, (*scrapeCollector)(m),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewGoCollector())
	// Every series an alert selects exists from the start, with its
	// initial value: an alert on a series that appears only at its first
	// change would miss that change (increase() needs an earlier sample)
	// and could not be told apart from a missing metric.
	for _, r := range ConfigReloadResults {
		m.configReloads.WithLabelValues(r)
	}
	for _, name := range CredentialNames {
		m.credentialValid.WithLabelValues(name).Set(1)
	}
	return m
}

// ConfigReloadResults are the result labels of symbot_config_reloads_total.
var ConfigReloadResults = []string{"applied", "refused"}

// CredentialNames are the credentials a running symbot checks, the labels
// of symbot_credential_valid.
var CredentialNames = []string{"slack_bot_token", "okta_token"}

// RequestOutcome implements symbot.Metrics.
func (m *Metrics) RequestOutcome(flow string, s symbot.State) {
	m.requests.WithLabelValues(flow, string(s)).Inc()
}

// GrantLatency implements symbot.Metrics.
func (m *Metrics) GrantLatency(_ string, d time.Duration) { m.grantLatency.Observe(d.Seconds()) }

// RevokeLag implements symbot.Metrics.
func (m *Metrics) RevokeLag(d time.Duration) { m.revokeLag.Observe(d.Seconds()) }

// JobResult implements symbot.Metrics.
func (m *Metrics) JobResult(kind symbot.JobKind, result string) {
	m.jobs.WithLabelValues(string(kind), result).Inc()
}

// Reconciled implements symbot.ReconcileMetrics: the engine calls it after
// every reconcile pass that was not a dry run.
func (m *Metrics) Reconciled(r *symbot.ReconcileReport) {
	m.reconcileDuration.Observe(r.Duration.Seconds())
	m.reconcileMembers.Set(float64(r.MembersChecked))
	for _, k := range symbot.DriftKinds {
		m.reconcileDrift.WithLabelValues(string(k)).Set(float64(r.Count(k)))
	}
}

// CredentialChecked records whether a credential (slack_bot_token,
// okta_token) was accepted at its last check.
func (m *Metrics) CredentialChecked(name string, valid bool) {
	v := 0.0
	if valid {
		v = 1
	}
	m.credentialValid.WithLabelValues(name).Set(v)
}

// ConfigReload counts one config reload by its result: "applied" or
// "refused".
func (m *Metrics) ConfigReload(result string) { m.configReloads.WithLabelValues(result).Inc() }

// snapshot returns the engine's stats, read at most once a second: the
// several gauges of one scrape share one read. A read that fails (the
// store is unreachable) leaves the last good figures in place and is tried
// again at the next scrape: a gauge that fell to 0 while the database was
// down would silence SymbotJobsPiling and SymbotRemovalStuck exactly when
// removals cannot be recorded (SymbotStoreDown says the store is down).
// Before any good read there is nothing to show.
func (m *Metrics) snapshot() (symbot.Stats, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stats == nil {
		return symbot.Stats{}, false
	}
	if now := time.Now(); now.Sub(m.statsAt) >= time.Second {
		if s, err := m.stats(); err == nil {
			m.statsLast, m.statsAt, m.statsOK = s, now, true
		}
	}
	return m.statsLast, m.statsOK
}

// SetStats plugs in the engine's Stats for the job and revocation gauges.
func (m *Metrics) SetStats(fn func() (symbot.Stats, error)) {
	m.mu.Lock()
	m.stats, m.statsAt, m.statsOK = fn, time.Time{}, false
	m.mu.Unlock()
}

// SetSocketReconnects plugs in the Socket Mode reconnect count.
func (m *Metrics) SetSocketReconnects(fn func() int64) {
	m.mu.Lock()
	m.reconnects = fn
	m.mu.Unlock()
}

// SetSocketConnected plugs in whether Socket Mode is connected.
func (m *Metrics) SetSocketConnected(fn func() bool) {
	m.mu.Lock()
	m.connected = fn
	m.mu.Unlock()
}

// SetStoreUp plugs in whether the store answers a read, asked at each
// scrape for symbot_store_up; until then (while `symbot run` waits for its
// database) the gauge is 0.
func (m *Metrics) SetStoreUp(fn func() bool) {
	m.mu.Lock()
	m.storeUp = fn
	m.mu.Unlock()
}

// SetExternalCalls plugs in one service's call counts; service is slack,
// okta or aws.
func (m *Metrics) SetExternalCalls(service string, fn func() ExternalCalls) {
	m.mu.Lock()
	m.external[service] = fn
	m.mu.Unlock()
}

// Handler serves the metrics at /metrics, in the Prometheus text format or
// in OpenMetrics when the scraper asks for it.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{EnableOpenMetrics: true})
}

// WriteText writes every metric in the Prometheus text format.
func (m *Metrics) WriteText(w io.Writer) error {
	mfs, err := m.Registry.Gather()
	if err != nil {
		return err
	}
	enc := expfmt.NewEncoder(w, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return err
		}
	}
	return nil
}

// The families read at scrape time.
var (
	descPendingJobs = prometheus.NewDesc("symbot_pending_jobs",
		"Durable jobs stored and not yet done.", nil, nil)
	descFailingRevokes = prometheus.NewDesc("symbot_failing_revocations",
		"Revocations that failed at least once and are still being retried.", nil, nil)
	descRevokeAlerts = prometheus.NewDesc("symbot_revoke_alerts_total",
		"Alerts raised for stuck revocations since start.", nil, nil)
	descJobsAbandoned = prometheus.NewDesc("symbot_jobs_abandoned_total",
		"Non-revoke jobs given up after their attempts since start.", nil, nil)
	descNextDeadline = prometheus.NewDesc("symbot_next_deadline_seconds",
		"Unix time of the next scheduled deadline (0: none).", nil, nil)
	descReconnects = prometheus.NewDesc("symbot_socket_reconnects_total",
		"Slack Socket Mode reconnections since start.", nil, nil)
	descConnected = prometheus.NewDesc("symbot_socket_connected",
		"1 while the Slack Socket Mode connection is up, else 0.", nil, nil)
	descStoreUp = prometheus.NewDesc("symbot_store_up",
		"1 while the store (the PostgreSQL database or the bbolt file) answers a read at the scrape, else 0 (also while symbot waits for its database at start).", nil, nil)
	descExternalCalls = prometheus.NewDesc("symbot_external_calls_total",
		"Calls to outside services (slack, okta, aws), one per call by how it ended: the results of a service add up to its calls.",
		[]string{"service", "result"}, nil)
	descExternalEvents = prometheus.NewDesc("symbot_external_call_events_total",
		"What happened during calls to outside services (attempts, retries, token_refreshes, http_429, throttled); not outcomes, never add them to symbot_external_calls_total.",
		[]string{"service", "event"}, nil)
	descBuildInfo = prometheus.NewDesc("symbot_build_info",
		"Always 1; the labels say which symbot build runs.", buildInfoLabels, nil)
)

// scrapeCollector emits the families that are read at scrape time.
type scrapeCollector Metrics

// Describe implements prometheus.Collector.
func (c *scrapeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPendingJobs, descFailingRevokes, descRevokeAlerts, descJobsAbandoned,
		descNextDeadline, descReconnects, descConnected, descStoreUp, descExternalCalls, descExternalEvents, descBuildInfo} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: one engine Stats read serves
// every gauge of the scrape.
func (c *scrapeCollector) Collect(ch chan<- prometheus.Metric) {
	m := (*Metrics)(c)
	if s, ok := m.snapshot(); ok {
		next := 0.0
		if !s.NextDeadline.IsZero() {
			next = float64(s.NextDeadline.UnixNano()) / 1e9
		}
		ch <- prometheus.MustNewConstMetric(descPendingJobs, prometheus.GaugeValue, float64(s.PendingJobs))
		ch <- prometheus.MustNewConstMetric(descFailingRevokes, prometheus.GaugeValue, float64(s.FailingRevokes))
		ch <- prometheus.MustNewConstMetric(descRevokeAlerts, prometheus.CounterValue, float64(s.RevokeAlerts))
		ch <- prometheus.MustNewConstMetric(descJobsAbandoned, prometheus.CounterValue, float64(s.JobsAbandoned))
		ch <- prometheus.MustNewConstMetric(descNextDeadline, prometheus.GaugeValue, next)
	}
	m.mu.Lock()
	reconnects := m.reconnects
	connected := m.connected
	storeUp := m.storeUp
	external := maps.Clone(m.external)
	m.mu.Unlock()
	if reconnects != nil {
		ch <- prometheus.MustNewConstMetric(descReconnects, prometheus.CounterValue, float64(reconnects()))
	}
	if connected != nil {
		v := 0.0
		if connected() {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(descConnected, prometheus.GaugeValue, v)
	}
	up := 0.0
	if storeUp != nil && storeUp() {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(descStoreUp, prometheus.GaugeValue, up)
	for svc, fn := range external {
		calls := fn()
		for result, n := range calls.Outcomes {
			ch <- prometheus.MustNewConstMetric(descExternalCalls, prometheus.CounterValue, float64(n), svc, result)
		}
		for event, n := range calls.Events {
			ch <- prometheus.MustNewConstMetric(descExternalEvents, prometheus.CounterValue, float64(n), svc, event)
		}
	}
	ch <- prometheus.MustNewConstMetric(descBuildInfo, prometheus.GaugeValue, 1, currentBuild().labelValues()...)
}

// oktaEvents are the keys of okta.Directory.Stats that count events during
// calls rather than how calls ended.
var oktaEvents = map[string]bool{"attempts": true, "retries": true, "token_refreshes": true, "http_429": true, "throttled": true}

// splitOktaStats sorts okta.Directory.Stats into outcomes and events.
func splitOktaStats(stats map[string]int64) ExternalCalls {
	out := ExternalCalls{Outcomes: map[string]int64{}, Events: map[string]int64{}}
	for k, v := range stats {
		if oktaEvents[k] {
			out.Events[k] = v
		} else {
			out.Outcomes[k] = v
		}
	}
	return out
}
