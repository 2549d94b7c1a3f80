package h1

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/http/httputil"
	"net/textproto"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// ---------------------------------------------------------------------------
// Helpers. All traffic goes to servers listening on 127.0.0.1.
// ---------------------------------------------------------------------------

// waitFor bounds every wait for something that must happen (a close seen
// by the server, a RoundTrip that must return): it is a liveness bound
// against a hang, never a timing assertion.
const waitFor = 10 * time.Second

// eventually polls cond until it holds, failing the test after waitFor.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// waitChan waits for ch to yield (or be closed), failing after waitFor.
func waitChan[T any](t *testing.T, what string, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitFor):
		t.Fatalf("gave up waiting for %s", what)
		panic("unreachable")
	}
}

// testTransport is a Transport whose dials are counted and whose Fallback
// is a recording fake.
type testTransport struct {
	*Transport
	fallback *fakeRT
	dials    atomic.Int32
}

func newTestTransport(t *testing.T) *testTransport {
	t.Helper()
	tt := &testTransport{fallback: &fakeRT{}}
	var d net.Dialer
	tt.Transport = &Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			tt.dials.Add(1)
			return d.DialContext(ctx, network, addr)
		},
		Fallback:     tt.fallback,
		MaxIdleConns: 16,
	}
	t.Cleanup(tt.CloseIdleConnections)
	return tt
}

// idleLen is the number of pooled connections, read under the lock.
func (tt *testTransport) idleLen() int {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	return len(tt.idle)
}

// onlyIdle returns the single pooled connection.
func (tt *testTransport) onlyIdle(t *testing.T) *conn {
	t.Helper()
	tt.mu.Lock()
	defer tt.mu.Unlock()
	if len(tt.idle) != 1 {
		t.Fatalf("pool holds %d connections, want 1", len(tt.idle))
	}
	return tt.idle[0]
}

// fakeRT is a Fallback that records what it is given and answers 299.
type fakeRT struct {
	mu        sync.Mutex
	reqs      []*http.Request
	closeIdle atomic.Int32
}

func (f *fakeRT) RoundTrip(req *http.Request) (*http.Response, error) {
	f.mu.Lock()
	f.reqs = append(f.reqs, req)
	f.mu.Unlock()
	if req.Body != nil {
		_ = req.Body.Close()
	}
	return &http.Response{
		StatusCode: 299, Status: "299 fallback", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{}, Body: io.NopCloser(strings.NewReader("fallback")), Request: req,
	}, nil
}

func (f *fakeRT) CloseIdleConnections() { f.closeIdle.Add(1) }

func (f *fakeRT) requests() []*http.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.reqs)
}

// recorder collects httptrace events of the hooks the tests look at.
type recorder struct {
	mu     sync.Mutex
	events []string
	conns  []httptrace.GotConnInfo
	codes  []int
	hdrs   []textproto.MIMEHeader
}

func (r *recorder) add(e string) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

// ctx is a context whose trace records GotConn and Got1xxResponse only
// (no GotFirstResponseByte, which changes how the first read is made).
func (r *recorder) ctx(parent context.Context) context.Context {
	return httptrace.WithClientTrace(parent, &httptrace.ClientTrace{
		GotConn: func(i httptrace.GotConnInfo) {
			r.mu.Lock()
			r.conns = append(r.conns, i)
			r.mu.Unlock()
		},
		Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
			r.mu.Lock()
			r.codes = append(r.codes, code)
			r.hdrs = append(r.hdrs, h)
			r.mu.Unlock()
			return nil
		},
	})
}

// reused is GotConn's Reused, one per GotConn call so far; reset clears.
func (r *recorder) reused() []bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []bool
	for _, c := range r.conns {
		out = append(out, c.Reused)
	}
	return out
}

func (r *recorder) reset() {
	r.mu.Lock()
	r.events, r.conns, r.codes, r.hdrs = nil, nil, nil, nil
	r.mu.Unlock()
}

func newReq(t *testing.T, ctx context.Context, method, u string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// do sends req, which must succeed, and returns the response with its body
// read to the end and closed.
func do(t *testing.T, rt http.RoundTripper, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp := mustRoundTrip(t, rt, req)
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", req.Method, req.URL, err)
	}
	_ = resp.Body.Close()
	return resp, string(b)
}

// roundTripWithin runs RoundTrip and fails the test if it has not returned
// after waitFor (a hang, not slowness).
func roundTripWithin(t *testing.T, rt http.RoundTripper, req *http.Request) (*http.Response, error) {
	t.Helper()
	type result struct {
		resp *http.Response
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		resp, err := rt.RoundTrip(req)
		ch <- result{resp, err}
	}()
	r := waitChan(t, "RoundTrip to return", ch)
	return r.resp, r.err
}

// mustRoundTrip sends req, which must succeed, and returns the response
// with its body unread.
func mustRoundTrip(t *testing.T, rt http.RoundTripper, req *http.Request) *http.Response {
	t.Helper()
	resp, err := roundTripWithin(t, rt, req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	return resp
}

// roundTripErr sends req, which must fail, and returns the error; a
// response instead ends the test, with ifOK (what a success means) and the
// response's status.
func roundTripErr(t *testing.T, rt http.RoundTripper, req *http.Request, ifOK string) error {
	t.Helper()
	resp, err := roundTripWithin(t, rt, req)
	if err == nil {
		_ = resp.Body.Close()
		t.Fatalf("%s (status %d)", ifOK, resp.StatusCode)
	}
	return err
}

// countingServer is an httptest server that counts the connections it
// accepted and the ones that ended.
type countingServer struct {
	*httptest.Server
	accepted, closed atomic.Int32
}

func newCountingServer(t *testing.T, h http.HandlerFunc) *countingServer {
	t.Helper()
	s := &countingServer{Server: httptest.NewUnstartedServer(h)}
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			s.accepted.Add(1)
		case http.StateClosed, http.StateHijacked:
			s.closed.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

// reply is a handler that answers body.
func reply(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, body) }
}

// waitClosed waits until the server has seen n connections end; what
// says what is awaited.
func (s *countingServer) waitClosed(t *testing.T, what string, n int32) {
	t.Helper()
	eventually(t, what, func() bool { return s.closed.Load() == n })
}

// rawServer accepts connections on 127.0.0.1 and runs handle on each, with
// the index of the connection in accept order, for byte-level control.
// Handlers must end when their connection is closed (the cleanup closes
// them all).
type rawServer struct {
	url     string
	accepts atomic.Int32
	mu      sync.Mutex
	conns   []net.Conn
	wg      sync.WaitGroup
}

func newRawServer(t *testing.T, handle func(i int, c net.Conn)) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{url: "http://" + ln.Addr().String()}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			i := int(s.accepts.Add(1)) - 1
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				handle(i, c)
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		s.mu.Lock()
		for _, c := range s.conns {
			_ = c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

// readRequest reads one request and its body from br.
func readRequest(br *bufio.Reader) (*http.Request, string, error) {
	req, err := http.ReadRequest(br)
	if err != nil {
		return nil, "", err
	}
	b, err := io.ReadAll(req.Body)
	return req, string(b), err
}

// echo answers with the request body, read whole first (net/http's server
// stops the request body once the answer starts).
func echo(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	_, _ = w.Write(b)
}

const okResponse = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

// serve reads one request on c and writes answer in one write (one
// segment on loopback), keeping c open.
func serve(br *bufio.Reader, c net.Conn, answer string) error {
	if _, _, err := readRequest(br); err != nil {
		return err
	}
	_, err := io.WriteString(c, answer)
	return err
}

// serveOK reads one request on c and answers 200 "ok", keeping c open.
func serveOK(br *bufio.Reader, c net.Conn) error { return serve(br, c, okResponse) }

// serveLoop writes answer to each request until the connection ends.
func serveLoop(c net.Conn, answer string) {
	br := bufio.NewReader(c)
	for serve(br, c, answer) == nil {
	}
}

// serveOKLoop answers 200 "ok" until the connection ends.
func serveOKLoop(c net.Conn) { serveLoop(c, okResponse) }

// serveOnce writes answer to the first request, then reads c until the
// client closes it.
func serveOnce(c net.Conn, answer string) {
	br := bufio.NewReader(c)
	if serve(br, c, answer) == nil {
		_, _ = io.Copy(io.Discard, br)
	}
}

// drainUntilClosed reads c until the client closes it, then reports on
// closed (buffered or closed channel expected).
func drainUntilClosed(br *bufio.Reader, closed chan<- struct{}) {
	_, _ = io.Copy(io.Discard, br)
	close(closed)
}

// rst closes c with a reset (RST) instead of a FIN.
func rst(c net.Conn) {
	_ = c.(*net.TCPConn).SetLinger(0)
	_ = c.Close()
}

// trackBody is a request body that records its Close.
type trackBody struct {
	r      io.Reader
	closed atomic.Int32
}

func (b *trackBody) Read(p []byte) (int, error) { return b.r.Read(p) }
func (b *trackBody) Close() error               { b.closed.Add(1); return nil }

// wantClosed checks that the body was closed.
func (b *trackBody) wantClosed(t *testing.T) {
	t.Helper()
	if b.closed.Load() == 0 {
		t.Error("request body not closed")
	}
}

func needPeek(t *testing.T) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("the liveness peek of a pooled connection exists on Linux only (peek_linux.go)")
	}
}

// ---------------------------------------------------------------------------
// Checks. Each reports a failure with t.Errorf, saying what it wanted and
// what it got, and returns whether the check held, so that a test for which
// a failure is the end follows it with t.FailNow. The optional why is
// added to the message: what the failure means, or when the check was made.
// ---------------------------------------------------------------------------

// because formats a check's optional why for its failure message.
func because(why []string) string {
	if len(why) == 0 {
		return ""
	}
	return " (" + strings.Join(why, "; ") + ")"
}

// wantReused checks GotConn's Reused flags so far, one per GotConn call.
func wantReused(t *testing.T, rec *recorder, want []bool, why ...string) bool {
	t.Helper()
	got := rec.reused()
	if !slices.Equal(got, want) {
		t.Errorf("GotConn Reused = %v, want %v%s", got, want, because(why))
		return false
	}
	return true
}

// wantDials checks how often the transport has dialed.
func wantDials(t *testing.T, tt *testTransport, want int32, why ...string) bool {
	t.Helper()
	if n := tt.dials.Load(); n != want {
		t.Errorf("transport dialed %d times, want %d%s", n, want, because(why))
		return false
	}
	return true
}

// wantIdle checks how many connections the pool holds.
func wantIdle(t *testing.T, tt *testTransport, want int, why ...string) bool {
	t.Helper()
	if n := tt.idleLen(); n != want {
		t.Errorf("pool holds %d connections, want %d%s", n, want, because(why))
		return false
	}
	return true
}

// wantAccepts checks a server's count of accepted connections.
func wantAccepts(t *testing.T, accepted *atomic.Int32, want int32) bool {
	t.Helper()
	if n := accepted.Load(); n != want {
		t.Errorf("server accepted %d connections, want %d", n, want)
		return false
	}
	return true
}

// wantNoFallback checks that nothing was given to the Fallback.
func wantNoFallback(t *testing.T, tt *testTransport) bool {
	t.Helper()
	if n := len(tt.fallback.requests()); n != 0 {
		t.Errorf("Fallback got %d requests, want 0", n)
		return false
	}
	return true
}

// wantErrIs checks errors.Is(err, target); name names target.
func wantErrIs(t *testing.T, err, target error, name string, why ...string) bool {
	t.Helper()
	if err == nil {
		t.Errorf("no error, want %s%s", name, because(why))
		return false
	}
	if !errors.Is(err, target) {
		t.Errorf("error %q (%T, wrapping %T): errors.Is(err, %s) is false, want true%s",
			err, err, errors.Unwrap(err), name, because(why))
		return false
	}
	return true
}

// wantCause checks that err is the context's cause, errTestCause.
func wantCause(t *testing.T, err error, why ...string) bool {
	t.Helper()
	return wantErrIs(t, err, errTestCause, "errTestCause", append([]string{fmt.Sprintf("the context's cause %q", errTestCause)}, why...)...)
}

// ---------------------------------------------------------------------------
// 1. Keep-alive reuse.
// ---------------------------------------------------------------------------

// TestKeepAliveReuse pins the keep-alive pool: two sequential requests to
// one host use one TCP connection, and GotConn reports Reused false, then
// true.
func TestKeepAliveReuse(t *testing.T) {
	srv := newCountingServer(t, reply("hello"))
	tt := newTestTransport(t)
	rec := &recorder{}
	for range 2 {
		if _, body := do(t, tt, newReq(t, rec.ctx(context.Background()), "GET", srv.URL+"/", nil)); body != "hello" {
			t.Fatalf("body %q, want hello", body)
		}
	}
	wantReused(t, rec, []bool{false, true})
	wantAccepts(t, &srv.accepted, 1)
	wantDials(t, tt, 1)
	wantIdle(t, tt, 1, "after the body's end")
	wantNoFallback(t, tt)
}

// TestTraceHooks pins the httptrace hooks and their order, as net/http
// calls them: on a new connection GetConn, ConnectStart, ConnectDone,
// GotConn, WroteRequest (once), GotFirstResponseByte, then PutIdleConn at
// the body's end; on a reused one the same without the connect hooks.
func TestTraceHooks(t *testing.T) {
	srv := newCountingServer(t, reply("hello"))
	tt := newTestTransport(t)
	rec := &recorder{}
	trace := &httptrace.ClientTrace{
		GetConn:              func(string) { rec.add("GetConn") },
		ConnectStart:         func(string, string) { rec.add("ConnectStart") },
		ConnectDone:          func(_, _ string, err error) { rec.add(fmt.Sprintf("ConnectDone(err=%v)", err)) },
		GotConn:              func(i httptrace.GotConnInfo) { rec.add(fmt.Sprintf("GotConn(reused=%t)", i.Reused)) },
		WroteRequest:         func(i httptrace.WroteRequestInfo) { rec.add(fmt.Sprintf("WroteRequest(err=%v)", i.Err)) },
		GotFirstResponseByte: func() { rec.add("GotFirstResponseByte") },
		PutIdleConn:          func(err error) { rec.add(fmt.Sprintf("PutIdleConn(err=%v)", err)) },
	}
	ctx := httptrace.WithClientTrace(context.Background(), trace)
	wants := [][]string{
		{"GetConn", "ConnectStart", "ConnectDone(err=<nil>)", "GotConn(reused=false)", "WroteRequest(err=<nil>)", "GotFirstResponseByte", "PutIdleConn(err=<nil>)"},
		{"GetConn", "GotConn(reused=true)", "WroteRequest(err=<nil>)", "GotFirstResponseByte", "PutIdleConn(err=<nil>)"},
	}
	for i, want := range wants {
		rec.reset()
		do(t, tt, newReq(t, ctx, "GET", srv.URL+"/", nil))
		rec.mu.Lock()
		got := slices.Clone(rec.events)
		rec.mu.Unlock()
		if !slices.Equal(got, want) {
			t.Errorf("request %d: trace events\n got %q\nwant %q", i+1, got, want)
		}
	}
}

// ---------------------------------------------------------------------------
// 2. Framing (the standard library's) and connection reuse.
// ---------------------------------------------------------------------------

// TestFraming pins that each response framing is read correctly and that
// the connection goes back to the pool exactly when the framing and the
// Connection headers allow: the second request to the same server reuses
// the connection or dials a new one.
func TestFraming(t *testing.T) {
	cases := []struct {
		name     string
		method   string
		reqClose bool
		handler  http.HandlerFunc
		check    func(t *testing.T, resp *http.Response, body string)
		reuse    bool
	}{
		{
			// A chunked body with a trailer: the body and the trailer
			// arrive, and the connection is kept.
			name: "chunked with trailers", method: "GET", reuse: true,
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Trailer", "X-Sum")
				_, _ = io.WriteString(w, "hello ")
				w.(http.Flusher).Flush()
				_, _ = io.WriteString(w, "world")
				w.Header().Set("X-Sum", "42")
			},
			check: func(t *testing.T, resp *http.Response, body string) {
				if !slices.Equal(resp.TransferEncoding, []string{"chunked"}) {
					t.Errorf("TransferEncoding %q, want chunked", resp.TransferEncoding)
				}
				if body != "hello world" {
					t.Errorf("body %q", body)
				}
				if got := resp.Trailer.Get("X-Sum"); got != "42" {
					t.Errorf("trailer X-Sum %q, want 42", got)
				}
			},
		},
		{
			// A Content-Length body: read to its length, connection kept.
			name: "content-length", method: "GET", reuse: true,
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", "11")
				_, _ = io.WriteString(w, "hello world")
			},
			check: func(t *testing.T, resp *http.Response, body string) {
				if resp.ContentLength != 11 || body != "hello world" {
					t.Errorf("ContentLength %d body %q", resp.ContentLength, body)
				}
			},
		},
		{
			// HEAD: the Content-Length describes a body that is not sent;
			// there is none to read and the connection is kept.
			name: "HEAD", method: "HEAD", reuse: true,
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", "100")
			},
			check: func(t *testing.T, resp *http.Response, body string) {
				if resp.Body != http.NoBody || body != "" || resp.ContentLength != 100 {
					t.Errorf("HEAD: Body %T %q ContentLength %d, want NoBody, 100", resp.Body, body, resp.ContentLength)
				}
			},
		},
		{
			// 204 has no body; the connection is kept.
			name: "204", method: "GET", reuse: true,
			handler: func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) },
			check: func(t *testing.T, resp *http.Response, body string) {
				if resp.StatusCode != 204 || resp.Body != http.NoBody {
					t.Errorf("status %d Body %T, want 204 NoBody", resp.StatusCode, resp.Body)
				}
			},
		},
		{
			// 304 has no body; the connection is kept.
			name: "304", method: "GET", reuse: true,
			handler: func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNotModified) },
			check: func(t *testing.T, resp *http.Response, body string) {
				if resp.StatusCode != 304 || resp.Body != http.NoBody {
					t.Errorf("status %d Body %T, want 304 NoBody", resp.StatusCode, resp.Body)
				}
			},
		},
		{
			// A response with Connection: close: the body is read, and
			// the connection is not reused.
			name: "Connection: close response", method: "GET", reuse: false,
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Connection", "close")
				_, _ = io.WriteString(w, "bye")
			},
			check: func(t *testing.T, resp *http.Response, body string) {
				if !resp.Close || body != "bye" {
					t.Errorf("Close %t body %q, want true, bye", resp.Close, body)
				}
			},
		},
		{
			// A request with Close set: it says Connection: close, and
			// the connection is not reused.
			name: "req.Close", method: "GET", reqClose: true, reuse: false,
			handler: func(w http.ResponseWriter, r *http.Request) {
				if !r.Close {
					w.WriteHeader(http.StatusBadRequest) // the request did not say Connection: close
					return
				}
				_, _ = io.WriteString(w, "ok")
			},
			check: func(t *testing.T, resp *http.Response, body string) {
				if resp.StatusCode != 200 {
					t.Errorf("status %d: the request did not carry Connection: close", resp.StatusCode)
				}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := newCountingServer(t, tc.handler)
			tt := newTestTransport(t)
			rec := &recorder{}
			req := newReq(t, rec.ctx(context.Background()), tc.method, srv.URL+"/", nil)
			req.Close = tc.reqClose
			resp, body := do(t, tt, req)
			tc.check(t, resp, body)
			idle, conns := 0, int32(2)
			if tc.reuse {
				idle, conns = 1, 1
			}
			wantIdle(t, tt, idle, "after the first exchange")
			do(t, tt, newReq(t, rec.ctx(context.Background()), tc.method, srv.URL+"/", nil))
			wantReused(t, rec, []bool{false, tc.reuse})
			wantAccepts(t, &srv.accepted, conns)
		})
	}
}

// TestHTTP10CloseDelimited pins an HTTP/1.0 answer without Content-Length:
// its body runs to the server's close, is read whole, and the connection
// is not pooled (the next request dials).
func TestHTTP10CloseDelimited(t *testing.T) {
	srv := newRawServer(t, func(i int, c net.Conn) {
		_ = serve(bufio.NewReader(c), c, "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhello, close-delimited")
		_ = c.Close()
	})
	tt := newTestTransport(t)
	rec := &recorder{}
	for range 2 {
		resp, body := do(t, tt, newReq(t, rec.ctx(context.Background()), "GET", srv.url+"/", nil))
		if body != "hello, close-delimited" || !resp.Close || resp.ProtoMinor != 0 {
			t.Fatalf("body %q Close %t proto %s", body, resp.Close, resp.Proto)
		}
		if !wantIdle(t, tt, 0, "after a close-delimited body") {
			t.FailNow()
		}
	}
	wantReused(t, rec, []bool{false, false})
	wantAccepts(t, &srv.accepts, 2)
}

// TestRequestCloseNotReused pins that a request sent with Close is not
// followed by another on its connection even when the server ignores the
// Connection: close and answers as keep-alive.
func TestRequestCloseNotReused(t *testing.T) {
	srv := newRawServer(t, func(i int, c net.Conn) { serveOKLoop(c) }) // never says close
	tt := newTestTransport(t)
	rec := &recorder{}
	req := newReq(t, rec.ctx(context.Background()), "GET", srv.url+"/", nil)
	req.Close = true
	do(t, tt, req)
	wantIdle(t, tt, 0, "after a request with Close")
	do(t, tt, newReq(t, rec.ctx(context.Background()), "GET", srv.url+"/", nil))
	wantReused(t, rec, []bool{false, false})
}

// TestBytesAfterAnswerNotPooled pins that a connection on which more bytes
// arrived after the answer's end (with the answer, in one write) is closed
// rather than pooled, for an answer with a body and one without: those
// bytes would otherwise be read as the next request's answer.
func TestBytesAfterAnswerNotPooled(t *testing.T) {
	const stale = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstale"
	for _, tc := range []struct{ name, answer string }{
		{"body", okResponse},
		{"no body", "HTTP/1.1 204 No Content\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newRawServer(t, func(i int, c net.Conn) {
				if i > 0 {
					serveOKLoop(c)
					return
				}
				serveOnce(c, tc.answer+stale) // one write: one segment on loopback
			})
			tt := newTestTransport(t)
			do(t, tt, newReq(t, context.Background(), "GET", srv.url+"/", nil))
			wantIdle(t, tt, 0, "with bytes after the answer")
			if _, body := do(t, tt, newReq(t, context.Background(), "GET", srv.url+"/", nil)); body != "ok" {
				t.Errorf("second answer %q, want ok (not the stale bytes)", body)
			}
		})
	}
}

// ---------------------------------------------------------------------------
// 3. The request as written.
// ---------------------------------------------------------------------------

// TestRequestWritten pins what reaches the upstream: the method, the path
// and query, the Host (the request's, over the URL's), the headers, the
// body with its Content-Length (not chunked), no Accept-Encoding added,
// and no User-Agent when the header is present but empty (as
// httputil.ReverseProxy leaves it).
func TestRequestWritten(t *testing.T) {
	type seen struct {
		method, uri, host string
		header            http.Header
		contentLength     int64
		te                []string
		body              string
	}
	got := make(chan seen, 1)
	srv := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.Method, r.RequestURI, r.Host, r.Header.Clone(), r.ContentLength, r.TransferEncoding, string(b)}
	})
	tt := newTestTransport(t)
	req := newReq(t, context.Background(), "PUT", srv.URL+"/a/b%20c?x=1&y=two", strings.NewReader("the payload"))
	req.Host = "upstream.example:8080"
	req.Header.Set("X-Custom", "v1")
	req.Header.Add("X-Multi", "a")
	req.Header.Add("X-Multi", "b")
	req.Header["User-Agent"] = []string{""}
	do(t, tt, req)
	s := waitChan(t, "the server to see the request", got)
	if s.method != "PUT" || s.uri != "/a/b%20c?x=1&y=two" || s.host != "upstream.example:8080" {
		t.Errorf("method %q uri %q host %q", s.method, s.uri, s.host)
	}
	if s.header.Get("X-Custom") != "v1" || !slices.Equal(s.header["X-Multi"], []string{"a", "b"}) {
		t.Errorf("headers %v", s.header)
	}
	if s.contentLength != int64(len("the payload")) || len(s.te) != 0 || s.body != "the payload" {
		t.Errorf("ContentLength %d TransferEncoding %q body %q", s.contentLength, s.te, s.body)
	}
	if v, ok := s.header["Accept-Encoding"]; ok {
		t.Errorf("Accept-Encoding %q was added", v)
	}
	if v, ok := s.header["User-Agent"]; ok {
		t.Errorf("User-Agent %q sent, want none (header present but empty)", v)
	}
	wantNoFallback(t, tt)
}

// TestNoTransparentGzip pins that the answer is passed on as the upstream
// encoded it: a gzip body stays compressed, with its Content-Encoding.
func TestNoTransparentGzip(t *testing.T) {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = io.WriteString(zw, "compressed text")
	_ = zw.Close()
	srv := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Encoding", "gzip")
		_, _ = w.Write(gz.Bytes())
	})
	tt := newTestTransport(t)
	resp, body := do(t, tt, newReq(t, context.Background(), "GET", srv.URL+"/", nil))
	if resp.Uncompressed || resp.Header.Get("Content-Encoding") != "gzip" || body != gz.String() {
		t.Errorf("Uncompressed %t Content-Encoding %q body equal %t; want the gzip bytes as sent",
			resp.Uncompressed, resp.Header.Get("Content-Encoding"), body == gz.String())
	}
}

// ---------------------------------------------------------------------------
// 4. What goes to the Fallback.
// ---------------------------------------------------------------------------

// TestFallback pins the split between this transport and its Fallback:
// each request the package comment lists goes to the Fallback unchanged
// (the same *http.Request, nothing dialed here); requests with no body,
// http.NoBody, a small body or a body of exactly MaxInlineBody are sent
// here.
func TestFallback(t *testing.T) {
	const dead = "http://127.0.0.1:1" // never dialed when the routing is right
	big := strings.Repeat("x", MaxInlineBody+1)
	fallbackCases := []struct {
		name string
		req  func(t *testing.T) *http.Request
	}{
		{"https", func(t *testing.T) *http.Request {
			return newReq(t, context.Background(), "GET", "https://127.0.0.1:1/", nil)
		}},
		{"Upgrade header", func(t *testing.T) *http.Request {
			r := newReq(t, context.Background(), "GET", dead+"/ws", nil)
			r.Header.Set("Connection", "Upgrade")
			r.Header.Set("Upgrade", "websocket")
			return r
		}},
		{"Expect: 100-continue", func(t *testing.T) *http.Request {
			r := newReq(t, context.Background(), "POST", dead+"/", strings.NewReader("body"))
			r.Header.Set("Expect", "100-continue")
			return r
		}},
		{"CONNECT", func(t *testing.T) *http.Request {
			return newReq(t, context.Background(), "CONNECT", dead, nil)
		}},
		{"body of unknown length (-1)", func(t *testing.T) *http.Request {
			r := newReq(t, context.Background(), "POST", dead+"/", strings.NewReader("body"))
			r.ContentLength = -1
			return r
		}},
		{"body of unknown length (0 with a Body)", func(t *testing.T) *http.Request {
			r := newReq(t, context.Background(), "POST", dead+"/", strings.NewReader("body"))
			r.ContentLength = 0
			return r
		}},
		{"body over MaxInlineBody", func(t *testing.T) *http.Request {
			return newReq(t, context.Background(), "POST", dead+"/", strings.NewReader(big))
		}},
		{"explicit TransferEncoding", func(t *testing.T) *http.Request {
			r := newReq(t, context.Background(), "POST", dead+"/", strings.NewReader("body"))
			r.TransferEncoding = []string{"chunked"}
			return r
		}},
		{"request Trailer", func(t *testing.T) *http.Request {
			r := newReq(t, context.Background(), "POST", dead+"/", strings.NewReader("body"))
			r.Trailer = http.Header{"X-Checksum": nil}
			return r
		}},
	}
	for _, tc := range fallbackCases {
		t.Run("fallback/"+tc.name, func(t *testing.T) {
			tt := newTestTransport(t)
			req := tc.req(t)
			resp, body := do(t, tt, req)
			if resp.StatusCode != 299 || body != "fallback" {
				t.Errorf("status %d body %q, want the Fallback's 299", resp.StatusCode, body)
			}
			if reqs := tt.fallback.requests(); len(reqs) != 1 || reqs[0] != req {
				t.Errorf("Fallback got %d requests (same request: %t), want this one", len(reqs), len(reqs) == 1 && reqs[0] == req)
			}
			wantDials(t, tt, 0, "for a Fallback request")
		})
	}

	inlineCases := []struct {
		name string
		body func() io.Reader
		want string
	}{
		{"no body", func() io.Reader { return nil }, ""},
		{"http.NoBody", func() io.Reader { return http.NoBody }, ""},
		{"small body", func() io.Reader { return strings.NewReader("small") }, "small"},
		{"body of MaxInlineBody", func() io.Reader { return strings.NewReader(big[:MaxInlineBody]) }, big[:MaxInlineBody]},
	}
	for _, tc := range inlineCases {
		t.Run("inline/"+tc.name, func(t *testing.T) {
			srv := newCountingServer(t, echo)
			tt := newTestTransport(t)
			resp, body := do(t, tt, newReq(t, context.Background(), "POST", srv.URL+"/", tc.body()))
			if resp.StatusCode != 200 || body != tc.want {
				t.Errorf("status %d, body of %d bytes, want 200 and the %d bytes sent", resp.StatusCode, len(body), len(tc.want))
			}
			wantNoFallback(t, tt)
			wantDials(t, tt, 1)
		})
	}
}

// ---------------------------------------------------------------------------
// 5. A pooled connection that died while idle.
// ---------------------------------------------------------------------------

// TestDeadIdleConnFIN pins the liveness peek: when the server has closed
// an idle pooled connection (FIN), the next request dials a new one and
// succeeds, and the dead one is never handed out (GotConn fires once, with
// Reused false).
func TestDeadIdleConnFIN(t *testing.T) {
	needPeek(t)
	srv := newRawServer(t, func(i int, c net.Conn) {
		if i == 0 {
			_ = serveOK(bufio.NewReader(c), c)
			_ = c.Close()
			return
		}
		serveOKLoop(c)
	})
	requestAfterIdleDeath(t, srv, "the FIN", nil)
}

// TestDeadIdleConnUnsolicitedBytes pins that a pooled connection on which
// the server sent something unasked (a 408 before closing) is not reused:
// the next request dials, and the client closes the old one.
func TestDeadIdleConnUnsolicitedBytes(t *testing.T) {
	needPeek(t)
	conn0Closed := make(chan struct{})
	send408 := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(send408) }) }
	srv := newRawServer(t, func(i int, c net.Conn) {
		if i == 0 {
			br := bufio.NewReader(c)
			_ = serveOK(br, c)
			<-send408 // once the client has pooled the connection
			_, _ = io.WriteString(c, "HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
			drainUntilClosed(br, conn0Closed)
			return
		}
		serveOKLoop(c)
	})
	t.Cleanup(release) // runs before the server's cleanup
	requestAfterIdleDeath(t, srv, "the unsolicited bytes", release)
	waitChan(t, "the client to close the connection with unsolicited bytes", conn0Closed)
}

// requestAfterIdleDeath pools a connection to srv, calls kill (when not
// nil) once it is pooled, waits for the liveness peek to see what killed
// it, and sends the next request: it must be answered 200 "ok" on a new
// connection (the server's second), the dead one never handed out.
func requestAfterIdleDeath(t *testing.T, srv *rawServer, killedBy string, kill func()) {
	t.Helper()
	tt := newTestTransport(t)
	do(t, tt, newReq(t, context.Background(), "GET", srv.url+"/", nil))
	c := tt.onlyIdle(t)
	if kill != nil {
		kill()
	}
	eventually(t, killedBy+" to reach the idle connection", func() bool { return !c.peekOpen() })

	rec := &recorder{}
	resp, body := do(t, tt, newReq(t, rec.ctx(context.Background()), "GET", srv.url+"/", nil))
	if resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("status %d body %q, want 200 ok: what the dead connection held was read as the answer", resp.StatusCode, body)
	}
	wantReused(t, rec, []bool{false}, "the dead idle connection was handed out")
	wantAccepts(t, &srv.accepts, 2)
}

// ---------------------------------------------------------------------------
// 6. Replay of a request that met a dead reused connection.
// ---------------------------------------------------------------------------

// replayServer answers the first request on its first connection, then
// reads the second request whole and ends that connection with end (a FIN
// or a reset) without answering; later connections answer "replayed". It
// records each request's connection index and body.
type replayServer struct {
	*rawServer
	mu     sync.Mutex
	bodies []string // "conn#: body"
}

func newReplayServer(t *testing.T, end func(net.Conn)) *replayServer {
	s := &replayServer{}
	s.rawServer = newRawServer(t, func(i int, c net.Conn) {
		br := bufio.NewReader(c)
		for n := 0; ; n++ {
			_, body, err := readRequest(br)
			if err != nil {
				return
			}
			s.mu.Lock()
			s.bodies = append(s.bodies, fmt.Sprintf("%d:%s", i, body))
			s.mu.Unlock()
			if i == 0 && n == 1 {
				end(c)
				return
			}
			reply := "first"
			if i > 0 {
				reply = "replayed"
			}
			if _, err := fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(reply), reply); err != nil {
				return
			}
		}
	})
	return s
}

func (s *replayServer) seen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.bodies)
}

// TestReplay pins the replay rule of net/http's
// persistConn.shouldRetryRequest for a request written whole to a reused
// connection that the server then closed without answering: a replayable
// request (GET, or a POST with an Idempotency-Key or X-Idempotency-Key and
// a GetBody) is sent again on a new connection, body and all, whether the
// close was a FIN or a reset; a POST without those is not, and its error
// is net/http's "server closed idle connection", an io.EOF.
func TestReplay(t *testing.T) {
	fin := func(c net.Conn) { _ = c.Close() }
	cases := []struct {
		name     string
		end      func(net.Conn)
		req      func(t *testing.T, ctx context.Context, u string) *http.Request
		replayed bool
	}{
		{"GET after FIN", fin, func(t *testing.T, ctx context.Context, u string) *http.Request {
			return newReq(t, ctx, "GET", u, nil)
		}, true},
		{"GET after RST", rst, func(t *testing.T, ctx context.Context, u string) *http.Request {
			return newReq(t, ctx, "GET", u, nil)
		}, true},
		{"POST with Idempotency-Key and GetBody", fin, func(t *testing.T, ctx context.Context, u string) *http.Request {
			r := newReq(t, ctx, "POST", u, strings.NewReader("payload")) // sets GetBody
			r.Header.Set("Idempotency-Key", "k1")
			return r
		}, true},
		{"POST with X-Idempotency-Key and GetBody", fin, func(t *testing.T, ctx context.Context, u string) *http.Request {
			r := newReq(t, ctx, "POST", u, strings.NewReader("payload"))
			r.Header.Set("X-Idempotency-Key", "k1")
			return r
		}, true},
		{"POST with Idempotency-Key but no GetBody", fin, func(t *testing.T, ctx context.Context, u string) *http.Request {
			r := newReq(t, ctx, "POST", u, strings.NewReader("payload"))
			r.Header.Set("Idempotency-Key", "k1")
			r.GetBody = nil
			return r
		}, false},
		{"POST with GetBody but no key", fin, func(t *testing.T, ctx context.Context, u string) *http.Request {
			return newReq(t, ctx, "POST", u, strings.NewReader("payload"))
		}, false},
		{"POST without GetBody", fin, func(t *testing.T, ctx context.Context, u string) *http.Request {
			r := newReq(t, ctx, "POST", u, io.NopCloser(strings.NewReader("payload")))
			r.ContentLength = int64(len("payload"))
			if r.GetBody != nil {
				t.Fatal("GetBody set")
			}
			return r
		}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := newReplayServer(t, tc.end)
			tt := newTestTransport(t)
			if _, body := do(t, tt, newReq(t, context.Background(), "GET", srv.url+"/1", nil)); body != "first" {
				t.Fatalf("first body %q", body)
			}
			rec := &recorder{}
			req := tc.req(t, rec.ctx(context.Background()), srv.url+"/2")
			err := wantReplay(t, tt, rec, req, tc.replayed, "replayed")
			if tc.replayed {
				wantBody := ""
				if req.Method == "POST" {
					wantBody = "payload"
				}
				if got, want := srv.seen(), []string{"0:", "0:" + wantBody, "1:" + wantBody}; !slices.Equal(got, want) {
					t.Errorf("server saw %q, want %q (the replay re-sends the body)", got, want)
				}
				return
			}
			if !strings.Contains(err.Error(), "server closed idle connection") {
				t.Errorf("error %q does not say %q", err, "server closed idle connection")
			}
			wantErrIs(t, err, io.EOF, "io.EOF", "as net/http's")
		})
	}
}

// wantReplay sends req, which met its reused connection's death, and
// checks the outcome: replayed, it succeeds on a second dial (GotConn
// Reused true, then false) with the answer wantBody; not replayed, it fails
// on the reused connection alone, one dial, and the error is returned for
// the caller's checks.
func wantReplay(t *testing.T, tt *testTransport, rec *recorder, req *http.Request, replayed bool, wantBody string) error {
	t.Helper()
	if !replayed {
		err := roundTripErr(t, tt, req, "a request that may not be replayed was replayed")
		wantReused(t, rec, []bool{true})
		wantDials(t, tt, 1)
		return err
	}
	resp, err := roundTripWithin(t, tt, req)
	if err != nil {
		t.Fatalf("not replayed: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if string(b) != wantBody {
		t.Errorf("body %q, want %q", b, wantBody)
	}
	wantReused(t, rec, []bool{true, false})
	wantDials(t, tt, 2)
	return nil
}

// TestNoReplayOnFirstUse pins that a request on a freshly dialed
// connection is never replayed, even a GET, when the server closes it
// without answering (FIN or reset): one connection, one error.
func TestNoReplayOnFirstUse(t *testing.T) {
	for _, end := range []struct {
		name string
		f    func(net.Conn)
	}{{"FIN", func(c net.Conn) { _ = c.Close() }}, {"RST", rst}} {
		t.Run(end.name, func(t *testing.T) {
			srv := newRawServer(t, func(i int, c net.Conn) {
				if i > 0 {
					serveOKLoop(c)
					return
				}
				if _, _, err := readRequest(bufio.NewReader(c)); err == nil {
					end.f(c)
				}
			})
			tt := newTestTransport(t)
			rec := &recorder{}
			err := roundTripErr(t, tt, newReq(t, rec.ctx(context.Background()), "GET", srv.url+"/", nil),
				"RoundTrip succeeded: the request was replayed on a new connection")
			var ce *closedError
			if errors.As(err, &ce) {
				t.Errorf("error %q claims an idle connection closed, on a first use", err)
			}
			wantReused(t, rec, []bool{false})
			wantDials(t, tt, 1)
		})
	}
}

// failConn fails every Write once fail is set, having written nothing.
// It is no syscall.Conn, so the pool's liveness peek trusts it.
// onFail, when set, runs before the failing Write returns.
type failConn struct {
	net.Conn
	fail   atomic.Bool
	onFail func()
}

func (c *failConn) Write(p []byte) (int, error) {
	if c.fail.Load() {
		if c.onFail != nil {
			c.onFail()
		}
		return 0, &net.OpError{Op: "write", Net: "tcp", Err: os.NewSyscallError("write", syscall.EPIPE)}
	}
	return c.Conn.Write(p)
}

// dialFailConns makes tt's dials (still counted) return failConns, with
// onFail (may be nil), and returns a function that gives the first one
// dialed.
func (tt *testTransport) dialFailConns(onFail func()) (first func() *failConn) {
	var mu sync.Mutex
	var conns []*failConn
	dial := tt.DialContext
	tt.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		nc, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		fc := &failConn{Conn: nc, onFail: onFail}
		mu.Lock()
		conns = append(conns, fc)
		mu.Unlock()
		return fc, nil
	}
	return func() *failConn {
		mu.Lock()
		defer mu.Unlock()
		return conns[0]
	}
}

// TestReplayNothingWritten pins the other half of the replay rule: when
// nothing of the request could be written to a reused connection, it is
// sent again on another if it has no body or a GetBody, whatever its
// method; a body without GetBody is not, and the write error is returned.
func TestReplayNothingWritten(t *testing.T) {
	cases := []struct {
		name     string
		req      func(t *testing.T, ctx context.Context, u string) *http.Request
		replayed bool
	}{
		{"GET", func(t *testing.T, ctx context.Context, u string) *http.Request {
			return newReq(t, ctx, "GET", u, nil)
		}, true},
		{"POST without body", func(t *testing.T, ctx context.Context, u string) *http.Request {
			return newReq(t, ctx, "POST", u, nil)
		}, true},
		{"POST with GetBody", func(t *testing.T, ctx context.Context, u string) *http.Request {
			return newReq(t, ctx, "POST", u, strings.NewReader("payload"))
		}, true},
		{"POST without GetBody", func(t *testing.T, ctx context.Context, u string) *http.Request {
			r := newReq(t, ctx, "POST", u, io.NopCloser(strings.NewReader("payload")))
			r.ContentLength = int64(len("payload"))
			return r
		}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				_, _ = fmt.Fprintf(w, "%s:%s", r.Method, b)
			})
			tt := newTestTransport(t)
			first := tt.dialFailConns(nil)
			do(t, tt, newReq(t, context.Background(), "GET", srv.URL+"/", nil))
			first().fail.Store(true)

			rec := &recorder{}
			req := tc.req(t, rec.ctx(context.Background()), srv.URL+"/")
			want := req.Method + ":"
			if req.Body != nil && req.Body != http.NoBody {
				want += "payload"
			}
			if err := wantReplay(t, tt, rec, req, tc.replayed, want); !tc.replayed {
				wantErrIs(t, err, syscall.EPIPE, "syscall.EPIPE", "the write's")
			}
		})
	}
}

// TestNoReplayAfterCancel pins that a request whose context ended is not
// replayed even when nothing of it was written to a reused connection
// (which alone would allow a replay): one dial, and the context's cause.
func TestNoReplayAfterCancel(t *testing.T) {
	srv := newCountingServer(t, reply("ok"))
	tt := newTestTransport(t)
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	first := tt.dialFailConns(func() { cancel(errTestCause) })
	do(t, tt, newReq(t, context.Background(), "GET", srv.URL+"/", nil))
	first().fail.Store(true) // the next write on it cancels the context and fails
	err := roundTripErr(t, tt, newReq(t, ctx, "GET", srv.URL+"/", nil), "RoundTrip succeeded")
	wantCause(t, err)
	wantDials(t, tt, 1, "the cancelled request was replayed")
}

// TestFirstByteHookKeepsReadError pins that installing the
// GotFirstResponseByte hook does not change the error of a failed first
// read: a connection reset before any answer is ECONNRESET with or
// without the hook, as with net/http.
func TestFirstByteHookKeepsReadError(t *testing.T) {
	for _, hook := range []bool{false, true} {
		t.Run(fmt.Sprintf("hook=%t", hook), func(t *testing.T) {
			srv := newRawServer(t, func(i int, c net.Conn) {
				if _, _, err := readRequest(bufio.NewReader(c)); err == nil {
					rst(c)
				}
			})
			tt := newTestTransport(t)
			ctx := context.Background()
			if hook {
				ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotFirstResponseByte: func() {}})
			}
			err := roundTripErr(t, tt, newReq(t, ctx, "GET", srv.url+"/", nil), "RoundTrip succeeded")
			wantErrIs(t, err, syscall.ECONNRESET, "syscall.ECONNRESET")
		})
	}
}

// ---------------------------------------------------------------------------
// 7. Cancellation.
// ---------------------------------------------------------------------------

var errTestCause = errors.New("client went away (test cause)")

// cancelledOn returns a context cancelled with errTestCause once signal
// yields (and without a cause at the test's end).
func cancelledOn(t *testing.T, signal <-chan struct{}) context.Context {
	ctx, cancel := context.WithCancelCause(context.Background())
	t.Cleanup(func() { cancel(nil) })
	go func() {
		select {
		case <-signal:
			cancel(errTestCause)
		case <-ctx.Done():
		}
	}()
	return ctx
}

// TestCancelWaitingForHeaders pins cancellation while the response headers
// are awaited: RoundTrip returns at once with the context's cause, the
// request is not replayed (even on a reused connection) and the
// connection is closed, not pooled.
func TestCancelWaitingForHeaders(t *testing.T) {
	for _, reused := range []bool{false, true} {
		t.Run(fmt.Sprintf("reused=%t", reused), func(t *testing.T) {
			got := make(chan struct{}, 1)
			closed := make(chan struct{})
			srv := newRawServer(t, func(i int, c net.Conn) {
				if i > 0 {
					serveOKLoop(c)
					return
				}
				br := bufio.NewReader(c)
				if reused && serveOK(br, c) != nil {
					return
				}
				if _, _, err := readRequest(br); err != nil {
					return
				}
				got <- struct{}{}
				drainUntilClosed(br, closed) // never answers
			})
			tt := newTestTransport(t)
			if reused {
				do(t, tt, newReq(t, context.Background(), "GET", srv.url+"/", nil))
			}
			ctx := cancelledOn(t, got)
			err := roundTripErr(t, tt, newReq(t, ctx, "GET", srv.url+"/", nil), "RoundTrip succeeded after cancellation")
			wantCancelled(t, tt, err)
			waitChan(t, "the cancelled connection to be closed", closed)
		})
	}
}

// wantCancelled checks the end of a request cancelled on its one
// connection: the error is the context's cause, there was no replay (one
// dial) and nothing is left in the pool.
func wantCancelled(t *testing.T, tt *testTransport, err error) {
	t.Helper()
	wantCause(t, err)
	wantDials(t, tt, 1, "no replay after cancellation")
	wantIdle(t, tt, 0)
}

// TestCancelBeforeSendOnPooledConn pins a request whose context ended
// before it was sent, with a pooled connection available: it fails with
// the cause, is not replayed, and the connection is closed.
func TestCancelBeforeSendOnPooledConn(t *testing.T) {
	srv := newCountingServer(t, reply("ok"))
	tt := newTestTransport(t)
	do(t, tt, newReq(t, context.Background(), "GET", srv.URL+"/", nil))
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(errTestCause)
	err := roundTripErr(t, tt, newReq(t, ctx, "GET", srv.URL+"/", nil), "RoundTrip succeeded with an ended context")
	wantCancelled(t, tt, err)
	srv.waitClosed(t, "the server to see the connection closed", 1)
}

// TestCancelDuringBodyRead pins cancellation while the body is read: the
// blocked Read returns the context's cause, the connection is closed and
// not pooled, and a later Read still fails.
func TestCancelDuringBodyRead(t *testing.T) {
	closed := make(chan struct{})
	srv := newRawServer(t, func(i int, c net.Conn) {
		br := bufio.NewReader(c)
		if serve(br, c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789") != nil {
			return
		}
		drainUntilClosed(br, closed) // the other 90 bytes never come
	})
	tt := newTestTransport(t)
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	resp := mustRoundTrip(t, tt, newReq(t, ctx, "GET", srv.url+"/", nil))
	buf := make([]byte, 10)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatal(err)
	}
	readErr := make(chan error, 1)
	go func() {
		_, err := resp.Body.Read(make([]byte, 10))
		readErr <- err
	}()
	cancel(errTestCause)
	wantCause(t, waitChan(t, "the body Read to return after cancellation", readErr), "the blocked body Read's error")
	if _, err := resp.Body.Read(buf); err == nil || err == io.EOF {
		t.Errorf("Read after the failed one: %v, want an error", err)
	}
	_ = resp.Body.Close()
	wantIdle(t, tt, 0)
	waitChan(t, "the connection to be closed", closed)
}

// TestCancelDuringDial pins cancellation during the dial (the dialer here
// blocks like a blackholed address until the context ends): RoundTrip
// returns the context's cause, not the dial's own error, and closes the
// request body.
func TestCancelDuringDial(t *testing.T) {
	tt := newTestTransport(t)
	dialing := make(chan struct{}, 1)
	tt.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		tt.dials.Add(1)
		dialing <- struct{}{}
		<-ctx.Done()
		return nil, &net.OpError{Op: "dial", Net: network, Err: ctx.Err()}
	}
	ctx := cancelledOn(t, dialing)
	body := &trackBody{r: strings.NewReader("payload")}
	req := newReq(t, ctx, "POST", "http://127.0.0.1:1/", body)
	req.ContentLength = int64(len("payload"))
	wantCause(t, roundTripErr(t, tt, req, "RoundTrip succeeded"))
	body.wantClosed(t)
}

// ---------------------------------------------------------------------------
// 8. Response header limit and 1xx answers.
// ---------------------------------------------------------------------------

// TestMaxResponseHeaderBytes pins the header limit: headers over
// MaxResponseHeaderBytes fail with an error naming the limit, wherever the
// limit falls (in a header's value or in a header's name), and the
// connection is dropped; headers under it pass. The limit cuts the stream
// at exactly MaxResponseHeaderBytes bytes, so where it falls is
// deterministic.
func TestMaxResponseHeaderBytes(t *testing.T) {
	const limit = 1024
	const statusLine = "HTTP/1.1 200 OK\r\n"
	// fill makes "X-Fill: <n bytes>\r\n" end at byte end of the stream.
	fill := func(end int) string {
		return "X-Fill: " + strings.Repeat("f", end-len(statusLine)-len("X-Fill: \r\n")) + "\r\n"
	}
	for _, tc := range []struct {
		name    string
		headers string
		ok      bool
	}{
		{"under the limit", fill(600), true},
		{"limit in a value", fill(4000), false},
		// The limit falls after "X-Sec" of the second header's name.
		{"limit in a name", fill(limit-5) + "X-Second-Header: v\r\n" + fill(3000), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newRawServer(t, func(i int, c net.Conn) {
				serveLoop(c, statusLine+tc.headers+"Content-Length: 2\r\n\r\nok")
			})
			tt := newTestTransport(t)
			tt.MaxResponseHeaderBytes = limit
			req := newReq(t, context.Background(), "GET", srv.url+"/", nil)
			if tc.ok {
				_ = mustRoundTrip(t, tt, req).Body.Close()
				return
			}
			err := roundTripErr(t, tt, req, "headers over the limit were accepted")
			if !strings.Contains(err.Error(), fmt.Sprint(limit)) {
				t.Errorf("error %q does not mention the limit %d", err, limit)
			}
			wantIdle(t, tt, 0)
		})
	}
}

// TestEarlyHints pins 1xx handling: a 103 Early Hints is given to
// Got1xxResponse with its headers, then the final 200 is returned and the
// connection is kept.
func TestEarlyHints(t *testing.T) {
	srv := newRawServer(t, func(i int, c net.Conn) {
		serveLoop(c, "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"+okResponse)
	})
	tt := newTestTransport(t)
	rec := &recorder{}
	resp, body := do(t, tt, newReq(t, rec.ctx(context.Background()), "GET", srv.url+"/", nil))
	if resp.StatusCode != 200 || body != "ok" {
		t.Errorf("status %d body %q, want the final 200", resp.StatusCode, body)
	}
	rec.mu.Lock()
	codes, hdrs := slices.Clone(rec.codes), slices.Clone(rec.hdrs)
	rec.mu.Unlock()
	if !slices.Equal(codes, []int{103}) || hdrs[0].Get("Link") != "</style.css>; rel=preload" {
		t.Errorf("Got1xxResponse codes %v headers %v, want one 103 with its Link", codes, hdrs)
	}
	wantIdle(t, tt, 1)
}

// TestTooMany1xx pins the 1xx cap: max1xx informational answers before
// the final one are accepted, one more is an error.
func TestTooMany1xx(t *testing.T) {
	for _, n := range []int{max1xx, max1xx + 1} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			srv := newRawServer(t, func(i int, c net.Conn) {
				serveOnce(c, strings.Repeat("HTTP/1.1 103 Early Hints\r\n\r\n", n)+okResponse)
			})
			tt := newTestTransport(t)
			rec := &recorder{}
			req := newReq(t, rec.ctx(context.Background()), "GET", srv.url+"/", nil)
			if n <= max1xx {
				_ = mustRoundTrip(t, tt, req).Body.Close()
				return
			}
			err := roundTripErr(t, tt, req, fmt.Sprintf("%d 1xx answers accepted, want an error over %d", n, max1xx))
			if !strings.Contains(err.Error(), "1xx") {
				t.Errorf("error %q does not mention 1xx answers", err)
			}
		})
	}
}

// TestHeaderLimitAcross1xx pins how 1xx answers count against the header
// limit: when Got1xxResponse takes them, each 1xx starts the limit anew;
// without that hook, all headers of one request share one limit (as in
// net/http).
func TestHeaderLimitAcross1xx(t *testing.T) {
	hint := "HTTP/1.1 103 Early Hints\r\nLink: <" + strings.Repeat("l", 300) + ">\r\n\r\n"
	for _, hook := range []bool{true, false} {
		t.Run(fmt.Sprintf("hook=%t", hook), func(t *testing.T) {
			srv := newRawServer(t, func(i int, c net.Conn) {
				serveOnce(c, strings.Repeat(hint, 5)+okResponse) // ~1.7 KB of headers in all
			})
			tt := newTestTransport(t)
			tt.MaxResponseHeaderBytes = 1024
			ctx := context.Background()
			if hook {
				ctx = (&recorder{}).ctx(ctx)
			}
			resp, err := roundTripWithin(t, tt, newReq(t, ctx, "GET", srv.url+"/", nil))
			if err == nil {
				_ = resp.Body.Close()
			}
			if hook && err != nil {
				t.Errorf("with Got1xxResponse: %v, want the 200", err)
			}
			// (What the error says is TestMaxResponseHeaderBytes's concern:
			// here the limit falls in a status line.)
			if !hook && err == nil {
				t.Error("without Got1xxResponse: the 200 was read, want the header limit to end it")
			}
		})
	}
}

// TestUnexpected101 pins that a 101 Switching Protocols to a request that
// did not ask for an upgrade is an error, not a response.
func TestUnexpected101(t *testing.T) {
	srv := newRawServer(t, func(i int, c net.Conn) {
		serveOnce(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	})
	tt := newTestTransport(t)
	err := roundTripErr(t, tt, newReq(t, context.Background(), "GET", srv.url+"/", nil), "101 returned as a response")
	wantErrIs(t, err, errUnexpected101, "errUnexpected101")
	wantIdle(t, tt, 0)
}

// ---------------------------------------------------------------------------
// 9. Pool limits.
// ---------------------------------------------------------------------------

// barrierServer answers "ok" only once n requests are in its handler at
// the same time, so that n concurrent requests need n connections.
func barrierServer(t *testing.T, n int32) *countingServer {
	var arrived atomic.Int32
	all := make(chan struct{})
	return newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		if arrived.Add(1) == n {
			close(all)
		}
		select {
		case <-all:
		case <-time.After(waitFor):
		}
		_, _ = io.WriteString(w, "ok")
	})
}

// concurrently sends n GETs to u at once through rt and waits for them.
func concurrently(t *testing.T, rt http.RoundTripper, u string, n int) {
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			req, _ := http.NewRequest("GET", u, nil)
			resp, err := rt.RoundTrip(req)
			if err != nil {
				t.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
		})
	}
	wg.Wait()
}

// TestMaxIdleConns pins the pool's size: with MaxIdleConns 1, two
// connections used at once leave one idle and the other closed.
func TestMaxIdleConns(t *testing.T) {
	srv := barrierServer(t, 2)
	tt := newTestTransport(t)
	tt.MaxIdleConns = 1
	concurrently(t, tt, srv.URL+"/", 2)
	if !wantDials(t, tt, 2) {
		t.FailNow()
	}
	wantIdle(t, tt, 1)
	srv.waitClosed(t, "the server to see one connection closed", 1)
}

// TestNewestIdleFirst pins the pool's order: the connection that went idle
// last is handed out first.
func TestNewestIdleFirst(t *testing.T) {
	srv := barrierServer(t, 2)
	tt := newTestTransport(t)
	tt.MaxIdleConns = 2
	concurrently(t, tt, srv.URL+"/", 2)
	tt.mu.Lock()
	if len(tt.idle) != 2 {
		tt.mu.Unlock()
		t.Fatalf("pool holds %d connections, want 2", len(tt.idle))
	}
	newest := tt.idle[1].nc
	tt.mu.Unlock()
	var got net.Conn
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		GotConn: func(i httptrace.GotConnInfo) { got = i.Conn },
	})
	do(t, tt, newReq(t, ctx, "GET", srv.URL+"/", nil))
	if got != newest {
		t.Error("the request did not get the newest idle connection")
	}
}

// TestMaxIdleConnsZero pins that MaxIdleConns 0 keeps no connection: each
// is closed after its exchange and each request dials.
func TestMaxIdleConnsZero(t *testing.T) {
	srv := newCountingServer(t, reply("ok"))
	tt := newTestTransport(t)
	tt.MaxIdleConns = 0
	rec := &recorder{}
	for range 2 {
		do(t, tt, newReq(t, rec.ctx(context.Background()), "GET", srv.URL+"/", nil))
		if !wantIdle(t, tt, 0) {
			t.FailNow()
		}
	}
	wantReused(t, rec, []bool{false, false})
	srv.waitClosed(t, "the server to see both connections closed", 2)
}

// TestIdleConnTimeoutOnTake pins that a connection idle for longer than
// IdleConnTimeout is not handed out (checked when a request takes from the
// pool, independently of the sweeper): it is closed and a new one dialed.
func TestIdleConnTimeoutOnTake(t *testing.T) {
	srv := newCountingServer(t, reply("ok"))
	tt := newTestTransport(t)
	tt.IdleConnTimeout = time.Hour // the sweeper does not fire during the test
	do(t, tt, newReq(t, context.Background(), "GET", srv.URL+"/", nil))
	tt.mu.Lock()
	tt.idle[0].idleAt = time.Now().Add(-2 * time.Hour)
	tt.mu.Unlock()
	rec := &recorder{}
	do(t, tt, newReq(t, rec.ctx(context.Background()), "GET", srv.URL+"/", nil))
	wantReused(t, rec, []bool{false}, "an expired connection was reused")
	srv.waitClosed(t, "the server to see the expired connection closed", 1)
}

// TestIdleConnSweeper pins the sweeper: with no further request, a
// connection idle for IdleConnTimeout is closed and leaves the pool.
func TestIdleConnSweeper(t *testing.T) {
	srv := newCountingServer(t, reply("ok"))
	tt := newTestTransport(t)
	tt.IdleConnTimeout = 50 * time.Millisecond
	do(t, tt, newReq(t, context.Background(), "GET", srv.URL+"/", nil))
	srv.waitClosed(t, "the sweeper to close the idle connection", 1)
	wantIdle(t, tt, 0, "after the sweep")
	// The pool still works, and the sweeper arms again.
	do(t, tt, newReq(t, context.Background(), "GET", srv.URL+"/", nil))
	srv.waitClosed(t, "the sweeper to close the second idle connection", 2)
}

// TestCloseIdleConnections pins CloseIdleConnections: it closes the idle
// connections and calls the Fallback's CloseIdleConnections.
func TestCloseIdleConnections(t *testing.T) {
	srv := newCountingServer(t, reply("ok"))
	tt := newTestTransport(t)
	do(t, tt, newReq(t, context.Background(), "GET", srv.URL+"/", nil))
	if !wantIdle(t, tt, 1) {
		t.FailNow()
	}
	tt.CloseIdleConnections()
	wantIdle(t, tt, 0, "after CloseIdleConnections")
	if n := tt.fallback.closeIdle.Load(); n != 1 {
		t.Errorf("Fallback's CloseIdleConnections called %d times, want 1", n)
	}
	srv.waitClosed(t, "the server to see the connection closed", 1)
}

// ---------------------------------------------------------------------------
// 10. Body semantics.
// ---------------------------------------------------------------------------

// TestBodyCloseBeforeEOF pins that closing a body before its end closes
// the connection (it is not drained into the pool): the next request
// dials.
func TestBodyCloseBeforeEOF(t *testing.T) {
	big := strings.Repeat("z", 100_000)
	srv := newCountingServer(t, reply(big))
	tt := newTestTransport(t)
	rec := &recorder{}
	resp := mustRoundTrip(t, tt, newReq(t, rec.ctx(context.Background()), "GET", srv.URL+"/", nil))
	if _, err := io.ReadFull(resp.Body, make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	if err := resp.Body.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	wantIdle(t, tt, 0, "after an early Close")
	srv.waitClosed(t, "the server to see the connection closed", 1)
	do(t, tt, newReq(t, rec.ctx(context.Background()), "GET", srv.URL+"/", nil))
	wantReused(t, rec, []bool{false, false})
}

// TestBodyReadAfterEOF pins that a body read to its end keeps returning
// io.EOF, and that the connection is pooled once only, however often Read
// and Close are called after the end.
func TestBodyReadAfterEOF(t *testing.T) {
	srv := newCountingServer(t, reply("hello"))
	tt := newTestTransport(t)
	resp := mustRoundTrip(t, tt, newReq(t, context.Background(), "GET", srv.URL+"/", nil))
	if b, err := io.ReadAll(resp.Body); err != nil || string(b) != "hello" {
		t.Fatalf("ReadAll %q %v", b, err)
	}
	for range 2 {
		if n, err := resp.Body.Read(make([]byte, 8)); n != 0 || err != io.EOF {
			t.Errorf("Read after EOF: %d, %v; want 0, io.EOF", n, err)
		}
	}
	_ = resp.Body.Close()
	_ = resp.Body.Close()
	wantIdle(t, tt, 1)
}

// TestBodyReadAfterClose pins that Read on a closed body is an error (not
// io.EOF, not data), and that the connection was closed.
func TestBodyReadAfterClose(t *testing.T) {
	srv := newCountingServer(t, reply("hello"))
	tt := newTestTransport(t)
	resp := mustRoundTrip(t, tt, newReq(t, context.Background(), "GET", srv.URL+"/", nil))
	_ = resp.Body.Close()
	if n, err := resp.Body.Read(make([]byte, 8)); n != 0 || err == nil || err == io.EOF {
		t.Errorf("Read after Close: %d, %v; want 0 and an error", n, err)
	}
	wantIdle(t, tt, 0)
}

// TestRequestBodyClosed pins that RoundTrip always closes the request
// body: on success, on a dial error, and when the exchange fails and is
// not replayed; and that a replay closes both the original body and the
// one GetBody made.
func TestRequestBodyClosed(t *testing.T) {
	newBodyReq := func(t *testing.T, u string) (*http.Request, *trackBody) {
		b := &trackBody{r: strings.NewReader("payload")}
		r := newReq(t, context.Background(), "POST", u, b)
		r.ContentLength = int64(len("payload"))
		return r, b
	}
	t.Run("success", func(t *testing.T) {
		srv := newCountingServer(t, echo)
		tt := newTestTransport(t)
		req, b := newBodyReq(t, srv.URL+"/")
		if _, body := do(t, tt, req); body != "payload" {
			t.Errorf("body %q", body)
		}
		b.wantClosed(t)
	})
	t.Run("dial error", func(t *testing.T) {
		tt := newTestTransport(t)
		tt.DialContext = func(context.Context, string, string) (net.Conn, error) {
			return nil, errors.New("dial refused (test)")
		}
		req, b := newBodyReq(t, "http://127.0.0.1:1/")
		_ = roundTripErr(t, tt, req, "RoundTrip succeeded")
		b.wantClosed(t)
	})
	t.Run("failed, not replayed", func(t *testing.T) {
		srv := newRawServer(t, func(i int, c net.Conn) {
			if _, _, err := readRequest(bufio.NewReader(c)); err == nil {
				_ = c.Close()
			}
		})
		tt := newTestTransport(t)
		req, b := newBodyReq(t, srv.url+"/")
		_ = roundTripErr(t, tt, req, "RoundTrip succeeded")
		b.wantClosed(t)
	})
	t.Run("replayed", func(t *testing.T) {
		srv := newReplayServer(t, func(c net.Conn) { _ = c.Close() })
		tt := newTestTransport(t)
		do(t, tt, newReq(t, context.Background(), "GET", srv.url+"/", nil))
		req, first := newBodyReq(t, srv.url+"/")
		req.Header.Set("Idempotency-Key", "k")
		second := &trackBody{r: strings.NewReader("payload")}
		req.GetBody = func() (io.ReadCloser, error) { return second, nil }
		if _, body := do(t, tt, req); body != "replayed" {
			t.Fatalf("body %q, want replayed", body)
		}
		if first.closed.Load() == 0 || second.closed.Load() == 0 {
			t.Errorf("bodies closed: original %d, GetBody's %d; want both", first.closed.Load(), second.closed.Load())
		}
	})
}

// ---------------------------------------------------------------------------
// 11. Concurrency.
// ---------------------------------------------------------------------------

// TestConcurrentRequests pins concurrent use of one Transport: 50
// goroutines each sending 20 small POSTs all succeed with their own body
// echoed, and no more connections are dialed than requests are ever in
// flight at once (50).
func TestConcurrentRequests(t *testing.T) {
	srv := newCountingServer(t, echo)
	tt := newTestTransport(t)
	tt.MaxIdleConns = 64
	const goroutines, perG = 50, 20
	var wg sync.WaitGroup
	var failures atomic.Int32
	for g := range goroutines {
		wg.Go(func() {
			for i := range perG {
				want := fmt.Sprintf("goroutine %d request %d", g, i)
				req, _ := http.NewRequest("POST", srv.URL+"/echo", strings.NewReader(want))
				resp, err := tt.RoundTrip(req)
				if err != nil {
					failures.Add(1)
					t.Errorf("%s: %v", want, err)
					return
				}
				b, err := io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				if err != nil || string(b) != want {
					failures.Add(1)
					t.Errorf("%s: echoed %q, %v", want, b, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if n := tt.dials.Load(); n > goroutines {
		t.Errorf("dialed %d connections for %d concurrent senders", n, goroutines)
	}
	wantNoFallback(t, tt)
}

// ---------------------------------------------------------------------------
// 12. Behind httputil.ReverseProxy.
// ---------------------------------------------------------------------------

// countingRT counts the requests it passes to rt.
type countingRT struct {
	rt http.RoundTripper
	n  atomic.Int32
}

func (c *countingRT) RoundTrip(req *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.rt.RoundTrip(req)
}

// TestReverseProxy pins the transport behind httputil.ReverseProxy, as the
// sidecar uses it: a proxied POST reaches the upstream and its answer the
// client, and a 103 Early Hints from the upstream is forwarded to the
// client (the ReverseProxy passes on what Got1xxResponse gives it); both
// are sent by this transport, not its Fallback.
func TestReverseProxy(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/echo":
			b, _ := io.ReadAll(r.Body)
			w.Header().Set("X-Upstream-Method", r.Method)
			_, _ = w.Write(b)
		case "/hints":
			w.Header().Set("Link", "</style.css>; rel=preload; as=style")
			w.WriteHeader(http.StatusEarlyHints)
			w.Header().Del("Link")
			_, _ = io.WriteString(w, "final")
		}
	}))
	t.Cleanup(upstream.Close)
	target, _ := url.Parse(upstream.URL)
	std := &http.Transport{}
	fallback := &countingRT{rt: std}
	var d net.Dialer
	tr := &Transport{DialContext: d.DialContext, Fallback: fallback, MaxIdleConns: 4}
	t.Cleanup(func() { tr.CloseIdleConnections(); std.CloseIdleConnections() })
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.Transport = tr
	front := httptest.NewServer(proxy)
	t.Cleanup(front.Close)
	clientTr := &http.Transport{}
	t.Cleanup(clientTr.CloseIdleConnections)
	client := &http.Client{Transport: clientTr}

	resp, err := client.Post(front.URL+"/echo", "text/plain", strings.NewReader("proxied body"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "proxied body" || resp.Header.Get("X-Upstream-Method") != "POST" {
		t.Errorf("POST through the proxy: status %d body %q method %q", resp.StatusCode, b, resp.Header.Get("X-Upstream-Method"))
	}

	var mu sync.Mutex
	var hints []string
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
			mu.Lock()
			hints = append(hints, fmt.Sprintf("%d %s", code, h.Get("Link")))
			mu.Unlock()
			return nil
		},
	})
	resp, err = client.Do(newReq(t, ctx, "GET", front.URL+"/hints", nil))
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "final" {
		t.Errorf("hints: status %d body %q", resp.StatusCode, b)
	}
	mu.Lock()
	got := slices.Clone(hints)
	mu.Unlock()
	if want := []string{"103 </style.css>; rel=preload; as=style"}; !slices.Equal(got, want) {
		t.Errorf("client got 1xx %q, want %q", got, want)
	}
	if n := fallback.n.Load(); n != 0 {
		t.Errorf("Fallback sent %d requests, want 0", n)
	}
}
