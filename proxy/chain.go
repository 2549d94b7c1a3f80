package proxy

import (
	"net/http"
)

// StatusClientClosed is the status logged for a request whose client went
// away, as nginx's 499. It is never sent: the connection is closed without
// a response (abortClientClosed, problem.go).
const StatusClientClosed = 499

// chain assembles the sidecar's request path. The order, outermost first:
//
//  1. server: http.Server timeouts and MaxHeaderBytes (newServer, server.go)
//  2. observe: request id, W3C trace + server span, RequestInfo, and at the
//     end metrics and the JSON access-log line (observeLayer, observe.go)
//  3. route: method + path → named route and its runtime from the current
//     snapshot; body over the route's limit → 413 (routeLayer, routing.go)
//  4. auth: webhook HMAC / API key, per route (authLayer, auth.go)
//  5. body: the request body is read (bounded by body_limit and
//     server.body_read_timeout, up to retry.buffer_limit) before the request
//     may take a concurrency slot (bodyLayer, request_body.go)
//  6. admission: token buckets, the per-client cap, then the concurrency
//     gate with its priority queue (admissionLayer, admission.go)
//  7. proxy: httputil.ReverseProxy (Rewrite, ErrorHandler: proxy.go;
//     ModifyResponse reads a short body in full: response_buffer.go), whose
//     Transport is, outermost first:
//     a. retry: per-route retries with budget (retryTransport,
//     retry_transport.go)
//     b. breaker: per-route circuit breaker around each attempt
//     (breakerTransport, breaker_transport.go)
//     c. attempt: one client span per attempt, attempt metrics, and the one
//     classification of the attempt into a policy.Outcome (attemptTransport,
//     attempt.go; classify.go), which the breaker, the retry layer, the
//     hold and the ErrorHandler derive their decisions from
//     d. upstream: the snapshot's tuned http.Transport (transport.go)
//
// Retry sits outside the breaker so that every attempt is counted by the
// breaker and an open breaker ends the retries; the breaker sits outside
// the attempt layer so that it reports the outcome the attempt layer
// classified.
func (s *Sidecar) chain() http.Handler {
	transport := s.retryLayer(s.breakerLayer(&attemptTransport{
		next:       snapshotTransport{},
		tracer:     s.tracing.tracer,
		propagator: s.tracing.Propagator,
		metrics:    s.deps.Metrics,
		health:     s.health,
		now:        s.deps.now,
	}))
	var h http.Handler = s.newReverseProxy(transport)
	h = s.admissionLayer(h)
	h = s.bodyLayer(h)
	h = s.authLayer(h)
	h = s.routeLayer(h)
	h = s.observeLayer(h)
	return h
}
