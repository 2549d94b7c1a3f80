package loadgen

import (
	"context"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"
)

// job is one open-model request: which arrival it is and when it was due.
type job struct {
	n         uint64
	scheduled time.Time
}

// runOpen runs the open model: first it registers Users agents (counted
// like every request), then it sends the scenario's weighted tasks for
// random agents at a constant arrival rate through Connections senders.
// A request's latency runs from its scheduled send time, so a stall that
// delays sending shows in the percentiles instead of lowering the rate.
func runOpen(ctx context.Context, cfg *Config, rec *Recorder) {
	s := &cfg.Scenario
	tr := newTransport(cfg.Connections)
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: cfg.RequestTimeout}
	cl := &caller{client: client, target: cfg.Target, apiKey: cfg.APIKey, rec: rec}
	rec.AddUsers(int64(cfg.Connections))
	defer rec.AddUsers(-int64(cfg.Connections))

	seedRand := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	ids := make([]string, s.Users)
	for i := range ids {
		ids[i] = agentID(s.IDs, cfg.UniqueIDs, seedRand, cfg.runTag)
	}
	register := make(chan string)
	var wg sync.WaitGroup
	for range min(cfg.Connections, len(ids)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range register {
				cl.do(ctx, registerCall(cfg, id), time.Time{})
			}
		}()
	}
	for _, id := range ids {
		select {
		case register <- id:
		case <-ctx.Done():
		}
	}
	close(register)
	wg.Wait()
	if ctx.Err() != nil {
		return
	}

	jobs := make(chan job, 1<<16)
	total := s.totalWeight()
	for w := range cfg.Connections {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
			for j := range jobs {
				if ctx.Err() != nil {
					continue // drain without sending
				}
				id := ids[r.IntN(len(ids))]
				c := taskCall(cfg, s.pickTask(r.IntN(total)), id, r)
				cl.do(ctx, c, j.scheduled)
			}
		}()
	}
	dispatch(ctx, cfg.Rate, jobs)
	close(jobs)
	wg.Wait()
}

// dispatch emits arrivals n = 0, 1, 2, ... at start + n/rate until ctx
// ends. It wakes at most every millisecond and emits every arrival that is
// due, so high rates do not depend on timer precision.
func dispatch(ctx context.Context, rate float64, jobs chan<- job) {
	start := time.Now()
	interval := float64(time.Second) / rate
	var n uint64
	for {
		now := time.Now()
		for {
			due := start.Add(time.Duration(float64(n) * interval))
			if due.After(now) {
				break
			}
			select {
			case jobs <- job{n: n, scheduled: due}:
			case <-ctx.Done():
				return
			}
			n++
		}
		next := start.Add(time.Duration(float64(n) * interval))
		if !sleep(ctx, max(time.Until(next), time.Millisecond)) {
			return
		}
	}
}
