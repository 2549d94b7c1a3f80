package proxy

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"opscore-sidecar/policy"
	"opscore-sidecar/proxy/config"
	"opscore-sidecar/proxy/proxytest"
)

// readResponse reads one HTTP response from c (with a bound on the wait)
// and its body.
func readResponse(t *testing.T, c net.Conn, method string) (*http.Response, string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// waitFor polls cond until it holds (or fails the test after 10 s); it
// orders events, it does not measure time.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// TestSlowBodyHoldsNoSlot: a client that sends its body slowly does not
// hold a concurrency slot while it sends (docs/sidecar.md, "Security").
// With a single slot, a second request is served while the slow one is
// still sending; the slow one gets 408 problem+json at
// server.body_read_timeout and never reaches the upstream.
func TestSlowBodyHoldsNoSlot(t *testing.T) {
	up := proxytest.New(t, proxytest.OK())
	cfg := testConfig(up.URL)
	cfg.Admission.Concurrency = policy.ConcurrencyConfig{Limit: 1, Mode: policy.ModeEnforce}
	cfg.Server.BodyReadTimeout = time.Second
	env := startSidecar(t, cfg)

	slow := dialRaw(t, env.srv.ProxyAddr())
	if _, err := io.WriteString(slow, "POST /v1/opscore/agent/a/state HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the slow request in flight", func() bool {
		return testutil.ToFloat64(env.srv.Metrics.Inflight.WithLabelValues(config.RouteStateUpdate)) == 1
	})

	resp, body := do(t, newRequest(t, "POST", env.url+"/v1/opscore/internal/agent/notify", strings.NewReader("{}")))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("a request beside the slow body: got %d %s, want 200 (the slow body must not hold the only slot)", resp.StatusCode, body)
	}

	resp, body = readResponse(t, slow, "POST")
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("slow body: got %d %s, want 408", resp.StatusCode, body)
	}
	if p := decodeProblem(t, resp, body); p.Type != ProblemTypeBase+"bad_request" || p.Reason != reasonBodyTimeout {
		t.Errorf("slow body problem: got %+v, want bad_request/%s", p, reasonBodyTimeout)
	}
	if n := len(up.Requests()); n != 1 {
		t.Errorf("upstream saw %d requests, want 1 (the slow body never reaches it)", n)
	}
	if got := testutil.ToFloat64(env.srv.Metrics.Requests.WithLabelValues(config.RouteStateUpdate, "bulk", "408", "bad_request")); got != 1 {
		t.Errorf("requests_total{code=408,outcome=bad_request} = %v, want 1", got)
	}
}

// TestBadBodyFramingIs400: a malformed chunked body is the client's fault:
// 400 bad_request problem+json (never 502 upstream_error, never a "499"
// status line), and the breaker counts no failure (docs/sidecar.md,
// "Security"). The body goes wrong while the body step buffers it, while
// it is streamed upstream (larger than buffer_limit), and while the auth
// layer reads it to verify a signature.
func TestBadBodyFramingIs400(t *testing.T) {
	const secretEnv = "TEST_REQHARD_WEBHOOK_SECRET"
	t.Setenv(secretEnv, "s3cret")
	const head = "POST /v1/opscore/internal/agent/notify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
	tests := []struct {
		name   string
		mutate func(*config.RouteConfig)
		raw    string
	}{
		{"buffered", nil, head + "\r\nzz\r\n{}\r\n0\r\n\r\n"},
		{"streamed", func(rc *config.RouteConfig) { rc.Retry.BufferLimit = 16 },
			head + "\r\n20\r\n" + strings.Repeat("x", 32) + "\r\nzz\r\n{}\r\n0\r\n\r\n"},
		{"signed", func(rc *config.RouteConfig) {
			rc.WebhookAuth.Mode, rc.WebhookAuth.SecretEnv = policy.AuthRequired, secretEnv
		}, head + "X-AgentKit-Timestamp: " + strconv.FormatInt(time.Now().Unix(), 10) + "\r\n" +
			"X-AgentKit-Signature: " + strings.Repeat("ab", 32) + "\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := proxytest.New(t, proxytest.OK())
			cfg := testConfig(up.URL)
			rc := cfg.Routes[config.RouteNotify]
			rc.Breaker.Enabled, rc.Breaker.ConsecutiveFailures = true, 1
			if tt.mutate != nil {
				tt.mutate(&rc)
			}
			cfg.Routes[config.RouteNotify] = rc
			env := startSidecar(t, cfg)

			c := dialRaw(t, env.srv.ProxyAddr())
			if _, err := io.WriteString(c, tt.raw); err != nil {
				t.Fatal(err)
			}
			resp, body := readResponse(t, c, "POST")
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("got %d %s, want 400", resp.StatusCode, body)
			}
			if p := decodeProblem(t, resp, body); p.Type != ProblemTypeBase+"bad_request" || p.Reason != reasonMalformedBody {
				t.Errorf("problem: got %+v, want bad_request/%s", p, reasonMalformedBody)
			}
			b := env.srv.Sidecar.Snapshot().Runtime[config.RouteNotify].Breaker
			if f := b.Counts().Failures; f != 0 {
				t.Errorf("breaker counted %d failures, want 0 for a client's bad framing", f)
			}
			if got := testutil.ToFloat64(env.srv.Metrics.Requests.WithLabelValues(config.RouteNotify, "critical", "400", "bad_request")); got != 1 {
				t.Errorf("requests_total{code=400,outcome=bad_request} = %v, want 1", got)
			}
			for _, res := range []string{"error", "reset", "closed", "refused", "timeout"} {
				if got := testutil.ToFloat64(env.srv.Metrics.UpstreamAttempts.WithLabelValues(config.RouteNotify, res)); got != 0 {
					t.Errorf("upstream_attempts_total{result=%s} = %v, want 0: the upstream is not to blame", res, got)
				}
			}
		})
	}
}

// TestClientClosedWritesNoStatusLine: a client that goes away while its
// request waits is logged as 499, but 499 is never written: the handler
// aborts, so nothing (no "499" status line, no default 200) is sent.
func TestClientClosedWritesNoStatusLine(t *testing.T) {
	arrived := make(chan struct{})
	up := proxytest.New(t, proxytest.Hang().Signal(arrived))
	s, m := newTestSidecar(t, testConfig(up.URL))
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-arrived; cancel() }()
	rec := serve(ctx, s, "GET", "/v1/opscore/agent/a/state", "")
	if rec.Code != codeAborted || rec.Body.Len() != 0 {
		t.Fatalf("got code %d body %q, want the handler aborted with nothing written", rec.Code, rec.Body)
	}
	if got := testutil.ToFloat64(m.Requests.WithLabelValues(config.RouteStateGet, "bulk", "499", "client_closed")); got != 1 {
		t.Errorf("requests_total{code=499,outcome=client_closed} = %v, want 1", got)
	}
}

// TestPreReadBodyIsReused: the body step's bytes are what the retry layer
// sends, on every attempt, without reading the client twice.
func TestPreReadBodyIsReused(t *testing.T) {
	up := proxytest.New(t, proxytest.Respond(503, "busy"), proxytest.OK())
	cfg := testConfig(up.URL)
	route(cfg, config.RouteNotify, func(rc *config.RouteConfig) {
		rc.Retry.Attempts, rc.Retry.BackoffBase, rc.Retry.BackoffMax = 2, time.Millisecond, time.Millisecond
	})
	s, _ := newTestSidecar(t, cfg)
	rec := serve(context.Background(), s, "POST", pathNotify, `{"event_type":"REGISTER"}`)
	if rec.Code != 200 {
		t.Fatalf("got %d %s, want 200 after a retry", rec.Code, rec.Body)
	}
	reqs := up.Requests()
	if len(reqs) != 2 {
		t.Fatalf("upstream saw %d requests, want 2", len(reqs))
	}
	for i, r := range reqs {
		if r.ContentLength != int64(len(`{"event_type":"REGISTER"}`)) {
			t.Errorf("attempt %d: Content-Length %d, want the whole body's", i+1, r.ContentLength)
		}
	}
}

func TestPreReadStreamsTheRestOfALargeBody(t *testing.T) {
	body := strings.Repeat("a", 40)
	pb, err := preRead(io.NopCloser(strings.NewReader(body)), -1, 16)
	if err != nil {
		t.Fatal(err)
	}
	if pb.complete || len(pb.buf) != 17 {
		t.Fatalf("pre-read %d bytes, complete %v; want 17 (limit+1), incomplete", len(pb.buf), pb.complete)
	}
	rb := pb.retryBody(16)
	if rb.replayable() {
		t.Error("a body over the buffer limit must be streamed, not replayed")
	}
	got, _ := io.ReadAll(rb.stream)
	if string(got) != body {
		t.Errorf("streamed %q, want the whole body", got)
	}
}

// TestBodyDeadlineEndsWithTheBody: once the body is in, no read deadline
// applies: an upstream slower than server.body_read_timeout (and than
// server.read_timeout) still answers. net/http clears the connection's
// read deadline when it starts its background read at the body's end; a
// deadline set again after that would cancel the request when it fired.
func TestBodyDeadlineEndsWithTheBody(t *testing.T) {
	up := proxytest.New(t, proxytest.OK().Delayed(1500*time.Millisecond))
	cfg := testConfig(up.URL)
	cfg.Server.BodyReadTimeout = 300 * time.Millisecond
	cfg.Server.ReadTimeout = time.Second // nor the server's own read deadline
	env := startSidecar(t, cfg)
	for _, chunked := range []bool{false, true} {
		var body io.Reader = strings.NewReader(`{"state":"idle"}`)
		if chunked {
			body = io.MultiReader(body) // unknown length: sent chunked
		}
		resp, b := do(t, newRequest(t, "POST", env.url+"/v1/opscore/agent/a/state", body))
		if resp.StatusCode != http.StatusOK {
			t.Errorf("chunked=%v: got %d %s, want 200 from an upstream slower than the body deadline", chunked, resp.StatusCode, b)
		}
	}
}

// TestDeclaredLengthIsNotTrustedForMemory: a body that declares a megabyte
// and sends one byte is read into a buffer that grows with the bytes
// received, not one of the declared length (many such connections would
// otherwise reserve gigabytes): the first read offers at most a chunk.
func TestDeclaredLengthIsNotTrustedForMemory(t *testing.T) {
	r := &firstReadSize{}
	if _, err := preRead(r, 1<<20, 1<<20); err == nil {
		t.Fatal("a body shorter than its Content-Length: got no error")
	}
	if r.first == 0 || r.first > 2*preReadChunk {
		t.Errorf("first read offered %d bytes for a declared 1 MiB, want at most %d", r.first, 2*preReadChunk)
	}
}

// firstReadSize sends one byte, then ends early, and records how large a
// buffer its first Read was given.
type firstReadSize struct{ first, calls int }

func (r *firstReadSize) Read(p []byte) (int, error) {
	r.calls++
	if r.calls == 1 {
		r.first = len(p)
		p[0] = 'x'
		return 1, nil
	}
	return 0, io.EOF
}

func (r *firstReadSize) Close() error { return nil }

// The retry layer sends the bytes the body step read, without a second
// copy, although the ReverseProxy hands it the body inside a wrapper of
// its own (here: io.NopCloser). A pre-read body someone has read from is
// not taken: the request's Body is then read as it is.
func TestRetryLayerTakesThePreReadBody(t *testing.T) {
	const body = `{"state":"idle"}`
	newReq := func() (*http.Request, *RequestInfo, *preReadBody) {
		pb, err := preRead(io.NopCloser(strings.NewReader(body)), int64(len(body)), 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest(http.MethodPost, "/", nil)
		req.Body, req.ContentLength = io.NopCloser(pb), int64(len(body))
		return req, &RequestInfo{preRead: pb}, pb
	}

	req, info, pb := newReq()
	rb, err := bufferBody(req, info, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if string(rb.buf) != body || &rb.buf[0] != &pb.buf[0] {
		t.Errorf("retry body %q is a copy (or other bytes), want the pre-read buffer itself", rb.buf)
	}
	if info.takePreRead() != nil {
		t.Error("the pre-read body was taken twice")
	}

	req, info, pb = newReq()
	if _, err := req.Body.Read(nil); err != nil { // read from, though nothing consumed
		t.Fatal(err)
	}
	rb, err = bufferBody(req, info, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if string(rb.buf) != body || &rb.buf[0] == &pb.buf[0] {
		t.Errorf("after a read of the pre-read body, the retry layer sent %q, from the pre-read buffer: %v; want the body, read from the request", rb.buf, &rb.buf[0] == &pb.buf[0])
	}

	// Too large to buffer: streamed through the request's own Body (the
	// ReverseProxy's wrapper), whole, pre-read part first.
	long := strings.Repeat("y", 40)
	pb, err = preRead(io.NopCloser(strings.NewReader(long)), -1, 16)
	if err != nil {
		t.Fatal(err)
	}
	req = httptest.NewRequest(http.MethodPost, "/", nil)
	wrapper := io.NopCloser(pb)
	req.Body, req.ContentLength = wrapper, -1
	rb, err = bufferBody(req, &RequestInfo{preRead: pb}, 16)
	if err != nil {
		t.Fatal(err)
	}
	if rb.replayable() {
		t.Fatal("a body over the buffer limit must be streamed")
	}
	if got, _ := io.ReadAll(rb.stream); string(got) != long {
		t.Errorf("streamed %q, want the whole body", got)
	}
}
