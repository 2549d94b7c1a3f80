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
//     b. attempt: one client span per attempt, attempt metrics, a failure
//     classified by policy.ClassifyFailure (attemptTransport, attempt.go)
//     c. breaker: per-route circuit breaker around each attempt
//     (breakerTransport, breaker_transport.go)
//     d. upstream: the snapshot's tuned http.Transport (transport.go)
//
// Retry sits outside the breaker so that every attempt is counted by the
// breaker and an open breaker ends the retries.
func (s *Sidecar) chain() http.Handler {
	transport := s.retryLayer(&attemptTransport{
		next:       s.breakerLayer(snapshotTransport{}),
		tracer:     s.tracing.tracer,
		propagator: s.tracing.Propagator,
		metrics:    s.deps.Metrics,
		health:     s.health,
	})
	var h http.Handler = s.newReverseProxy(transport)
	h = s.admissionLayer(h)
	h = s.bodyLayer(h)
	h = s.authLayer(h)
	h = s.routeLayer(h)
	h = s.observeLayer(h)
	return h
}
