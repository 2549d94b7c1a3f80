package opscore

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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

// TestRedisKilledUnderLoadAnswersOnly200Or503 kills Redis while 8 clients
// keep registering, then restarts it: every answer must be 200 or 503
// (never a 500, a hang or a dropped connection) and some must be 503. After
// the restart the same Service must recover by itself. go-redis stops
// dialling after PoolSize failed dials and probes Redis once a second, so
// recovery is awaited through /readyz (bounded), then every client must
// succeed.
func TestRedisKilledUnderLoadAnswersOnly200Or503(t *testing.T) {
	store, _, srv := newRedisStore(t, faultTimeout)
	svc, _ := newTestService(t, store)
	h := svc.Handler()
	const workers, perWorker = 8, 60
	const killAt, restartAt = 120, 300 // by global request count
	var (
		count    atomic.Int64
		wg       sync.WaitGroup
		mu       sync.Mutex
		statuses = map[int]int{}
		faultErr atomic.Value
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range perWorker {
				switch count.Add(1) {
				case killAt:
					if err := srv.Kill(); err != nil {
						faultErr.Store("kill: " + err.Error())
					}
				case restartAt:
					if err := srv.Restart(); err != nil {
						faultErr.Store("restart: " + err.Error())
					}
				}
				r := call(t, h, "POST", pNotify, registerBody("w-"+strconv.Itoa(w)), false)
				mu.Lock()
				statuses[r.status]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if f := faultErr.Load(); f != nil {
		t.Fatal(f)
	}
	for code, n := range statuses {
		if code != 200 && code != 503 {
			t.Errorf("got %d answers with status %d, want only 200 and 503", n, code)
		}
	}
	if statuses[503] == 0 {
		t.Errorf("got no 503 while Redis was down (statuses %v), want some", statuses)
	}
	awaitReady(t, h, 5*time.Second)
	for w := range workers {
		mustStatus(t, "register after recovery", call(t, h, "POST", pNotify, registerBody("w-"+strconv.Itoa(w)), false), 200)
	}
}

// awaitReady polls /readyz until it answers 200 or limit passes. It waits
// for the Redis client's own reconnection probe, not for a policy of ours.
func awaitReady(t *testing.T, h http.Handler, limit time.Duration) {
	t.Helper()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(limit)
	for {
		r := call(t, h, "GET", "/readyz", "", false)
		if r.status == 200 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("readyz: got %d (%s) for %v after Redis came back, want 200", r.status, r.body, limit)
		}
		<-tick.C
	}
}

// TestCallerCancellationIsNotARedisError: a client that went away must not
// inflate opscore_redis_errors_total, which alerts read as Redis health.
func TestCallerCancellationIsNotARedisError(t *testing.T) {
	store, _, _ := newRedisStore(t, faultTimeout)
	_, reg := newTestService(t, store)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := store.GetState(ctx, "x")
	var se *StorageError
	if !errors.As(err, &se) || se.Reason() != "request cancelled" {
		t.Fatalf("GetState with a cancelled context: got %v, want a StorageError saying the request was cancelled", err)
	}
	if got := counterValue(t, reg, "opscore_redis_errors_total", "op", opGetState); got != 0 {
		t.Fatalf("opscore_redis_errors_total{op=get_state}: got %v, want 0", got)
	}
}
