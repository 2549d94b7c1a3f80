package proxy

import (
	"net/http"

	"opscore-sidecar/metrics"
	"opscore-sidecar/policy"
)

// This file is the breaker layer (DESIGN.md step 7), inside the retry loop
// and around the attempt layer: breakerTransport (breaker_transport.go)
// asks the route's gobreaker v2 two-step breaker before each attempt and
// reports the attempt's outcome, as the attempt layer classified it, after
// it. When the breaker is open it returns a *ProblemError (503,
// OutcomeBreakerOpen, Retry-After) without sending an attempt, the retry
// layer stops, and the ErrorHandler writes it.

// BreakerRuntime is a route's circuit breaker.
type BreakerRuntime struct {
	// Breaker is the route's breaker; a disabled one allows everything.
	Breaker *policy.Breaker
}

// buildBreaker builds a route's BreakerRuntime; prev is the route's
// runtime in the previous snapshot (nil at start-up), whose breaker is
// carried over, state and counts included, when rc.Breaker is unchanged.
// A new breaker starts closed and resets the route's state gauge.
func buildBreaker(name string, rc RouteConfig, prev *RouteRuntime, deps Deps) (BreakerRuntime, error) {
	var old *policy.Breaker
	if prev != nil {
		old = prev.Breaker.Breaker
	}
	b, err := policy.NewBreaker(name, rc.Breaker, old, breakerObserver(deps.Metrics, deps.BreakerChange))
	if err != nil {
		return BreakerRuntime{}, err
	}
	if b != old && deps.Metrics != nil {
		deps.Metrics.BreakerState.WithLabelValues(name).Set(float64(policy.BreakerClosed))
	}
	return BreakerRuntime{Breaker: b}, nil
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
