package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"syscall"
	"testing"
)

// opErr wraps a syscall error the way net/http returns it to a client.
func opErr(errno syscall.Errno) error {
	return &url.Error{Op: "Post", URL: "http://127.0.0.1:1/x", Err: &net.OpError{
		Op: "read", Net: "tcp", Err: os.NewSyscallError("read", errno),
	}}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestClassify(t *testing.T) {
	const state = "/v1/opscore/agent/[id]/state"
	tests := []struct {
		name     string
		reqName  string
		reg      bool
		status   int
		err      error
		wantNil  bool
		wantKind Kind
		wantMsg  string
	}{
		{name: "registration 200", reqName: "notify", reg: true, status: 200, wantNil: true},
		{name: "registration 202 is a failure", reqName: "notify", reg: true, status: 202, wantKind: KindStatus,
			wantMsg: "CatchResponseError('Failed to register agent: 202')"},
		{name: "registration reset is status 0", reqName: "notify", reg: true, err: opErr(syscall.ECONNRESET),
			wantKind: KindReset, wantMsg: "CatchResponseError('Failed to register agent: 0')"},
		{name: "registration 503", reqName: "notify", reg: true, status: 503, wantKind: Kind503,
			wantMsg: "CatchResponseError('Failed to register agent: 503')"},
		{name: "state 202", reqName: state, status: 202, wantNil: true},
		{name: "state 404", reqName: state, status: 404, wantKind: Kind4xx,
			wantMsg: "HTTPError('404 Client Error: Not Found for url: " + state + "')"},
		{name: "state 429", reqName: state, status: 429, wantKind: Kind429,
			wantMsg: "HTTPError('429 Client Error: Too Many Requests for url: " + state + "')"},
		{name: "state 500", reqName: state, status: 500, wantKind: Kind5xx,
			wantMsg: "HTTPError('500 Server Error: Internal Server Error for url: " + state + "')"},
		{name: "state 503", reqName: state, status: 503, wantKind: Kind503,
			wantMsg: "HTTPError('503 Server Error: Service Unavailable for url: " + state + "')"},
		{name: "reset", reqName: state, err: opErr(syscall.ECONNRESET), wantKind: KindReset, wantMsg: MsgReset},
		{name: "broken pipe", reqName: state, err: opErr(syscall.EPIPE), wantKind: KindReset, wantMsg: MsgPipe},
		{name: "refused", reqName: state, err: opErr(syscall.ECONNREFUSED), wantKind: KindRefused, wantMsg: MsgRefused},
		{name: "EOF", reqName: state, err: &url.Error{Op: "Post", URL: "u", Err: io.EOF}, wantKind: KindClosed, wantMsg: MsgClosed},
		{name: "unexpected EOF", reqName: state, err: fmt.Errorf("x: %w", io.ErrUnexpectedEOF), wantKind: KindClosed, wantMsg: MsgClosed},
		{name: "closed conn", reqName: state, err: fmt.Errorf("write: %w", net.ErrClosed), wantKind: KindClosed, wantMsg: MsgClosed},
		{name: "deadline", reqName: state, err: fmt.Errorf("x: %w", context.DeadlineExceeded), wantKind: KindTimeout, wantMsg: MsgTimeout},
		{name: "net timeout", reqName: state, err: &url.Error{Op: "Get", URL: "u", Err: timeoutErr{}}, wantKind: KindTimeout, wantMsg: MsgTimeout},
		{name: "other", reqName: state, err: errors.New("tls: bad"), wantKind: KindOther, wantMsg: `ConnectionError("tls: bad")`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Classify(tt.reqName, tt.reg, tt.status, tt.err)
			if tt.wantNil {
				if got != nil {
					t.Fatalf("got %+v, want nil (success)", got)
				}
				return
			}
			if got == nil {
				t.Fatalf("got nil (success), want kind %s", tt.wantKind)
			}
			if got.Kind != tt.wantKind || got.Message != tt.wantMsg {
				t.Errorf("got {%s %q}, want {%s %q}", got.Kind, got.Message, tt.wantKind, tt.wantMsg)
			}
		})
	}
}

func TestKindTransport(t *testing.T) {
	for _, k := range []Kind{KindRefused, KindReset, KindClosed, KindTimeout, KindOther} {
		if !k.Transport() {
			t.Errorf("%s.Transport(): got false, want true", k)
		}
	}
	for _, k := range []Kind{Kind4xx, Kind429, Kind5xx, Kind503, KindStatus} {
		if k.Transport() {
			t.Errorf("%s.Transport(): got true, want false", k)
		}
	}
}
