package proxy

import (
	"net/http"

	"opscore-sidecar/metrics"
	"opscore-sidecar/policy"
	"opscore-sidecar/proxy/config"
)

// This file is the breaker layer (DESIGN.md step 7), inside the retry loop
// and the attempt layer, around each attempt: breakerTransport
// (breaker_transport.go) asks the route's gobreaker v2 two-step breaker
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

// breakerLayer wraps the tuned transport with the route's breaker.
func (s *Sidecar) breakerLayer(next http.RoundTripper) http.RoundTripper {
	return breakerTransport{next: next, health: s.health}
}
