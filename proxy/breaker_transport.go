package proxy

import (
	"fmt"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"opscore-sidecar/policy"
)

// breakerTransport asks the route's circuit breaker before each attempt
// and reports the attempt's result after it, as the attempt layer below
// classified it (policy.Outcome.BreakerResult): transport errors, timeouts
// and 5xx count as failures, other answers (4xx included) as successes,
// and an attempt cut short by the client going away counts neither way.
type breakerTransport struct {
	next http.RoundTripper
	// tracer, when set, records an attempt the breaker refused as a client
	// span with status breaker_open, as the attempt layer records the
	// attempts it sends.
	tracer trace.Tracer
	// health, when set, is asked for a fresh probe when the breaker refuses
	// because the upstream was unreachable (see Sidecar.breakerLayer).
	health *healthChecker
}

// recoveryCheckWait bounds how long a request refused by a breaker that an
// unreachable upstream opened waits for a fresh health probe: a refused
// connection answers in well under a millisecond, so a down upstream still
// gets its 503 at once, while a request that arrives just after the
// upstream came back is forwarded instead of refused.
const recoveryCheckWait = 50 * time.Millisecond

func (b breakerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	info := InfoFrom(req.Context())
	if info == nil || info.Runtime == nil || info.Runtime.Breaker.Breaker == nil {
		return b.next.RoundTrip(req)
	}
	br := info.Runtime.Breaker.Breaker
	ticket, err := br.Allow()
	if err != nil && b.health != nil && br.TrippedUnreachable() && b.health.check(req.Context(), recoveryCheckWait) {
		ticket, err = br.Allow() // the probe passed and closed the breaker
	}
	if err != nil {
		if b.tracer != nil {
			_, span := b.tracer.Start(req.Context(), attemptSpanName(req.Method), clientSpan...)
			span.SetStatus(codes.Error, string(OutcomeBreakerOpen))
			span.End()
		}
		return nil, &ProblemError{Problem: problemBreakerOpen(br, time.Now()), Err: err}
	}
	before := info.attemptCount()
	resp, err := b.next.RoundTrip(req)
	ticket.Done(attemptOutcome(req.Context(), info, before, resp, err, time.Time{}).BreakerResult())
	return resp, err
}

// problemBreakerOpen is the 503 answered while a route's breaker refuses
// attempts; Retry-After is the time it stays open, in whole seconds, at
// least 1 (a half-open breaker whose probes are all taken says 1).
func problemBreakerOpen(br *policy.Breaker, now time.Time) Problem {
	left := RetryAfter(br.OpenRemaining(now))
	return Problem{
		Status: http.StatusServiceUnavailable, Outcome: OutcomeBreakerOpen, Title: "Circuit breaker open",
		Detail: fmt.Sprintf("the upstream is failing; route %s refuses requests for %ss, then lets a few probes through",
			br.Route(), left),
		Header: http.Header{HeaderRetryAfter: {left}},
	}
}
