package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"opscore-sidecar/policy"
)

// AttemptError is the error of one failed upstream attempt with the result
// label the attempt layer counted it under, so that the layers above (the
// retry layer's problem, the ErrorHandler) name the same result.
type AttemptError struct {
	// Result is the attempt result label: refused, reset, timeout, closed,
	// canceled or error (see package metrics).
	Result string
	// Err is the transport's error.
	Err error
}

func (e *AttemptError) Error() string {
	return fmt.Sprintf("proxy: upstream attempt %s: %v", e.Result, e.Err)
}

// Unwrap returns the transport's error.
func (e *AttemptError) Unwrap() error { return e.Err }

// ClassifyError returns the attempt result label of a transport error: the
// one the attempt layer counted when err carries an *AttemptError, else
// policy.ClassifyFailure's. ctx is the attempt's context: when it ended
// for any reason but the sidecar's own timeouts, the client went away,
// which is not the upstream's fault.
func ClassifyError(ctx context.Context, err error) string {
	var ae *AttemptError
	if errors.As(err, &ae) {
		return ae.Result
	}
	_, result := policy.ClassifyFailure(err, clientGone(ctx))
	return result
}

// attemptOutcome classifies one attempt for the retry policy and the
// breaker. ctx is the attempt's context (breaker) or the request's (retry
// loop): the client went away when it ended for any reason other than the
// sidecar's own timeouts (see clientGone). now is used to read an
// HTTP-date Retry-After; the zero time skips reading Retry-After.
func attemptOutcome(ctx context.Context, resp *http.Response, err error, now time.Time) policy.AttemptOutcome {
	status := 0
	if err == nil && resp != nil {
		status = resp.StatusCode
	}
	o := policy.AttemptOutcome{Kind: policy.ClassifyAttempt(err, clientGone(ctx)), Status: status}
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
