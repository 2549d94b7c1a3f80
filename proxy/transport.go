package proxy

import (
	"errors"
	"net"
	"net/http"
	"time"

	"opscore-sidecar/proxy/config"
	"opscore-sidecar/proxy/h1"
)

// upstreamTransport is what the snapshot sends requests to the upstream
// with: an *h1.Transport in front of a tuned *http.Transport, or the
// *http.Transport alone (newTransport).
type upstreamTransport interface {
	http.RoundTripper
	CloseIdleConnections()
}

// newTransport returns the transport to the upstream (step 7d of
// chain.go).
//
// For a plain-HTTP upstream it is proxy/h1's Transport, which writes each
// request and reads its answer on the goroutine that sends it, where
// net/http's hands them between a connection's read and write goroutines
// (a fifth of the proxy's CPU, see docs/performance.md, "Results, fourth
// round"). What h1 does not send itself (an https upstream, an Upgrade, Expect:
// 100-continue, a body of unknown length or over 64 KiB) goes to the
// tuned net/http Transport below it, and so does everything when
// upstream.max_conns_per_host is set: h1 has no queue for a connection, and
// net/http's enforces that cap.
//
// Both keep-alive pools are sized for hundreds of concurrent requests to
// one host: MaxIdleConnsPerHost defaults to 2 in net/http, which under load
// makes the proxy open and close a connection per request (TIME_WAIT
// storms). IdleConnTimeout is shorter than the upstream's keep-alive
// (uvicorn: 5 s) so the sidecar, not the upstream, closes idle
// connections, which avoids most races where a request is written on a
// connection the upstream is closing; h1 also peeks at a pooled connection
// before it uses one and skips those the upstream has closed.
//
// Hidden replays: both transports re-send a request by themselves, on
// another connection, when an attempt on a REUSED connection failed before
// any response byte arrived (net/http's persistConn.shouldRetryRequest,
// h1's replay): always when nothing was written, and otherwise only when
// the request is replayable (Request.isReplayable: method GET, HEAD,
// OPTIONS or TRACE, or an Idempotency-Key / X-Idempotency-Key header, and
// no body or a GetBody to rewind it with; see rewindBody). Such a replay
// happens inside one RoundTrip call, invisible to the retry layer. Each
// attempt therefore counts its connections with httptrace's GotConn
// (attemptRun, retry_transport.go; read by the attempt layer, attempt.go),
// which fires once per connection used, so the attempt count and the
// attempt metrics stay honest. The replay is kept because it only follows
// a dead pooled connection, which is exactly the uvicorn keep-alive race.
//
// The connection buffers are net/http's size (4 KiB each way): a
// request's headers and a small body (an Ops-Core webhook or state update)
// still go in one write, and each pooled connection holds 8 KiB.
func newTransport(cfg config.UpstreamConfig) upstreamTransport {
	dial := dialUpstream(&net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second})
	std := &http.Transport{
		Proxy:               nil, // never an HTTP(S)_PROXY from the environment: the upstream is local
		DialContext:         dial,
		MaxIdleConns:        cfg.MaxIdleConns,
		MaxIdleConnsPerHost: cfg.MaxIdleConns,
		MaxConnsPerHost:     cfg.MaxConnsPerHost,
		IdleConnTimeout:     cfg.IdleConnTimeout,
		TLSHandshakeTimeout: cfg.TLSHandshakeTimeout,
		// upstream.response_header_timeout is timed by the retry layer's
		// attempt timer (attemptRun in retry_transport.go), not by a
		// timer of the transport's own on every request.
		ExpectContinueTimeout:  time.Second,
		ForceAttemptHTTP2:      cfg.HTTP2,
		MaxResponseHeaderBytes: maxResponseHeaderBytes,
	}
	if cfg.MaxConnsPerHost > 0 {
		return std
	}
	return &h1.Transport{
		DialContext:            dial,
		Fallback:               std,
		MaxIdleConns:           cfg.MaxIdleConns,
		IdleConnTimeout:        cfg.IdleConnTimeout,
		MaxResponseHeaderBytes: maxResponseHeaderBytes,
	}
}

// maxResponseHeaderBytes limits an upstream answer's headers.
const maxResponseHeaderBytes = 1 << 20

// snapshotTransport sends a request with the transport of the snapshot
// the request started with, so a reload that changes the upstream settings
// takes effect for new requests only.
type snapshotTransport struct{}

var errNoSnapshot = errors.New("proxy: request has no config snapshot")

func (snapshotTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	info := InfoFrom(req.Context())
	if info == nil || info.Snapshot == nil {
		return nil, errNoSnapshot
	}
	return info.Snapshot.Transport.RoundTrip(req)
}
