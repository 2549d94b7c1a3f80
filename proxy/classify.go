package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"opscore-sidecar/metrics"
	"opscore-sidecar/policy"
)

// AttemptError is the error of one failed upstream attempt with the
// outcome the attempt layer (attempt.go) classified it as, so that the
// layers above (the breaker, the retry layer's problem, the ErrorHandler)
// act on that one classification.
type AttemptError struct {
	// Outcome is the attempt's outcome; Outcome.Label is the result it was
	// counted under (refused, reset, timeout, closed, canceled or error).
	Outcome policy.Outcome
	// Err is the transport's error.
	Err error
}

func (e *AttemptError) Error() string {
	return fmt.Sprintf("proxy: upstream attempt %s: %v", e.Outcome.Label(), e.Err)
}

// Unwrap returns the transport's error.
func (e *AttemptError) Unwrap() error { return e.Err }

// classifyAttempt is the classification of one attempt (policy.Classify)
// that the attempt layer makes once per attempt. ctx is the attempt's
// context: when it ended for any reason but the sidecar's own timeouts, the
// client went away (see clientGone). now reads an HTTP-date Retry-After on
// a 429 or 5xx, the answers the retry policy may retry; the zero time
// skips reading it.
func classifyAttempt(ctx context.Context, resp *http.Response, err error, now time.Time) policy.Outcome {
	status := 0
	if err == nil && resp != nil {
		status = resp.StatusCode
	}
	o := policy.Classify(status, err, clientGone(ctx))
	if o.Kind == policy.AttemptResponse && (status == http.StatusTooManyRequests || status >= 500) && !now.IsZero() {
		if v := resp.Header.Get("Retry-After"); v != "" {
			o.RetryAfter, o.HasRetryAfter = policy.ParseRetryAfter(v, now)
		}
	}
	return o
}

// attemptOutcome returns the outcome of the attempt that just returned
// resp, err through the attempt layer, for the layers above it (breaker,
// retry): the one its *AttemptError carries, else the one the attempt
// layer recorded on info since the request had made before attempts. Only
// outside the full chain (a retry or breaker layer stacked without the
// attempt layer, as in the benchmarks) was nothing recorded, and the
// attempt is classified here with the same classifyAttempt.
func attemptOutcome(ctx context.Context, info *RequestInfo, before int, resp *http.Response, err error, now time.Time) policy.Outcome {
	if ae := asAttemptError(err); ae != nil {
		return ae.Outcome
	}
	if info != nil {
		if o, n := info.lastAttempt(); n > before {
			return o
		}
	}
	return classifyAttempt(ctx, resp, err, now)
}

// errorOutcome returns the outcome of a failed request's error for the
// ErrorHandler and the response buffer: the attempt layer's when err
// carries an *AttemptError, else err classified with policy.Classify (an
// error that did not come from an attempt: a response body that broke
// off, a client that went away between attempts). ctx is the context err
// happened under (see clientGone).
func errorOutcome(ctx context.Context, err error) policy.Outcome {
	if ae := asAttemptError(err); ae != nil {
		return ae.Outcome
	}
	return policy.Classify(0, err, clientGone(ctx))
}

// asAttemptError returns err's *AttemptError, or nil. A nil err costs
// nothing: the variable errors.As needs escapes, so it is only declared for
// an error (as in asProblemError).
func asAttemptError(err error) *AttemptError {
	if err == nil {
		return nil
	}
	var ae *AttemptError
	if errors.As(err, &ae) {
		return ae
	}
	return nil
}

// upstreamProblem is the problem answered for a request whose last attempt
// failed with outcome o: 504 upstream_timeout for a timeout, else 502
// upstream_error, both with o's result label as reason. The retry layer
// (retried) answers an attempt that never reached the upstream with 503
// and Retry-After instead: the request was certainly not processed, unless
// reached says an earlier attempt got through. The ErrorHandler (not
// retried) sees only an attempt the retry layer did not run.
func upstreamProblem(o policy.Outcome, retried, reached bool) Problem {
	result := o.Label()
	switch {
	case retried && o.Kind == policy.AttemptNotReached:
		// Not one attempt reached the upstream (it is down or restarting):
		// the request was certainly not processed, so the client may send
		// it again, and 503 with Retry-After says exactly that.
		detail := "the upstream could not be reached; the request was not processed (" + result + ")"
		if reached {
			// An earlier attempt got through before the upstream went
			// away (a crash mid-request): it may have acted on it.
			detail = "the upstream could not be reached on the last attempt; an earlier attempt reached it and may have been processed (" + result + ")"
		}
		return Problem{Status: http.StatusServiceUnavailable, Outcome: OutcomeUpstreamError, Reason: result,
			Title: "Upstream unavailable", Detail: detail, Header: http.Header{"Retry-After": {"1"}}}
	case result == metrics.ResultTimeout && retried:
		return Problem{Status: http.StatusGatewayTimeout, Outcome: OutcomeUpstreamTimeout, Reason: result,
			Title: "Upstream timed out", Detail: "the upstream did not answer in time"}
	case result == metrics.ResultTimeout:
		return Problem{Status: http.StatusGatewayTimeout, Outcome: OutcomeUpstreamTimeout, Reason: result,
			Title: "Upstream timed out", Detail: "the upstream did not answer in time (timeout)"}
	case retried:
		return Problem{Status: http.StatusBadGateway, Outcome: OutcomeUpstreamError, Reason: result,
			Title: "Upstream failed", Detail: "the upstream failed before answering (" + result + ")"}
	}
	return Problem{Status: http.StatusBadGateway, Outcome: OutcomeUpstreamError, Reason: result,
		Title: "Upstream failed", Detail: "the upstream could not be reached or failed before answering (" + result + ")"}
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
