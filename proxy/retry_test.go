package proxy

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"opscore-sidecar/policy"
	"opscore-sidecar/proxy/config"
	"opscore-sidecar/proxy/proxytest"
)

// fastRetries makes every route retry quickly: tiny backoff, short tries.
func fastRetries(cfg *config.Config) {
	for _, name := range config.RouteNames {
		route(cfg, name, func(rc *config.RouteConfig) {
			rc.Retry.BackoffBase, rc.Retry.BackoffMax = time.Millisecond, 5*time.Millisecond
			rc.Retry.PerTryTimeout, rc.Retry.Deadline = 200*time.Millisecond, 5*time.Second
		})
	}
}

// TestRetryRowsThroughTheSidecar runs every row of docs/resilience.md,
// "What is retried", through the whole chain against a scripted upstream,
// per route.
func TestRetryRowsThroughTheSidecar(t *testing.T) {
	P := proxytest.Respond
	tests := []struct {
		name         string
		method, path string
		header       []string
		script       []proxytest.Step
		refused      bool
		wantCode     int
		wantAttempts string
		wantUpstream int
	}{
		{"notify: reset then ok", "POST", pathNotify, nil, []proxytest.Step{proxytest.Reset(), proxytest.OK()}, false, 200, "2", 2},
		{"notify: closed before response then ok", "POST", pathNotify, nil, []proxytest.Step{proxytest.Close(), proxytest.OK()}, false, 200, "2", 2},
		{"notify: 503 then ok", "POST", pathNotify, nil, []proxytest.Step{P(503, "busy"), proxytest.OK()}, false, 200, "2", 2},
		{"notify: 502, 504 then ok", "POST", pathNotify, nil, []proxytest.Step{P(502, ""), P(504, ""), proxytest.OK()}, false, 200, "3", 3},
		{"notify: per-try timeout then ok", "POST", pathNotify, nil, []proxytest.Step{proxytest.Hang(), proxytest.OK()}, false, 200, "2", 2},
		{"notify: 500 is not retried", "POST", pathNotify, nil, []proxytest.Step{P(500, "bug")}, false, 500, "1", 1},
		{"notify: 404 is not retried", "POST", pathNotify, nil, []proxytest.Step{P(404, "no")}, false, 404, "1", 1},
		{"notify: 429 without Retry-After is not retried", "POST", pathNotify, nil, []proxytest.Step{P(429, "slow down")}, false, 429, "1", 1},
		{"notify: 429 with Retry-After is retried", "POST", pathNotify, nil, []proxytest.Step{P(429, "", "Retry-After", "0"), proxytest.OK()}, false, 200, "2", 2},
		{"notify: Retry-After beyond the deadline is passed on", "POST", pathNotify, nil, []proxytest.Step{P(503, "", "Retry-After", "60")}, false, 503, "1", 1},
		{"notify: resets until attempts run out", "POST", pathNotify, nil, []proxytest.Step{proxytest.Reset()}, false, 502, "4", 4},
		{"state_update: reset then ok", "POST", pathState, nil, []proxytest.Step{proxytest.Reset(), proxytest.OK()}, false, 200, "2", 2},
		{"state_get: closed then ok", "GET", pathState, nil, []proxytest.Step{proxytest.Close(), proxytest.OK()}, false, 200, "2", 2},
		{"state_get: 503 then ok", "GET", pathState, nil, []proxytest.Step{P(503, ""), proxytest.OK()}, false, 200, "2", 2},
		{"workflow: reset is not retried", "POST", pathWorkflow, nil, []proxytest.Step{proxytest.Reset(), proxytest.OK()}, false, 502, "1", 1},
		{"workflow: 503 is not retried", "POST", pathWorkflow, nil, []proxytest.Step{P(503, ""), proxytest.OK()}, false, 503, "1", 1},
		{"workflow: timeout is not retried", "POST", pathWorkflow, nil, []proxytest.Step{proxytest.Hang(), proxytest.OK()}, false, 504, "1", 1},
		{"workflow: 429 with Retry-After is retried", "POST", pathWorkflow, nil, []proxytest.Step{P(429, "", "Retry-After", "0"), proxytest.OK()}, false, 200, "2", 2},
		{"workflow+Idempotency-Key: reset then ok", "POST", pathWorkflow, []string{"Idempotency-Key", "k1"}, []proxytest.Step{proxytest.Reset(), proxytest.OK()}, false, 200, "2", 2},
		{"workflow+Idempotency-Key: 503 then ok", "POST", pathWorkflow, []string{"Idempotency-Key", "k1"}, []proxytest.Step{P(503, ""), proxytest.OK()}, false, 200, "2", 2},
		{"workflow+Idempotency-Key: timeout then ok", "POST", pathWorkflow, []string{"Idempotency-Key", "k1"}, []proxytest.Step{proxytest.Hang(), proxytest.OK()}, false, 200, "2", 2},
		{"workflow+X-Idempotency-Key: 503 then ok", "POST", pathWorkflow, []string{"X-Idempotency-Key", "k1"}, []proxytest.Step{P(503, ""), proxytest.OK()}, false, 200, "2", 2},
		{"workflow: 429 with Retry-After beyond the deadline is passed on", "POST", pathWorkflow, nil, []proxytest.Step{P(429, "", "Retry-After", "60")}, false, 429, "1", 1},
		{"notify: 429 with Retry-After beyond the deadline is passed on", "POST", pathNotify, nil, []proxytest.Step{P(429, "", "Retry-After", "60")}, false, 429, "1", 1},
		{"state_update: 503 then ok", "POST", pathState, nil, []proxytest.Step{P(503, ""), proxytest.OK()}, false, 200, "2", 2},
		{"state_update: timeout then ok", "POST", pathState, nil, []proxytest.Step{proxytest.Hang(), proxytest.OK()}, false, 200, "2", 2},
		{"state_get: timeout then ok", "GET", pathState, nil, []proxytest.Step{proxytest.Hang(), proxytest.OK()}, false, 200, "2", 2},
		{"state_get: 429 without Retry-After is not retried", "GET", pathState, nil, []proxytest.Step{P(429, "")}, false, 429, "1", 1},
		{"workflow: never reached is retried", "POST", pathWorkflow, nil, nil, true, 503, "4", 0},
		{"notify: never reached is retried", "POST", pathNotify, nil, nil, true, 503, "4", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var up *proxytest.Upstream
			url := ""
			if tt.refused {
				url = proxytest.RefusingURL(t)
			} else {
				up = proxytest.New(t, tt.script...)
				url = up.URL
			}
			rig := newRetryRig(t, url, fastRetries)
			body := ""
			if tt.method == "POST" {
				body = `{"agentId":"a1"}`
			}
			rec := rig.do(t, context.Background(), tt.method, tt.path, body, tt.header...)
			if rec.Code != tt.wantCode {
				t.Errorf("status %d, want %d (body %q)", rec.Code, tt.wantCode, rec.Body.String())
			}
			if got := rec.Header().Get(HeaderAttempts); got != tt.wantAttempts {
				t.Errorf("%s: %q, want %q", HeaderAttempts, got, tt.wantAttempts)
			}
			if up != nil {
				if got := len(up.Requests()); got != tt.wantUpstream {
					t.Errorf("upstream saw %d requests, want %d", got, tt.wantUpstream)
				}
			}
			if tt.wantCode == 502 || tt.wantCode == 504 || tt.refused {
				if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
					t.Errorf("Content-Type %q, want application/problem+json", ct)
				}
			}
			if tt.refused && rec.Header().Get("Retry-After") != "1" {
				t.Errorf("Retry-After %q, want 1 for an upstream that was never reached", rec.Header().Get("Retry-After"))
			}
		})
	}
}

func TestRetryAfterFromUpstreamIsPassedOn(t *testing.T) {
	up := proxytest.New(t, proxytest.Respond(503, "", "Retry-After", "60"))
	rig := newRetryRig(t, up.URL, fastRetries)
	rec := rig.do(t, context.Background(), "POST", pathNotify, "{}")
	if got := rec.Header().Get("Retry-After"); got != "60" {
		t.Errorf("Retry-After %q, want the upstream's 60", got)
	}
	if got := counter(t, rig.metrics.Retries.WithLabelValues(config.RouteNotify, "http_5xx")); got != 0 {
		t.Errorf("retries_total = %v, want 0 (the wait does not fit the deadline)", got)
	}
}

// bodyRecorder is an upstream that records each request body and resets
// the connection of the first n requests after reading them.
type bodyRecorder struct {
	mu     sync.Mutex
	bodies []string
	fail   int
}

func (b *bodyRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	b.mu.Lock()
	b.bodies = append(b.bodies, string(body))
	fail := len(b.bodies) <= b.fail
	b.mu.Unlock()
	if fail {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (b *bodyRecorder) seen() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.bodies...)
}

// onlyReader hides a reader's type so that the request's length is unknown.
type onlyReader struct{ io.Reader }

func TestRetryReplaysTheBufferedBody(t *testing.T) {
	up := &bodyRecorder{fail: 2}
	srv := httptest.NewServer(up)
	defer srv.Close()
	rig := newRetryRig(t, srv.URL, fastRetries)
	body := strings.Repeat("registration-", 100)
	rec := rig.do(t, context.Background(), "POST", pathNotify, body)
	if rec.Code != 200 || rec.Header().Get(HeaderAttempts) != "3" {
		t.Fatalf("got %d with %s %q, want 200 after 3 attempts", rec.Code, HeaderAttempts, rec.Header().Get(HeaderAttempts))
	}
	seen := up.seen()
	if len(seen) != 3 {
		t.Fatalf("upstream saw %d bodies, want 3", len(seen))
	}
	for i, got := range seen {
		if got != body {
			t.Errorf("attempt %d body has %d bytes, want the %d sent", i+1, len(got), len(body))
		}
	}
}

func TestRetryDoesNotReplayABodyOverTheBufferLimit(t *testing.T) {
	body := strings.Repeat("x", 100)
	tests := []struct {
		name        string
		knownLength bool
		fail        int
		wantCode    int
		wantSeen    int
	}{
		{"known length, upstream resets", true, 1, 502, 1},
		{"unknown length, upstream resets", false, 1, 502, 1},
		{"known length is streamed whole", true, 0, 200, 1},
		{"unknown length is streamed whole", false, 0, 200, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := &bodyRecorder{fail: tt.fail}
			srv := httptest.NewServer(up)
			defer srv.Close()
			rig := newRetryRig(t, srv.URL, func(cfg *config.Config) {
				fastRetries(cfg)
				route(cfg, config.RouteNotify, func(rc *config.RouteConfig) { rc.Retry.BufferLimit = 16 })
			})
			var rd io.Reader = strings.NewReader(body)
			if !tt.knownLength {
				rd = onlyReader{rd}
			}
			req := httptest.NewRequest("POST", pathNotify, rd)
			rec := httptest.NewRecorder()
			rig.s.Handler().ServeHTTP(rec, req)
			if rec.Code != tt.wantCode {
				t.Errorf("status %d, want %d", rec.Code, tt.wantCode)
			}
			seen := up.seen()
			if len(seen) != tt.wantSeen {
				t.Fatalf("upstream saw %d requests, want %d", len(seen), tt.wantSeen)
			}
			if seen[0] != body {
				t.Errorf("upstream got %d bytes, want all %d", len(seen[0]), len(body))
			}
		})
	}
}

// TestRetryBudgetCapsRetriesAgainstAlwaysFailingUpstream: every attempt
// fails and would be retried three times; the budget keeps retries within
// budget_ratio × requests + the floor.
func TestRetryBudgetCapsRetriesAgainstAlwaysFailingUpstream(t *testing.T) {
	up := proxytest.New(t, proxytest.Respond(503, "down"))
	const requests, ratio, perSecond = 100, 0.2, 0.01
	window := time.Hour // the whole test is in one window: floor = 0.01 × 3600 = 36
	rig := newRetryRig(t, up.URL, func(cfg *config.Config) {
		fastRetries(cfg)
		route(cfg, config.RouteNotify, func(rc *config.RouteConfig) {
			rc.Breaker.Enabled = false
			rc.Retry.BudgetRatio, rc.Retry.BudgetMinPerSecond, rc.Retry.BudgetWindow = ratio, perSecond, window
		})
	})
	for range requests {
		if rec := rig.do(t, context.Background(), "POST", pathNotify, "{}"); rec.Code != 503 {
			t.Fatalf("status %d, want the upstream's 503", rec.Code)
		}
	}
	retries := len(up.Requests()) - requests
	limit := int(ratio*requests + perSecond*window.Seconds())
	if retries > limit {
		t.Errorf("upstream saw %d retries for %d requests, want <= %d", retries, requests, limit)
	}
	if retries < limit {
		t.Errorf("upstream saw %d retries, want the budget (%d) used", retries, limit)
	}
	if got := counter(t, rig.metrics.Retries.WithLabelValues(config.RouteNotify, "http_5xx")); int(got) != retries {
		t.Errorf("retries_total = %v, want %d", got, retries)
	}
	if got := counter(t, rig.metrics.RetryBudgetExhausted.WithLabelValues(config.RouteNotify)); got == 0 {
		t.Error("retry_budget_exhausted_total = 0, want > 0")
	}
}

func TestRetryStopsWhenTheClientGoesAway(t *testing.T) {
	arrived := make(chan struct{})
	up := proxytest.New(t, proxytest.Hang().Signal(arrived), proxytest.OK())
	rig := newRetryRig(t, up.URL, func(cfg *config.Config) {
		route(cfg, config.RouteNotify, func(rc *config.RouteConfig) { rc.Retry.PerTryTimeout = 5 * time.Second })
	})
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-arrived; cancel() }()
	rec := rig.do(t, ctx, "POST", pathNotify, "{}")
	if rec.Code != codeAborted {
		t.Errorf("status %d, want the connection closed without a response", rec.Code)
	}
	if got := len(up.Requests()); got != 1 {
		t.Errorf("upstream saw %d requests, want 1 (no retry after the client left)", got)
	}
	if got := counter(t, rig.metrics.Retries.WithLabelValues(config.RouteNotify, "timeout")); got != 0 {
		t.Errorf("retries_total{reason=timeout} = %v, want 0", got)
	}
	if b := rig.s.Snapshot().Runtime[config.RouteNotify].Breaker; b.Counts().Failures != 0 {
		t.Errorf("breaker counted %d failures, want 0 for a client's cancellation", b.Counts().Failures)
	}
}

func TestBufferBodyKeepsSmallBodies(t *testing.T) {
	req := httptest.NewRequest("POST", "/", bytes.NewReader([]byte("hello")))
	b, err := bufferBody(req, nil, 5)
	if err != nil || !b.replayable() || string(b.buf) != "hello" {
		t.Fatalf("bufferBody = %q replayable %v err %v, want hello, true, nil", b.buf, b.replayable(), err)
	}
	out := req.WithContext(context.Background())
	for i := range 2 {
		b.attach(out, nil)
		got, _ := io.ReadAll(out.Body)
		if string(got) != "hello" || out.ContentLength != 5 || out.GetBody != nil {
			t.Errorf("attempt %d: body %q length %d GetBody set %v; want hello, 5, false", i+1, got, out.ContentLength, out.GetBody != nil)
		}
	}
}

// TestStreamedBodyOverTheRouteLimitIs413NotAnUpstreamFailure: with
// buffer_limit below body_limit, a chunked body over both is streamed and
// passes body_limit mid-stream. That is the client's fault: it gets 413
// too_large, not 502, and the route's breaker counts no failure.
func TestStreamedBodyOverTheRouteLimitIs413NotAnUpstreamFailure(t *testing.T) {
	up := &bodyRecorder{}
	srv := httptest.NewServer(up)
	defer srv.Close()
	rig := newRetryRig(t, srv.URL, func(cfg *config.Config) {
		fastRetries(cfg)
		route(cfg, config.RouteNotify, func(rc *config.RouteConfig) { rc.BodyLimit, rc.Retry.BufferLimit = 64<<10, 16 })
	})
	for i := range 6 { // more than consecutive_failures (5)
		req := httptest.NewRequest("POST", pathNotify, onlyReader{strings.NewReader(strings.Repeat("x", 128<<10))})
		rec := httptest.NewRecorder()
		rig.s.Handler().ServeHTTP(rec, req)
		if rec.Code != http.StatusRequestEntityTooLarge || rec.Header().Get(HeaderAttempts) != "1" {
			t.Fatalf("request %d: status %d after %q attempts, want 413 after 1 (body %s)", i+1, rec.Code, rec.Header().Get(HeaderAttempts), rec.Body.String())
		}
	}
	if c := rig.s.Snapshot().Runtime[config.RouteNotify].Breaker.Counts(); c.Failures != 0 {
		t.Errorf("breaker counts %+v, want no failure for a client's oversized body", c)
	}
	if s := rig.s.Snapshot().Runtime[config.RouteNotify].Breaker.State(); s != policy.BreakerClosed {
		t.Errorf("breaker %s, want closed", s)
	}
	if got := counter(t, rig.metrics.UpstreamAttempts.WithLabelValues(config.RouteNotify, "canceled")); got != 6 {
		t.Errorf("upstream_attempts_total{result=canceled} = %v, want 6 (the client's doing)", got)
	}
}
