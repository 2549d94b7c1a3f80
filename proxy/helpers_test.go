package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"opscore-sidecar/metrics"
	"opscore-sidecar/proxy/config"
)

// syncBuffer is a bytes.Buffer safe for a logger and a test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// lines decodes the JSON lines written so far.
func (s *syncBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line is not JSON: %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

// testEnv is a started sidecar with its observability captured.
type testEnv struct {
	srv    *Server
	url    string // proxy base URL
	admin  string // admin base URL
	reg    *prometheus.Registry
	access *syncBuffer
	log    *syncBuffer
	spans  *tracetest.SpanRecorder
}

// testConfig returns defaults pointed at upstream, on loopback ports, with
// no drain delay, and with retries and breakers off, so that a test of
// the rest of the chain counts single attempts (the retry and breaker
// layers have their own tests).
func testConfig(upstream string) *config.Config {
	c := config.Defaults()
	c.Upstream.URL = upstream
	c.Listen, c.Admin.Listen = "127.0.0.1:0", "127.0.0.1:0"
	c.Server.DrainDelay = 0
	for name, rc := range c.Routes {
		rc.Retry.Attempts = 1
		rc.Breaker.Enabled = false
		c.Routes[name] = rc
	}
	return c
}

// startSidecar starts a sidecar for cfg and drains it when the test ends.
func startSidecar(t *testing.T, cfg *config.Config) *testEnv {
	t.Helper()
	return startWith(t, RunOptions{Config: cfg})
}

// startWith starts a sidecar with opts, its registry, tracing and logs
// replaced by the captured ones of the returned testEnv, and drains it
// when the test ends.
func startWith(t testing.TB, opts RunOptions) *testEnv {
	t.Helper()
	if err := opts.Config.Validate(); err != nil {
		t.Fatalf("test config invalid: %v", err)
	}
	if opts.Outbox == nil && opts.Config.Outbox.Backend == config.OutboxBolt {
		opts.Config.Outbox.Dir = t.TempDir() // never the working directory's data/
	}
	env := &testEnv{reg: prometheus.NewRegistry(), access: &syncBuffer{}, log: &syncBuffer{}, spans: tracetest.NewSpanRecorder()}
	tr, err := NewTracing(context.Background(), opts.Config.Tracing, nil, sdktrace.WithSpanProcessor(env.spans))
	if err != nil {
		t.Fatal(err)
	}
	opts.Registry, opts.Tracing = env.reg, tr
	opts.Logger = slog.New(slog.NewJSONHandler(env.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts.AccessLog = slog.New(slog.NewJSONHandler(env.access, nil))
	srv, err := Start(context.Background(), opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	env.srv = srv
	env.url = "http://" + srv.ProxyAddr()
	env.admin = "http://" + srv.AdminAddr()
	t.Cleanup(func() {
		if !srv.Sidecar.Draining() {
			if err := srv.Drain(); err != nil {
				t.Errorf("Drain: %v", err)
			}
		}
	})
	return env
}

// newTestSidecar validates cfg and builds a Sidecar (no listeners) with its
// own metrics registry, for tests that drive its Handler directly.
func newTestSidecar(t testing.TB, cfg *config.Config) (*Sidecar, *metrics.Metrics) {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	m := metrics.New(prometheus.NewRegistry())
	tr, err := NewTracing(context.Background(), cfg.Tracing, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, Deps{Metrics: m}, tr, nil)
	if err != nil {
		t.Fatalf("proxy.New: %v", err)
	}
	t.Cleanup(s.Close)
	return s, m
}

// do sends a request and returns the response with its body read.
func do(t *testing.T, req *http.Request) (*http.Response, string) {
	t.Helper()
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return resp, string(b)
}

func newRequest(t *testing.T, method, url string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// counter returns the value of a counter child.
func counter(t *testing.T, c prometheus.Collector) float64 {
	t.Helper()
	return testutil.ToFloat64(c)
}

// rawRequest writes raw bytes on a new connection to addr and returns what
// the server answered before closing (or before the timeout).
func rawRequest(t *testing.T, addr, raw string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(c)
	return string(b)
}

// dialRaw opens a TCP connection closed at the end of the test.
func dialRaw(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
