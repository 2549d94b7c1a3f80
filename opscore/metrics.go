package opscore

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Route names used as the "route" label; bounded, never an agent id.
const (
	routeHealth      = "health"
	routeReadyz      = "readyz"
	routeMetrics     = "metrics"
	routeNotify      = "notify"
	routeStateUpdate = "state_update"
	routeStateGet    = "state_get"
	routeWorkflow    = "workflow"
	routeSessionGet  = "session_get"
	routeNotFound    = "not_found"
)

// Store operation names used as the "op" label of the Redis metrics.
const (
	opRegister      = "register"
	opDeregister    = "deregister"
	opSetState      = "set_state"
	opGetState      = "get_state"
	opGetReg        = "get_registration"
	opPutWorkflow   = "put_workflow_definition"
	opGetWorkflow   = "get_workflow_definition"
	opCreateSession = "create_session"
	opUpdateSession = "update_session"
	opGetSession    = "get_session"
	opEnqueueTask   = "enqueue_task"
	opPing          = "ping"
)

// Reasons of opscore_registration_failures_total.
const (
	regFailValidation = "validation"  // 422: the body failed validation
	regFailBadRequest = "bad_request" // 400: missing/invalid agentId, unknown event type
	regFailStorage    = "storage"     // 503: the store failed or timed out
)

// routeSuccess lists each route with its usual success code, used to
// pre-initialise the request counters so every family is visible at once.
var routeSuccess = map[string]string{
	routeHealth: "200", routeReadyz: "200", routeMetrics: "200", routeNotify: "200",
	routeStateUpdate: "202", routeStateGet: "200", routeWorkflow: "202",
	routeSessionGet: "200", routeNotFound: "404",
}

var storeOps = []string{
	opRegister, opDeregister, opSetState, opGetState, opGetReg, opPutWorkflow,
	opGetWorkflow, opCreateSession, opUpdateSession, opGetSession, opEnqueueTask, opPing,
}

// Metrics holds the core's collectors. Names are a contract with the
// dashboard and alert rules (docs/opscore.md, "Metrics"); add, don't
// rename.
type Metrics struct {
	requests          *prometheus.CounterVec
	requestDuration   *prometheus.HistogramVec
	redisDuration     *prometheus.HistogramVec
	redisErrors       *prometheus.CounterVec
	agentsRegistered  prometheus.Counter
	registrationFails *prometheus.CounterVec
}

// NewMetrics creates the core's collectors and registers them with reg.
// Every label value the core knows is pre-initialised, so each family shows
// up in the first Gather. It panics if a name is already registered, like
// prometheus.MustRegister.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "opscore_http_requests_total",
			Help: "HTTP requests answered by the Ops-Core core, by route and status code.",
		}, []string{"route", "code"}),
		requestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "opscore_http_request_duration_seconds",
			Help:    "Time from request start to response written, by route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route"}),
		redisDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "opscore_redis_operation_duration_seconds",
			Help:    "Duration of one store operation against Redis (one round trip or transaction), by operation.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"op"}),
		redisErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "opscore_redis_errors_total",
			Help: "Store operations against Redis that failed or timed out, by operation.",
		}, []string{"op"}),
		agentsRegistered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "opscore_agents_registered_total",
			Help: "Successful REGISTER notifications (repeats of one agent count each time).",
		}),
		registrationFails: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "opscore_registration_failures_total",
			Help: "REGISTER notifications that were refused, by reason (validation, bad_request, storage).",
		}, []string{"reason"}),
	}
	for route, code := range routeSuccess {
		m.requests.WithLabelValues(route, code)
		m.requestDuration.WithLabelValues(route)
	}
	for _, op := range storeOps {
		m.redisDuration.WithLabelValues(op)
		m.redisErrors.WithLabelValues(op)
	}
	for _, r := range []string{regFailValidation, regFailBadRequest, regFailStorage} {
		m.registrationFails.WithLabelValues(r)
	}
	reg.MustRegister(m.requests, m.requestDuration, m.redisDuration, m.redisErrors,
		m.agentsRegistered, m.registrationFails)
	return m
}

// observeRequest records one answered request.
func (m *Metrics) observeRequest(route string, code int, d time.Duration) {
	m.requests.WithLabelValues(route, codeString(code)).Inc()
	m.requestDuration.WithLabelValues(route).Observe(d.Seconds())
}

// observeRedis records one Redis operation; failed is true for errors that
// count in opscore_redis_errors_total. m may be nil: a RedisStore used
// outside a Service records nothing.
func (m *Metrics) observeRedis(op string, d time.Duration, failed bool) {
	if m == nil {
		return
	}
	m.redisDuration.WithLabelValues(op).Observe(d.Seconds())
	if failed {
		m.redisErrors.WithLabelValues(op).Inc()
	}
}

// registered counts one successful REGISTER.
func (m *Metrics) registered() { m.agentsRegistered.Inc() }

// registrationFailed counts one refused REGISTER with its reason.
func (m *Metrics) registrationFailed(reason string) {
	m.registrationFails.WithLabelValues(reason).Inc()
}

// codeString avoids an allocation for the common codes.
func codeString(code int) string {
	switch code {
	case 200:
		return "200"
	case 202:
		return "202"
	case 400:
		return "400"
	case 401:
		return "401"
	case 404:
		return "404"
	case 422:
		return "422"
	case 503:
		return "503"
	}
	return strconv.Itoa(code)
}
