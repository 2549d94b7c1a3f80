package proxy

import (
	"context"
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

	"opscore-sidecar/metrics"
	"opscore-sidecar/policy"
	"opscore-sidecar/proxy/config"
)

// admissionUpstream is an upstream that counts the requests it sees, the
// most it held at once, and the bodies of notify requests; while gate is
// open (non-nil), each request waits on it after announcing itself on arrived.
type admissionUpstream struct {
	srv      *httptest.Server
	seen     atomic.Int64
	cur      atomic.Int64
	peak     atomic.Int64
	mu       sync.Mutex
	bodies   []string
	gate     chan struct{}
	arrived  chan string
	gateOnce sync.Once
}

func newAdmissionUpstream(t *testing.T, hold bool) *admissionUpstream {
	t.Helper()
	u := &admissionUpstream{arrived: make(chan string, 64)}
	if hold {
		u.gate = make(chan struct{})
	}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.seen.Add(1)
		n := u.cur.Add(1)
		defer u.cur.Add(-1)
		for p := u.peak.Load(); n > p && !u.peak.CompareAndSwap(p, n); p = u.peak.Load() {
		}
		b, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.bodies = append(u.bodies, string(b))
		u.mu.Unlock()
		if u.gate != nil {
			u.arrived <- r.URL.Path
			<-u.gate
		}
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, `{"status":"success"}`)
	}))
	t.Cleanup(func() { u.open(); u.srv.Close() })
	return u
}

// open lets every held request (and all later ones) through.
func (u *admissionUpstream) open() {
	if u.gate != nil {
		u.gateOnce.Do(func() { close(u.gate) })
	}
}

type admissionRig struct {
	s *Sidecar
	m *metrics.Metrics
	u *admissionUpstream
}

func newAdmissionRig(t *testing.T, hold bool, mutate func(*config.Config)) *admissionRig {
	t.Helper()
	u := newAdmissionUpstream(t, hold)
	cfg := config.Defaults()
	cfg.Upstream.URL = u.srv.URL
	for _, name := range config.RouteNames {
		route(cfg, name, func(rc *config.RouteConfig) { rc.Retry.Attempts = 1 })
	}
	if mutate != nil {
		mutate(cfg)
	}
	s, m := newTestSidecar(t, cfg)
	return &admissionRig{s: s, m: m, u: u}
}

func (a *admissionRig) do(t *testing.T, method, path, body string, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	return serve(context.Background(), a.s, method, path, body, header...)
}

func (a *admissionRig) rejections(route, class, reason, mode string) float64 {
	return testutil.ToFloat64(a.m.AdmissionRejections.WithLabelValues(route, class, reason, mode))
}

// problemOf decodes a recorded problem+json response (decodeProblem: its
// Content-Type, and a detail that is a string) and checks its status and
// request id.
func problemOf(t *testing.T, rec *httptest.ResponseRecorder, status int) problemDoc {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("status: got %d, want %d (body %s)", rec.Code, status, rec.Body)
	}
	p := decodeProblem(t, rec.Result(), rec.Body.String())
	if p.RequestID == "" || p.RequestID != rec.Header().Get(HeaderRequestID) {
		t.Errorf("request_id: got %q, want the response's X-Request-ID %q", p.RequestID, rec.Header().Get(HeaderRequestID))
	}
	return p
}

func TestRateLimitedRequestNeverReachesUpstream(t *testing.T) {
	a := newAdmissionRig(t, false, func(c *config.Config) {
		route(c, config.RouteStateUpdate, func(rc *config.RouteConfig) { rc.RateLimit.RPS, rc.RateLimit.Burst = 0.5, 2 })
	})
	for i := range 2 {
		if rec := a.do(t, "POST", pathState, `{}`); rec.Code != http.StatusOK {
			t.Fatalf("request %d: got %d, want 200", i, rec.Code)
		}
	}
	rec := a.do(t, "POST", pathState, `{}`)
	p := problemOf(t, rec, http.StatusTooManyRequests)
	if p.Type != ProblemTypeBase+"rate_limited" || p.Reason != "route_rate" {
		t.Errorf("type, reason: got %v, %v, want %srate_limited, route_rate", p.Type, p.Reason, ProblemTypeBase)
	}
	retry, err := strconv.Atoi(rec.Header().Get("Retry-After"))
	if err != nil || retry < 1 || retry > 2 {
		t.Errorf("Retry-After: got %q, want 1 or 2 whole seconds (one token per 2 s)", rec.Header().Get("Retry-After"))
	}
	if got, want := rec.Header().Get("RateLimit-Policy"), `"default";q=2;w=4`; got != want {
		t.Errorf("RateLimit-Policy: got %s, want %s", got, want)
	}
	if got := rec.Header().Get("RateLimit"); !strings.HasPrefix(got, `"default";r=0;t=`) {
		t.Errorf("RateLimit: got %s, want \"default\";r=0;t=<seconds>", got)
	}
	if got := a.u.seen.Load(); got != 2 {
		t.Errorf("upstream saw %d requests, want 2: a refused request must never be forwarded", got)
	}
	if got := a.rejections("state_update", "bulk", "route_rate", "enforce"); got != 1 {
		t.Errorf("admission_rejections_total: got %v, want 1", got)
	}
	if got := testutil.ToFloat64(a.m.Requests.WithLabelValues("state_update", "bulk", "429", "rate_limited")); got != 1 {
		t.Errorf("requests_total{429,rate_limited}: got %v, want 1", got)
	}
}

func TestShadowModePassesButCounts(t *testing.T) {
	a := newAdmissionRig(t, false, func(c *config.Config) {
		c.Admission.GlobalRateLimit = policy.RateLimitConfig{RPS: 0.001, Burst: 1, Mode: policy.ModeShadow}
	})
	for i := range 3 {
		if rec := a.do(t, "POST", pathState, `{}`); rec.Code != http.StatusOK {
			t.Fatalf("request %d in shadow mode: got %d, want 200", i, rec.Code)
		}
	}
	if got := a.u.seen.Load(); got != 3 {
		t.Errorf("upstream saw %d, want 3", got)
	}
	if got := a.rejections("state_update", "bulk", "global_rate", "shadow"); got != 2 {
		t.Errorf("shadow rejections: got %v, want 2", got)
	}
	if got := a.rejections("state_update", "bulk", "global_rate", "enforce"); got != 0 {
		t.Errorf("enforce rejections: got %v, want 0", got)
	}
}

func TestPerAgentBucketsAreIsolated(t *testing.T) {
	a := newAdmissionRig(t, false, func(c *config.Config) {
		route(c, config.RouteStateUpdate, func(rc *config.RouteConfig) {
			rc.RateLimit.Key, rc.RateLimit.PerKeyRPS, rc.RateLimit.PerKeyBurst = "agent_id", 0.001, 1
		})
	})
	if rec := a.do(t, "POST", "/v1/opscore/agent/a1/state", `{}`); rec.Code != http.StatusOK {
		t.Fatalf("a1 first: got %d, want 200", rec.Code)
	}
	rec := a.do(t, "POST", "/v1/opscore/agent/a1/state", `{}`)
	if problemOf(t, rec, http.StatusTooManyRequests).Title == "" {
		t.Error("missing title")
	}
	if rec := a.do(t, "POST", "/v1/opscore/agent/a2/state", `{}`); rec.Code != http.StatusOK {
		t.Errorf("a2: got %d, want 200: agents must not share a bucket", rec.Code)
	}
	if got := testutil.ToFloat64(a.m.RateLimitKeys.WithLabelValues("state_update")); got != 2 {
		t.Errorf("ratelimit_keys: got %v, want 2", got)
	}
	if got := a.rejections("state_update", "bulk", "key_rate", "enforce"); got != 1 {
		t.Errorf("key_rate rejections: got %v, want 1", got)
	}
}

// TestReloadKeepsLimiterState applies a config with a larger burst: the
// empty bucket stays empty (no refill by reload) and the gate is the same.
func TestReloadKeepsLimiterState(t *testing.T) {
	mutate := func(burst int) func(*config.Config) {
		return func(c *config.Config) {
			route(c, config.RouteStateUpdate, func(rc *config.RouteConfig) { rc.RateLimit.RPS, rc.RateLimit.Burst = 0.001, burst })
		}
	}
	a := newAdmissionRig(t, false, mutate(1))
	if rec := a.do(t, "POST", pathState, `{}`); rec.Code != http.StatusOK {
		t.Fatalf("first: got %d, want 200", rec.Code)
	}
	before := a.s.Snapshot()
	cfg := config.Defaults()
	cfg.Upstream.URL = a.u.srv.URL
	mutate(100)(cfg)
	if err := a.s.Apply(cfg); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	after := a.s.Snapshot()
	if after == before || after.GlobalAdmission.Gate != before.GlobalAdmission.Gate ||
		after.Runtime[config.RouteStateUpdate].Admission.Rate != before.Runtime[config.RouteStateUpdate].Admission.Rate {
		t.Fatal("reload: want a new snapshot holding the same gate and route limiter")
	}
	if rec := a.do(t, "POST", pathState, `{}`); rec.Code != http.StatusTooManyRequests {
		t.Errorf("after reload: got %d, want 429 (the bucket keeps its state)", rec.Code)
	}
}

// TestBulkShedWhileCriticalPasses fills bulk's share of the slots with a
// held state update: another state update is shed with 503, while a
// registration still takes a reserved slot.
func TestBulkShedWhileCriticalPasses(t *testing.T) {
	a := newAdmissionRig(t, true, func(c *config.Config) {
		c.Admission.Concurrency = policy.ConcurrencyConfig{Limit: 2, CriticalReserved: 0.5, QueueSize: 0, Mode: policy.ModeEnforce}
	})
	results := make(chan int, 2)
	go func() { results <- a.do(t, "POST", pathState, `{}`).Code }()
	<-a.u.arrived
	rec := a.do(t, "POST", pathState, `{}`)
	p := problemOf(t, rec, http.StatusServiceUnavailable)
	if p.Type != ProblemTypeBase+"shed" || p.Reason != "shed" || rec.Header().Get("Retry-After") != "1" {
		t.Errorf("got type %v reason %v Retry-After %q, want shed, shed, Retry-After 1", p.Type, p.Reason, rec.Header().Get("Retry-After"))
	}
	go func() { results <- a.do(t, "POST", pathNotify, `{}`).Code }()
	<-a.u.arrived
	if got := testutil.ToFloat64(a.m.ConcurrencyLimit.WithLabelValues("bulk")); got != 1 {
		t.Errorf("concurrency_limit{bulk}: got %v, want 1", got)
	}
	a.u.open()
	for range 2 {
		if code := <-results; code != http.StatusOK {
			t.Errorf("held request: got %d, want 200", code)
		}
	}
	if got := a.u.peak.Load(); got != 2 {
		t.Errorf("upstream peak concurrency: got %d, want 2", got)
	}
	if got := a.rejections("state_update", "bulk", "shed", "enforce"); got != 1 {
		t.Errorf("shed rejections: got %v, want 1", got)
	}
}

func TestQueueTimeoutAnswers503(t *testing.T) {
	a := newAdmissionRig(t, true, func(c *config.Config) {
		c.Admission.Concurrency = policy.ConcurrencyConfig{Limit: 1, QueueSize: 4, QueueTimeout: 20 * time.Millisecond, Mode: policy.ModeEnforce}
	})
	done := make(chan int, 1)
	go func() { done <- a.do(t, "POST", pathState, `{}`).Code }()
	<-a.u.arrived
	rec := a.do(t, "POST", pathState, `{}`)
	p := problemOf(t, rec, http.StatusServiceUnavailable)
	if p.Type != ProblemTypeBase+"queue_timeout" || p.Reason != "queue_timeout" || rec.Header().Get("Retry-After") != "1" {
		t.Errorf("got type %v Retry-After %q, want queue_timeout with Retry-After 1", p.Type, rec.Header().Get("Retry-After"))
	}
	if got := testutil.ToFloat64(a.m.QueueDepth.WithLabelValues("bulk")); got != 0 {
		t.Errorf("queue_depth after the timeout: got %v, want 0", got)
	}
	a.u.open()
	<-done
	if got := a.u.seen.Load(); got != 1 {
		t.Errorf("upstream saw %d, want 1", got)
	}
}

func TestDrainingRefusesInsteadOfQueueing(t *testing.T) {
	a := newAdmissionRig(t, true, func(c *config.Config) {
		c.Admission.Concurrency = policy.ConcurrencyConfig{Limit: 1, QueueSize: 4, QueueTimeout: time.Minute, Mode: policy.ModeEnforce}
	})
	done := make(chan int, 1)
	go func() { done <- a.do(t, "POST", pathNotify, `{}`).Code }()
	<-a.u.arrived
	a.s.draining.Store(true)
	p := problemOf(t, a.do(t, "POST", pathNotify, `{}`), http.StatusServiceUnavailable)
	if p.Type != ProblemTypeBase+"shed" || p.Reason != "draining" {
		t.Errorf("type, reason: got %v, %v, want shed, draining", p.Type, p.Reason)
	}
	if got := a.rejections("notify", "critical", "draining", "enforce"); got != 1 {
		t.Errorf("draining rejections: got %v, want 1", got)
	}
	a.u.open()
	<-done
}

// TestShadowGateForwardsOverTheLimit runs the gate in shadow mode with its
// one slot held: the next requests are forwarded at once (the upstream sees
// them all together), none is refused, and each is counted as a shadow shed.
func TestShadowGateForwardsOverTheLimit(t *testing.T) {
	a := newAdmissionRig(t, true, func(c *config.Config) {
		c.Admission.Concurrency = policy.ConcurrencyConfig{Limit: 1, QueueSize: 4, QueueTimeout: time.Minute, Mode: policy.ModeShadow}
	})
	const n = 3
	results := make(chan int, n)
	for range n {
		go func() { results <- a.do(t, "POST", pathState, `{}`).Code }()
		<-a.u.arrived
	}
	if got := a.u.cur.Load(); got != n {
		t.Errorf("upstream in flight: got %d, want %d (shadow mode never holds a request back)", got, n)
	}
	a.u.open()
	for range n {
		if code := <-results; code != http.StatusOK {
			t.Errorf("request in shadow mode: got %d, want 200", code)
		}
	}
	if got := a.rejections("state_update", "bulk", "shed", "shadow"); got != n-1 {
		t.Errorf("shadow shed count: got %v, want %d", got, n-1)
	}
	if got := a.rejections("state_update", "bulk", "shed", "enforce"); got != 0 {
		t.Errorf("enforced shed count: got %v, want 0", got)
	}
}
