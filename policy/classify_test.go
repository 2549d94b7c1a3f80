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
	"syscall"
	"testing"
	"time"
)

func TestClassifyAttempt(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNRESET)}
	reset := &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
	tests := []struct {
		name      string
		err       error
		status    int
		clientErr error
		want      AttemptKind
	}{
		{"response 200", nil, 200, nil, AttemptResponse},
		{"response 503", nil, 503, nil, AttemptResponse},
		{"dial op error", &url.Error{Op: "Post", URL: "http://x", Err: refused}, 0, nil, AttemptNotReached},
		{"DialError wrapper", fmt.Errorf("attempt: %w", &DialError{Err: errors.New("boom")}), 0, nil, AttemptNotReached},
		{"bare ECONNREFUSED", fmt.Errorf("x: %w", syscall.ECONNREFUSED), 0, nil, AttemptNotReached},
		{"dns error", &net.DNSError{Err: "no such host", Name: "core"}, 0, nil, AttemptNotReached},
		{"dial timeout is not reached", &net.OpError{Op: "dial", Err: context.DeadlineExceeded}, 0, nil, AttemptNotReached},
		{"per-try timeout", fmt.Errorf("rt: %w", ErrPerTryTimeout), 0, nil, AttemptTimeout},
		{"overall deadline", fmt.Errorf("rt: %w", ErrRetryDeadline), 0, nil, AttemptTimeout},
		{"context deadline", context.DeadlineExceeded, 0, nil, AttemptTimeout},
		{"read reset", reset, 0, nil, AttemptReset},
		{"EOF before response", &url.Error{Op: "Get", URL: "http://x", Err: io.EOF}, 0, nil, AttemptClosed},
		{"server closed idle", errors.New("http: server closed idle connection"), 0, nil, AttemptClosed},
		{"unknown error", errors.New("malformed HTTP response"), 0, nil, AttemptReset},
		{"client gone wins over reset", reset, 0, context.Canceled, AttemptCancelled},
		{"client gone wins over response", nil, 502, context.Canceled, AttemptCancelled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ClassifyAttempt(tt.err, tt.status, tt.clientErr); got != tt.want {
				t.Errorf("ClassifyAttempt(%v) = %s, want %s", tt.err, got, tt.want)
			}
		})
	}
}

// TestClassifyRealTransportErrors pins the errors net/http really returns,
// so a change in the standard library's wording shows up here.
func TestClassifyRealTransportErrors(t *testing.T) {
	tests := []struct {
		name  string
		serve func(c net.Conn) // nil: the port is closed
		want  AttemptKind
	}{
		{"refused", nil, AttemptNotReached},
		{"closed before response", func(c net.Conn) {
			readRequest(c)
			c.Close()
		}, AttemptClosed},
		{"reset before response", func(c net.Conn) {
			readRequest(c)
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
		}, AttemptReset},
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
			if got := ClassifyAttempt(err, 0, nil); got != tt.want {
				t.Errorf("ClassifyAttempt(%q) = %s, want %s", err, got, tt.want)
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
