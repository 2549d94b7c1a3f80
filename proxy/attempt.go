package proxy

import (
	"errors"
	"net/http"
	"net/http/httptrace"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"opscore-sidecar/metrics"
	"opscore-sidecar/proxy/config"
)

// attemptTransport is the attempt layer: it wraps each upstream attempt
// (one call from the retry layer, let through by the breaker) in a client
// span, injects the W3C trace context, counts wire attempts honestly (see
// transport.go on hidden replays), classifies the attempt once into a
// policy.Outcome (classifyAttempt, classify.go), observes the attempt
// metrics from it, records it on the RequestInfo and returns a failure as
// an *AttemptError carrying it. The layers above derive their decisions
// from that outcome (attemptOutcome).
type attemptTransport struct {
	next       http.RoundTripper
	tracer     trace.Tracer
	propagator propagation.TextMapPropagator
	metrics    *metrics.Metrics
	// health is told of every attempt that could not reach the upstream,
	// which starts the active health check (health.go).
	health *healthChecker
	// now reads an HTTP-date Retry-After (nil: not read).
	now func() time.Time
}

// connCounter counts the connections one RoundTrip used.
type connCounter struct {
	n     atomic.Int32
	trace httptrace.ClientTrace
}

func (a *attemptTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	info := InfoFrom(req.Context())
	route := config.RouteDefault
	if info != nil {
		route = info.Route
	}
	ctx, span := a.tracer.Start(req.Context(), attemptSpanName(req.Method), clientSpan...)
	defer span.End()

	// The retry layer above made this attempt's request with its
	// connection trace already in the context (attemptRun): nothing below
	// reads the span from the context, so the request is sent as it is.
	// Without the retry layer, the attempt layer traces it itself.
	out := req
	var conns *atomic.Int32
	if run := info.takeAttemptRun(); run != nil {
		conns = &run.conns
	} else {
		cc := &connCounter{}
		cc.trace.GotConn = func(httptrace.GotConnInfo) { cc.n.Add(1) }
		out = req.WithContext(httptrace.WithClientTrace(ctx, &cc.trace))
		conns = &cc.n
	}
	// The outgoing header map belongs to the ReverseProxy's clone of the
	// client request and traceparent is written into it in place. That is
	// safe only because the retry layer gives every retry its own copy of
	// the map: after a cancelled attempt http.Transport's write loop may
	// still be reading the previous map. Cloning on the first attempt too
	// cost about 10 allocations per request.
	a.propagator.Inject(ctx, headerCarrier(out.Header))

	start := time.Now()
	resp, err := a.next.RoundTrip(out)
	d := time.Since(start)

	used := int(conns.Load())
	if used > 1 {
		// net/http replayed the request on a new connection after a reused
		// one died; each earlier connection was a failed wire attempt.
		span.AddEvent("transport replayed the request after a reused connection closed", trace.WithAttributes(attribute.Int("connections", used)))
		a.metrics.UpstreamAttemptsChild(route, metrics.ResultClosed).Add(float64(used - 1))
	}
	if info != nil {
		info.AddAttempts(max(used, 1))
	}

	// The one classification of the attempt: the metrics, the breaker,
	// the retry layer, the hold and the problem answered all derive from o.
	var now time.Time
	if a.now != nil {
		now = a.now()
	}
	o := classifyAttempt(req.Context(), resp, err, now)
	result := o.Label()
	if err != nil {
		// An unclassified error (a malformed response, a TLS failure) is
		// not taken for the upstream being down.
		if o.Kind.ConnectionFailure() && o.Failure != metrics.ResultError && a.health != nil {
			a.health.suspect()
		}
		err = &AttemptError{Outcome: o, Err: err}
		span.RecordError(err)
		span.SetStatus(codes.Error, result)
	} else {
		if o.Status >= 500 {
			span.SetStatus(codes.Error, result)
		}
		if span.IsRecording() {
			span.SetAttributes(attribute.Int("http.response.status_code", o.Status))
		}
	}
	if info != nil {
		info.recordAttempt(o, d)
	}
	a.metrics.UpstreamAttemptsChild(route, result).Inc()
	a.metrics.UpstreamAttemptDurationChild(route).Observe(d.Seconds())
	return resp, err
}

// clientSpan and serverSpan are the span start options, built once: a
// variadic call through the Tracer interface would allocate the slice per
// request.
var (
	clientSpan = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient)}
	serverSpan = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer)}
)

// asProblemError returns err's *ProblemError, or nil. A nil err costs nothing:
// the variable errors.As needs escapes, so it is only declared for an
// error.
func asProblemError(err error) *ProblemError {
	if err == nil {
		return nil
	}
	var pe *ProblemError
	if errors.As(err, &pe) {
		return pe
	}
	return nil
}

// attemptSpanName is "upstream " + method, without building the string
// for the usual methods.
func attemptSpanName(method string) string {
	switch method {
	case http.MethodGet:
		return "upstream GET"
	case http.MethodPost:
		return "upstream POST"
	case http.MethodPut:
		return "upstream PUT"
	case http.MethodDelete:
		return "upstream DELETE"
	}
	return "upstream " + method
}
