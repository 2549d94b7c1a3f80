package proxy

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"opscore-sidecar/policy"
	"opscore-sidecar/proxy/config"
)

func TestWebhookSignatureAtTheEdge(t *testing.T) {
	const secret = "super-secret-webhook-key-123"
	t.Setenv("OPSCORE_WEBHOOK_SECRET", secret)
	a := newAdmissionRig(t, false, func(c *config.Config) {
		route(c, config.RouteNotify, func(rc *config.RouteConfig) { rc.WebhookAuth.Mode = policy.AuthRequired })
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
	a := newAdmissionRig(t, false, func(c *config.Config) {
		route(c, config.RouteNotify, func(rc *config.RouteConfig) { rc.WebhookAuth.Mode = policy.AuthOptional })
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
	a := newAdmissionRig(t, false, func(c *config.Config) {
		route(c, config.RouteStateUpdate, func(rc *config.RouteConfig) { rc.APIKey.Mode = policy.AuthRequired })
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
	cfg := config.Defaults()
	cfg.Upstream.URL = a.u.srv.URL
	cfg.Admission.GlobalRateLimit = policy.RateLimitConfig{RPS: 0.001, Burst: 1, Mode: policy.ModeEnforce}
	cfg.Admission.Concurrency.Limit = 3
	route(cfg, config.RouteNotify, func(rc *config.RouteConfig) {
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

// junkBody is a request body of n zero bytes that counts what is read
// from it; it holds no buffer of its own.
type junkBody struct {
	left int64
	read *atomic.Int64
}

func (b *junkBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), b.left))
	clear(p[:n])
	b.left -= int64(n)
	b.read.Add(int64(n))
	return n, nil
}

func (b *junkBody) Close() error { return nil }

// signedJunk sends one POST to the notify route with a 1 MiB body whose
// reads are counted in read.
func signedJunk(s *Sidecar, read *atomic.Int64, header ...string) *httptest.ResponseRecorder {
	const size = 1<<20 - 1
	req := httptest.NewRequest("POST", pathNotify, nil)
	req.Body, req.ContentLength = &junkBody{left: size, read: read}, size
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	return rec
}

// TestWebhookBadHeadersRefusedBeforeBody: 200 concurrent requests whose
// AgentKit headers are missing, malformed or out of the window, each with
// a 1 MiB body, are refused with 401 without the sidecar reading one byte
// of their bodies. A well-formed but wrong signature is the control: its
// body must be read to be checked.
func TestWebhookBadHeadersRefusedBeforeBody(t *testing.T) {
	t.Setenv("OPSCORE_WEBHOOK_SECRET", "s")
	a := newAdmissionRig(t, false, func(c *config.Config) {
		route(c, config.RouteNotify, func(rc *config.RouteConfig) { rc.WebhookAuth.Mode = policy.AuthRequired })
	})
	now := time.Now()
	fresh := strconv.FormatInt(now.Unix(), 10)
	stale := strconv.FormatInt(now.Add(-time.Hour).Unix(), 10)
	future := strconv.FormatInt(now.Add(time.Hour).Unix(), 10)
	goodForm := strings.Repeat("ab", 32)
	cases := []struct {
		reason string
		header []string
	}{
		{"stale_timestamp", []string{"X-AgentKit-Timestamp", stale, "X-AgentKit-Signature", goodForm}},
		{"stale_timestamp", []string{"X-AgentKit-Timestamp", future, "X-AgentKit-Signature", goodForm}},
		{"bad_timestamp", []string{"X-AgentKit-Timestamp", "yesterday", "X-AgentKit-Signature", goodForm}},
		{"bad_signature", []string{"X-AgentKit-Timestamp", fresh, "X-AgentKit-Signature", "abc"}},
		{"bad_signature", []string{"X-AgentKit-Timestamp", fresh, "X-AgentKit-Signature", strings.Repeat("zz", 32)}},
		{"missing_signature", []string{"X-AgentKit-Timestamp", fresh}},
		{"missing_signature", []string{"X-AgentKit-Signature", goodForm}},
	}
	const conns = 200
	var read atomic.Int64
	var wg sync.WaitGroup
	codes := make([]int, conns)
	reasons := make([]string, conns)
	for i := range conns {
		wg.Go(func() {
			c := cases[i%len(cases)]
			rec := signedJunk(a.s, &read, c.header...)
			codes[i] = rec.Code
			var p problemDoc
			_ = json.Unmarshal(rec.Body.Bytes(), &p)
			reasons[i] = p.Reason
		})
	}
	wg.Wait()
	for i := range conns {
		if want := cases[i%len(cases)].reason; codes[i] != http.StatusUnauthorized || reasons[i] != want {
			t.Errorf("request %d: got %d %q, want 401 %q", i, codes[i], reasons[i], want)
		}
	}
	if n := read.Load(); n != 0 {
		t.Errorf("body bytes read for %d requests refused by their headers: got %d, want 0", conns, n)
	}
	if n := a.u.seen.Load(); n != 0 {
		t.Errorf("forwarded: got %d, want 0", n)
	}

	// The control: a well-formed, in-window, wrong signature needs the body.
	rec := signedJunk(a.s, &read, "X-AgentKit-Timestamp", fresh, "X-AgentKit-Signature", goodForm)
	if p := problemOf(t, rec, http.StatusUnauthorized); p.Reason != "bad_signature" {
		t.Errorf("control: reason %q, want bad_signature", p.Reason)
	}
	if n := read.Load(); n != 1<<20-1 {
		t.Errorf("control: read %d body bytes, want the whole body (%d)", n, 1<<20-1)
	}
}

// BenchmarkWebhookStaleRefusal is the cost of refusing one request with a
// stale timestamp and a 1 MiB body (B/op shows whether the body is read).
func BenchmarkWebhookStaleRefusal(b *testing.B) {
	b.Setenv("OPSCORE_WEBHOOK_SECRET", "s")
	cfg := config.Defaults()
	route(cfg, config.RouteNotify, func(rc *config.RouteConfig) { rc.WebhookAuth.Mode = policy.AuthRequired })
	s, _ := newTestSidecar(b, cfg)
	stale := strconv.FormatInt(time.Now().Add(-time.Hour).Unix(), 10)
	var read atomic.Int64
	b.ReportAllocs()
	for b.Loop() {
		if rec := signedJunk(s, &read, "X-AgentKit-Timestamp", stale, "X-AgentKit-Signature", strings.Repeat("ab", 32)); rec.Code != http.StatusUnauthorized {
			b.Fatalf("got %d, want 401", rec.Code)
		}
	}
	b.ReportMetric(float64(read.Load())/float64(b.N), "bodyB/op")
}
