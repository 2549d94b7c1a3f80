package proxy

import (
	"net/http"

	"opscore-sidecar/policy"
	"opscore-sidecar/proxy/config"
)

// This file is the retry layer under the ReverseProxy (DESIGN.md step 6).
// The RoundTripper itself is retryTransport (retry_transport.go): it
// buffers the body, retries per the route's policy and budget, and calls
// next once per attempt. next is the attempt layer (spans, attempt
// metrics, classification: see attempt.go) over the breaker layer over the
// tuned transport.
//
// Beware the transport's own hidden replay (see transport.go): a request
// that is replayable in net/http's sense may be re-sent by http.Transport
// on a reused connection that died; the attempt layer counts such replays
// as attempts and the retry layer charges them to the attempt limit and
// the budget (retry_transport.go).

// buildRetry builds a route's retry policy; prev is the route's runtime in
// the previous snapshot (nil at start-up), whose budget counts are carried
// over when the budget window is unchanged.
func buildRetry(name string, rc config.RouteConfig, prev *RouteRuntime, deps Deps) (*policy.RetryPolicy, error) {
	var old *policy.RetryPolicy
	if prev != nil {
		old = prev.Retry
	}
	p, err := policy.NewRetryPolicy(rc.Retry, old, nil)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// retryLayer wraps the per-attempt RoundTripper in the retry loop.
func (s *Sidecar) retryLayer(next http.RoundTripper) http.RoundTripper {
	return &retryTransport{next: next, metrics: s.deps.Metrics, now: s.deps.now, health: s.health, queue: &s.queue}
}
