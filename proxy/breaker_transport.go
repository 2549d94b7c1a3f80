package proxy

import (
	"context"
	"errors"
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
	left := br.OpenRemaining(now)
	return Problem{
		Status: http.StatusServiceUnavailable, Outcome: OutcomeBreakerOpen, Title: "Circuit breaker open",
		Detail: fmt.Sprintf("the upstream is failing; route %s refuses requests for %ss, then lets a few probes through",
			br.Route(), RetryAfter(left)),
		Header: http.Header{"Retry-After": {RetryAfter(left)}},
	}
}

// attemptOutcome classifies one attempt for the retry policy and the
// breaker. ctx is the attempt's context: the client went away when it was
// cancelled for any reason other than the sidecar's own timeouts (whose
// causes wrap context.DeadlineExceeded). now is used to read an HTTP-date
// Retry-After; the zero time skips reading Retry-After.
func attemptOutcome(ctx context.Context, resp *http.Response, err error, now time.Time) policy.AttemptOutcome {
	status := 0
	if err == nil && resp != nil {
		status = resp.StatusCode
	}
	o := policy.AttemptOutcome{Kind: policy.ClassifyAttempt(err, status, clientGone(ctx)), Status: status}
	if o.Kind == policy.AttemptResponse && !now.IsZero() {
		if v := resp.Header.Get("Retry-After"); v != "" {
			o.RetryAfter, o.HasRetryAfter = policy.ParseRetryAfter(v, now)
		}
	}
	return o
}

// clientGone returns the reason the client went away, or nil while it is
// still waiting. A context ended by a deadline (the per-try timeout, the
// retry deadline) is not the client's doing.
func clientGone(ctx context.Context) error {
	if ctx.Err() == nil {
		return nil
	}
	cause := context.Cause(ctx)
	if errors.Is(cause, context.DeadlineExceeded) {
		return nil
	}
	return cause
}
