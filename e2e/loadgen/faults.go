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
	// RedisStopAt, when > 0, stops Redis (SIGTERM) at that time and starts
	// it again on the same port, empty, after RedisStopFor.
	RedisStopAt, RedisStopFor time.Duration
}

// fault is one scheduled process fault: breakIt at at, healIt after
// down. Each returns the event to note (or its error).
type fault struct {
	what            string
	at, down        time.Duration
	breakIt, healIt func() (string, error)
}

// schedule runs f in a goroutine tracked by wg: it waits until f.at
// (giving up when ctx ends first), breaks, waits f.down and heals, noting
// each step (or its failure) as an event.
func schedule(ctx context.Context, wg *sync.WaitGroup, f fault, event func(string, ...any)) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		if !sleep(ctx, f.at) {
			return
		}
		for i, step := range []func() (string, error){f.breakIt, f.healIt} {
			if i == 1 {
				// The heal runs even when the run ends meanwhile, so the
				// stack is whole again when RunWithFaults returns.
				time.Sleep(f.down)
			}
			what, err := step()
			if err != nil {
				event("%s FAILED: %v", f.what, err)
				return
			}
			event("%s", what)
		}
	}()
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
		core := plan.Core
		schedule(runCtx, &wg, fault{what: "core kill -9 and restart", at: plan.RestartAt, down: plan.RestartDown,
			breakIt: func() (string, error) {
				pid := core.PID()
				return fmt.Sprintf("core pid %d killed with SIGKILL", pid), core.Kill()
			},
			healIt: func() (string, error) {
				err := core.Start()
				return fmt.Sprintf("core restarted on the same port (pid %d, ready)", core.PID()), err
			},
		}, event)
	}
	if r := plan.Redis; r != nil && plan.RedisPauseAt > 0 {
		schedule(runCtx, &wg, fault{what: "redis pause", at: plan.RedisPauseAt, down: plan.RedisPauseFor,
			breakIt: func() (string, error) { return "redis-server paused with SIGSTOP", r.Pause() },
			healIt:  func() (string, error) { return "redis-server resumed with SIGCONT", r.Resume() },
		}, event)
	}
	if r := plan.Redis; r != nil && plan.RedisStopAt > 0 {
		schedule(runCtx, &wg, fault{what: "redis stop", at: plan.RedisStopAt, down: plan.RedisStopFor,
			breakIt: func() (string, error) { return "redis-server stopped (SIGTERM)", r.Stop() },
			healIt:  func() (string, error) { return "redis-server started again on the same port (empty)", r.Restart() },
		}, event)
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
