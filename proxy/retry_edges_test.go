package proxy

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.opentelemetry.io/otel/trace"

	"opscore-sidecar/policy"
	"opscore-sidecar/proxy/config"
	"opscore-sidecar/proxy/proxytest"
)

// TestNoRetryWhenTheDeadlineCannotFitAnotherTry: with what is left of the
// deadline shorter than one per-try timeout, a failed attempt is not
// retried, even on an idempotent route with attempts to spare.
func TestNoRetryWhenTheDeadlineCannotFitAnotherTry(t *testing.T) {
	tests := []struct {
		name         string
		deadline     time.Duration
		wantCode     int
		wantAttempts string
	}{
		{"deadline = per-try timeout: no retry", 200 * time.Millisecond, 502, "1"},
		{"deadline fits another try: retried", 5 * time.Second, 200, "2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := proxytest.New(t, proxytest.Reset(), proxytest.OK())
			rig := newRetryRig(t, up.URL, func(cfg *config.Config) {
				fastRetries(cfg)
				route(cfg, config.RouteNotify, func(rc *config.RouteConfig) { rc.Retry.Deadline = tt.deadline })
			})
			rec := rig.do(t, context.Background(), "POST", pathNotify, "{}")
			if rec.Code != tt.wantCode || rec.Header().Get(HeaderAttempts) != tt.wantAttempts {
				t.Errorf("got %d after %s attempts, want %d after %s", rec.Code, rec.Header().Get(HeaderAttempts), tt.wantCode, tt.wantAttempts)
			}
		})
	}
}

// TestUpstream4xxIsNotABreakerFailure: an upstream that answers 4xx is
// answering; many of them in a row leave the breaker closed, while the
// same number of 5xx answers open it.
func TestUpstream4xxIsNotABreakerFailure(t *testing.T) {
	tests := []struct {
		status    int
		wantState policy.BreakerState
	}{
		{http.StatusNotFound, policy.BreakerClosed},
		{http.StatusUnprocessableEntity, policy.BreakerClosed},
		{http.StatusTooManyRequests, policy.BreakerClosed},
		{http.StatusInternalServerError, policy.BreakerOpen},
	}
	for _, tt := range tests {
		t.Run(http.StatusText(tt.status), func(t *testing.T) {
			up := proxytest.New(t, proxytest.Respond(tt.status, "no"))
			rig := newRetryRig(t, up.URL, fastRetries)
			for range 10 {
				rig.do(t, context.Background(), "POST", pathNotify, "{}")
			}
			if got := rig.s.Snapshot().Runtime[config.RouteNotify].Breaker.State(); got != tt.wantState {
				t.Errorf("after 10 answers %d: breaker %s, want %s", tt.status, got, tt.wantState)
			}
		})
	}
}

// TestEachAttemptIsAChildSpan: a request retried once gives two client
// spans, both children of the request's server span; the access log and
// X-Sidecar-Attempts both say 2.
func TestEachAttemptIsAChildSpan(t *testing.T) {
	up := proxytest.New(t, proxytest.Reset(), proxytest.OK())
	cfg := testConfig(up.URL)
	route(cfg, config.RouteStateUpdate, func(rc *config.RouteConfig) {
		rc.Retry = config.Defaults().Routes[config.RouteStateUpdate].Retry
		rc.Retry.BackoffBase, rc.Retry.BackoffMax = time.Millisecond, time.Millisecond
	})
	env := startSidecar(t, cfg)
	resp, _ := do(t, newRequest(t, "POST", env.url+"/v1/opscore/agent/a1/state", strings.NewReader("{}")))
	if resp.StatusCode != http.StatusOK || resp.Header.Get(HeaderAttempts) != "2" {
		t.Fatalf("got %d after %s attempts, want 200 after 2", resp.StatusCode, resp.Header.Get(HeaderAttempts))
	}
	if lines := env.access.lines(t); len(lines) != 1 || lines[0]["attempts"] != float64(2) {
		t.Errorf("access log %v, want one line with attempts 2", lines)
	}
	var server trace.SpanContext
	var parents []trace.SpanID
	for _, s := range env.spans.Ended() {
		switch s.SpanKind() {
		case trace.SpanKindServer:
			server = s.SpanContext()
		case trace.SpanKindClient:
			parents = append(parents, s.Parent().SpanID())
		}
	}
	if len(parents) != 2 {
		t.Fatalf("got %d attempt spans, want 2", len(parents))
	}
	for i, p := range parents {
		if p != server.SpanID() {
			t.Errorf("attempt span %d parent %s, want the server span %s", i+1, p, server.SpanID())
		}
	}
}

// TestUpstreamGoneAfterAReachedAttemptDoesNotClaimNotProcessed: the first
// attempt reaches the upstream, which dies mid-request (reset) and then
// refuses connections. The client gets 503 with Retry-After (the upstream
// is down), but the problem does not claim the request was not processed;
// when no attempt ever reached the upstream, it does.
func TestUpstreamGoneAfterAReachedAttemptDoesNotClaimNotProcessed(t *testing.T) {
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		srv.Listener.Close() // from now on: connection refused
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			conn.Close()
		}
	}))
	defer srv.Close()
	tests := []struct {
		name, url   string
		wantProcess bool // the detail says "not processed"
	}{
		{"reached, then refused", srv.URL, false},
		{"never reached", proxytest.RefusingURL(t), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rig := newRetryRig(t, tt.url, fastRetries)
			rec := rig.do(t, context.Background(), "POST", pathNotify, "{}")
			if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != "1" || rec.Header().Get(HeaderAttempts) != "4" {
				t.Fatalf("got %d Retry-After %q after %s attempts, want 503, 1, 4 (body %s)",
					rec.Code, rec.Header().Get("Retry-After"), rec.Header().Get(HeaderAttempts), rec.Body.String())
			}
			if got := strings.Contains(rec.Body.String(), "was not processed"); got != tt.wantProcess {
				t.Errorf("detail %s: says not processed %v, want %v", rec.Body.String(), got, tt.wantProcess)
			}
		})
	}
}

// slowBodyUpstream answers its first request 503 with headers at once and
// a body that never comes (until release), and 200 afterwards.
type slowBodyUpstream struct {
	calls   atomic.Int64
	release chan struct{}
}

func (u *slowBodyUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if u.calls.Add(1) > 1 {
		w.WriteHeader(http.StatusOK)
		return
	}
	w.Header().Set("Content-Length", "10")
	w.WriteHeader(http.StatusServiceUnavailable)
	http.NewResponseController(w).Flush()
	<-u.release
}

// TestRetryDoesNotWaitForASlowErrorBody: a 503 whose body never arrives
// is retried without waiting for that body (the sidecar only drains what
// is already there, within a short bound), so the retry loop stays within
// its deadline.
func TestRetryDoesNotWaitForASlowErrorBody(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rig := newRetryRig(t, "http://upstream.test", fastRetries)
		up := &slowBodyUpstream{release: make(chan struct{})}
		stop := pipeUpstream(rig, up)
		defer stop()
		defer close(up.release)
		start := time.Now()
		rec := rig.do(t, context.Background(), "POST", pathNotify, "{}")
		if rec.Code != 200 || rec.Header().Get(HeaderAttempts) != "2" {
			t.Fatalf("got %d after %s attempts, want 200 after 2", rec.Code, rec.Header().Get(HeaderAttempts))
		}
		if took, deadline := time.Since(start), 5*time.Second; took > deadline {
			t.Errorf("request took %s (fake time), want within the %s deadline", took, deadline)
		}
	})
}
