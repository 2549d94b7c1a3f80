package proxy

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"opscore-sidecar/policy"
)

func TestWebhookSignatureAtTheEdge(t *testing.T) {
	const secret = "super-secret-webhook-key-123"
	t.Setenv("OPSCORE_WEBHOOK_SECRET", secret)
	a := newAdmissionRig(t, false, func(c *Config) {
		route(c, RouteNotify, func(rc *RouteConfig) { rc.WebhookAuth.Mode = policy.AuthRequired })
	})
	body := `{"event_type":"REGISTER","agent_details":{"agentId":"a1","agentName":"PingAgent","version":"1.0.0","capabilities":["ping"],"contactEndpoint":"http://ping-agent:8080/","metadata":{}}}`
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	sig := policy.SignWebhook([]byte(secret), ts, []byte(body))
	old := strconv.FormatInt(time.Now().Add(-time.Hour).Unix(), 10)
	tests := []struct {
		name    string
		header  []string
		body    string
		status  int
		reason  string
		forward bool
	}{
		{"signed", []string{"X-AgentKit-Timestamp", ts, "X-AgentKit-Signature", sig}, body, 200, "", true},
		{"replayed", []string{"X-AgentKit-Timestamp", ts, "X-AgentKit-Signature", sig}, body, 401, "replay", false},
		{"unsigned", nil, body, 401, "missing_signature", false},
		{"body changed", []string{"X-AgentKit-Timestamp", ts, "X-AgentKit-Signature", sig}, body + " ", 401, "bad_signature", false},
		{"an hour old", []string{"X-AgentKit-Timestamp", old, "X-AgentKit-Signature", policy.SignWebhook([]byte(secret), old, []byte(body))}, body, 401, "stale_timestamp", false},
		{"ISO timestamp garbage", []string{"X-AgentKit-Timestamp", "soon", "X-AgentKit-Signature", sig}, body, 401, "bad_timestamp", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := a.u.seen.Load()
			rec := a.do(t, "POST", pathNotify, tt.body, tt.header...)
			if tt.status != 200 {
				p := problemOf(t, rec, tt.status)
				if p.Type != ProblemTypeBase+"auth_failed" || p.Reason != tt.reason {
					t.Errorf("type, reason: got %v, %v, want auth_failed, %s", p.Type, p.Reason, tt.reason)
				}
				if got := rec.Header().Get("WWW-Authenticate"); !strings.HasPrefix(got, "AgentKit-HMAC-SHA256 ") {
					t.Errorf("WWW-Authenticate: got %q, want the AgentKit-HMAC-SHA256 challenge", got)
				}
				if strings.Contains(p.Detail, secret) || (ts != "" && strings.Contains(p.Detail, ts)) {
					t.Errorf("detail %q echoes the secret or the request's timestamp", p.Detail)
				}
				if got := testutil.ToFloat64(a.m.WebhookAuthFailures.WithLabelValues(tt.reason)); got != 1 {
					t.Errorf("webhook_auth_failures_total{%s}: got %v, want 1", tt.reason, got)
				}
			} else if rec.Code != 200 {
				t.Fatalf("got %d, want 200 (%s)", rec.Code, rec.Body)
			}
			if forwarded := a.u.seen.Load() > before; forwarded != tt.forward {
				t.Errorf("forwarded: got %v, want %v", forwarded, tt.forward)
			}
		})
	}
	a.u.mu.Lock()
	defer a.u.mu.Unlock()
	if len(a.u.bodies) != 1 || a.u.bodies[0] != body {
		t.Errorf("upstream bodies: got %q, want exactly the signed body once", a.u.bodies)
	}
}

func TestWebhookOptionalCountsUnsigned(t *testing.T) {
	t.Setenv("OPSCORE_WEBHOOK_SECRET", "s")
	a := newAdmissionRig(t, false, func(c *Config) {
		route(c, RouteNotify, func(rc *RouteConfig) { rc.WebhookAuth.Mode = policy.AuthOptional })
	})
	if rec := a.do(t, "POST", pathNotify, `{}`); rec.Code != http.StatusOK {
		t.Fatalf("unsigned in optional mode: got %d, want 200", rec.Code)
	}
	if got := testutil.ToFloat64(a.m.WebhookAuthFailures.WithLabelValues("unsigned")); got != 1 {
		t.Errorf("unsigned count: got %v, want 1", got)
	}
	// A signature that is present must verify, even in optional mode.
	rec := a.do(t, "POST", pathNotify, `{}`, "X-AgentKit-Timestamp", strconv.FormatInt(time.Now().Unix(), 10), "X-AgentKit-Signature", strings.Repeat("0", 64))
	if p := problemOf(t, rec, http.StatusUnauthorized); p.Reason != "bad_signature" {
		t.Errorf("bad signature in optional mode: got reason %v, want bad_signature", p.Reason)
	}
	if got := a.u.seen.Load(); got != 1 {
		t.Errorf("upstream saw %d, want 1 (the unsigned request only)", got)
	}
	if got := testutil.ToFloat64(a.m.Requests.WithLabelValues("notify", "critical", "200", "forwarded")); got != 1 {
		t.Errorf("requests_total{notify,200,forwarded}: got %v, want 1 (the unsigned pass is not an auth failure)", got)
	}
}

func TestAPIKeyEnforcedWhenRequired(t *testing.T) {
	t.Setenv("OPSCORE_API_KEY", "test-api-key")
	a := newAdmissionRig(t, false, func(c *Config) {
		route(c, RouteStateUpdate, func(rc *RouteConfig) { rc.APIKey.Mode = policy.AuthRequired })
	})
	rec := a.do(t, "POST", pathState, `{}`, "Authorization", "Bearer wrong")
	if p := problemOf(t, rec, http.StatusUnauthorized); p.Reason != "bad_api_key" {
		t.Errorf("reason: got %v, want bad_api_key", p.Reason)
	}
	if got := rec.Header().Get("WWW-Authenticate"); got != "Bearer" {
		t.Errorf("WWW-Authenticate: got %q, want Bearer", got)
	}
	if rec := a.do(t, "POST", pathState, `{}`, "Authorization", "Bearer test-api-key"); rec.Code != http.StatusOK {
		t.Errorf("right key: got %d, want 200", rec.Code)
	}
	if got := a.u.seen.Load(); got != 1 {
		t.Errorf("upstream saw %d, want 1", got)
	}
}

// TestRejectedReloadChangesNoLimit pins that a reload rejected for a
// missing webhook secret (found only when the policies are built) leaves
// every limit as it was: the global bucket and the gate are updated in
// place, so they must not be touched before every route's auth is built.
func TestRejectedReloadChangesNoLimit(t *testing.T) {
	a := newAdmissionRig(t, false, nil)
	limitBefore := testutil.ToFloat64(a.m.ConcurrencyLimit.WithLabelValues("bulk"))
	cfg := Defaults()
	cfg.Upstream.URL = a.u.srv.URL
	cfg.Admission.GlobalRateLimit = policy.RateLimitConfig{RPS: 0.001, Burst: 1, Mode: policy.ModeEnforce}
	cfg.Admission.Concurrency.Limit = 3
	route(cfg, RouteNotify, func(rc *RouteConfig) {
		rc.WebhookAuth.Mode, rc.WebhookAuth.SecretEnv = policy.AuthRequired, "OPSCORE_TEST_UNSET_WEBHOOK_SECRET"
	})
	if err := a.s.Apply(cfg); err == nil {
		t.Fatal("Apply with an unset webhook secret: got nil error, want it rejected")
	}
	for i := range 3 {
		if rec := a.do(t, "POST", pathState, `{}`); rec.Code != http.StatusOK {
			t.Fatalf("request %d after the rejected reload: got %d, want 200 (the rejected global limit must not apply)", i, rec.Code)
		}
	}
	if got := testutil.ToFloat64(a.m.ConcurrencyLimit.WithLabelValues("bulk")); got != limitBefore {
		t.Errorf("concurrency_limit{bulk} after the rejected reload: got %v, want %v", got, limitBefore)
	}
}
