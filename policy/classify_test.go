package policy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"syscall"
	"testing"
	"time"

	"opscore-sidecar/metrics"
)

func TestClassifyAttempt(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNRESET)}
	reset := &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
	readTimeout := &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}
	tests := []struct {
		name       string
		err        error
		clientErr  error
		want       AttemptKind
		wantResult string // ClassifyFailure's label; "" for an answer
	}{
		{"response", nil, nil, AttemptResponse, ""},
		{"dial op error", &url.Error{Op: "Post", URL: "http://x", Err: refused}, nil, AttemptNotReached, ResultReset},
		{"dial refused", &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, nil, AttemptNotReached, ResultRefused},
		{"DialError wrapper", fmt.Errorf("attempt: %w", &DialError{Err: errors.New("boom")}), nil, AttemptNotReached, ResultError},
		{"bare ECONNREFUSED", fmt.Errorf("x: %w", syscall.ECONNREFUSED), nil, AttemptNotReached, ResultRefused},
		{"dns error", &net.DNSError{Err: "no such host", Name: "core"}, nil, AttemptNotReached, ResultError},
		{"dns timeout", &net.DNSError{Err: "i/o timeout", Name: "core", IsTimeout: true}, nil, AttemptNotReached, ResultTimeout},
		{"dial timeout is not reached", &net.OpError{Op: "dial", Err: context.DeadlineExceeded}, nil, AttemptNotReached, ResultTimeout},
		{"per-try timeout", fmt.Errorf("rt: %w", ErrPerTryTimeout), nil, AttemptTimeout, ResultTimeout},
		{"overall deadline", fmt.Errorf("rt: %w", ErrRetryDeadline), nil, AttemptTimeout, ResultTimeout},
		{"context deadline", context.DeadlineExceeded, nil, AttemptTimeout, ResultTimeout},
		{"net.Error timeout", readTimeout, nil, AttemptTimeout, ResultTimeout},
		{"read reset", reset, nil, AttemptReset, ResultReset},
		{"broken pipe", &net.OpError{Op: "write", Net: "tcp", Err: os.NewSyscallError("write", syscall.EPIPE)}, nil, AttemptReset, ResultReset},
		{"connection aborted", fmt.Errorf("x: %w", syscall.ECONNABORTED), nil, AttemptReset, ResultReset},
		{"broken connection reset", fmt.Errorf("net/http: HTTP/1.x transport connection broken: %w", reset), nil, AttemptReset, ResultReset},
		{"EOF before response", &url.Error{Op: "Get", URL: "http://x", Err: io.EOF}, nil, AttemptClosed, ResultClosed},
		{"unexpected EOF", fmt.Errorf("x: %w", io.ErrUnexpectedEOF), nil, AttemptClosed, ResultClosed},
		{"server closed idle", errors.New("http: server closed idle connection"), nil, AttemptClosed, ResultClosed},
		{"broken connection", fmt.Errorf("net/http: HTTP/1.x transport connection broken: %w", errors.New("http: readLoopPeekFailLocked")), nil, AttemptClosed, ResultClosed},
		{"closed without response", errors.New("remote end closed connection without response"), nil, AttemptClosed, ResultClosed},
		{"unknown error", errors.New("malformed HTTP response"), nil, AttemptReset, ResultError},
		{"canceled error", fmt.Errorf("x: %w", context.Canceled), nil, AttemptCancelled, ResultCanceled},
		{"client gone wins over reset", reset, context.Canceled, AttemptCancelled, ResultCanceled},
		{"client gone wins over refused", syscall.ECONNREFUSED, context.Canceled, AttemptCancelled, ResultCanceled},
		{"client gone wins over response", nil, context.Canceled, AttemptCancelled, ResultCanceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ClassifyAttempt(tt.err, tt.clientErr); got != tt.want {
				t.Errorf("ClassifyAttempt(%v) = %s, want %s", tt.err, got, tt.want)
			}
			if tt.err == nil && tt.clientErr == nil {
				return
			}
			if kind, result := ClassifyFailure(tt.err, tt.clientErr); kind != tt.want || result != tt.wantResult {
				t.Errorf("ClassifyFailure(%v) = %s, %s; want %s, %s", tt.err, kind, result, tt.want, tt.wantResult)
			}
		})
	}
}

// TestFailureResultsArePrecreatedLabels keeps ClassifyFailure's result
// labels in the set package metrics pre-creates.
func TestFailureResultsArePrecreatedLabels(t *testing.T) {
	for _, r := range []string{ResultRefused, ResultReset, ResultTimeout, ResultClosed, ResultCanceled, ResultError} {
		if !slices.Contains(metrics.AttemptResults, r) {
			t.Errorf("%q is not in metrics.AttemptResults %v", r, metrics.AttemptResults)
		}
	}
}

// TestClassifyRealTransportErrors pins the errors net/http really returns,
// so a change in the standard library's wording shows up here.
func TestClassifyRealTransportErrors(t *testing.T) {
	tests := []struct {
		name       string
		serve      func(c net.Conn) // nil: the port is closed
		want       AttemptKind
		wantResult string
	}{
		{"refused", nil, AttemptNotReached, ResultRefused},
		{"closed before response", func(c net.Conn) {
			readRequest(c)
			c.Close()
		}, AttemptClosed, ResultClosed},
		{"reset before response", func(c net.Conn) {
			readRequest(c)
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
		}, AttemptReset, ResultReset},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := ln.Addr().String()
			if tt.serve == nil {
				ln.Close()
			} else {
				defer ln.Close()
				go func() {
					c, err := ln.Accept()
					if err == nil {
						tt.serve(c)
					}
				}()
			}
			tr := &http.Transport{}
			defer tr.CloseIdleConnections()
			req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/", nil)
			resp, err := tr.RoundTrip(req)
			if err == nil {
				resp.Body.Close()
				t.Fatalf("got a response %d, want an error", resp.StatusCode)
			}
			if kind, result := ClassifyFailure(err, nil); kind != tt.want || result != tt.wantResult {
				t.Errorf("ClassifyFailure(%q) = %s, %s; want %s, %s", err, kind, result, tt.want, tt.wantResult)
			}
		})
	}
}

func readRequest(c net.Conn) {
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if req, err := http.ReadRequest(bufio.NewReader(c)); err == nil {
		req.Body.Close()
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		value  string
		want   time.Duration
		wantOK bool
	}{
		{"", 0, false},
		{"3", 3 * time.Second, true},
		{" 0 ", 0, true},
		{"-1", 0, false},
		{"soon", 0, false},
		{now.Add(7 * time.Second).Format(http.TimeFormat), 7 * time.Second, true},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0, true},
		{"99999999", 24 * time.Hour, true},
	}
	for _, tt := range tests {
		got, ok := ParseRetryAfter(tt.value, now)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("ParseRetryAfter(%q) = %s, %v; want %s, %v", tt.value, got, ok, tt.want, tt.wantOK)
		}
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want int
	}{
		{0, 1}, {-time.Second, 1}, {time.Millisecond, 1}, {time.Second, 1},
		{1001 * time.Millisecond, 2}, {4900 * time.Millisecond, 5},
	}
	for _, tt := range tests {
		if got := RetryAfterSeconds(tt.d); got != tt.want {
			t.Errorf("RetryAfterSeconds(%s) = %d, want %d", tt.d, got, tt.want)
		}
	}
}

func TestTimeoutCausesAreDeadlines(t *testing.T) {
	for _, err := range []error{ErrPerTryTimeout, ErrRetryDeadline} {
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("errors.Is(%v, context.DeadlineExceeded) = false, want true", err)
		}
	}
}
