package proxy

import "net/http"

// This file is the breaker seam (DESIGN.md step 7), inside the retry loop
// and the attempt layer, around each attempt. It is owned by the retry
// layer, which replaces the identity below with a gobreaker v2 two-step
// breaker per route. When the breaker is open it returns a *ProblemError
// (503, OutcomeBreakerOpen, Retry-After); the attempt layer passes such an
// error through without counting an attempt, and the ErrorHandler writes it.

// BreakerRuntime is a route's circuit breaker. Empty until the retry layer
// fills it.
type BreakerRuntime struct{}

// buildBreaker builds a route's BreakerRuntime; prev is the route's
// runtime in the previous snapshot (nil at start-up), whose breaker must
// be carried over when rc.Breaker is unchanged.
func buildBreaker(name string, rc RouteConfig, prev *RouteRuntime, deps Deps) (BreakerRuntime, error) {
	return BreakerRuntime{}, nil
}

// breakerLayer wraps the tuned transport. Identity today.
func (s *Sidecar) breakerLayer(next http.RoundTripper) http.RoundTripper { return next }
