package proxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"

	"opscore-sidecar/metrics"
	"opscore-sidecar/proxy/config"
	"opscore-sidecar/proxy/h1"
)

// retryRig is a sidecar under test with its own metrics registry.
type retryRig struct {
	s       *Sidecar
	metrics *metrics.Metrics
}

// newRetryRig builds a sidecar in front of upstreamURL with the default
// configuration changed by mutate, after countsOnly: the rig's tests step
// through retry rows and breaker counts (the hold and the time-based trip
// rule have their own tests, in hold_test.go).
func newRetryRig(t *testing.T, upstreamURL string, mutate func(*config.Config)) *retryRig {
	t.Helper()
	cfg := config.Defaults()
	cfg.Upstream.URL = upstreamURL
	countsOnly(cfg)
	if mutate != nil {
		mutate(cfg)
	}
	s, m := newTestSidecar(t, cfg)
	return &retryRig{s: s, metrics: m}
}

// countsOnly turns off every route's hold and outbox and the breakers'
// time-based trip rule, so that retries and breaker counts work as they
// do without them.
func countsOnly(cfg *config.Config) {
	for _, name := range config.RouteNames {
		route(cfg, name, func(rc *config.RouteConfig) {
			rc.Hold.Enabled, rc.Outbox.Enabled = false, false
			rc.Breaker.MinFailingTime = 0
		})
	}
}

// route applies mutate to the config of route name.
func route(cfg *config.Config, name string, mutate func(*config.RouteConfig)) {
	rc := cfg.Routes[name]
	mutate(&rc)
	cfg.Routes[name] = rc
}

// do sends one request through the sidecar's chain and returns the recorded response.
func (r *retryRig) do(t *testing.T, ctx context.Context, method, path, body string, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	return serve(ctx, r.s, method, path, body, header...)
}

// codeAborted is the recorded Code of a request the chain aborted with
// http.ErrAbortHandler: net/http closes the connection and sends nothing
// (a client that went away; logged as 499).
const codeAborted = -1

// serve sends one request through s's chain and returns the recorded
// response; header holds name, value pairs. A handler aborted with
// http.ErrAbortHandler gives Code codeAborted; any other panic goes on.
func serve(ctx context.Context, s *Sidecar, method, path, body string, header ...string) (rec *httptest.ResponseRecorder) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequestWithContext(ctx, method, path, rd)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec = httptest.NewRecorder()
	defer func() {
		if p := recover(); p != nil {
			if p != http.ErrAbortHandler {
				panic(p)
			}
			if rec.Flushed || rec.Body.Len() > 0 {
				panic("aborted after writing a response")
			}
			rec.Code = codeAborted
		}
	}()
	s.Handler().ServeHTTP(rec, req)
	return rec
}

// Paths of the routes.
const (
	pathNotify   = "/v1/opscore/internal/agent/notify"
	pathState    = "/v1/opscore/agent/a1/state"
	pathWorkflow = "/v1/opscore/agent/a1/workflow"
)

// pipeNet is an in-memory network for tests inside testing/synctest: the
// sidecar's transport dials it, an http.Server serves it, and every
// blocking operation is on channels of the bubble, so fake time advances
// while requests wait.
type pipeNet struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newPipeNet() *pipeNet { return &pipeNet{conns: make(chan net.Conn), done: make(chan struct{})} }

func (p *pipeNet) Accept() (net.Conn, error) {
	select {
	case c := <-p.conns:
		return c, nil
	case <-p.done:
		return nil, net.ErrClosed
	}
}

func (p *pipeNet) Close() error { p.once.Do(func() { close(p.done) }); return nil }

func (p *pipeNet) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8000} }

// DialContext connects to the server, or fails like a refused dial once
// the network is closed.
func (p *pipeNet) DialContext(ctx context.Context, _, _ string) (net.Conn, error) {
	client, server := net.Pipe()
	select {
	case p.conns <- server:
		return client, nil
	case <-p.done:
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	case <-ctx.Done():
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: ctx.Err()}
	}
}

// pipeUpstream serves handler on a pipeNet and points rig's transport at
// it. Call stop before the bubble ends.
func pipeUpstream(rig *retryRig, handler http.Handler) (stop func()) {
	p := newPipeNet()
	srv := &http.Server{Handler: handler}
	done := make(chan struct{})
	go func() { _ = srv.Serve(p); close(done) }()
	tr := rig.s.Snapshot().Transport
	setDial(tr, p.DialContext)
	return func() {
		tr.CloseIdleConnections()
		srv.Close()
		<-done
	}
}

// setDial points tr, and the net/http Transport an h1.Transport falls back
// to, at dial.
func setDial(tr upstreamTransport, dial func(ctx context.Context, network, addr string) (net.Conn, error)) {
	switch tr := tr.(type) {
	case *h1.Transport:
		tr.DialContext = dial
		setDial(tr.Fallback.(*http.Transport), dial)
	case *http.Transport:
		tr.DialContext = dial
	default:
		panic(fmt.Sprintf("setDial: unknown transport %T", tr))
	}
}
