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

// AttemptError is the error of one failed upstream attempt, classified.
// The retry layer uses Result and Sent to decide whether a retry is safe
// (STYLE.md 9: a request that was never sent may always be retried).
type AttemptError struct {
	// Result is the attempt result label: refused, reset, timeout, closed,
	// canceled or error (see package metrics).
	Result string
	// Sent is false when the request certainly never reached the upstream
	// (no connection was obtained, or the connection was refused).
	Sent bool
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

// neverSent reports whether err shows the request could not have reached
// the upstream: a refused or failed dial.
func neverSent(err error, result string) bool {
	if result == metrics.ResultRefused {
		return true
	}
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "dial"
}

// isServerClosed matches the transport's unexported errors for an upstream
// that closed the connection before sending a response.
func isServerClosed(err error) bool {
	s := err.Error()
	return strings.Contains(s, "server closed idle connection") || strings.Contains(s, "transport connection broken")
}
