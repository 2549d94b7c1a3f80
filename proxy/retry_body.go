package proxy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
)

// retryBody is a request body prepared for one or more attempts.
type retryBody struct {
	// buf is the whole body when it was buffered (nil for no body).
	buf []byte
	// stream is the body to send once when it was too large to buffer.
	stream io.ReadCloser
	// length is the Content-Length to send with stream (-1 if unknown).
	length int64
	// sent is stream as attached to its one attempt, nil before.
	sent *streamBody
}

// noBody is the shared, read-only retryBody of a request without a body.
var noBody = &retryBody{}

// replayable reports whether the body can be sent again.
func (b *retryBody) replayable() bool { return b.stream == nil }

// bufferBody reads req's body into memory when it fits in limit bytes, so
// that every attempt can send it again. A larger body (by Content-Length,
// or found while reading one of unknown length) is streamed: what was read
// is sent first, then the rest, and the request is never retried, because
// a half-read stream cannot be replayed. A read error (the client went
// away, or the route's body limit) is returned.
//
// A body the body step already read whole before admission
// (request_body.go) is taken from info as it is, not copied again: the
// ReverseProxy hands the retry layer its own Close-ignoring wrapper around
// it, so the request's Body is not the *preReadBody itself. A body too
// large to buffer is streamed through that wrapper, as the ReverseProxy
// means it to be: http.Transport closes a request body when it fails, and
// closing the client's body itself could wait on a slow client.
func bufferBody(req *http.Request, info *RequestInfo, limit int64) (*retryBody, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return noBody, nil
	}
	if pb := info.takePreRead(); pb != nil && pb.complete {
		return pb.retryBody(limit), nil
	}
	if pb, ok := req.Body.(*preReadBody); ok {
		return pb.retryBody(limit), nil
	}
	if req.ContentLength > limit {
		return &retryBody{stream: req.Body, length: req.ContentLength}, nil
	}
	if req.ContentLength > 0 {
		// The server's body reader stops at Content-Length. The buffer is
		// not pooled: see attach.
		buf := make([]byte, req.ContentLength)
		if _, err := io.ReadFull(req.Body, buf); err != nil {
			return nil, err
		}
		return &retryBody{buf: buf}, nil
	}
	var w bytes.Buffer
	n, err := w.ReadFrom(io.LimitReader(req.Body, limit+1))
	switch {
	case err != nil:
		return nil, err
	case n > limit:
		rest := io.MultiReader(bytes.NewReader(w.Bytes()), req.Body)
		return &retryBody{stream: readCloser{rest, req.Body}, length: -1}, nil
	case n == 0:
		return noBody, nil
	}
	return &retryBody{buf: w.Bytes()}, nil
}

// attach sets the body of out, one attempt's request. A buffered body gets
// a fresh reader and no GetBody: without GetBody, the upstream transport
// (proxy/h1 or net/http's) cannot rewind it, so it never replays a request
// that has a body on its own (see transport.go); only the retry layer replays bodies, and counts them. A
// streamed body is watched: fail ends the attempt when reading the
// client's body fails (see streamBody).
func (b *retryBody) attach(out *http.Request, fail context.CancelCauseFunc) {
	out.GetBody = nil
	switch {
	case b.stream != nil:
		b.sent = &streamBody{ReadCloser: b.stream, fail: fail}
		out.Body, out.ContentLength = b.sent, b.length
	case b.buf == nil:
		out.Body, out.ContentLength = nil, 0
	default:
		// Exactly io.NopCloser over a *bytes.Reader: net/http knows that
		// body is in memory and writes the request's headers and body in
		// one write (one syscall); for any other reader type it flushes
		// the headers first, a second syscall per attempt, which costs
		// more than the allocations a pooled buffer would save (the
		// buffer cannot go back to a pool anyway without a Close of our
		// own). See docs/performance.md.
		out.Body, out.ContentLength = io.NopCloser(bytes.NewReader(b.buf)), int64(len(b.buf))
	}
}

// clientErr returns the error met reading the client's streamed body, or
// nil.
func (b *retryBody) clientErr() error {
	if b.sent == nil {
		return nil
	}
	b.sent.mu.Lock()
	defer b.sent.mu.Unlock()
	return b.sent.err
}

// streamBody is a streamed (unbuffered) body on its way to the upstream.
// A read error here is the client's, not the upstream's: the client went
// away mid-body, or its chunked body passed the route's body_limit
// (*http.MaxBytesError). The first such error is kept and ends the attempt
// with it as the context's cause, so the breaker counts the attempt
// neither way (as a client's cancellation) and the client gets 413 (or
// 499), not a 502 blaming the upstream.
type streamBody struct {
	io.ReadCloser
	fail context.CancelCauseFunc
	mu   sync.Mutex
	err  error
}

func (s *streamBody) Read(p []byte) (int, error) {
	n, err := s.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		s.mu.Lock()
		first := s.err == nil
		if first {
			s.err = err
		}
		s.mu.Unlock()
		if first {
			// Wrapping context.Canceled makes the attempt a client's
			// cancellation for the attempt metrics too.
			s.fail(fmt.Errorf("proxy: reading the client's body: %w (%w)", err, context.Canceled))
		}
	}
	return n, err
}

type readCloser struct {
	io.Reader
	io.Closer
}
