package opscore

import (
	"strings"
	"testing"
	"time"
)

// faultTimeout is the Redis operation timeout of the fault tests; it keeps
// a paused Redis from holding a request longer than this.
const faultTimeout = 300 * time.Millisecond

// mustUnavailable checks a 503 with a Storage unavailable detail and
// Retry-After.
func mustUnavailable(t *testing.T, what string, r response) {
	t.Helper()
	if r.status != 503 {
		t.Fatalf("%s: got status %d (%s), want 503", what, r.status, r.body)
	}
	if !strings.HasPrefix(r.body, `{"detail":"Storage unavailable: `) {
		t.Fatalf("%s: got body %s, want a Storage unavailable detail", what, r.body)
	}
	if r.header.Get("Retry-After") != "1" {
		t.Fatalf("%s: got Retry-After %q, want 1", what, r.header.Get("Retry-After"))
	}
}

// TestRedisStoppedGives503ThenRecovers stops Redis mid-run: every route
// that touches storage answers 503 (never hangs, never panics), /health
// stays 200, /readyz turns 503; after a restart the same Service works
// again.
func TestRedisStoppedGives503ThenRecovers(t *testing.T) {
	store, _, srv := newRedisStore(t, faultTimeout)
	svc, reg := newTestService(t, store)
	h := svc.Handler()
	mustStatus(t, "register before fault", call(t, h, "POST", pNotify, registerBody("lt-1"), false), 200)

	if err := srv.Stop(); err != nil {
		t.Fatalf("stop redis: %v", err)
	}
	mustUnavailable(t, "register while stopped", call(t, h, "POST", pNotify, registerBody("lt-2"), false))
	mustUnavailable(t, "state update while stopped", call(t, h, "POST", pState, stateBody("lt-1", "idle"), true))
	mustUnavailable(t, "state read while stopped", call(t, h, "GET", pState, "", true))
	mustUnavailable(t, "workflow while stopped", call(t, h, "POST", "/v1/opscore/agent/lt-1/workflow", `{"workflowDefinitionId":"sample_workflow_id"}`, true))
	mustUnavailable(t, "readyz while stopped", call(t, h, "GET", "/readyz", "", false))
	mustStatus(t, "health while stopped", call(t, h, "GET", "/health", "", false), 200)

	if got := counterValue(t, reg, "opscore_redis_errors_total", "op", opRegister); got < 1 {
		t.Fatalf("opscore_redis_errors_total{op=register}: got %v, want >= 1", got)
	}
	if got := counterValue(t, reg, "opscore_registration_failures_total", "reason", regFailStorage); got != 1 {
		t.Fatalf("opscore_registration_failures_total{reason=storage}: got %v, want 1", got)
	}

	if err := srv.Restart(); err != nil {
		t.Fatalf("restart redis: %v", err)
	}
	mustStatus(t, "readyz after restart", call(t, h, "GET", "/readyz", "", false), 200)
	// The restarted Redis is empty (no persistence): register again.
	mustStatus(t, "register after restart", call(t, h, "POST", pNotify, registerBody("lt-1"), false), 200)
	mustStatus(t, "state update after restart", call(t, h, "POST", pState, stateBody("lt-1", "idle"), true), 202)
	mustStatus(t, "workflow after restart (preloaded definition)", call(t, h, "POST", "/v1/opscore/agent/lt-1/workflow",
		`{"workflowDefinitionId":"sample_workflow_id"}`, true), 202)
}

// TestRedisPausedGives503WithinTimeout freezes Redis (SIGSTOP): open
// connections get no answer, so only the operation timeout ends the
// request. It must come back as 503, and work again after SIGCONT.
func TestRedisPausedGives503WithinTimeout(t *testing.T) {
	store, _, srv := newRedisStore(t, faultTimeout)
	svc, _ := newTestService(t, store)
	h := svc.Handler()
	mustStatus(t, "register before pause", call(t, h, "POST", pNotify, registerBody("lt-1"), false), 200)

	if err := srv.Pause(); err != nil {
		t.Fatalf("pause redis: %v", err)
	}
	t.Cleanup(func() { _ = srv.Resume() })
	mustUnavailable(t, "state update while paused", call(t, h, "POST", pState, stateBody("lt-1", "idle"), true))
	r := call(t, h, "GET", pState, "", true)
	mustUnavailable(t, "state read while paused", r)
	if !strings.Contains(r.body, "timed out") {
		t.Fatalf("state read while paused: got %s, want the detail to say the storage timed out", r.body)
	}
	if err := srv.Resume(); err != nil {
		t.Fatalf("resume redis: %v", err)
	}
	mustStatus(t, "state update after resume", call(t, h, "POST", pState, stateBody("lt-1", "idle"), true), 202)
	mustStatus(t, "state read after resume", call(t, h, "GET", pState, "", true), 200)
}
