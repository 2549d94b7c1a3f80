package proxytest

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Step is what the upstream does with one request.
type Step struct {
	kind    stepKind
	status  int
	header  http.Header
	body    string
	length  int // the Content-Length a truncated answer declares
	wait    <-chan struct{}
	delay   time.Duration
	arrived chan<- struct{}
}

type stepKind int

const (
	kindRespond stepKind = iota
	kindReset
	kindClose
	kindHang
	kindTruncate
)

// Respond answers with status, body and the given header pairs
// ("Retry-After", "1", ...).
func Respond(status int, body string, headerPairs ...string) Step {
	h := http.Header{}
	for i := 0; i+1 < len(headerPairs); i += 2 {
		h.Add(headerPairs[i], headerPairs[i+1])
	}
	return Step{kind: kindRespond, status: status, body: body, header: h}
}

// OK answers 200 with body "ok".
func OK() Step { return Respond(http.StatusOK, "ok") }

// Reset reads the request and resets the connection (TCP RST) without answering.
func Reset() Step { return Step{kind: kindReset} }

// Close reads the request and closes the connection cleanly (FIN) without
// answering: "closed before response".
func Close() Step { return Step{kind: kindClose} }

// Truncate answers 200 with a Content-Length of 1000 but sends only 10
// bytes of body, then closes the connection: a short response cut mid-body.
func Truncate() Step { return Step{kind: kindTruncate, length: 1000, body: "0123456789"} }

// TruncateLarge answers 200 with a Content-Length of 1 MiB but sends only
// 128 KiB of body, then closes the connection: a large response cut
// mid-body, after the proxy has begun passing it on.
func TruncateLarge() Step {
	return Step{kind: kindTruncate, length: 1 << 20, body: strings.Repeat("x", 128<<10)}
}

// Hang reads the request and never answers; the connection stays open
// until the client gives up or the upstream is closed.
func Hang() Step { return Step{kind: kindHang} }

// After makes s wait until ch is closed before acting.
func (s Step) After(ch <-chan struct{}) Step { s.wait = ch; return s }

// Delayed makes s wait d before acting (a slow upstream; use After when
// the test must control the moment).
func (s Step) Delayed(d time.Duration) Step { s.delay = d; return s }

// Signal makes the upstream close ch when the request has arrived, before
// acting on it, so a test knows the request is in flight.
func (s Step) Signal(ch chan<- struct{}) Step { s.arrived = ch; return s }

// Upstream is a scripted HTTP/1.1 upstream on 127.0.0.1. Each request
// takes the next step of the script; once the script is spent, the last
// step repeats. It records every request it read.
type Upstream struct {
	// URL is the upstream's base URL, e.g. "http://127.0.0.1:34567".
	URL string

	ln    net.Listener
	done  chan struct{}
	wg    sync.WaitGroup
	mu    sync.Mutex
	steps []Step
	next  int
	reqs  []*http.Request
	conns map[net.Conn]bool
}

// New starts an upstream running script (at least one step) and closes it
// when the test ends.
func New(t testing.TB, script ...Step) *Upstream {
	t.Helper()
	if len(script) == 0 {
		t.Fatal("proxytest.New: empty script")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxytest: listen: %v", err)
	}
	u := &Upstream{URL: "http://" + ln.Addr().String(), ln: ln, done: make(chan struct{}), steps: script, conns: map[net.Conn]bool{}}
	u.wg.Add(1)
	go u.accept()
	t.Cleanup(u.Close)
	return u
}

// Requests returns the requests read so far (bodies already consumed).
func (u *Upstream) Requests() []*http.Request {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]*http.Request(nil), u.reqs...)
}

// Close stops the upstream and closes every connection.
func (u *Upstream) Close() {
	select {
	case <-u.done:
		return
	default:
	}
	close(u.done)
	u.ln.Close()
	u.mu.Lock()
	for c := range u.conns {
		c.Close()
	}
	u.mu.Unlock()
	u.wg.Wait()
}

func (u *Upstream) accept() {
	defer u.wg.Done()
	for {
		c, err := u.ln.Accept()
		if err != nil {
			return
		}
		u.mu.Lock()
		u.conns[c] = true
		u.mu.Unlock()
		u.wg.Add(1)
		go u.serve(c)
	}
}

func (u *Upstream) serve(c net.Conn) {
	defer u.wg.Done()
	defer func() {
		u.mu.Lock()
		delete(u.conns, c)
		u.mu.Unlock()
		c.Close()
	}()
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, req.Body)
		u.mu.Lock()
		u.reqs = append(u.reqs, req)
		step := u.steps[min(u.next, len(u.steps)-1)]
		u.next++
		u.mu.Unlock()
		if step.arrived != nil {
			close(step.arrived)
		}
		if !u.pause(step) {
			return
		}
		switch step.kind {
		case kindReset:
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
			return
		case kindClose:
			return
		case kindHang:
			<-u.done
			return
		case kindTruncate:
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: "+strconv.Itoa(step.length)+"\r\nContent-Type: text/plain\r\n\r\n"+step.body)
			return
		}
		if err := writeResponse(c, step); err != nil {
			return
		}
	}
}

// pause waits for the step's signal or delay; false means the upstream closed.
func (u *Upstream) pause(s Step) bool {
	if s.wait != nil {
		select {
		case <-s.wait:
		case <-u.done:
			return false
		}
	}
	if s.delay > 0 {
		t := time.NewTimer(s.delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-u.done:
			return false
		}
	}
	return true
}

func writeResponse(c net.Conn, s Step) error {
	bw := bufio.NewWriter(c)
	bw.WriteString("HTTP/1.1 " + strconv.Itoa(s.status) + " " + http.StatusText(s.status) + "\r\n")
	h := s.header.Clone()
	h.Set("Content-Length", strconv.Itoa(len(s.body)))
	if h.Get("Content-Type") == "" {
		h.Set("Content-Type", "text/plain")
	}
	_ = h.Write(bw)
	bw.WriteString("\r\n" + s.body)
	return bw.Flush()
}

// RefusingURL returns the URL of a 127.0.0.1 port on which nothing
// listens, so every connection is refused.
func RefusingURL(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxytest: listen: %v", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}
