package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"time"
)

// driveFaults sends a short, bounded load through the sidecar and injects
// each failure mode the dashboard shows: bad and missing signatures, an
// oversized body, a per-agent rate limit, overload against a slow core,
// a paused Redis, a killed and restarted core (refusals, retries, budget,
// breaker open → half-open → closed) and an invalid config reload.
// The core's counters restart from zero when it is killed, so before that
// the test waits until prom has scraped its Redis errors.
func (s *promStack) driveFaults(prom *promServer) {
	t := s.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	expect := func(what string, got int, want ...int) {
		t.Helper()
		for _, w := range want {
			if got == w {
				return
			}
		}
		t.Fatalf("%s: got status %d, want one of %v", what, got, want)
	}

	// Normal traffic on every route.
	for i := range 5 {
		id := "agent-" + strconv.Itoa(i)
		expect("signed registration", s.register(id, promWebhookSecret, nil), http.StatusOK)
		expect("state update", s.stateUpdate(id, 0), http.StatusAccepted)
		expect("state get", s.do(http.MethodGet, "/v1/opscore/agent/"+id+"/state", nil,
			http.Header{"Authorization": {"Bearer " + promAPIKey}}), http.StatusOK)
	}
	s.do(http.MethodPost, "/v1/opscore/agent/agent-0/workflow", []byte(`{"workflowDefinitionId":"sample_workflow_id"}`),
		http.Header{"Authorization": {"Bearer " + promAPIKey}, "Content-Type": {"application/json"}})

	// Refused at the edge: bad and missing signatures, a body over the route's limit.
	expect("wrong secret", s.register("bad-1", "not-the-secret", nil), http.StatusUnauthorized)
	expect("unsigned", s.register("bad-2", "", nil), http.StatusUnauthorized)
	expect("body over limit", s.stateUpdate("agent-1", 8192), http.StatusRequestEntityTooLarge)

	// One agent over its per-key rate (2/s, burst 2).
	limited := 0
	for range 6 {
		if s.stateUpdate("agent-2", 0) == http.StatusTooManyRequests {
			limited++
		}
	}
	if limited == 0 {
		t.Fatal("got no 429 from 6 quick updates of one agent, want some (per_key_rps 2)")
	}

	// Overload: a slow core holds the 3 bulk slots, the 2-place queue times out, the rest is shed.
	slow, err := s.toxi.Latency(300*time.Millisecond, 0)
	if err != nil {
		t.Fatal(err)
	}
	promParallel(30, func(i int) {
		s.do(http.MethodGet, fmt.Sprintf("/v1/opscore/agent/agent-%d/state", i%5), nil,
			http.Header{"Authorization": {"Bearer " + promAPIKey}})
	})
	if err := s.toxi.Remove(slow); err != nil {
		t.Fatal(err)
	}

	// Redis stalls: the core's Redis calls time out and it answers 503.
	if err := s.redis.Pause(); err != nil {
		t.Fatal(err)
	}
	promParallel(2, func(i int) { s.stateUpdate("agent-"+strconv.Itoa(3+i), 0) })
	if err := s.redis.Resume(); err != nil {
		t.Fatal(err)
	}
	promWaitFor(t, ctx, "Prometheus to scrape the core's Redis errors", func() bool {
		r, err := prom.query(ctx, `sum(opscore_redis_errors_total) > 0`)
		return err == nil && len(r) > 0
	})

	// The core dies. notify: refused attempts whose retries the (empty)
	// budget refuses. state_update: retries until its breaker opens and
	// answers for the core; after the restart it half-opens and closes.
	if err := s.core.Kill(); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		s.register("down-"+strconv.Itoa(i), promWebhookSecret, nil)
	}
	for i := range 6 {
		s.stateUpdate("down-"+strconv.Itoa(i), 0)
	}
	if err := s.core.Start(); err != nil {
		t.Fatal(err)
	}
	probe := 0
	promWaitFor(t, ctx, "the state_update breaker to close after the core restarted", func() bool {
		probe++
		s.stateUpdate("back-"+strconv.Itoa(probe), 0) // 404 from the core: an unknown agent
		return sidecarMetric(t, s.sidecar, "opscore_sidecar_breaker_state", `route="state_update"`) == 0 &&
			sidecarMetric(t, s.sidecar, "opscore_sidecar_breaker_transitions_total", `route="state_update"`, `to="closed"`) > 0
	})
	expect("registration after the restart", s.register("back", promWebhookSecret, nil), http.StatusOK)

	// An invalid config is rejected and counted; the good one is restored.
	good, err := os.ReadFile(s.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	before := sidecarMetric(t, s.sidecar, "opscore_sidecar_config_reloads_total", `result="success"`)
	if err := os.WriteFile(s.cfgPath, []byte("admission:\n  concurrency: {limit: -1}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	promWaitFor(t, ctx, "the sidecar to count a failed reload", func() bool {
		return sidecarMetric(t, s.sidecar, "opscore_sidecar_config_reloads_total", `result="failure"`) > 0
	})
	if err := os.WriteFile(s.cfgPath, good, 0o644); err != nil {
		t.Fatal(err)
	}
	promWaitFor(t, ctx, "the sidecar to reload the good config", func() bool {
		return sidecarMetric(t, s.sidecar, "opscore_sidecar_config_reloads_total", `result="success"`) > before
	})

	// Last, so no later request replaces its exemplar before a scrape: a
	// request on the default route that continues the caller's trace.
	tp := http.Header{"Traceparent": {"00-" + promTraceID + "-00f067aa0ba902b7-01"}}
	expect("health through the default route", s.do(http.MethodGet, "/health", nil, tp), http.StatusOK)
}
