package main

// A small Prometheus registry written with the standard library: counters,
// gauges and histograms with labels, plus families whose samples are read
// from callbacks at scrape time. It writes the text exposition format
// (version 0.0.4).

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/symbot/symbot"
)

// Metric types.
const (
	typeCounter   = "counter"
	typeGauge     = "gauge"
	typeHistogram = "histogram"
)

var (
	metricNameRE = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	labelNameRE  = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

// Sample is one value of a callback family, with its label values in the
// family's label order.
type Sample struct {
	LabelValues []string
	Value       float64
}

// Registry holds metric families and writes them in the Prometheus text
// format. It is safe for concurrent use.
type Registry struct {
	mu       sync.Mutex
	families map[string]*family
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{families: map[string]*family{}}
}

type family struct {
	name, help, typ string
	labels          []string
	buckets         []float64 // histograms: upper bounds, increasing, without +Inf
	collect         func() []Sample

	mu     sync.Mutex
	series map[string]*series
}

type series struct {
	values []string
	value  float64  // counter, gauge
	counts []uint64 // histogram: per bucket (not cumulative), last is +Inf
	sum    float64  // histogram
	count  uint64   // histogram
}

// register adds a family; a bad or duplicate name is a programming error.
func (r *Registry) register(f *family) *family {
	if !metricNameRE.MatchString(f.name) {
		panic(fmt.Sprintf("metrics: invalid metric name %q", f.name))
	}
	for _, l := range f.labels {
		if !labelNameRE.MatchString(l) || strings.HasPrefix(l, "__") || (f.typ == typeHistogram && l == "le") {
			panic(fmt.Sprintf("metrics: invalid label name %q for %s", l, f.name))
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.families[f.name]; dup {
		panic(fmt.Sprintf("metrics: %s registered twice", f.name))
	}
	f.series = map[string]*series{}
	r.families[f.name] = f
	return f
}

func (f *family) get(values []string) *series {
	if len(values) != len(f.labels) {
		panic(fmt.Sprintf("metrics: %s takes %d label values (%s), got %d", f.name, len(f.labels), strings.Join(f.labels, ","), len(values)))
	}
	key := strings.Join(values, "\xff")
	s, ok := f.series[key]
	if !ok {
		s = &series{values: slices.Clone(values)}
		if f.typ == typeHistogram {
			s.counts = make([]uint64, len(f.buckets)+1)
		}
		f.series[key] = s
	}
	return s
}

// CounterVec is a counter with labels.
type CounterVec struct{ f *family }

// Counter registers a counter family.
func (r *Registry) Counter(name, help string, labels ...string) *CounterVec {
	return &CounterVec{r.register(&family{name: name, help: help, typ: typeCounter, labels: labels})}
}

// Inc adds 1 to the series with the given label values.
func (c *CounterVec) Inc(labelValues ...string) { c.Add(1, labelValues...) }

// Add adds v (which must not be negative) to the series.
func (c *CounterVec) Add(v float64, labelValues ...string) {
	if v < 0 || math.IsNaN(v) {
		panic(fmt.Sprintf("metrics: counter %s cannot add %v", c.f.name, v))
	}
	c.f.mu.Lock()
	c.f.get(labelValues).value += v
	c.f.mu.Unlock()
}

// GaugeVec is a gauge with labels.
type GaugeVec struct{ f *family }

// Gauge registers a gauge family.
func (r *Registry) Gauge(name, help string, labels ...string) *GaugeVec {
	return &GaugeVec{r.register(&family{name: name, help: help, typ: typeGauge, labels: labels})}
}

// Set sets the series to v.
func (g *GaugeVec) Set(v float64, labelValues ...string) {
	g.f.mu.Lock()
	g.f.get(labelValues).value = v
	g.f.mu.Unlock()
}

// Add adds v (may be negative) to the series.
func (g *GaugeVec) Add(v float64, labelValues ...string) {
	g.f.mu.Lock()
	g.f.get(labelValues).value += v
	g.f.mu.Unlock()
}

// HistogramVec is a histogram with labels.
type HistogramVec struct{ f *family }

// Histogram registers a histogram family with the given bucket upper
// bounds (increasing; +Inf is implied).
func (r *Registry) Histogram(name, help string, buckets []float64, labels ...string) *HistogramVec {
	b := slices.Clone(buckets)
	if len(b) > 0 && math.IsInf(b[len(b)-1], +1) {
		b = b[:len(b)-1]
	}
	for i := 1; i < len(b); i++ {
		if !(b[i] > b[i-1]) {
			panic(fmt.Sprintf("metrics: histogram %s buckets must increase", name))
		}
	}
	return &HistogramVec{r.register(&family{name: name, help: help, typ: typeHistogram, labels: labels, buckets: b})}
}

// Observe records v in the series.
func (h *HistogramVec) Observe(v float64, labelValues ...string) {
	i := sort.SearchFloat64s(h.f.buckets, v) // first bucket with bound >= v
	h.f.mu.Lock()
	s := h.f.get(labelValues)
	s.counts[i]++
	s.sum += v
	s.count++
	h.f.mu.Unlock()
}

// CounterFunc registers a counter family whose samples fn returns at
// scrape time (for counters kept elsewhere, like an adapter's call counts).
func (r *Registry) CounterFunc(name, help string, labels []string, fn func() []Sample) {
	r.register(&family{name: name, help: help, typ: typeCounter, labels: labels, collect: fn})
}

// GaugeFunc registers a gauge family whose samples fn returns at scrape time.
func (r *Registry) GaugeFunc(name, help string, labels []string, fn func() []Sample) {
	r.register(&family{name: name, help: help, typ: typeGauge, labels: labels, collect: fn})
}

// WriteTo writes every family in the Prometheus text format, sorted by name.
func (r *Registry) WriteTo(w io.Writer) (int64, error) {
	r.mu.Lock()
	fams := make([]*family, 0, len(r.families))
	for _, f := range r.families {
		fams = append(fams, f)
	}
	r.mu.Unlock()
	sort.Slice(fams, func(i, j int) bool { return fams[i].name < fams[j].name })

	cw := &countWriter{w: bufio.NewWriter(w)}
	for _, f := range fams {
		f.write(cw)
	}
	if err := cw.w.Flush(); err != nil && cw.err == nil {
		cw.err = err
	}
	return cw.n, cw.err
}

type countWriter struct {
	w   *bufio.Writer
	n   int64
	err error
}

func (c *countWriter) printf(format string, args ...any) {
	if c.err != nil {
		return
	}
	n, err := fmt.Fprintf(c.w, format, args...)
	c.n += int64(n)
	c.err = err
}

func (f *family) write(w *countWriter) {
	var rows []*series
	if f.collect != nil {
		for _, s := range f.collect() {
			if len(s.LabelValues) != len(f.labels) {
				continue // a callback bug must not break the whole scrape
			}
			rows = append(rows, &series{values: s.LabelValues, value: s.Value})
		}
	} else {
		f.mu.Lock()
		for _, s := range f.series {
			c := *s
			c.counts = slices.Clone(s.counts)
			rows = append(rows, &c)
		}
		f.mu.Unlock()
	}
	sort.Slice(rows, func(i, j int) bool { return slices.Compare(rows[i].values, rows[j].values) < 0 })

	w.printf("# HELP %s %s\n", f.name, escapeHelp(f.help))
	w.printf("# TYPE %s %s\n", f.name, f.typ)
	for _, s := range rows {
		if f.typ != typeHistogram {
			w.printf("%s%s %s\n", f.name, labelString(f.labels, s.values, "", ""), formatFloat(s.value))
			continue
		}
		var cum uint64
		for i, c := range s.counts {
			cum += c
			le := "+Inf"
			if i < len(f.buckets) {
				le = formatFloat(f.buckets[i])
			}
			w.printf("%s_bucket%s %d\n", f.name, labelString(f.labels, s.values, "le", le), cum)
		}
		w.printf("%s_sum%s %s\n", f.name, labelString(f.labels, s.values, "", ""), formatFloat(s.sum))
		w.printf("%s_count%s %d\n", f.name, labelString(f.labels, s.values, "", ""), s.count)
	}
}

func labelString(names, values []string, extraName, extraValue string) string {
	if len(names) == 0 && extraName == "" {
		return ""
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, n := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(n)
		b.WriteString(`="`)
		b.WriteString(escapeLabel(values[i]))
		b.WriteByte('"')
	}
	if extraName != "" {
		if len(names) > 0 {
			b.WriteByte(',')
		}
		b.WriteString(extraName)
		b.WriteString(`="`)
		b.WriteString(escapeLabel(extraValue))
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

var (
	labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
)

func escapeLabel(s string) string { return labelEscaper.Replace(s) }
func escapeHelp(s string) string  { return helpEscaper.Replace(s) }

func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, +1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// Handler serves the registry at /metrics.
func (r *Registry) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		r.WriteTo(w)
	})
}

// Histogram buckets, in seconds.
var (
	grantLatencyBuckets = []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}
	revokeLagBuckets    = []float64{0.5, 1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600}
)

// Metrics is symbot's metric set on a Registry. It implements
// symbot.Metrics for the engine, and reads gauges from callbacks that the
// wiring plugs in (engine stats, Socket Mode reconnects, adapter call
// counts). It is safe for concurrent use.
type Metrics struct {
	Registry *Registry

	requests     *CounterVec
	grantLatency *HistogramVec
	revokeLag    *HistogramVec
	jobs         *CounterVec

	mu         sync.Mutex
	stats      func() symbot.Stats
	statsAt    time.Time    // when statsLast was read
	statsLast  symbot.Stats // shared by the gauges of one scrape
	reconnects func() int64
	external   map[string]func() map[string]int64 // service -> result -> count
}

var _ symbot.Metrics = (*Metrics)(nil)

// NewMetrics registers symbot's metrics on reg.
func NewMetrics(reg *Registry) *Metrics {
	m := &Metrics{Registry: reg, external: map[string]func() map[string]int64{}}
	m.requests = reg.Counter("symbot_requests_total", "Requests reaching a state (outcome), by flow.", "flow", "outcome")
	m.grantLatency = reg.Histogram("symbot_grant_latency_seconds", "Time from final approval to the Okta membership taking effect.", grantLatencyBuckets)
	m.revokeLag = reg.Histogram("symbot_revoke_lag_seconds", "Time from a grant's end to the Okta membership being removed.", revokeLagBuckets)
	m.jobs = reg.Counter("symbot_jobs_total", "Durable job attempts, by kind and result (ok, retry, failed).", "kind", "result")

	stat := func(pick func(symbot.Stats) float64) func() []Sample {
		return func() []Sample {
			s, ok := m.snapshot()
			if !ok {
				return nil
			}
			return []Sample{{Value: pick(s)}}
		}
	}
	reg.GaugeFunc("symbot_pending_jobs", "Durable jobs stored and not yet done.", nil,
		stat(func(s symbot.Stats) float64 { return float64(s.PendingJobs) }))
	reg.GaugeFunc("symbot_failing_revocations", "Revocations that failed at least once and are still being retried.", nil,
		stat(func(s symbot.Stats) float64 { return float64(s.FailingRevokes) }))
	reg.CounterFunc("symbot_revoke_alerts_total", "Alerts raised for stuck revocations since start.", nil,
		stat(func(s symbot.Stats) float64 { return float64(s.RevokeAlerts) }))
	reg.CounterFunc("symbot_jobs_abandoned_total", "Non-revoke jobs given up after their attempts since start.", nil,
		stat(func(s symbot.Stats) float64 { return float64(s.JobsAbandoned) }))
	reg.GaugeFunc("symbot_next_deadline_seconds", "Unix time of the next scheduled deadline (0: none).", nil,
		stat(func(s symbot.Stats) float64 {
			if s.NextDeadline.IsZero() {
				return 0
			}
			return float64(s.NextDeadline.UnixNano()) / 1e9
		}))
	reg.CounterFunc("symbot_socket_reconnects_total", "Slack Socket Mode reconnections since start.", nil, func() []Sample {
		m.mu.Lock()
		fn := m.reconnects
		m.mu.Unlock()
		if fn == nil {
			return nil
		}
		return []Sample{{Value: float64(fn())}}
	})
	reg.CounterFunc("symbot_external_calls_total", "Calls to outside services (slack, okta, aws), by result.", []string{"service", "result"}, func() []Sample {
		m.mu.Lock()
		fns := make(map[string]func() map[string]int64, len(m.external))
		for k, v := range m.external {
			fns[k] = v
		}
		m.mu.Unlock()
		var out []Sample
		for svc, fn := range fns {
			for result, n := range fn() {
				out = append(out, Sample{LabelValues: []string{svc, result}, Value: float64(n)})
			}
		}
		return out
	})
	reg.GaugeFunc("symbot_build_info", "Always 1; the labels say which symbot build runs.", buildInfoLabels, func() []Sample {
		return []Sample{{LabelValues: currentBuild().labelValues(), Value: 1}}
	})
	return m
}

// RequestOutcome implements symbot.Metrics.
func (m *Metrics) RequestOutcome(flow string, s symbot.State) { m.requests.Inc(flow, string(s)) }

// GrantLatency implements symbot.Metrics.
func (m *Metrics) GrantLatency(_ string, d time.Duration) { m.grantLatency.Observe(d.Seconds()) }

// RevokeLag implements symbot.Metrics.
func (m *Metrics) RevokeLag(d time.Duration) { m.revokeLag.Observe(d.Seconds()) }

// JobResult implements symbot.Metrics.
func (m *Metrics) JobResult(kind symbot.JobKind, result string) { m.jobs.Inc(string(kind), result) }

// snapshot returns the engine's stats, read at most once a second: the
// several gauges of one scrape share one read (it scans the stored jobs).
func (m *Metrics) snapshot() (symbot.Stats, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stats == nil {
		return symbot.Stats{}, false
	}
	if now := time.Now(); now.Sub(m.statsAt) >= time.Second {
		m.statsLast, m.statsAt = m.stats(), now
	}
	return m.statsLast, true
}

// SetStats plugs in the engine's Stats for the job and revocation gauges.
func (m *Metrics) SetStats(fn func() symbot.Stats) {
	m.mu.Lock()
	m.stats, m.statsAt = fn, time.Time{}
	m.mu.Unlock()
}

// SetSocketReconnects plugs in the Socket Mode reconnect count.
func (m *Metrics) SetSocketReconnects(fn func() int64) {
	m.mu.Lock()
	m.reconnects = fn
	m.mu.Unlock()
}

// SetExternalCalls plugs in one service's call counts by result (e.g.
// "ok", "error", "rate_limited"); service is slack, okta or aws.
func (m *Metrics) SetExternalCalls(service string, fn func() map[string]int64) {
	m.mu.Lock()
	m.external[service] = fn
	m.mu.Unlock()
}
