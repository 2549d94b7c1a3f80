package proxy

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"opscore-sidecar/policy"
	"opscore-sidecar/proxy/config"
	"opscore-sidecar/proxy/proxytest"
)

// TestTraceIDSameAtClientAccessLogAndUpstream: an incoming traceparent is
// continued; the access log, the spans and the upstream's traceparent all
// carry its trace id, and the upstream's parent is the attempt span.
func TestTraceIDSameAtClientAccessLogAndUpstream(t *testing.T) {
	up := proxytest.New(t, proxytest.OK())
	env := startSidecar(t, testConfig(up.URL))
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	req := newRequest(t, "POST", env.url+"/v1/opscore/agent/a1/state", strings.NewReader("{}"))
	req.Header.Set("traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	resp, _ := do(t, req)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200", resp.StatusCode)
	}

	upTP := up.Requests()[0].Header.Get("traceparent")
	parts := strings.Split(upTP, "-")
	if len(parts) != 4 || parts[1] != traceID {
		t.Fatalf("upstream traceparent: got %q, want trace id %s", upTP, traceID)
	}
	lines := env.access.lines(t)
	if len(lines) != 1 || lines[0]["trace_id"] != traceID {
		t.Fatalf("access log: got %v, want one line with trace_id %s", lines, traceID)
	}
	for _, k := range []string{"request_id", "route", "method", "status", "outcome", "attempts", "upstream_status", "duration_ms", "upstream_ms", "bytes_in", "bytes_out"} {
		if _, ok := lines[0][k]; !ok {
			t.Errorf("access log line lacks %q: %v", k, lines[0])
		}
	}
	if lines[0]["route"] != config.RouteStateUpdate || lines[0]["outcome"] != "forwarded" {
		t.Errorf("access log route/outcome: got %v/%v, want state_update/forwarded", lines[0]["route"], lines[0]["outcome"])
	}

	spans := env.spans.Ended()
	if len(spans) != 2 {
		t.Fatalf("spans: got %d, want 2 (server + one attempt)", len(spans))
	}
	var server, attempt, attemptParent trace.SpanContext
	for _, s := range spans {
		if s.SpanContext().TraceID().String() != traceID {
			t.Errorf("span %q trace id %s, want %s", s.Name(), s.SpanContext().TraceID(), traceID)
		}
		switch s.SpanKind() {
		case trace.SpanKindServer:
			server = s.SpanContext()
			if s.Parent().SpanID().String() != "00f067aa0ba902b7" {
				t.Errorf("server span parent: got %s, want the caller's 00f067aa0ba902b7", s.Parent().SpanID())
			}
		case trace.SpanKindClient:
			attempt, attemptParent = s.SpanContext(), s.Parent()
		}
	}
	if !server.IsValid() || !attempt.IsValid() {
		t.Fatalf("want one server and one client span, got %v", spans)
	}
	if attemptParent.SpanID() != server.SpanID() {
		t.Errorf("attempt span parent: got %s, want the server span %s", attemptParent.SpanID(), server.SpanID())
	}
	if parts[2] != attempt.SpanID().String() {
		t.Errorf("upstream parent span: got %s, want the attempt span %s", parts[2], attempt.SpanID())
	}
}

func TestTraceStartedWhenNoTraceparent(t *testing.T) {
	up := proxytest.New(t, proxytest.OK())
	env := startSidecar(t, testConfig(up.URL))
	do(t, newRequest(t, "GET", env.url+"/health", nil))
	tp := up.Requests()[0].Header.Get("traceparent")
	lines := env.access.lines(t)
	if len(lines) != 1 {
		t.Fatalf("access log: got %d lines, want 1", len(lines))
	}
	id, _ := lines[0]["trace_id"].(string)
	if len(id) != 32 || !strings.Contains(tp, id) {
		t.Errorf("upstream traceparent %q does not carry the logged trace id %q", tp, id)
	}
}

// TestNewTracingExportsOnlyWhenConfigured: with an OTLP endpoint (a base
// URL), Shutdown flushes the span to the collector's /v1/traces as OTLP
// protobuf (proxy/otlp); without one nothing is posted. The propagator is there either way.
func TestNewTracingExportsOnlyWhenConfigured(t *testing.T) {
	// The exporter reads these from the process environment; a machine
	// that has them set must not change what this test sees (empty is
	// unset for proxy/otlp).
	for _, v := range []string{"HEADERS", "TIMEOUT", "COMPRESSION", "CERTIFICATE", "CLIENT_CERTIFICATE", "CLIENT_KEY", "PROTOCOL"} {
		t.Setenv("OTEL_EXPORTER_OTLP_"+v, "")
		t.Setenv("OTEL_EXPORTER_OTLP_TRACES_"+v, "")
	}
	var mu sync.Mutex
	var posts []string
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Each post is recorded with the span names and service.name it
		// carries, decoded with the generated OTLP types.
		var req coltracepb.ExportTraceServiceRequest
		b, _ := io.ReadAll(r.Body)
		post := r.Method + " " + r.URL.Path + " " + r.Header.Get("Content-Type")
		if err := proto.Unmarshal(b, &req); err != nil {
			post += " undecodable: " + err.Error()
		}
		for _, rs := range req.ResourceSpans {
			for _, kv := range rs.Resource.GetAttributes() {
				if kv.Key == "service.name" {
					post += " service " + kv.Value.GetStringValue()
				}
			}
			for _, ss := range rs.ScopeSpans {
				for _, sp := range ss.Spans {
					post += " span " + sp.Name
				}
			}
		}
		mu.Lock()
		posts = append(posts, post)
		mu.Unlock()
	}))
	defer collector.Close()
	for _, tt := range []struct {
		endpoint string
		want     []string
	}{
		{"", nil},
		{collector.URL, []string{"POST /v1/traces application/x-protobuf service test span x"}},
	} {
		tr, err := NewTracing(t.Context(), config.TracingConfig{OTLPEndpoint: tt.endpoint, SampleRatio: 1, ServiceName: "test"}, nil)
		if err != nil {
			t.Fatalf("NewTracing(%q): %v", tt.endpoint, err)
		}
		if tr.Propagator == nil {
			t.Errorf("NewTracing(%q): no propagator; the W3C propagator must always be present", tt.endpoint)
		}
		_, span := tr.tracer.Start(t.Context(), "x")
		if !span.SpanContext().IsSampled() {
			t.Errorf("sample_ratio 1: span not sampled")
		}
		span.End()
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		if err := tr.Shutdown(ctx); err != nil {
			t.Errorf("NewTracing(%q): Shutdown: %v", tt.endpoint, err)
		}
		cancel()
		mu.Lock()
		if !slices.Equal(posts, tt.want) {
			t.Errorf("NewTracing(%q): collector got %q, want %q", tt.endpoint, posts, tt.want)
		}
		posts = nil
		mu.Unlock()
	}
}

func TestTracesURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"http://127.0.0.1:4318", "http://127.0.0.1:4318/v1/traces"},
		{"http://127.0.0.1:4318/", "http://127.0.0.1:4318/v1/traces"},
		{"http://jaeger:4318/v1/traces", "http://jaeger:4318/v1/traces"},
		{"https://collector.example/otlp/v1/traces", "https://collector.example/otlp/v1/traces"},
	}
	for _, tt := range tests {
		if got := tracesURL(tt.in); got != tt.want {
			t.Errorf("tracesURL(%q): got %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestBreakerRefusalIsAnAttemptSpan: an attempt the open breaker refuses
// is still recorded as a client span, with status breaker_open, though it
// never reaches the attempt layer (the breaker sits outside it, see
// chain.go).
func TestBreakerRefusalIsAnAttemptSpan(t *testing.T) {
	up := proxytest.New(t, proxytest.Respond(http.StatusInternalServerError, "down"))
	cfg := testConfig(up.URL)
	rc := cfg.Routes[config.RouteStateGet]
	rc.Breaker = policy.DefaultBreaker()
	rc.Breaker.ConsecutiveFailures, rc.Breaker.MinFailingTime = 1, 0
	cfg.Routes[config.RouteStateGet] = rc
	env := startSidecar(t, cfg)

	if resp, _ := do(t, newRequest(t, "GET", env.url+"/v1/opscore/agent/a1/state", nil)); resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("first request: status %d, want the upstream's 500", resp.StatusCode)
	}
	before := len(env.spans.Ended())
	if resp, _ := do(t, newRequest(t, "GET", env.url+"/v1/opscore/agent/a1/state", nil)); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("second request: status %d, want 503 breaker_open", resp.StatusCode)
	}
	if got := len(up.Requests()); got != 1 {
		t.Errorf("upstream saw %d requests, want 1 (the second was refused)", got)
	}
	var refused []string
	for _, s := range env.spans.Ended()[before:] {
		if s.SpanKind() == trace.SpanKindClient {
			refused = append(refused, s.Name()+" "+s.Status().Code.String()+" "+s.Status().Description)
		}
	}
	if want := []string{"upstream GET Error breaker_open"}; !slices.Equal(refused, want) {
		t.Errorf("client spans of the refused request %q, want %q", refused, want)
	}
}

// TestTracingExportFailureIsLogged: a batch the collector refuses is
// reported in the sidecar's own log, not through the standard log package.
func TestTracingExportFailureIsLogged(t *testing.T) {
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "schema mismatch", http.StatusBadRequest)
	}))
	defer collector.Close()
	var buf syncBuffer
	logger := slog.New(slog.NewJSONHandler(&buf, nil))
	tr, err := NewTracing(t.Context(), config.TracingConfig{OTLPEndpoint: collector.URL, SampleRatio: 1, ServiceName: "test"}, logger)
	if err != nil {
		t.Fatal(err)
	}
	_, span := tr.tracer.Start(t.Context(), "x")
	span.End()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_ = tr.Shutdown(ctx)
	if log := buf.String(); !strings.Contains(log, `"msg":"tracing: span export failed"`) || !strings.Contains(log, "400 Bad Request: schema mismatch") {
		t.Errorf("log %q, want the failed export with the collector's answer", log)
	}
}
