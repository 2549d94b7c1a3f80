package opscore

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestChunkedBodyOverLimitGets413 sends a body of unknown length, so the
// limit is enforced while reading rather than from Content-Length.
func TestChunkedBodyOverLimitGets413(t *testing.T) {
	svc, _ := newTestService(t, NewMemoryStore())
	body := io.MultiReader(strings.NewReader(`{"pad":"`), strings.NewReader(strings.Repeat("a", MaxBodyBytes)), strings.NewReader(`"}`))
	req := httptest.NewRequest("POST", pNotify, io.NopCloser(body))
	req.ContentLength = -1
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	svc.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("got status %d (%s), want 413", rec.Code, rec.Body.String())
	}
	if rec.Header().Get("Connection") != "close" {
		t.Fatalf("got Connection %q, want close", rec.Header().Get("Connection"))
	}
}

// TestPythonFloatMatchesPythonStr pins X-Process-Time's format to Python's
// str(float), which the original sends.
func TestPythonFloatMatchesPythonStr(t *testing.T) {
	tests := []struct {
		in   float64
		want string
	}{
		{0.0021457672119140625, "0.0021457672119140625"}, // the original's own example
		{4.487e-06, "4.487e-06"},
		{0.0001, "0.0001"},
		{0.00009, "9e-05"},
		{1, "1.0"},
		{0, "0.0"},
		{12.5, "12.5"},
	}
	for _, tt := range tests {
		if got := pythonFloat(tt.in); got != tt.want {
			t.Errorf("pythonFloat(%v): got %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestProcessTimeHeaderIsSeconds(t *testing.T) {
	svc, _ := newTestService(t, NewMemoryStore())
	r := call(t, svc.Handler(), "GET", "/health", "", false)
	v, err := strconv.ParseFloat(r.header.Get("X-Process-Time"), 64)
	if err != nil || v < 0 || v > 60 {
		t.Fatalf("X-Process-Time: got %q, want a small number of seconds", r.header.Get("X-Process-Time"))
	}
}

// registererOnly hides the Gatherer side of a registry.
type registererOnly struct{ prometheus.Registerer }

func TestMetricsEndpointOnlyWithAGatherer(t *testing.T) {
	tests := []struct {
		name string
		reg  prometheus.Registerer
		want int
	}{
		{"private registry", nil, 200},
		{"caller's registry", prometheus.NewRegistry(), 200},
		{"registerer without gatherer", registererOnly{prometheus.NewRegistry()}, 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc, err := New(Options{Registerer: tt.reg, Logger: discardLogger()})
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			r := call(t, svc.Handler(), "GET", "/metrics", "", false)
			if r.status != tt.want {
				t.Fatalf("GET /metrics: got %d, want %d", r.status, tt.want)
			}
			if tt.want == 200 && !strings.Contains(r.body, "opscore_http_requests_total") {
				t.Fatalf("GET /metrics: got %.200s..., want the core's families", r.body)
			}
		})
	}
}

func TestNewHTTPServerLimits(t *testing.T) {
	c := DefaultConfig()
	c.IdleTimeout = 5 * time.Second
	srv := NewHTTPServer(c, http.NotFoundHandler())
	if srv.IdleTimeout != 5*time.Second || srv.ReadHeaderTimeout != 5*time.Second ||
		srv.ReadTimeout != 30*time.Second || srv.MaxHeaderBytes != 64<<10 || srv.Addr != ":8000" {
		t.Fatalf("got idle %v, read-header %v, read %v, max header %d, addr %q; want 5s, 5s, 30s, 65536, :8000",
			srv.IdleTimeout, srv.ReadHeaderTimeout, srv.ReadTimeout, srv.MaxHeaderBytes, srv.Addr)
	}
}

func TestCheckHealth(t *testing.T) {
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer ok.Close()
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(503) }))
	defer bad.Close()
	ctx := context.Background()
	if err := CheckHealth(ctx, ok.URL); err != nil {
		t.Fatalf("CheckHealth(200): got %v, want nil", err)
	}
	if err := CheckHealth(ctx, bad.URL); err == nil {
		t.Fatal("CheckHealth(503): got nil, want an error")
	}
}

// TestOneJSONLogLinePerRequest: the log is JSON lines, one "request" line
// per request with its fields, and the default key is warned about at
// start.
func TestOneJSONLogLinePerRequest(t *testing.T) {
	var buf bytes.Buffer
	svc, err := New(Options{Logger: NewLogger(&buf, "INFO")}) // no key: the default, with a warning
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	h := svc.Handler()
	mustStatus(t, "register", call(t, h, "POST", pNotify, registerBody("l-1"), false), 200)
	mustStatus(t, "state read", call(t, h, "GET", "/v1/opscore/agent/l-1/state", "", false,
		"Authorization", "Bearer "+DefaultAPIKey), 200)
	mustStatus(t, "unknown path", call(t, h, "GET", "/nope", "", false), 404)

	var requests []map[string]any
	warned := false
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: got %v, want JSON", line, err)
		}
		switch rec["msg"] {
		case "request":
			requests = append(requests, rec)
		default:
			if rec["level"] == "WARN" && strings.Contains(line, "OPSCORE_API_KEY") {
				warned = true
			}
		}
	}
	if !warned {
		t.Errorf("log %s: got no WARN about OPSCORE_API_KEY, want one", buf.String())
	}
	want := []struct {
		route  string
		status float64
	}{{"notify", 200}, {"state_get", 200}, {"not_found", 404}}
	if len(requests) != len(want) {
		t.Fatalf("got %d request lines, want %d: %s", len(requests), len(want), buf.String())
	}
	for i, w := range want {
		r := requests[i]
		if r["route"] != w.route || r["status"] != w.status {
			t.Errorf("request line %d: got route %v status %v, want %s %v", i, r["route"], r["status"], w.route, w.status)
		}
		for _, k := range []string{"method", "path", "duration_ms", "bytes", "client"} {
			if _, ok := r[k]; !ok {
				t.Errorf("request line %d: got no %q field, want one (%v)", i, k, r)
			}
		}
	}
}
