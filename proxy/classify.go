package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"opscore-sidecar/metrics"
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

// ClassifyError maps a transport error to an attempt result. ctx is the
// attempt's context: when it is canceled (not timed out) the client went
// away, which is not the upstream's fault.
func ClassifyError(ctx context.Context, err error) string {
	var ae *AttemptError
	if errors.As(err, &ae) {
		return ae.Result
	}
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled) || (ctx.Err() != nil && errors.Is(context.Cause(ctx), context.Canceled)):
		return metrics.ResultCanceled
	case errors.Is(err, syscall.ECONNREFUSED):
		return metrics.ResultRefused
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return metrics.ResultTimeout
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNABORTED):
		return metrics.ResultReset
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), isServerClosed(err):
		return metrics.ResultClosed
	}
	return metrics.ResultError
}

// isServerClosed matches the transport's unexported errors for an upstream
// that closed the connection before sending a response.
func isServerClosed(err error) bool {
	s := err.Error()
	return strings.Contains(s, "server closed idle connection") || strings.Contains(s, "transport connection broken")
}
