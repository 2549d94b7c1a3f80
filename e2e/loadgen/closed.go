package loadgen

import (
	"context"
	"sync"
	"time"
)

// runClosed runs the closed model: virtual users spawned at the scenario's
// rate (after the initial ones), each looping over its tasks with think
// time, plus the scenario 4 steps, until ctx ends.
func runClosed(ctx context.Context, cfg *Config, rec *Recorder) {
	s := &cfg.Scenario
	var wg sync.WaitGroup
	defer wg.Wait()
	start := time.Now()
	interval := time.Duration(float64(time.Second) / s.SpawnRate)
	spawned := 0
	next := start
	if s.InitialUsers > 0 {
		next = start.Add(interval)
	}
	for ctx.Err() == nil {
		target := s.Users
		if s.StepEvery > 0 {
			target += s.StepUsers * int(time.Since(start)/s.StepEvery)
		}
		if spawned >= target {
			if s.StepEvery <= 0 {
				return // every user runs; wait for the end
			}
			step := start.Add(time.Duration(int(time.Since(start)/s.StepEvery)+1) * s.StepEvery)
			if !sleep(ctx, time.Until(step)) {
				return
			}
			next = time.Now()
			continue
		}
		if spawned >= s.InitialUsers {
			if !sleep(ctx, time.Until(next)) {
				return
			}
			next = next.Add(interval)
		}
		spawned++
		u := newUser(cfg, rec, uint64(start.UnixNano())+uint64(spawned))
		wg.Add(1)
		rec.AddUsers(1)
		go func() {
			defer wg.Done()
			defer rec.AddUsers(-1)
			u.run(ctx)
		}()
	}
}
