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

func TestClassify(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNRESET)}
	reset := &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
	readTimeout := &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}
	tests := []struct {
		name       string
		err        error
		clientErr  error
		want       AttemptKind
		wantResult string // the outcome's Label
	}{
		{"response", nil, nil, AttemptResponse, metrics.ResultOK},
		{"dial op error", &url.Error{Op: "Post", URL: "http://x", Err: refused}, nil, AttemptNotReached, metrics.ResultReset},
		{"dial refused", &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, nil, AttemptNotReached, metrics.ResultRefused},
		{"DialError wrapper", fmt.Errorf("attempt: %w", &DialError{Err: errors.New("boom")}), nil, AttemptNotReached, metrics.ResultError},
		{"bare ECONNREFUSED", fmt.Errorf("x: %w", syscall.ECONNREFUSED), nil, AttemptNotReached, metrics.ResultRefused},
		{"dns error", &net.DNSError{Err: "no such host", Name: "core"}, nil, AttemptNotReached, metrics.ResultError},
		{"dns timeout", &net.DNSError{Err: "i/o timeout", Name: "core", IsTimeout: true}, nil, AttemptNotReached, metrics.ResultTimeout},
		{"dial timeout is not reached", &net.OpError{Op: "dial", Err: context.DeadlineExceeded}, nil, AttemptNotReached, metrics.ResultTimeout},
		{"per-try timeout", fmt.Errorf("rt: %w", ErrPerTryTimeout), nil, AttemptTimeout, metrics.ResultTimeout},
		{"overall deadline", fmt.Errorf("rt: %w", ErrRetryDeadline), nil, AttemptTimeout, metrics.ResultTimeout},
		{"context deadline", context.DeadlineExceeded, nil, AttemptTimeout, metrics.ResultTimeout},
		{"net.Error timeout", readTimeout, nil, AttemptTimeout, metrics.ResultTimeout},
		{"read reset", reset, nil, AttemptReset, metrics.ResultReset},
		{"broken pipe", &net.OpError{Op: "write", Net: "tcp", Err: os.NewSyscallError("write", syscall.EPIPE)}, nil, AttemptReset, metrics.ResultReset},
		{"connection aborted", fmt.Errorf("x: %w", syscall.ECONNABORTED), nil, AttemptReset, metrics.ResultReset},
		{"broken connection reset", fmt.Errorf("net/http: HTTP/1.x transport connection broken: %w", reset), nil, AttemptReset, metrics.ResultReset},
		{"EOF before response", &url.Error{Op: "Get", URL: "http://x", Err: io.EOF}, nil, AttemptClosed, metrics.ResultClosed},
		{"unexpected EOF", fmt.Errorf("x: %w", io.ErrUnexpectedEOF), nil, AttemptClosed, metrics.ResultClosed},
		{"server closed idle", errors.New("http: server closed idle connection"), nil, AttemptClosed, metrics.ResultClosed},
		{"broken connection", fmt.Errorf("net/http: HTTP/1.x transport connection broken: %w", errors.New("http: readLoopPeekFailLocked")), nil, AttemptClosed, metrics.ResultClosed},
		{"closed without response", errors.New("remote end closed connection without response"), nil, AttemptClosed, metrics.ResultClosed},
		{"unknown error", errors.New("malformed HTTP response"), nil, AttemptReset, metrics.ResultError},
		{"canceled error", fmt.Errorf("x: %w", context.Canceled), nil, AttemptCancelled, metrics.ResultCanceled},
		{"client gone wins over reset", reset, context.Canceled, AttemptCancelled, metrics.ResultCanceled},
		{"client gone wins over refused", syscall.ECONNREFUSED, context.Canceled, AttemptCancelled, metrics.ResultCanceled},
		// The response still counts as ok: it arrived.
		{"client gone wins over response", nil, context.Canceled, AttemptCancelled, metrics.ResultOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status := 0
			if tt.err == nil {
				status = 200
			}
			o := Classify(status, tt.err, tt.clientErr)
			if o.Kind != tt.want || o.Label() != tt.wantResult {
				t.Errorf("Classify(%d, %v, %v) = %s, %s; want %s, %s", status, tt.err, tt.clientErr, o.Kind, o.Label(), tt.want, tt.wantResult)
			}
			if tt.err != nil && o.Status != 0 {
				t.Errorf("Classify(%d, %v) kept status %d for a failure", status, tt.err, o.Status)
			}
		})
	}
}

// TestOutcomeLabels pins Label for outcomes built without Classify (a
// response by its status, a failure by its kind) and keeps every label in
// the set package metrics pre-creates.
func TestOutcomeLabels(t *testing.T) {
	tests := []struct {
		o    Outcome
		want string
	}{
		{Outcome{Kind: AttemptResponse, Status: 200}, metrics.ResultOK},
		{Outcome{Kind: AttemptResponse, Status: 429}, metrics.ResultOK},
		{Outcome{Kind: AttemptResponse, Status: 500}, metrics.ResultHTTP5xx},
		{Outcome{Kind: AttemptResponse, Status: 503}, metrics.ResultHTTP5xx},
		{Outcome{Kind: AttemptCancelled, Status: 502}, metrics.ResultHTTP5xx},
		{Outcome{Kind: AttemptNotReached}, metrics.ResultRefused},
		{Outcome{Kind: AttemptNotReached, Failure: metrics.ResultTimeout}, metrics.ResultTimeout},
		{Outcome{Kind: AttemptReset}, metrics.ResultReset},
		{Outcome{Kind: AttemptReset, Failure: metrics.ResultError}, metrics.ResultError},
		{Outcome{Kind: AttemptClosed}, metrics.ResultClosed},
		{Outcome{Kind: AttemptTimeout}, metrics.ResultTimeout},
		{Outcome{Kind: AttemptCancelled}, metrics.ResultCanceled},
	}
	for _, tt := range tests {
		got := tt.o.Label()
		if got != tt.want {
			t.Errorf("%+v.Label() = %q, want %q", tt.o, got, tt.want)
		}
		if !slices.Contains(metrics.AttemptResults, got) {
			t.Errorf("%q is not in metrics.AttemptResults %v", got, metrics.AttemptResults)
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
		{"refused", nil, AttemptNotReached, metrics.ResultRefused},
		{"closed before response", func(c net.Conn) {
			readRequest(c)
			c.Close()
		}, AttemptClosed, metrics.ResultClosed},
		{"reset before response", func(c net.Conn) {
			readRequest(c)
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
		}, AttemptReset, metrics.ResultReset},
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
			if o := Classify(0, err, nil); o.Kind != tt.want || o.Label() != tt.wantResult {
				t.Errorf("Classify(%q) = %s, %s; want %s, %s", err, o.Kind, o.Label(), tt.want, tt.wantResult)
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
		{now.Add(9 * time.Second).Format("Monday, 02-Jan-06 15:04:05 GMT"), 9 * time.Second, true}, // RFC 850
		{now.Add(11 * time.Second).Format(time.ANSIC), 11 * time.Second, true},                     // asctime
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
