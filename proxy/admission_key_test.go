package proxy

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"opscore-sidecar/policy"
	"opscore-sidecar/proxy/config"
)

func TestAdmissionKey(t *testing.T) {
	tp, err := policy.ParseTrustedProxies([]string{"10.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		key    string
		remote string
		header http.Header
		agent  string
		want   string
	}{
		{"none", "", "1.2.3.4:5", nil, "a1", ""},
		{"agent id", "agent_id", "1.2.3.4:5", nil, "a1", "a1"},
		{"client ip, direct", "client_ip", "203.0.113.9:5", http.Header{"X-Forwarded-For": {"6.6.6.6"}}, "", "203.0.113.9"},
		{"client ip, via trusted proxy", "client_ip", "10.1.1.1:5", http.Header{"X-Forwarded-For": {"6.6.6.6, 198.51.100.7"}}, "", "198.51.100.7"},
		{"header", "header:x-tenant-id", "1.2.3.4:5", http.Header{"X-Tenant-Id": {"t-9"}}, "", "t-9"},
		{"header absent", "header:x-tenant-id", "1.2.3.4:5", nil, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ks, err := policy.ParseKeySource(tt.key)
			if err != nil {
				t.Fatal(err)
			}
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tt.remote
			for k, v := range tt.header {
				r.Header[k] = v
			}
			if got := admissionKey(ks, r, &RequestInfo{AgentID: tt.agent}, tp); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestClientIPBucketsHonourTrustedProxies runs per-client buckets behind a
// trusted proxy: two clients behind it get a bucket each, and a client
// that forges X-Forwarded-For without being a trusted proxy does not.
func TestClientIPBucketsHonourTrustedProxies(t *testing.T) {
	a := newAdmissionRig(t, false, func(c *config.Config) {
		c.Admission.TrustedProxies = []string{"192.0.2.0/24"}
		route(c, config.RouteStateGet, func(rc *config.RouteConfig) {
			rc.RateLimit.Key, rc.RateLimit.PerKeyRPS, rc.RateLimit.PerKeyBurst = "client_ip", 0.001, 1
		})
	})
	get := func(remote, xff string) int {
		r := httptest.NewRequest("GET", "/v1/opscore/agent/a1/state", nil)
		r.RemoteAddr = remote
		if xff != "" {
			r.Header.Set("X-Forwarded-For", xff)
		}
		rec := httptest.NewRecorder()
		a.s.Handler().ServeHTTP(rec, r)
		return rec.Code
	}
	steps := []struct {
		name, remote, xff string
		want              int
	}{
		{"client A via the proxy", "192.0.2.1:1000", "198.51.100.1", 200},
		{"client B via the proxy", "192.0.2.1:1001", "198.51.100.2", 200},
		{"client A again", "192.0.2.1:1002", "198.51.100.1", 429},
		{"direct client", "203.0.113.5:1000", "", 200},
		{"direct client forging a new address", "203.0.113.5:1001", "198.51.100.99", 429},
	}
	for _, s := range steps {
		if got := get(s.remote, s.xff); got != s.want {
			t.Errorf("%s: got %d, want %d", s.name, got, s.want)
		}
	}
}
