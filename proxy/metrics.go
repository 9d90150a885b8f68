package proxy

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the proxy's Prometheus series. Labels are low-cardinality by
// construction: routes are fixed, statuses are codes, engines are ids.
type metrics struct {
	reg           *prometheus.Registry
	requests      *prometheus.CounterVec
	latency       *prometheus.HistogramVec
	authFailures  *prometheus.CounterVec
	rateLimited   *prometheus.CounterVec
	blocked       *prometheus.CounterVec
	upstreamErrs  *prometheus.CounterVec
	activeStreams prometheus.Gauge
	auditDropped  prometheus.Counter
	relayTimeouts *prometheus.CounterVec

	// Children resolved once: WithLabelValues hashes its labels per call.
	counters  sync.Map // route+"|"+status → prometheus.Counter
	observers sync.Map // route → prometheus.Observer
}

// observe counts a finished request and its latency.
func (m *metrics) observe(route string, status int, el time.Duration) {
	key := route + "|" + strconv.Itoa(status)
	c, ok := m.counters.Load(key)
	if !ok {
		c, _ = m.counters.LoadOrStore(key, m.requests.WithLabelValues(route, strconv.Itoa(status)))
	}
	c.(prometheus.Counter).Inc()
	o, ok := m.observers.Load(route)
	if !ok {
		o, _ = m.observers.LoadOrStore(route, m.latency.WithLabelValues(route))
	}
	o.(prometheus.Observer).Observe(el.Seconds())
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flm_http_requests_total", Help: "HTTP requests by route and status.",
		}, []string{"route", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "flm_http_request_duration_seconds", Help: "Time to the end of the response, by route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}, []string{"route"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flm_auth_failures_total", Help: "Requests refused for a missing or invalid API key.",
		}, []string{"reason"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flm_rate_limited_total", Help: "Requests refused by a rate limit (scope: key or ip).",
		}, []string{"scope"}),
		blocked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flm_blocked_total", Help: "Requests refused by the IP allowlist, Host check or CORS.",
		}, []string{"reason"}),
		upstreamErrs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flm_upstream_errors_total", Help: "Engine failures: unreachable, error status, broken stream.",
		}, []string{"engine", "kind"}),
		activeStreams: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "flm_active_streams", Help: "Streaming responses in progress.",
		}),
		auditDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flm_audit_events_dropped_total", Help: "Audit events dropped because the writer fell behind.",
		}),
		relayTimeouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flm_relay_timeouts_total",
			Help: "Responses ended by a deadline (kind: client_write = the client accepted no bytes for the write timeout; engine_idle = the engine sent nothing for the idle timeout).",
		}, []string{"kind"}),
	}
	// Both kinds exist from the start: a dashboard sees 0, not no series.
	m.relayTimeouts.WithLabelValues("client_write")
	m.relayTimeouts.WithLabelValues("engine_idle")
	m.reg.MustRegister(m.requests, m.latency, m.authFailures, m.rateLimited, m.blocked, m.upstreamErrs, m.activeStreams, m.auditDropped, m.relayTimeouts,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
