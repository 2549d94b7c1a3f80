package proxy

import (
	"context"
	"errors"
	"fmt"

	"opscore-sidecar/policy"
)

var errNoSnapshot = errors.New("proxy: request has no config snapshot")

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
