package loadgen

import (
	"context"
	"fmt"
	"sync"
	"time"

	"opscore-sidecar/e2e/harness"
)

// FaultPlan is what goes wrong during a run: connection resets and latency
// injected by a toxiproxy between the clients (or the sidecar) and the
// core, one kill -9 of the core followed by a restart on the same port,
// and a pause of Redis.
type FaultPlan struct {
	// Toxi is the proxy in front of the core; nil means no network faults.
	Toxi *harness.Toxi
	// ResetProbability is the share of new connections through Toxi that
	// are reset on their first bytes (0: none).
	ResetProbability float64
	// Core is the core process to kill and restart; nil means no restart.
	Core *harness.Proc
	// RestartAt is when, after the start, the core is killed (0: never).
	RestartAt time.Duration
	// RestartDown is how long the core stays down before it is started.
	RestartDown time.Duration
	// Latency and Jitter, when Latency > 0, delay every response from the
	// core through Toxi by Latency ± Jitter.
	Latency, Jitter time.Duration
	// Redis is the core's redis-server; nil means no storage faults.
	Redis *harness.Redis
	// RedisPauseAt, when > 0, freezes Redis (SIGSTOP) at that time for
	// RedisPauseFor, then resumes it (SIGCONT).
	RedisPauseAt, RedisPauseFor time.Duration
}

// RunWithFaults runs cfg while applying plan, and lists the faults in the
// result's Events. The toxic is removed and the core is running again when
// it returns.
func RunWithFaults(ctx context.Context, cfg Config, plan FaultPlan) (*Result, error) {
	start := time.Now()
	var mu sync.Mutex
	var events []Event
	event := func(format string, args ...any) {
		mu.Lock()
		events = append(events, Event{At: time.Since(start).Seconds(), What: fmt.Sprintf(format, args...)})
		mu.Unlock()
	}
	if plan.Toxi != nil && plan.ResetProbability > 0 {
		name, err := plan.Toxi.ResetPeer(plan.ResetProbability)
		if err != nil {
			return nil, err
		}
		event("toxiproxy: reset_peer on %.0f%% of new connections to the core", 100*plan.ResetProbability)
		defer plan.Toxi.Remove(name)
	}
	if plan.Toxi != nil && plan.Latency > 0 {
		name, err := plan.Toxi.Latency(plan.Latency, plan.Jitter)
		if err != nil {
			return nil, err
		}
		event("toxiproxy: latency %v ± %v on responses from the core", plan.Latency, plan.Jitter)
		defer plan.Toxi.Remove(name)
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	if plan.Core != nil && plan.RestartAt > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if !sleep(runCtx, plan.RestartAt) {
				return
			}
			pid := plan.Core.PID()
			plan.Core.Kill()
			event("core pid %d killed with SIGKILL", pid)
			time.Sleep(plan.RestartDown)
			if err := plan.Core.Start(); err != nil {
				event("core restart FAILED: %v", err)
				return
			}
			event("core restarted on the same port (pid %d, ready)", plan.Core.PID())
		}()
	}
	if plan.Redis != nil && plan.RedisPauseAt > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if !sleep(runCtx, plan.RedisPauseAt) {
				return
			}
			if err := plan.Redis.Pause(); err != nil {
				event("redis pause FAILED: %v", err)
				return
			}
			event("redis-server paused with SIGSTOP")
			time.Sleep(plan.RedisPauseFor)
			if err := plan.Redis.Resume(); err != nil {
				event("redis resume FAILED: %v", err)
				return
			}
			event("redis-server resumed with SIGCONT")
		}()
	}
	res, err := Run(runCtx, cfg)
	cancel()
	wg.Wait()
	if res != nil {
		mu.Lock()
		res.Events = events
		mu.Unlock()
	}
	return res, err
}

// ResilientSidecarYAML is the sidecar configuration of the fault runs:
// upstream keep-alive connections are dropped after idleConnTimeout
// (below the core's idle timeout, so the sidecar never reuses a
// connection the core is closing), idempotent routes retry up to 10 times
// within 15 s with a budget that a short outage cannot exhaust, and the
// breakers only open on a sustained outage longer than a restart.
func ResilientSidecarYAML(idleConnTimeout time.Duration) string {
	route := `
    retry: {attempts: 10, per_try_timeout: 2s, deadline: 15s, backoff_base: 100ms, backoff_max: 1s, budget_ratio: 1.0, budget_min_per_second: 200, idempotent: true}
    breaker: {consecutive_failures: 200, failure_ratio: 0.95, min_requests: 500, window: 10s, open_timeout: 2s, half_open_requests: 5, enabled: true}`
	return fmt.Sprintf(`upstream:
  idle_conn_timeout: %s
  dial_timeout: 1s
routes:
  notify:%s
  state_update:%s
  state_get:%s
`, idleConnTimeout, route, route, route)
}
