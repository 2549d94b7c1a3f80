package proxy

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"opscore-sidecar/policy"
	"opscore-sidecar/proxy/config"
	"opscore-sidecar/proxy/proxytest"
)

// TestPerClientLimit: one client address may hold or wait for at most
// per_client_limit slots; one more gets 429 client_limit while another
// address is still admitted (docs/admission.md, per_client_limit).
func TestPerClientLimit(t *testing.T) {
	arrived := make(chan struct{}, 4)
	up := proxytest.New(t, proxytest.Hang().Signal(arrived), proxytest.OK())
	cfg := testConfig(up.URL)
	cfg.Admission.Concurrency.PerClientLimit = 1
	s, m := newTestSidecar(t, cfg)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan *httptest.ResponseRecorder)
	go func() { done <- serve(ctx, s, "GET", "/v1/opscore/agent/a/state", "") }()
	<-arrived // the first request of 192.0.2.1 holds its slot

	rec := serve(context.Background(), s, "GET", "/v1/opscore/agent/b/state", "")
	p := problemOf(t, rec, http.StatusTooManyRequests)
	if p.Type != ProblemTypeBase+"rate_limited" || p.Reason != string(policy.ReasonClientLimit) || rec.Header().Get("Retry-After") != "1" {
		t.Errorf("second request of the same client: got %+v Retry-After %q, want rate_limited/client_limit with Retry-After 1", p, rec.Header().Get("Retry-After"))
	}
	if got := testutil.ToFloat64(m.AdmissionRejections.WithLabelValues(config.RouteStateGet, "bulk", "client_limit", "enforce")); got != 1 {
		t.Errorf("admission_rejections_total{reason=client_limit} = %v, want 1", got)
	}

	other := httptest.NewRequest("GET", "/v1/opscore/agent/c/state", nil)
	other.RemoteAddr = "198.51.100.7:4321"
	rec = httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, other)
	if rec.Code != http.StatusOK {
		t.Errorf("another client: got %d %s, want 200", rec.Code, rec.Body)
	}
	// A registration of the same client is critical: not counted (AgentKit
	// sends every webhook from one address, and holds keep them in flight).
	if rec := serve(context.Background(), s, "POST", pathNotify, "{}"); rec.Code != http.StatusOK {
		t.Errorf("a notify of the client at its bulk cap: got %d %s, want 200", rec.Code, rec.Body)
	}

	cancel()
	<-done
	if held := s.Snapshot().GlobalAdmission.Clients.Held("192.0.2.1"); held != 0 {
		t.Errorf("client still counted for %d requests after they ended, want 0", held)
	}
	if rec := serve(context.Background(), s, "GET", "/v1/opscore/agent/d/state", ""); rec.Code != http.StatusOK {
		t.Errorf("the client's next request: got %d, want 200 once its first one ended", rec.Code)
	}
}

func TestClientSlotsAndKeys(t *testing.T) {
	c := policy.NewClientSlots(2)
	if !c.Acquire("a") || !c.Acquire("a") || c.Acquire("a") || !c.Acquire("b") {
		t.Fatal("limit 2: want a, a admitted, a refused, b admitted")
	}
	c.Release("a")
	if !c.Acquire("a") {
		t.Error("after a release, a is admitted again")
	}
	c.SetLimit(0)
	if !c.Acquire("a") {
		t.Error("limit 0 means no cap")
	}
	for in, want := range map[string]string{
		"192.0.2.1":                  "192.0.2.1",
		"::ffff:192.0.2.1":           "192.0.2.1",
		"2001:db8:1:2:aaaa::1":       "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff:ffff::99": "2001:db8:1:2::/64",
		"not-an-ip":                  "not-an-ip",
	} {
		if got := policy.ClientAddrKey(in); got != want {
			t.Errorf("ClientAddrKey(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestHeadMeetsTheGetRoutesPolicies: HEAD on the state path is state_get's
// (API key, limits), not the default route's; a method no route takes on a
// route's path gets 405 instead of the default route's policies
// (docs/sidecar.md, "Security", method games).
func TestHeadMeetsTheGetRoutesPolicies(t *testing.T) {
	t.Setenv("TEST_REQHARD_API_KEY", "k3y")
	up := proxytest.New(t, proxytest.OK())
	cfg := testConfig(up.URL)
	route(cfg, config.RouteStateGet, func(rc *config.RouteConfig) {
		rc.APIKey.Mode, rc.APIKey.KeyEnv = policy.AuthRequired, "TEST_REQHARD_API_KEY"
	})
	s, _ := newTestSidecar(t, cfg)

	rec := serve(context.Background(), s, "HEAD", "/v1/opscore/agent/a/state", "")
	if rec.Code != http.StatusUnauthorized {
		t.Errorf("HEAD without the API key: got %d, want 401 like GET", rec.Code)
	}
	rec = serve(context.Background(), s, "HEAD", "/v1/opscore/agent/a/state", "", "Authorization", "Bearer k3y")
	if rec.Code != http.StatusOK {
		t.Errorf("HEAD with the API key: got %d, want 200", rec.Code)
	}
	for _, m := range []string{"PUT", "DELETE", "PATCH", "OPTIONS"} {
		rec = serve(context.Background(), s, m, "/v1/opscore/agent/a/state", "{}")
		if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, HEAD, POST" {
			t.Errorf("%s on the state path: got %d Allow %q, want 405 Allow \"GET, HEAD, POST\"", m, rec.Code, rec.Header().Get("Allow"))
		}
	}
	if n := len(up.Requests()); n != 1 {
		t.Errorf("upstream saw %d requests, want 1 (only the authorized HEAD)", n)
	}
}

// TestMaxConnectionsClosesTheExcess: with server.max_connections 1, a
// second connection is closed unread while the first is open, and counted;
// once the first closes, a new one is served.
func TestMaxConnectionsClosesTheExcess(t *testing.T) {
	up := proxytest.New(t, proxytest.OK())
	cfg := testConfig(up.URL)
	cfg.Server.MaxConnections = 1
	env := startSidecar(t, cfg)
	const get = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"

	first := dialRaw(t, env.srv.ProxyAddr())
	if _, err := io.WriteString(first, get); err != nil {
		t.Fatal(err)
	}
	if resp, _ := readResponse(t, first, "GET"); resp.StatusCode != http.StatusOK {
		t.Fatalf("first connection: got %d, want 200", resp.StatusCode)
	}

	second := dialRaw(t, env.srv.ProxyAddr())
	_, _ = io.WriteString(second, get)
	_ = second.SetReadDeadline(time.Now().Add(10 * time.Second))
	if b, _ := io.ReadAll(second); strings.HasPrefix(string(b), "HTTP/") {
		t.Fatalf("second connection while the first is open: got %q, want it closed unanswered", b)
	}
	if got := testutil.ToFloat64(env.srv.Metrics.ConnectionsRefused); got != 1 {
		t.Errorf("connections_refused_total = %v, want 1", got)
	}

	first.Close()
	waitFor(t, "a new connection served after the first closed", func() bool {
		resp, err := http.Get(env.url + "/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}
