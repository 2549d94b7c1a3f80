package proxy

import "net/http"

// This file is the retry seam under the ReverseProxy (DESIGN.md step 6).
// It is owned by the retry layer, which replaces the identity below with
// a RoundTripper that buffers the body, retries per the route's policy and
// budget, and calls next once per attempt. next is the attempt layer
// (spans, attempt metrics, classification: see attempt.go) over the
// breaker seam over the tuned transport.
//
// Beware the transport's own hidden replay (see transport.go): a request
// that is replayable in net/http's sense may be re-sent once by
// http.Transport on a reused connection that died; the attempt layer
// counts such replays as attempts.

// RetryRuntime is a route's retry state (policy, budget). Empty until the
// retry layer fills it.
type RetryRuntime struct{}

// buildRetry builds a route's RetryRuntime; prev is the route's runtime in
// the previous snapshot (nil at start-up), whose budget may be carried over.
func buildRetry(name string, rc RouteConfig, prev *RouteRuntime, deps Deps) (RetryRuntime, error) {
	return RetryRuntime{}, nil
}

// retryLayer wraps the per-attempt RoundTripper. Identity today.
func (s *Sidecar) retryLayer(next http.RoundTripper) http.RoundTripper { return next }
