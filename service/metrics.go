package service

import (
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"staple/admin"
)

// Reasons a handshake that asked for status got no staple, the values of the "reason" label.
const (
	NoStapleNoResponse = "no_response" // nothing valid in the cache (never fetched, expired, unknown status)
	NoStapleNoIssuer   = "no_issuer"   // the certificate's issuer is unknown: nothing can be fetched
	NoStapleNoURL      = "no_ocsp_url" // the certificate has no OCSP responder URL (Let's Encrypt since 2025)
)

// Metrics is the service's Prometheus registry. Counters are incremented by the service's hooks; the
// per-certificate gauges are read from the stapler at scrape time. Safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	fetchLatency  *prometheus.HistogramVec
	fetchFailures *prometheus.CounterVec
	statusChanges *prometheus.CounterVec
	persistFails  prometheus.Counter
	stapled       prometheus.Counter
	notRequested  prometheus.Counter
	notStapled    map[string]prometheus.Counter
}

// NewMetrics builds the registry. entries and ready are called on every scrape.
func NewMetrics(entries func() []admin.Entry, ready func() bool, now func() time.Time) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		reg: reg,
		fetchLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "staple_fetch_duration_seconds", Help: "Time to fetch and verify an OCSP response, by result.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"result"}),
		fetchFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "staple_fetch_failures_total", Help: "Failed OCSP fetches, by reason (timeout, http_503, bad_signature, ...).",
		}, []string{"reason"}),
		statusChanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "staple_status_changes_total", Help: "Changes of a certificate's OCSP status, by new status.",
		}, []string{"status"}),
		persistFails: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "staple_persist_failures_total", Help: "Responses that could not be written to the cache database (they are still served).",
		}),
		notStapled: map[string]prometheus.Counter{},
	}
	hs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "staple_handshakes_total", Help: "Full TLS handshakes, by outcome: stapled, not_stapled (with reason), not_requested.",
	}, []string{"outcome", "reason"})
	m.stapled = hs.WithLabelValues("stapled", "")
	m.notRequested = hs.WithLabelValues("not_requested", "")
	for _, r := range []string{NoStapleNoResponse, NoStapleNoIssuer, NoStapleNoURL} {
		m.notStapled[r] = hs.WithLabelValues("not_stapled", r)
	}
	reg.MustRegister(m.fetchLatency, m.fetchFailures, m.statusChanges, m.persistFails, hs,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "staple_ready", Help: "1 when every Must-Staple certificate has a valid staple and every other has had one attempt."},
			func() float64 { return boolFloat(ready == nil || ready()) }),
		&certCollector{entries: entries, now: now})
	return m
}

// Handler serves the metrics in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// mux serves the metrics at GET /metrics, and nothing else, on metrics_listen.
func (m *Metrics) mux() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	return mux
}

// Fetched records a fetch that ended with reason ("ok" for success).
func (m *Metrics) Fetched(reason string, took time.Duration) {
	result := "ok"
	if reason != "ok" {
		result = "error"
		m.fetchFailures.WithLabelValues(reason).Inc()
	}
	m.fetchLatency.WithLabelValues(result).Observe(took.Seconds())
}

// StatusChanged records a certificate's status change.
func (m *Metrics) StatusChanged(status string) { m.statusChanges.WithLabelValues(status).Inc() }

// PersistFailed records a failed cache write.
func (m *Metrics) PersistFailed() { m.persistFails.Inc() }

// Handshake records a full handshake's stapling outcome: requested tells whether the client asked for
// status; reason is "" when a staple was sent, else one of the NoStaple constants. No allocation.
func (m *Metrics) Handshake(requested bool, reason string) {
	switch {
	case !requested:
		m.notRequested.Inc()
	case reason == "":
		m.stapled.Inc()
	default:
		if c, ok := m.notStapled[reason]; ok {
			c.Inc()
		}
	}
}

var (
	certStatusDesc = prometheus.NewDesc("staple_certificate_status",
		"1 for the certificate's current OCSP status (good, revoked, unknown, none, n/a).", []string{"key", "name", "status"}, nil)
	certNextUpdateDesc = prometheus.NewDesc("staple_certificate_next_update_seconds",
		"Seconds until the stapled response's nextUpdate (negative once passed).", []string{"key", "name"}, nil)
	certMustStapleDesc = prometheus.NewDesc("staple_certificate_must_staple",
		"1 when the certificate carries the TLS Feature (Must-Staple) extension.", []string{"key", "name"}, nil)
)

// certCollector exposes per-certificate gauges from the stapler's entries at scrape time.
type certCollector struct {
	entries func() []admin.Entry
	now     func() time.Time
}

func (c *certCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- certStatusDesc
	ch <- certNextUpdateDesc
	ch <- certMustStapleDesc
}

func (c *certCollector) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	if c.now != nil {
		now = c.now()
	}
	for _, e := range c.entries() {
		name := strings.Join(e.Names, ",")
		ch <- prometheus.MustNewConstMetric(certStatusDesc, prometheus.GaugeValue, 1, e.Key, name, e.Status)
		ch <- prometheus.MustNewConstMetric(certMustStapleDesc, prometheus.GaugeValue, boolFloat(e.MustStaple), e.Key, name)
		if !e.NextUpdate.IsZero() {
			ch <- prometheus.MustNewConstMetric(certNextUpdateDesc, prometheus.GaugeValue, e.NextUpdate.Sub(now).Seconds(), e.Key, name)
		}
	}
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
