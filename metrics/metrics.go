package metrics

import (
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// LatencyBuckets are the classic buckets of every latency histogram, in
// seconds. They include the SLO boundaries of the alert rules (50 ms,
// 100 ms, 250 ms, 500 ms, 1 s, 2.5 s); changing them changes the le labels
// that recording rules and dashboards query.
var LatencyBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// Metrics holds every collector of the sidecar. The proxy drives the
// request, attempt, in-flight and reload collectors; the admission layer
// drives AdmissionRejections, QueueDepth, ConcurrencyLimit,
// AdmissionInflight and RateLimitKeys; the auth layer drives
// WebhookAuthFailures; the retry layer drives Retries and
// RetryBudgetExhausted; the breaker layer drives BreakerState and
// BreakerTransitions.
type Metrics struct {
	// Requests counts finished requests by route, class, code and outcome.
	Requests *prometheus.CounterVec
	// RequestDuration observes the sidecar's whole handling time by route
	// and outcome, with a trace_id exemplar when the request is traced.
	RequestDuration *prometheus.HistogramVec
	// Inflight is the number of requests being handled, by route.
	Inflight *prometheus.GaugeVec
	// UpstreamAttempts counts attempts to the upstream by route and result.
	UpstreamAttempts *prometheus.CounterVec
	// UpstreamAttemptDuration observes each attempt up to its response
	// headers (or its error), by route.
	UpstreamAttemptDuration *prometheus.HistogramVec
	// Retries counts retries by route and the reason of the failed attempt.
	Retries *prometheus.CounterVec
	// RetryBudgetExhausted counts retries refused by the retry budget.
	RetryBudgetExhausted *prometheus.CounterVec
	// AdmissionRejections counts requests refused (or, in shadow mode,
	// that would have been refused) by admission control.
	AdmissionRejections *prometheus.CounterVec
	// QueueDepth is the number of requests waiting for a concurrency slot, by class.
	QueueDepth *prometheus.GaugeVec
	// ConcurrencyLimit is the concurrency slots usable by each class.
	ConcurrencyLimit *prometheus.GaugeVec
	// AdmissionInflight is the concurrency slots held, by class.
	AdmissionInflight *prometheus.GaugeVec
	// RateLimitKeys is the number of per-key buckets held, by route.
	RateLimitKeys *prometheus.GaugeVec
	// BreakerState is 0 closed, 1 half-open, 2 open, by route.
	BreakerState *prometheus.GaugeVec
	// BreakerTransitions counts breaker state changes by route, from and to.
	BreakerTransitions *prometheus.CounterVec
	// WebhookAuthFailures counts refused webhook signatures by reason.
	WebhookAuthFailures *prometheus.CounterVec
	// ConfigReloads counts configuration reloads by result (success, failure).
	ConfigReloads *prometheus.CounterVec
	// ConnectionsRefused counts client connections closed unread because
	// server.max_connections were already open.
	ConnectionsRefused prometheus.Counter
	// ConfigLastReloadSuccess is the Unix time of the last good (re)load.
	ConfigLastReloadSuccess prometheus.Gauge
	// BuildInfo is always 1, labelled with the version and Go version.
	BuildInfo *prometheus.GaugeVec

	// HeldRequests is the number of requests waiting in a route's hold.
	HeldRequests *prometheus.GaugeVec
	// Holds counts requests that entered (or could not enter) a route's
	// hold, by how they left it (HoldResults).
	Holds *prometheus.CounterVec
	// OutboxEnqueued counts requests accepted into the outbox (202), by route.
	OutboxEnqueued *prometheus.CounterVec
	// OutboxDelivered counts outbox messages the upstream accepted, by route.
	OutboxDelivered *prometheus.CounterVec
	// OutboxDeadLetters counts outbox messages the upstream refused (4xx),
	// moved to the dead-letter list, by route.
	OutboxDeadLetters *prometheus.CounterVec
	// OutboxDeliveryAttempts counts delivery attempts by result.
	OutboxDeliveryAttempts *prometheus.CounterVec
	// OutboxDeliveryLatency observes the time from enqueue to delivery.
	OutboxDeliveryLatency prometheus.Histogram
	// OutboxDepth is the number of queued messages.
	OutboxDepth prometheus.Gauge
	// OutboxOldestAge is the age of the oldest queued message in seconds (0 when empty).
	OutboxOldestAge prometheus.Gauge
	// OutboxDead is the number of dead letters kept.
	OutboxDead prometheus.Gauge
	// HealthProbes counts active health checks of the upstream by result.
	HealthProbes *prometheus.CounterVec
	// UpstreamHealthy is 1 while the upstream is believed reachable, 0
	// while it looks down (an attempt could not reach it and no health
	// check has passed since).
	UpstreamHealthy prometheus.Gauge
	// children caches the request path's children (children.go).
	children children
}

const ns = "opscore_sidecar_"

// Version is the sidecar's version as shown by build_info; release builds
// set it with -ldflags "-X opscore-sidecar/metrics.Version=v1.2.3".
var Version = "dev"

// New creates every collector, registers it on reg and pre-creates the
// children of the known label values. It panics if a collector is already
// registered on reg, as prometheus.MustRegister does: that is a
// programming error.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: ns + "requests_total", Help: "Requests handled by the sidecar, by route, class, status code and outcome.",
		}, []string{"route", "class", "code", "outcome"}),
		RequestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: ns + "request_duration_seconds", Help: "Time from receiving a request to finishing its response, by route and outcome.",
			Buckets: LatencyBuckets,
		}, []string{"route", "outcome"}),
		Inflight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: ns + "inflight_requests", Help: "Requests being handled, by route.",
		}, []string{"route"}),
		UpstreamAttempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: ns + "upstream_attempts_total", Help: "Attempts sent to the upstream, by route and result.",
		}, []string{"route", "result"}),
		UpstreamAttemptDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: ns + "upstream_attempt_duration_seconds", Help: "Duration of one upstream attempt up to its response headers or error, by route.",
			Buckets: LatencyBuckets,
		}, []string{"route"}),
		Retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: ns + "retries_total", Help: "Retries of upstream attempts, by route and the failed attempt's reason.",
		}, []string{"route", "reason"}),
		RetryBudgetExhausted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: ns + "retry_budget_exhausted_total", Help: "Retries refused because the route's retry budget was spent.",
		}, []string{"route"}),
		AdmissionRejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: ns + "admission_rejections_total", Help: "Requests refused by admission control (mode=shadow: would have been refused).",
		}, []string{"route", "class", "reason", "mode"}),
		QueueDepth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: ns + "queue_depth", Help: "Requests waiting for a concurrency slot, by class.",
		}, []string{"class"}),
		ConcurrencyLimit: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: ns + "concurrency_limit", Help: "Concurrency slots usable by each class.",
		}, []string{"class"}),
		AdmissionInflight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: ns + "admission_inflight_requests", Help: "Concurrency slots held (requests in flight to the upstream), by class.",
		}, []string{"class"}),
		RateLimitKeys: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: ns + "ratelimit_keys", Help: "Per-key rate-limit buckets held, by route.",
		}, []string{"route"}),
		BreakerState: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: ns + "breaker_state", Help: "Circuit breaker state by route: 0 closed, 1 half-open, 2 open.",
		}, []string{"route"}),
		BreakerTransitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: ns + "breaker_transitions_total", Help: "Circuit breaker state changes, by route, from and to.",
		}, []string{"route", "from", "to"}),
		WebhookAuthFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: ns + "webhook_auth_failures_total", Help: "Webhook or API-key authentication failures, by reason.",
		}, []string{"reason"}),
		ConfigReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: ns + "config_reloads_total", Help: "Configuration (re)loads, by result.",
		}, []string{"result"}),
		ConnectionsRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: ns + "connections_refused_total", Help: "Client connections closed unread because server.max_connections were open.",
		}),
		ConfigLastReloadSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: ns + "config_last_reload_success_timestamp_seconds", Help: "Unix time of the last successful configuration (re)load.",
		}),
		BuildInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: ns + "build_info", Help: "Always 1; labelled with the sidecar's version and Go version.",
		}, []string{"version", "goversion"}),
	}
	m.HeldRequests = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: ns + "held_requests", Help: "Requests waiting in a route's hold for the upstream to come back.",
	}, []string{"route"})
	m.Holds = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: ns + "hold_total", Help: "Requests that entered (or found full) a route's hold, by how they left it.",
	}, []string{"route", "result"})
	m.OutboxEnqueued = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: ns + "outbox_enqueued_total", Help: "Requests accepted into the durable outbox (answered 202), by route.",
	}, []string{"route"})
	m.OutboxDelivered = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: ns + "outbox_delivered_total", Help: "Outbox messages delivered to the upstream, by route.",
	}, []string{"route"})
	m.OutboxDeadLetters = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: ns + "outbox_dead_letters_total", Help: "Outbox messages the upstream refused with a 4xx, moved to the dead-letter list, by route.",
	}, []string{"route"})
	m.OutboxDeliveryAttempts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: ns + "outbox_delivery_attempts_total", Help: "Outbox delivery attempts, by result.",
	}, []string{"result"})
	m.OutboxDeliveryLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: ns + "outbox_delivery_latency_seconds", Help: "Time from a message's enqueue to its delivery.",
		Buckets: []float64{0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600},
	})
	m.OutboxDepth = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: ns + "outbox_depth", Help: "Messages queued in the outbox, not yet delivered.",
	})
	m.OutboxOldestAge = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: ns + "outbox_oldest_age_seconds", Help: "Age of the oldest queued outbox message (0 when empty).",
	})
	m.OutboxDead = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: ns + "outbox_dead_letters", Help: "Dead letters kept in the outbox (see /admin/outbox).",
	})
	m.HealthProbes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: ns + "health_probes_total", Help: "Active health checks of the upstream, by result.",
	}, []string{"result"})
	m.UpstreamHealthy = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: ns + "upstream_healthy", Help: "1 while the upstream is believed reachable, 0 while it looks down.",
	})
	reg.MustRegister(m.collectors()...)
	m.precreate(Version)
	return m
}

func (m *Metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{
		m.Requests, m.RequestDuration, m.Inflight, m.UpstreamAttempts, m.UpstreamAttemptDuration,
		m.Retries, m.RetryBudgetExhausted, m.AdmissionRejections, m.QueueDepth, m.ConcurrencyLimit, m.AdmissionInflight,
		m.RateLimitKeys, m.BreakerState, m.BreakerTransitions, m.WebhookAuthFailures,
		m.ConfigReloads, m.ConnectionsRefused, m.ConfigLastReloadSuccess, m.BuildInfo,
		m.HeldRequests, m.Holds, m.OutboxEnqueued, m.OutboxDelivered, m.OutboxDeadLetters,
		m.OutboxDeliveryAttempts, m.OutboxDeliveryLatency, m.OutboxDepth, m.OutboxOldestAge, m.OutboxDead,
		m.HealthProbes, m.UpstreamHealthy,
	}
}

// precreate makes every family visible from the first scrape with zero
// values for the label values known in advance. Status codes are not
// known in advance; requests_total is pre-created with code 200 and
// outcome forwarded for each route, which is the series a dashboard shows
// first.
func (m *Metrics) precreate(version string) {
	for _, r := range Routes {
		m.Requests.WithLabelValues(r, RouteClass[r], "200", "forwarded")
		for _, o := range Outcomes {
			m.RequestDuration.WithLabelValues(r, o)
		}
		m.Inflight.WithLabelValues(r)
		for _, res := range AttemptResults {
			m.UpstreamAttempts.WithLabelValues(r, res)
		}
		m.UpstreamAttemptDuration.WithLabelValues(r)
		for _, reason := range RetryReasons {
			m.Retries.WithLabelValues(r, reason)
		}
		m.RetryBudgetExhausted.WithLabelValues(r)
		for _, reason := range AdmissionReasons {
			for _, mode := range Modes {
				m.AdmissionRejections.WithLabelValues(r, RouteClass[r], reason, mode)
			}
		}
		m.RateLimitKeys.WithLabelValues(r)
		m.BreakerState.WithLabelValues(r)
		m.HeldRequests.WithLabelValues(r)
		for _, res := range HoldResults {
			m.Holds.WithLabelValues(r, res)
		}
		m.OutboxEnqueued.WithLabelValues(r)
		m.OutboxDelivered.WithLabelValues(r)
		m.OutboxDeadLetters.WithLabelValues(r)
		for _, t := range BreakerTransitions {
			m.BreakerTransitions.WithLabelValues(r, t[0], t[1])
		}
	}
	for _, c := range Classes {
		m.QueueDepth.WithLabelValues(c)
		m.ConcurrencyLimit.WithLabelValues(c)
		m.AdmissionInflight.WithLabelValues(c)
	}
	for _, reason := range AuthFailureReasons {
		m.WebhookAuthFailures.WithLabelValues(reason)
	}
	for _, res := range OutboxDeliveryResults {
		m.OutboxDeliveryAttempts.WithLabelValues(res)
	}
	for _, res := range HealthProbeResults {
		m.HealthProbes.WithLabelValues(res)
	}
	m.UpstreamHealthy.Set(1)
	m.ConfigReloads.WithLabelValues(ReloadSuccess)
	m.ConfigReloads.WithLabelValues(ReloadFailure)
	m.BuildInfo.WithLabelValues(version, runtime.Version()).Set(1)
}

// ObserveDuration observes d on o, attaching traceID as a trace_id
// exemplar when it is not empty and o supports exemplars.
func ObserveDuration(o prometheus.Observer, d time.Duration, traceID string) {
	if traceID != "" {
		if eo, ok := o.(prometheus.ExemplarObserver); ok {
			eo.ObserveWithExemplar(d.Seconds(), prometheus.Labels{"trace_id": traceID})
			return
		}
	}
	o.Observe(d.Seconds())
}

// ReloadResult counts one configuration (re)load and, on success, sets
// the last-success timestamp to now.
func (m *Metrics) ReloadResult(ok bool, now time.Time) {
	if !ok {
		m.ConfigReloads.WithLabelValues(ReloadFailure).Inc()
		return
	}
	m.ConfigReloads.WithLabelValues(ReloadSuccess).Inc()
	m.ConfigLastReloadSuccess.Set(float64(now.UnixNano()) / 1e9)
}
