package proxy

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"opscore-sidecar/proxy/config"
)

func TestForwardedPath(t *testing.T) {
	fps := config.DefaultForwardPaths()
	tests := []struct {
		path string
		want bool
	}{
		{"/v1/opscore/session/s1", true},
		{"/v1/opscore/", true},
		{"/health", true},
		{"/health/deep", true},
		{"/healthz", false},
		{"/metrics", false},
		{"/readyz", false},
		{"/", false},
		{"", false},
		{"/v1/opscore", false},
		{"/v1/opscorex/a", false},
		{"/v1/opscore/../metrics", false},
		{"/v1/opscore/./agent", false},
		{"/v1/opscore/a/..", false},
		{"/v1/opscore/..\\metrics", false},
		{"/health/..", false},
		{"/v1/opscore/a..b", true},
	}
	for _, tt := range tests {
		if got := forwardedPath(fps, tt.path); got != tt.want {
			t.Errorf("forwardedPath(%q): got %v, want %v", tt.path, got, tt.want)
		}
	}
	if forwardedPath(nil, "/v1/opscore/x") {
		t.Error("an empty list forwards a path, want none")
	}
	if !forwardedPath([]string{"/"}, "/metrics") {
		t.Error(`["/"] does not forward /metrics, want every path`)
	}
}

// TestDefaultRouteForwardsOnlyListedPaths: through the public port the
// core's /metrics and /readyz (and any unlisted path, or a listed prefix
// escaped with dot segments) get a 404 problem from the sidecar and never
// reach the upstream; the Ops-Core API and /health still do.
func TestDefaultRouteForwardsOnlyListedPaths(t *testing.T) {
	a := newAdmissionRig(t, false, nil)
	tests := []struct {
		method, target string
		forward        bool
	}{
		{"GET", "/metrics", false},
		{"GET", "/readyz", false},
		{"GET", "/healthz", false},
		{"GET", "/", false},
		{"POST", "/admin/config", false},
		{"GET", "/v1/opscore/%2e%2e/metrics", false},
		{"GET", "/v1/opscore/..%2f..%2fmetrics", false},
		{"GET", "/health", true},
		{"HEAD", "/health", true},
		{"GET", "/v1/opscore/session/s1", true},
		{"GET", "/v1/opscore/agent/a1/state", true}, // a named route: unaffected
	}
	notFound := 0
	for _, tt := range tests {
		before := a.u.seen.Load()
		req := httptest.NewRequest(tt.method, tt.target, nil)
		rec := httptest.NewRecorder()
		a.s.Handler().ServeHTTP(rec, req)
		forwarded := a.u.seen.Load() > before
		if forwarded != tt.forward {
			t.Errorf("%s %s: forwarded %v, want %v (status %d)", tt.method, tt.target, forwarded, tt.forward, rec.Code)
		}
		if !tt.forward {
			notFound++
			p := problemOf(t, rec, http.StatusNotFound)
			if p.Type != ProblemTypeBase+"not_found" || strings.Contains(p.Detail, "metrics") {
				t.Errorf("%s %s: got type %q detail %q, want not_found without echoing the path", tt.method, tt.target, p.Type, p.Detail)
			}
		} else if rec.Code != http.StatusOK {
			t.Errorf("%s %s: got %d, want 200", tt.method, tt.target, rec.Code)
		}
	}
	if got := testutil.ToFloat64(a.m.Requests.WithLabelValues(config.RouteDefault, "bulk", "404", "not_found")); got != float64(notFound) {
		t.Errorf(`requests_total{route="default",code="404",outcome="not_found"}: got %v, want %d`, got, notFound)
	}
}

// TestForwardPathsConfig: the key is the default route's only, its entries
// are plain absolute paths, and the environment can set it.
func TestForwardPathsConfig(t *testing.T) {
	for _, tt := range []struct{ doc, want string }{
		{"routes:\n  notify:\n    forward_paths: [/x/]\n", "routes.notify.forward_paths: must be empty: only the default route forwards by path"},
		{"routes:\n  default:\n    forward_paths: [v1/]\n", "routes.default.forward_paths[0]: must start with /"},
		{"routes:\n  default:\n    forward_paths: [/v1/, /a/../b]\n", "routes.default.forward_paths[1]: must not have . or .. segments"},
		{"routes:\n  default:\n    forward_paths: ['/a?b']\n", "routes.default.forward_paths[0]: must be a plain path"},
	} {
		if _, err := config.LoadBytes([]byte(tt.doc), nil); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("LoadBytes(%q): got %v, want an error containing %q", tt.doc, err, tt.want)
		}
	}
	cfg, err := config.LoadBytes([]byte("routes:\n  default:\n    forward_paths: []\n"), nil)
	if err != nil || cfg.Routes[config.RouteDefault].ForwardPaths != nil {
		t.Errorf("forward_paths: []: got %v, %v; want an empty list (forward nothing)", cfg.Routes[config.RouteDefault].ForwardPaths, err)
	}
	t.Setenv("SIDECAR_ROUTES_DEFAULT_FORWARD_PATHS", "/v1/opscore/,/health,/metrics")
	cfg, err = config.LoadBytes([]byte("{}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cfg.Routes[config.RouteDefault].ForwardPaths, ","); got != "/v1/opscore/,/health,/metrics" {
		t.Errorf("from the environment: got %q", got)
	}
}

// TestMethodNotAllowedBeforeForwardPaths: with a narrowed forward_paths
// that does not list the state path, a method no route takes there still
// gets 405 with Allow (docs/sidecar.md, "Route matching"), not the 404 of
// an unlisted path.
func TestMethodNotAllowedBeforeForwardPaths(t *testing.T) {
	a := newAdmissionRig(t, false, func(c *config.Config) {
		route(c, config.RouteDefault, func(rc *config.RouteConfig) { rc.ForwardPaths = []string{"/health"} })
	})
	rec := a.do(t, "PUT", "/v1/opscore/agent/x/state", "{}")
	p := problemOf(t, rec, http.StatusMethodNotAllowed)
	if got := rec.Header().Get("Allow"); got != "GET, HEAD, POST" {
		t.Errorf("Allow: got %q, want %q", got, "GET, HEAD, POST")
	}
	if p.Type != ProblemTypeBase+"bad_request" {
		t.Errorf("type: got %q, want bad_request", p.Type)
	}
	if n := a.u.seen.Load(); n != 0 {
		t.Errorf("upstream saw %d requests, want 0", n)
	}
}

// TestDotSegmentsRefusedOnEveryRoute: a path with a "." or ".." segment,
// plain or percent-encoded, is answered 404 not_found before routing, so a
// named route's {agent_id} cannot capture ".." and forward it
// (docs/sidecar.md, "Security").
func TestDotSegmentsRefusedOnEveryRoute(t *testing.T) {
	a := newAdmissionRig(t, false, nil)
	for _, tt := range []struct{ method, target string }{
		{"GET", "/v1/opscore/agent/%2e%2e/state"},
		{"POST", "/v1/opscore/agent/%2E%2E/state"},
		{"GET", "/v1/opscore/agent/%2e/state"},
		{"PUT", "/v1/opscore/agent/%2e%2e/state"},
	} {
		req := httptest.NewRequest(tt.method, tt.target, strings.NewReader("{}"))
		rec := httptest.NewRecorder()
		a.s.Handler().ServeHTTP(rec, req)
		p := problemOf(t, rec, http.StatusNotFound)
		if p.Type != ProblemTypeBase+"not_found" {
			t.Errorf("%s %s: got type %q, want not_found", tt.method, tt.target, p.Type)
		}
	}
	if n := a.u.seen.Load(); n != 0 {
		t.Errorf("upstream saw %d requests, want 0", n)
	}
	if got := testutil.ToFloat64(a.m.Requests.WithLabelValues(config.RouteDefault, "bulk", "404", "not_found")); got != 4 {
		t.Errorf(`requests_total{route="default",code="404",outcome="not_found"}: got %v, want 4`, got)
	}
	// A dot inside a segment is an ordinary agent id.
	if rec := a.do(t, "GET", "/v1/opscore/agent/a..b/state", ""); rec.Code != http.StatusOK {
		t.Errorf("GET .../agent/a..b/state: got %d, want 200", rec.Code)
	}
}
