package proxy

import (
	"errors"
	"net"
	"net/http"
	"time"

	"opscore-sidecar/proxy/config"
)

// newTransport returns the tuned transport to the upstream (step 7d of
// chain.go).
//
// The keep-alive pool is sized for hundreds of concurrent requests to one
// host: MaxIdleConnsPerHost defaults to 2 in net/http, which under load
// makes the proxy open and close a connection per request (TIME_WAIT
// storms). IdleConnTimeout is shorter than the upstream's keep-alive
// (uvicorn: 5 s) so the sidecar, not the upstream, closes idle
// connections, which avoids most races where a request is written on a
// connection the upstream is closing.
//
// Hidden replays: net/http's Transport.roundTrip re-sends a request by
// itself, on a new connection, when an attempt on a REUSED connection
// failed before any response byte arrived (persistConn.shouldRetryRequest):
// always when nothing was written (nothingWrittenError), and otherwise
// only when the request is replayable (Request.isReplayable: method GET,
// HEAD, OPTIONS or TRACE, or an Idempotency-Key / X-Idempotency-Key
// header, and no body or a GetBody to rewind it with; see rewindBody).
// Such a replay happens inside one RoundTrip call, invisible to the retry
// layer. Each attempt therefore counts its connections with httptrace's
// GotConn (attemptRun, retry_transport.go; read by the attempt layer,
// attempt.go), which fires once per connection used, so the
// attempt count and the attempt metrics stay honest. The replay is kept
// because it only follows a dead pooled connection, which is exactly the
// uvicorn keep-alive race.
//
// The connection buffers are net/http's own (4 KiB each way): a request's
// headers and a small body (an Ops-Core webhook or state update) still go
// in one write, and each pooled connection holds 8 KiB, not the 32 KiB it
// held with 16 KiB buffers (1.5 MiB of heap at 64 busy connections).
func newTransport(cfg config.UpstreamConfig) *http.Transport {
	dialer := &net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:               nil, // never an HTTP(S)_PROXY from the environment: the upstream is local
		DialContext:         dialUpstream(dialer),
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
		MaxResponseHeaderBytes: 1 << 20,
	}
}

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
