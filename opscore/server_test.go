package opscore

import (
	"context"
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
		{0.0021457672119140625, "0.0021457672119140625"}, // spec 1.1's example
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
