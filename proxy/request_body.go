package proxy

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"os"
	"sync"
	"time"

	"opscore-sidecar/proxy/config"
)

// This file is the request body's way through the chain. The route layer
// (routing.go) bounds the body by the route's body_limit and by
// server.body_read_timeout and wraps it in a clientBody; the body step
// (bodyLayer, after auth and before admission) reads it, up to the route's
// retry.buffer_limit, so that a slow client never holds a concurrency
// slot while it sends; the retry layer (retry_body.go) reuses the bytes
// read. Whichever layer meets a read error answers it the same way
// (writeBodyError): 413, 408, 400, or nothing when the client went away.

// OutcomeBadRequest is the outcome of a request the sidecar refused
// because of the client's own framing: a malformed (chunked) body (400),
// a body not sent within server.body_read_timeout (408), or a method the
// matched path does not serve (405). Nothing reaches the upstream, and
// neither the breaker nor the upstream's attempt metrics count it.
const OutcomeBadRequest Outcome = "bad_request"

// Reasons of OutcomeBadRequest.
const (
	reasonMalformedBody    = "malformed_body"
	reasonBodyTimeout      = "body_timeout"
	reasonMethodNotAllowed = "method_not_allowed"
)

// clientBody is the request body as the route layer hands it on. It keeps
// the first read error, so that whichever layer meets it (the auth layer
// reading a body to verify, the body step, a streamed attempt) answers
// through writeBodyError.
type clientBody struct {
	io.ReadCloser

	mu     sync.Mutex
	closed bool
	err    error
}

func (b *clientBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		b.mu.Lock()
		if b.err == nil && !b.closed {
			b.err = err
		}
		b.mu.Unlock()
	}
	return n, err
}

func (b *clientBody) Close() error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	return b.ReadCloser.Close()
}

// readErr returns the first error met reading the body, or nil.
func (b *clientBody) readErr() error {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// wrapBody wraps r's body in a clientBody and bounds it by the body
// deadline: the connection's read deadline becomes start + timeout (start
// is when the sidecar began the request), unless the server's own
// (start + server.read_timeout) comes first. Nothing needs to undo it:
// net/http clears the read deadline itself when the body ends (to watch
// for the client going away), and sets its own for the next request on
// the connection. Where the writer cannot set a deadline (tests with a
// recorder), the body goes without one.
func wrapBody(w http.ResponseWriter, r *http.Request, start time.Time, srv config.ServerConfig) *clientBody {
	b := &clientBody{ReadCloser: r.Body}
	if srv.BodyReadTimeout > 0 && (srv.ReadTimeout == 0 || srv.BodyReadTimeout < srv.ReadTimeout) {
		_ = setReadDeadline(w, start.Add(srv.BodyReadTimeout))
	}
	r.Body = b
	return b
}

// setReadDeadline is http.ResponseController's SetReadDeadline without its
// allocation: it follows Unwrap down to net/http's writer.
func setReadDeadline(w http.ResponseWriter, t time.Time) error {
	for {
		switch v := w.(type) {
		case interface{ SetReadDeadline(time.Time) error }:
			return v.SetReadDeadline(t)
		case interface{ Unwrap() http.ResponseWriter }:
			w = v.Unwrap()
		default:
			return http.ErrNotSupported
		}
	}
}

// preReadBody is a request body the body step has read before admission:
// all of it (complete), or, for a body larger than the route's
// retry.buffer_limit, its first buffer_limit bytes with the rest still to
// come from the client (streamed to the upstream, never retried; see
// bufferBody). It reads as the whole body.
type preReadBody struct {
	buf      []byte
	rest     io.ReadCloser // the client's body, for the part not read yet
	complete bool
	length   int64 // the declared Content-Length, -1 if unknown
	r        io.Reader
}

func (b *preReadBody) Read(p []byte) (int, error) {
	if b.r == nil {
		b.r = bytes.NewReader(b.buf)
		if !b.complete {
			b.r = io.MultiReader(b.r, b.rest)
		}
	}
	return b.r.Read(p)
}

func (b *preReadBody) Close() error { return b.rest.Close() }

// preReadChunk is the most memory a body is given before its bytes arrive:
// a larger declared Content-Length is trusted only as the bytes come, so a
// client that declares a megabyte and sends one byte (on many connections)
// costs the sidecar next to nothing.
const preReadChunk = 64 << 10

// readExactly reads n bytes of r (io.ErrUnexpectedEOF when it ends first).
// A small n is read into one buffer of that size; a larger one grows with
// the bytes received.
func readExactly(r io.Reader, n int64) ([]byte, error) {
	if n <= preReadChunk {
		buf := make([]byte, n)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		return buf, nil
	}
	var w bytes.Buffer
	w.Grow(preReadChunk)
	got, err := w.ReadFrom(io.LimitReader(r, n))
	if err != nil {
		return nil, err
	}
	if got < n {
		return nil, io.ErrUnexpectedEOF
	}
	return w.Bytes(), nil
}

// preRead reads body (declared length n, -1 if unknown) up to limit bytes.
func preRead(body io.ReadCloser, n, limit int64) (*preReadBody, error) {
	if n > limit {
		buf, err := readExactly(body, limit)
		if err != nil {
			return nil, err
		}
		return &preReadBody{buf: buf, rest: body, length: n}, nil
	}
	if n > 0 {
		// The server's body reader stops at Content-Length.
		buf, err := readExactly(body, n)
		if err != nil {
			return nil, err
		}
		return &preReadBody{buf: buf, rest: body, complete: true, length: n}, nil
	}
	var w bytes.Buffer
	got, err := w.ReadFrom(io.LimitReader(body, limit+1))
	if err != nil {
		return nil, err
	}
	return &preReadBody{buf: w.Bytes(), rest: body, complete: got <= limit, length: -1}, nil
}

// retryBody turns a pre-read body into the retry layer's body: the bytes
// already read, replayable when they are the whole body and fit in limit;
// otherwise streamed once.
func (b *preReadBody) retryBody(limit int64) *retryBody {
	switch {
	case b.complete && len(b.buf) == 0:
		return noBody
	case b.complete && int64(len(b.buf)) <= limit:
		return &retryBody{buf: b.buf}
	}
	length := b.length
	if b.complete {
		length = int64(len(b.buf))
	}
	return &retryBody{stream: readCloser{io.MultiReader(bytes.NewReader(b.buf), b.rest), b.rest}, length: length}
}

// bodyLayer is the body step: it reads the request body, bounded by the
// route's body_limit and server.body_read_timeout (both armed by the route
// layer), up to the route's retry.buffer_limit, before the request may
// take a concurrency slot. A body that cannot be read is answered here
// (writeBodyError) and never reaches admission or the upstream.
func (s *Sidecar) bodyLayer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			next.ServeHTTP(w, r)
			return
		}
		info := InfoFrom(r.Context())
		body, err := preRead(r.Body, r.ContentLength, preReadLimit(info.Runtime))
		if err != nil {
			writeBodyError(w, r, err)
			return
		}
		r.Body = body
		info.preRead = body
		next.ServeHTTP(w, r)
	})
}

// defaultPreReadLimit is the pre-read limit of a route without a retry
// policy (tests); the default retry.buffer_limit.
const defaultPreReadLimit = 1 << 20

// preReadLimit is how much of a body the body step reads: the route's
// retry.buffer_limit, which is what the retry layer would buffer anyway.
func preReadLimit(rt *RouteRuntime) int64 {
	if rt != nil && rt.Retry != nil {
		return rt.Retry.Config().BufferLimit
	}
	return defaultPreReadLimit
}

// writeBodyError answers a request whose body could not be read: 413 for
// a body over the route's limit, 408 for one not in by the body deadline,
// 400 for bad framing (a malformed chunked body) while the client is still
// connected, and nothing (logged as 499) when the client went away. The
// 408 and 400 close the connection: the rest of the body is unread.
func writeBodyError(w http.ResponseWriter, r *http.Request, err error) {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		WriteProblem(w, r, problemTooLarge(mbe.Limit))
	case errors.Is(err, os.ErrDeadlineExceeded):
		WriteProblem(w, r, Problem{Status: http.StatusRequestTimeout, Outcome: OutcomeBadRequest, Reason: reasonBodyTimeout,
			Title: "Request body too slow", Detail: "the request body did not arrive within the server's body read timeout",
			Header: http.Header{"Connection": {"close"}}})
	case r.Context().Err() != nil:
		// A failed read of the connection (EOF, reset) cancels the
		// request's context: the client is gone.
		abortClientClosed(w, r)
	default:
		WriteProblem(w, r, Problem{Status: http.StatusBadRequest, Outcome: OutcomeBadRequest, Reason: reasonMalformedBody,
			Title: "Malformed request body", Detail: "the request body could not be read: its framing is invalid",
			Header: http.Header{"Connection": {"close"}}})
	}
}
