package proxy

import (
	"errors"
	"log"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"sync"

	"opscore-sidecar/metrics"
)

// newReverseProxy returns the proxy step: an httputil.ReverseProxy that
// uses Rewrite (never Director), so hop-by-hop headers, including those a
// client names in Connection, are removed before the sidecar adds its own.
func (s *Sidecar) newReverseProxy(transport http.RoundTripper) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite:        rewrite,
		Transport:      transport,
		ModifyResponse: bufferSmallResponse,
		BufferPool:     bufferPool{},
		ErrorHandler:   s.proxyError,
		ErrorLog:       log.New(slogWriter{s.deps.Logger}, "", 0),
	}
}

// rewrite points the outgoing request at the configured upstream. The
// target comes from the request's snapshot only: the incoming Host header
// and an absolute-form request URI never choose where a request goes (no
// open proxy). SetURL also sets the outgoing Host to the upstream's.
func rewrite(pr *httputil.ProxyRequest) {
	info := InfoFrom(pr.In.Context())
	pr.SetURL(info.Snapshot.Upstream)
	pr.SetXForwarded()
	// The outgoing header is a copy of the incoming one, which the observe
	// layer gave the request id; it is set again only when the copy lost
	// it (a client naming X-Request-Id in Connection makes it hop-by-hop).
	if v := pr.Out.Header[HeaderRequestID]; len(v) != 1 || v[0] != info.RequestID {
		pr.Out.Header.Set(HeaderRequestID, info.RequestID)
	}
}

// proxyError is the ReverseProxy's ErrorHandler: it maps the transport's
// error to a problem response, so a client never sees a reset connection.
//
//   - *ProblemError (from the retry or breaker layer): that problem.
//   - reading the client's body failed: writeBodyError (413 too_large,
//     408 or 400 bad_request, or the client went away).
//   - *http.MaxBytesError: 413 too_large (a chunked body over the limit).
//   - the client went away: client_closed, logged as 499, nothing sent.
//   - timeout: 504 upstream_timeout.
//   - refused, reset, closed before a response, anything else: 502 upstream_error.
func (s *Sidecar) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	var pe *ProblemError
	if errors.As(err, &pe) {
		WriteProblem(w, r, pe.Problem)
		return
	}
	if berr := InfoFrom(r.Context()).bodyErr(); berr != nil {
		// Reading the client's (streamed) body failed: the client's
		// fault, answered as such (413, 408, 400, or nothing).
		writeBodyError(w, r, berr)
		return
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		WriteProblem(w, r, problemTooLarge(mbe.Limit))
		return
	}
	o := errorOutcome(r.Context(), err)
	if result := o.Label(); result == metrics.ResultCanceled || (r.Context().Err() != nil && result != metrics.ResultTimeout) {
		writeClientClosed(w, r)
		return
	}
	WriteProblem(w, r, upstreamProblem(o, false, false))
}

// bufferPool is the ReverseProxy's copy buffers, reused through a
// sync.Pool instead of allocating 32 KiB per response.
type bufferPool struct{}

// copyBuffers holds the buffers, each in a *[]byte box; emptyBoxes keeps
// the boxes Get emptied until Put refills one, so a Get/Put pair
// allocates nothing (putting &b would allocate a box every time).
var (
	copyBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}
	emptyBoxes  sync.Pool
)

func (bufferPool) Get() []byte {
	box := copyBuffers.Get().(*[]byte)
	b := *box
	*box = nil
	emptyBoxes.Put(box)
	return b
}

func (bufferPool) Put(b []byte) {
	box, _ := emptyBoxes.Get().(*[]byte)
	if box == nil {
		box = new([]byte)
	}
	*box = b
	copyBuffers.Put(box)
}

// slogWriter sends the ReverseProxy's own log lines (e.g. a response body
// copy that failed) to the process log at warn level.
type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.l.Warn("reverse proxy", "error", string(p))
	return len(p), nil
}
