// Package h1 is the sidecar's transport to a plain-HTTP upstream: an
// HTTP/1.1 client that runs each exchange on the calling goroutine.
//
// net/http's Transport gives every connection a read goroutine and a write
// goroutine, and a round trip hands the request to one, the response back
// from the other and the end of the body back again: four goroutine
// hand-offs per request, which on a loaded machine are a fifth of the
// proxy's CPU (docs/performance.md, "Results, fourth round"). This
// transport writes the request and reads the response on the goroutine
// that called RoundTrip, and the body on the goroutine that reads it. It
// keeps what the sidecar relies on from net/http's (see
// proxy/transport.go):
//
//   - the request is written by (*http.Request).Write and the response read
//     by http.ReadResponse, so framing (Content-Length, chunked, trailers,
//     HEAD, 204/304, Connection: close, HTTP/1.0) is the standard library's;
//   - a keep-alive pool, newest connection first, of at most MaxIdleConns,
//     each closed once idle for IdleConnTimeout;
//   - a pooled connection the upstream has closed is noticed before it is
//     used (a non-blocking peek at the socket, see peek_linux.go), and a
//     request that met a closed pooled connection anyway is sent again on
//     another one exactly when net/http would (replayable, below);
//   - cancellation: when the request's context ends, the connection's
//     deadline is set in the past, which ends a dial, a write, the wait for
//     the response or a body read at once; the error returned is then the
//     context's cause (context.Cause), as net/http's is;
//   - the response headers are limited to MaxResponseHeaderBytes;
//   - 1xx answers are given to httptrace's Got1xxResponse (the ReverseProxy
//     forwards them) and skipped; and the httptrace hooks GetConn, GotConn,
//     GotFirstResponseByte and PutIdleConn are called as net/http calls them
//     (WroteRequest is called by Request.Write, ConnectStart and ConnectDone
//     by a net.Dialer).
//
// What it does not do goes to Fallback (a net/http Transport) unchanged:
// https and any scheme but http, protocol upgrades (an Upgrade header),
// Expect: 100-continue, CONNECT, request trailers or an explicit
// Transfer-Encoding, and a body of unknown length or over MaxInlineBody
// (the write and the read are sequential here, so an upstream that answers
// before reading a large body is left to net/http's concurrent ones).
// Unlike net/http's it never asks for gzip on its own: the upstream's
// answer is passed on as the upstream encoded it, which for a proxy is
// what the client asked for.
package h1

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// MaxInlineBody is the largest request body (by Content-Length) this
// transport writes itself; larger ones go to the Fallback. It fits in the
// socket buffers of both ends, so writing it cannot block on an upstream
// that answers first without reading it.
const MaxInlineBody = 64 << 10

// DefaultMaxResponseHeaderBytes is the response header limit when
// Transport.MaxResponseHeaderBytes is 0 (net/http's default).
const DefaultMaxResponseHeaderBytes = 10 << 20

// max1xx is how many 1xx answers one request may get before the final one.
const max1xx = 20

// bufSize is the size of each connection's read and write buffer,
// net/http's own: a request's headers and a small body go in one write.
const bufSize = 4 << 10

// Transport is an http.RoundTripper for HTTP/1.1 over plain TCP. Its zero
// value is not usable: DialContext and Fallback are required. It is safe for
// concurrent use; its fields must not change once it is in use.
type Transport struct {
	// DialContext opens a connection to addr ("host:port"). Required.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// Fallback sends the requests this transport does not (see the package
	// documentation). Required.
	Fallback http.RoundTripper
	// MaxIdleConns is how many idle connections are kept, over all hosts;
	// 0 keeps none.
	MaxIdleConns int
	// IdleConnTimeout closes a connection idle this long; 0 means never.
	IdleConnTimeout time.Duration
	// MaxResponseHeaderBytes limits the response headers (1xx answers
	// included); 0 means DefaultMaxResponseHeaderBytes.
	MaxResponseHeaderBytes int64

	mu    sync.Mutex
	idle  []*conn // oldest first
	sweep *time.Timer
	// sweeping says sweep is armed.
	sweeping bool
}

// errUnexpected101 is returned for a 101 answer to a request that did not
// ask to switch protocols (those go to the Fallback).
var errUnexpected101 = errors.New("h1: upstream switched protocols without being asked")

// RoundTrip sends req and returns the response, whose body must be read to
// its end or closed, as with net/http. It always closes req.Body.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !inline(req) {
		return t.Fallback.RoundTrip(req)
	}
	ctx := req.Context()
	trace := httptrace.ContextClientTrace(ctx)
	addr := canonicalAddr(req.URL)
	for {
		c, err := t.getConn(ctx, trace, addr)
		if err != nil {
			closeBody(req)
			return nil, err
		}
		resp, err := c.roundTrip(ctx, req, trace)
		if err == nil {
			return resp, nil
		}
		next, ok := replay(ctx, req, c, err)
		if !ok {
			return nil, err
		}
		req = next
	}
}

// CloseIdleConnections closes the idle connections of this transport and
// of its Fallback. Connections in use are closed when their request ends.
func (t *Transport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = nil
	t.mu.Unlock()
	for _, c := range idle {
		c.close()
	}
	if f, ok := t.Fallback.(interface{ CloseIdleConnections() }); ok {
		f.CloseIdleConnections()
	}
}

// inline reports whether this transport sends req itself.
func inline(req *http.Request) bool {
	if req.URL == nil || req.URL.Scheme != "http" || req.URL.Host == "" || req.Method == http.MethodConnect ||
		len(req.TransferEncoding) > 0 || len(req.Trailer) > 0 {
		return false
	}
	if _, ok := req.Header["Upgrade"]; ok {
		return false
	}
	if _, ok := req.Header["Expect"]; ok {
		return false
	}
	if req.Body == nil || req.Body == http.NoBody {
		return true
	}
	return req.ContentLength > 0 && req.ContentLength <= MaxInlineBody
}

// canonicalAddr is the URL's host with the port, 80 when it has none. A
// host that has its port is used as it is (an IPv6 literal keeps its
// brackets), which costs no allocation.
func canonicalAddr(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	return net.JoinHostPort(u.Hostname(), "80")
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

// replay decides whether a request that failed on a reused connection is
// sent again on another one, as net/http's Transport does (its
// persistConn.shouldRetryRequest): when nothing of it was written, if it
// has no body or a GetBody to rewind it; and when the connection closed
// before any byte of the answer, if it is replayable in net/http's sense
// (GET, HEAD, OPTIONS or TRACE, or an Idempotency-Key or X-Idempotency-Key
// header, with no body or a GetBody). It returns the request to send, with
// a fresh body when it has one.
func replay(ctx context.Context, req *http.Request, c *conn, err error) (*http.Request, bool) {
	if !c.reused || ctx.Err() != nil || c.nread > 0 {
		return nil, false
	}
	hasBody := req.Body != nil && req.Body != http.NoBody
	if hasBody && req.GetBody == nil {
		return nil, false
	}
	if c.nwritten > 0 && !(isReplayable(req) && connClosedBeforeAnswer(err)) {
		return nil, false
	}
	if !hasBody {
		return req, true
	}
	body, gerr := req.GetBody()
	if gerr != nil {
		return nil, false
	}
	next := *req
	next.Body = body
	return &next, true
}

func isReplayable(req *http.Request) bool {
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	_, ok := req.Header["Idempotency-Key"]
	_, xok := req.Header["X-Idempotency-Key"]
	return ok || xok
}

// connClosedBeforeAnswer reports an error that says the connection closed
// (a FIN or a reset) rather than anything about the answer.
func connClosedBeforeAnswer(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// closedError is the error of a reused connection that closed before any
// byte of the answer; its text holds net/http's words for it, which
// policy.Classify also knows.
type closedError struct{ err error }

func (e *closedError) Error() string {
	return "h1: upstream closed the connection before answering (http: server closed idle connection): " + e.err.Error()
}

func (e *closedError) Unwrap() error { return e.err }

// getConn returns an idle connection to addr that is still open, or dials
// a new one.
func (t *Transport) getConn(ctx context.Context, trace *httptrace.ClientTrace, addr string) (*conn, error) {
	if trace != nil && trace.GetConn != nil {
		trace.GetConn(addr)
	}
	for {
		c := t.takeIdle(addr)
		if c == nil {
			break
		}
		if !c.peekOpen() {
			c.close()
			continue
		}
		if trace != nil && trace.GotConn != nil {
			trace.GotConn(httptrace.GotConnInfo{Conn: c.nc, Reused: true, WasIdle: true, IdleTime: time.Since(c.idleAt)})
		}
		return c, nil
	}
	// ConnectStart and ConnectDone are the dialer's to call (net.Dialer
	// does, from the context), as with net/http.
	nc, err := t.DialContext(ctx, "tcp", addr)
	if err != nil {
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		return nil, err
	}
	c := newConn(t, nc, addr)
	if trace != nil && trace.GotConn != nil {
		trace.GotConn(httptrace.GotConnInfo{Conn: nc})
	}
	return c, nil
}

// takeIdle takes the newest idle connection to addr, closing the ones
// found idle for longer than IdleConnTimeout.
func (t *Transport) takeIdle(addr string) *conn {
	var expired []*conn
	var found *conn
	t.mu.Lock()
	if t.IdleConnTimeout > 0 {
		expired = t.removeIdleBefore(time.Now().Add(-t.IdleConnTimeout))
	}
	for i := len(t.idle) - 1; i >= 0; i-- {
		if c := t.idle[i]; c.addr == addr {
			found = c
			t.idle = slices.Delete(t.idle, i, i+1)
			break
		}
	}
	t.mu.Unlock()
	for _, c := range expired {
		c.close()
	}
	return found
}

// removeIdleBefore removes from the pool, and returns, the connections
// that went idle at or before cutoff. t.mu is held.
func (t *Transport) removeIdleBefore(cutoff time.Time) []*conn {
	n := 0
	for n < len(t.idle) && !t.idle[n].idleAt.After(cutoff) {
		n++
	}
	if n == 0 {
		return nil
	}
	expired := slices.Clone(t.idle[:n])
	t.idle = slices.Delete(t.idle, 0, n)
	return expired
}

// put returns c to the pool, or closes it when the pool is full (the
// oldest idle connection makes room) or keeps none.
func (t *Transport) put(c *conn, trace *httptrace.ClientTrace) {
	if t.MaxIdleConns <= 0 {
		c.close()
		return
	}
	c.idleAt = time.Now()
	c.reused = true
	var evicted *conn
	t.mu.Lock()
	if len(t.idle) >= t.MaxIdleConns {
		evicted = t.idle[0]
		t.idle = slices.Delete(t.idle, 0, 1)
	}
	t.idle = append(t.idle, c)
	if t.IdleConnTimeout > 0 && !t.sweeping {
		t.sweeping = true
		if t.sweep == nil {
			t.sweep = time.AfterFunc(t.IdleConnTimeout, t.sweepIdle)
		} else {
			t.sweep.Reset(t.IdleConnTimeout)
		}
	}
	t.mu.Unlock()
	if evicted != nil {
		evicted.close()
	}
	if trace != nil && trace.PutIdleConn != nil {
		trace.PutIdleConn(nil)
	}
}

// sweepIdle closes the connections idle for longer than IdleConnTimeout
// and arms itself again for the oldest one left, so an idle pool empties
// even when no request comes to take from it.
func (t *Transport) sweepIdle() {
	t.mu.Lock()
	now := time.Now()
	expired := t.removeIdleBefore(now.Add(-t.IdleConnTimeout))
	if len(t.idle) > 0 {
		t.sweep.Reset(t.idle[0].idleAt.Add(t.IdleConnTimeout).Sub(now))
	} else {
		t.sweeping = false
	}
	t.mu.Unlock()
	for _, c := range expired {
		c.close()
	}
}

// conn is one connection to the upstream. Between requests it is owned by
// the pool; during a request by the goroutine sending it, then by the
// response body until it ends.
type conn struct {
	t    *Transport
	nc   net.Conn
	addr string
	br   *bufio.Reader
	bw   *bufio.Writer
	raw  syscall.RawConn // nil when nc has none (peekOpen then trusts it)
	// peek and abort are the method values peekFD and abortConn, made
	// once per connection rather than once per request.
	peek  func(fd uintptr) bool
	abort func()
	// peekAlive is peek's result and peekBuf where it peeks.
	peekAlive bool
	peekBuf   [1]byte

	reused bool
	idleAt time.Time

	// Per request: bytes read from and written to nc, and what may still
	// be read before the response headers are over their limit.
	nread, nwritten int64
	readLimit       int64
}

func newConn(t *Transport, nc net.Conn, addr string) *conn {
	c := &conn{t: t, nc: nc, addr: addr}
	c.br = bufio.NewReaderSize(c, bufSize)
	c.bw = bufio.NewWriterSize(c, bufSize)
	c.abort = c.abortConn
	if sc, ok := nc.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			c.raw = raw
			c.peek = c.peekFD
		}
	}
	return c
}

func (c *conn) Read(p []byte) (int, error) {
	if c.readLimit <= 0 {
		return 0, c.headerLimitError()
	}
	if int64(len(p)) > c.readLimit {
		p = p[:c.readLimit]
	}
	n, err := c.nc.Read(p)
	c.nread += int64(n)
	if c.readLimit != math.MaxInt64 {
		c.readLimit -= int64(n)
	}
	return n, err
}

func (c *conn) Write(p []byte) (int, error) {
	n, err := c.nc.Write(p)
	c.nwritten += int64(n)
	return n, err
}

func (c *conn) headerLimitError() error {
	return fmt.Errorf("h1: upstream response headers exceeded %d bytes", c.t.maxHeaderBytes())
}

func (c *conn) close() { _ = c.nc.Close() }

// abortConn ends whatever the connection is doing now and anything it
// would do next: the request's context ended.
func (c *conn) abortConn() { _ = c.nc.SetDeadline(aLongTimeAgo) }

var aLongTimeAgo = time.Unix(1, 0)

func (t *Transport) maxHeaderBytes() int64 {
	if t.MaxResponseHeaderBytes > 0 {
		return t.MaxResponseHeaderBytes
	}
	return DefaultMaxResponseHeaderBytes
}

// roundTrip writes req on c and reads the response headers. On an error c
// is closed and the error is the context's cause when the context ended.
func (c *conn) roundTrip(ctx context.Context, req *http.Request, trace *httptrace.ClientTrace) (*http.Response, error) {
	c.nread, c.nwritten = 0, 0
	c.readLimit = c.t.maxHeaderBytes()
	stop := context.AfterFunc(ctx, c.abort)
	fail := func(err error) (*http.Response, error) {
		stop()
		c.close()
		switch {
		case ctx.Err() != nil:
			return nil, context.Cause(ctx)
		case c.readLimit <= 0:
			// The limit may have cut a header line, which the parser
			// then reports as malformed: the limit is the cause.
			return nil, c.headerLimitError()
		case c.reused && c.nread == 0 && connClosedBeforeAnswer(err):
			if errors.Is(err, io.ErrUnexpectedEOF) {
				// http.ReadResponse's word for an EOF before the
				// status line; nothing at all was read.
				err = io.EOF
			}
			return nil, &closedError{err}
		}
		return nil, err
	}

	// Request.Write calls httptrace's WroteRequest itself, once the
	// request is in the buffer, before this flush of its last bytes.
	err := req.Write(c.bw)
	if err == nil {
		err = c.bw.Flush()
	}
	if err != nil {
		c.bw.Reset(c)
		return fail(err)
	}

	if trace != nil && trace.GotFirstResponseByte != nil {
		if _, err := c.br.Peek(1); err != nil {
			// The error is the read's, not a later read's.
			return fail(err)
		}
		trace.GotFirstResponseByte()
	}
	var resp *http.Response
	for n1xx := 0; ; n1xx++ {
		resp, err = http.ReadResponse(c.br, req)
		if err != nil {
			return fail(err)
		}
		code := resp.StatusCode
		if code < 100 || code > 199 {
			break
		}
		if code == http.StatusSwitchingProtocols {
			return fail(errUnexpected101)
		}
		if n1xx == max1xx {
			return fail(fmt.Errorf("h1: upstream sent over %d informational (1xx) answers", max1xx))
		}
		if trace != nil && trace.Got1xxResponse != nil {
			if err := trace.Got1xxResponse(code, textproto.MIMEHeader(resp.Header)); err != nil {
				return fail(err)
			}
			// The 1xx was passed on: the final answer gets the whole limit.
			c.readLimit = c.t.maxHeaderBytes()
		}
	}
	c.readLimit = math.MaxInt64

	keep := !resp.Close && !req.Close
	if resp.Body == http.NoBody {
		// Nothing more to read: the connection is free now.
		if stop() && keep && c.br.Buffered() == 0 {
			c.t.put(c, trace)
		} else {
			c.close()
		}
		return resp, nil
	}
	resp.Body = &body{rc: resp.Body, c: c, ctx: ctx, stop: stop, keep: keep, trace: trace}
	return resp, nil
}

// body is a response body: at its end the connection goes back to the
// pool; closed before its end, or broken, the connection is closed.
type body struct {
	rc    io.ReadCloser
	c     *conn
	ctx   context.Context
	stop  func() bool
	keep  bool
	trace *httptrace.ClientTrace
	// state is bodyOpen until the first of the end, an error or Close
	// releases the connection.
	state atomic.Int32
}

const (
	bodyOpen int32 = iota
	bodyEOF
	bodyClosed
)

var errBodyClosed = errors.New("h1: read on closed response body")

func (b *body) Read(p []byte) (int, error) {
	switch b.state.Load() {
	case bodyEOF:
		return 0, io.EOF
	case bodyClosed:
		return 0, errBodyClosed
	}
	n, err := b.rc.Read(p)
	switch {
	case err == io.EOF:
		b.release(bodyEOF)
	case err != nil:
		if b.ctx.Err() != nil {
			err = context.Cause(b.ctx)
		}
		b.release(bodyClosed)
	}
	return n, err
}

// Close releases the connection. A body closed before its end closes the
// connection rather than read the rest (as net/http does).
func (b *body) Close() error {
	b.release(bodyClosed)
	return nil
}

// release moves the body from open to state, once, and frees the
// connection: back to the pool after the body's end, when the context
// has not ended and nothing follows the answer; else closed.
func (b *body) release(state int32) {
	if !b.state.CompareAndSwap(bodyOpen, state) {
		return
	}
	c := b.c
	if b.stop() && state == bodyEOF && b.keep && c.br.Buffered() == 0 {
		c.t.put(c, b.trace)
		return
	}
	c.close()
}
