package proxy

import (
	"fmt"
	"net/http"
	"time"

	"opscore-sidecar/policy"
)

// breakerTransport asks the route's circuit breaker before each attempt
// and reports the attempt's result after it: transport errors, timeouts
// and 5xx count as failures, other answers (4xx included) as successes,
// and an attempt cut short by the client going away counts neither way.
type breakerTransport struct {
	next http.RoundTripper
}

func (b breakerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	info := InfoFrom(req.Context())
	if info == nil || info.Runtime == nil || info.Runtime.Breaker.Breaker == nil {
		return b.next.RoundTrip(req)
	}
	br := info.Runtime.Breaker.Breaker
	ticket, err := br.Allow()
	if err != nil {
		return nil, &ProblemError{Problem: problemBreakerOpen(br, time.Now()), Err: err}
	}
	resp, err := b.next.RoundTrip(req)
	ticket.Done(policy.BreakerResultOf(attemptOutcome(req.Context(), resp, err, time.Time{})))
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
