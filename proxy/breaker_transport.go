package proxy

import (
	"fmt"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"opscore-sidecar/metrics"
	"opscore-sidecar/policy"
	"opscore-sidecar/proxy/config"
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
	if info == nil || info.Runtime == nil || info.Runtime.Breaker == nil {
		return b.next.RoundTrip(req)
	}
	br := info.Runtime.Breaker
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

// The breaker layer (see the request path in docs/architecture.md), inside
// the retry loop and the attempt layer, around each attempt:
// breakerTransport (above) asks the route's gobreaker v2 two-step breaker
// before each attempt and reports the attempt's result after it. When the
// breaker is open it returns a *ProblemError (503, OutcomeBreakerOpen,
// Retry-After); the attempt layer passes such an error through without
// counting an attempt, the retry layer stops, and the ErrorHandler writes it.

// buildBreaker builds a route's breaker; prev is the route's
// runtime in the previous snapshot and prevRC its config (both nil at
// start-up). The breaker is carried (see carry in snapshot.go), state and
// counts included, when rc.Breaker is unchanged; otherwise a new closed
// breaker replaces it, and at commit the old one is retired and the
// route's state gauge reset.
func buildBreaker(name string, rc config.RouteConfig, prev *RouteRuntime, prevRC *config.RouteConfig, deps Deps, c *carry) (*policy.Breaker, error) {
	var old *policy.Breaker
	if prev != nil && prevRC != nil && prevRC.Breaker == rc.Breaker {
		old = prev.Breaker
	}
	b, err := policy.NewBreaker(name, rc.Breaker, old, breakerObserver(deps.Metrics, deps.BreakerChange))
	if err != nil {
		return nil, err
	}
	if b != old {
		c.then(func() error {
			if prev != nil && prev.Breaker != nil {
				prev.Breaker.Retire()
			}
			if deps.Metrics != nil {
				deps.Metrics.BreakerState.WithLabelValues(name).Set(float64(policy.BreakerClosed))
			}
			return nil
		})
	}
	return b, nil
}

// breakerObserver returns the hook that keeps the state gauge and the
// transitions counter up to date, then calls also (when not nil). It runs
// under the breaker's lock.
func breakerObserver(m *metrics.Metrics, also policy.BreakerStateFunc) policy.BreakerStateFunc {
	if m == nil {
		return also
	}
	return func(route string, from, to policy.BreakerState) {
		m.BreakerState.WithLabelValues(route).Set(float64(to))
		m.BreakerTransitions.WithLabelValues(route, from.String(), to.String()).Inc()
		if also != nil {
			also(route, from, to)
		}
	}
}

// breakerLayer wraps the attempt layer with the route's breaker.
func (s *Sidecar) breakerLayer(next http.RoundTripper) http.RoundTripper {
	return breakerTransport{next: next, tracer: s.tracing.tracer, health: s.health}
}
