package policy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	"opscore-sidecar/metrics"
)

// AttemptKind says how one attempt to reach the upstream ended, in the
// terms the retry policy and the breaker decide on.
type AttemptKind uint8

// The kinds of attempt outcome.
const (
	// AttemptResponse means the upstream answered with an HTTP status.
	AttemptResponse AttemptKind = iota
	// AttemptNotReached means the request never reached the upstream: the
	// dial failed, was refused or the name did not resolve.
	AttemptNotReached
	// AttemptReset means the connection was reset (ECONNRESET) or failed
	// in an unknown way before a response arrived; the upstream may have
	// acted on the request.
	AttemptReset
	// AttemptClosed means the upstream closed the connection before any
	// byte of the response (io.EOF, "server closed idle connection"): the
	// keep-alive race (docs/loadtest.md, "The keep-alive race") looks like this.
	AttemptClosed
	// AttemptTimeout means the per-try timeout or the overall deadline
	// expired before the response headers arrived.
	AttemptTimeout
	// AttemptCancelled means the client went away; it is nobody's fault
	// upstream and ends the request at once.
	AttemptCancelled
)

// ConnectionFailure reports whether the attempt got no HTTP answer because
// the connection failed: not reached, reset or closed before a response.
// These are what an upstream that is down (or restarting behind a TCP
// proxy) produces; a timeout is not one of them.
func (k AttemptKind) ConnectionFailure() bool {
	return k == AttemptNotReached || k == AttemptReset || k == AttemptClosed
}

// String returns the kind's lower-case name.
func (k AttemptKind) String() string {
	switch k {
	case AttemptResponse:
		return "response"
	case AttemptNotReached:
		return "not_reached"
	case AttemptReset:
		return "reset"
	case AttemptClosed:
		return "closed"
	case AttemptTimeout:
		return "timeout"
	case AttemptCancelled:
		return "cancelled"
	}
	return "unknown"
}

// Outcome is how one upstream attempt ended. The proxy's attempt layer
// (proxy/attempt.go) classifies each attempt once, with Classify, and every
// other layer derives its view from that one value: the attempt metric's
// result label (Label), the breaker's success or failure (BreakerResult),
// the retry decision (RetryPolicy.Decide) and the problem answered to the
// client (proxy/retry_transport.go, proxy/proxy.go).
type Outcome struct {
	// Kind is how the attempt ended, in the terms the retry policy and the
	// breaker decide on.
	Kind AttemptKind
	// Status is the HTTP status when a response arrived, else 0. A
	// response that arrived after the client went away keeps its status
	// (Kind is then AttemptCancelled).
	Status int
	// Failure is how an attempt without a response failed, as its result
	// label (metrics.ResultRefused, ResultReset, ResultTimeout,
	// ResultClosed, ResultCanceled or ResultError); empty for a response.
	// It is finer than Kind: a dial that timed out is AttemptNotReached
	// with Failure timeout.
	Failure string
	// RetryAfter is the upstream's Retry-After delay, valid when HasRetryAfter.
	RetryAfter time.Duration
	// HasRetryAfter says the upstream sent a usable Retry-After header.
	HasRetryAfter bool
}

// Label returns the result label the attempt is counted under in
// opscore_sidecar_upstream_attempts_total (metrics.AttemptResults): a
// response counts by its status (ok, or http_5xx for 5xx), a failure by
// Failure, or by its Kind when Failure is not set.
func (o Outcome) Label() string {
	switch {
	case o.Status >= 500:
		return metrics.ResultHTTP5xx
	case o.Status > 0:
		return metrics.ResultOK
	case o.Failure != "":
		return o.Failure
	}
	switch o.Kind {
	case AttemptNotReached:
		return metrics.ResultRefused
	case AttemptReset:
		return metrics.ResultReset
	case AttemptClosed:
		return metrics.ResultClosed
	case AttemptTimeout:
		return metrics.ResultTimeout
	case AttemptCancelled:
		return metrics.ResultCanceled
	}
	return metrics.ResultOK
}

// ErrPerTryTimeout is the cause given to an attempt's context when its
// per-try timeout expires. It wraps context.DeadlineExceeded, so code that
// only knows the standard library still sees a timeout.
var ErrPerTryTimeout = fmt.Errorf("policy: per-try timeout expired: %w", context.DeadlineExceeded)

// ErrRetryDeadline is the cause given to an attempt's context when the
// route's overall retry deadline expires first. It wraps
// context.DeadlineExceeded.
var ErrRetryDeadline = fmt.Errorf("policy: retry deadline expired: %w", context.DeadlineExceeded)

// ErrResponseHeaderTimeout is the cause given to an attempt's context when
// upstream.response_header_timeout expires, counted from the end of the
// request's write. It wraps context.DeadlineExceeded.
var ErrResponseHeaderTimeout = fmt.Errorf("policy: response header timeout expired: %w", context.DeadlineExceeded)

// DialError wraps an error that happened before any byte of the request
// was written to the upstream (dial, refused connection, name resolution).
// The proxy's dialer returns it so the retry policy knows the request is
// safe to send again on every route.
type DialError struct {
	// Err is the underlying dial error.
	Err error
}

// Error describes the dial failure.
func (e *DialError) Error() string {
	return "policy: upstream not reached: " + e.Err.Error()
}

// Unwrap returns the underlying dial error.
func (e *DialError) Unwrap() error { return e.Err }

// Classify classifies one attempt: status is the response's status (0
// when there is none), err what the round trip returned and clientErr the
// client's context error (non-nil once the client has gone away, which wins
// over everything else because the transport error it causes is not the
// upstream's fault). A response, of any status, is AttemptResponse: the
// status is judged by the retry policy and the breaker. It is the one
// classification of transport errors; the kinds and their result labels
// (Failure) are:
//
//   - AttemptCancelled: canceled (clientErr, or err is context.Canceled).
//   - AttemptNotReached (dial error, *DialError, unresolved name): refused,
//     or how the dial failed (timeout, reset, closed), else error.
//   - AttemptTimeout: timeout.
//   - AttemptReset: reset (ECONNRESET, EPIPE, ECONNABORTED), or error for
//     anything unknown (the upstream may have acted on the request).
//   - AttemptClosed: closed.
func Classify(status int, err, clientErr error) Outcome {
	if err != nil {
		status = 0
	}
	if clientErr != nil || errors.Is(err, context.Canceled) {
		return Outcome{Kind: AttemptCancelled, Status: status, Failure: metrics.ResultCanceled}
	}
	if err == nil {
		return Outcome{Kind: AttemptResponse, Status: status}
	}
	var o Outcome
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		o = Outcome{Kind: AttemptNotReached, Failure: metrics.ResultRefused}
	case timedOut(err):
		o = Outcome{Kind: AttemptTimeout, Failure: metrics.ResultTimeout}
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNABORTED):
		o = Outcome{Kind: AttemptReset, Failure: metrics.ResultReset}
	case closedEarly(err):
		o = Outcome{Kind: AttemptClosed, Failure: metrics.ResultClosed}
	default:
		o = Outcome{Kind: AttemptReset, Failure: metrics.ResultError}
	}
	if notReached(err) {
		o.Kind = AttemptNotReached
	}
	return o
}

// notReached reports a request that never reached the upstream: the dial
// failed (the proxy's dialer wraps its errors in *DialError; net.Dialer
// returns a *net.OpError with Op "dial", name errors included).
func notReached(err error) bool {
	var de *DialError
	if errors.As(err, &de) {
		return true
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return true
	}
	var opErr *net.OpError
	return errors.As(err, &opErr) && opErr.Op == "dial"
}

// timedOut reports an expired deadline: the per-try timeout and the retry
// deadline (whose causes wrap context.DeadlineExceeded) or a net.Error
// timeout.
func timedOut(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// closedEarly reports a connection the upstream closed before answering.
// net/http does not export "server closed idle connection" nor its
// "transport connection broken" wrapper, so they are matched by text, as
// every reverse proxy that detects them does. "closed connection without
// response" is other stacks' wording (Python's RemoteDisconnected);
// net/http never says it.
func closedEarly(err error) bool {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "server closed idle connection") ||
		strings.Contains(msg, "transport connection broken") ||
		strings.Contains(msg, "closed connection without response")
}

// ParseRetryAfter reads a Retry-After header value, either delay-seconds
// or an HTTP date in any of its three formats, relative to now. A date in
// the past means zero delay; an empty or malformed value returns ok false.
func ParseRetryAfter(value string, now time.Time) (d time.Duration, ok bool) {
	value = strings.TrimSpace(value)
	if value == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(value, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		if secs > int64(24*time.Hour/time.Second) {
			secs = int64(24 * time.Hour / time.Second)
		}
		return time.Duration(secs) * time.Second, true
	}
	t, err := http.ParseTime(value) // RFC 1123, RFC 850 or asctime, as RFC 9110 allows
	if err != nil {
		return 0, false
	}
	if d = t.Sub(now); d < 0 {
		d = 0
	}
	return d, true
}

// RetryAfterSeconds renders a wait as a Retry-After value in whole seconds,
// rounded up and at least 1, so a client never retries too early.
func RetryAfterSeconds(d time.Duration) int {
	s := int((d + time.Second - 1) / time.Second)
	if s < 1 {
		return 1
	}
	return s
}
