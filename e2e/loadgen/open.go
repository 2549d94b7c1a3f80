package loadgen

import (
	"context"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"
)

// sendAhead is how early an open-model sender may send instead of sleeping.
const sendAhead = 2 * time.Millisecond

// runOpen runs the open model: first it registers Users agents (counted
// like every request), then it sends the scenario's weighted tasks for
// random agents at a constant arrival rate through Connections senders.
// Arrival n is due at start + n/rate and is sent by sender n mod
// Connections (as wrk2 paces each connection); a request's latency runs
// from its due time, so a stall that delays sending shows in the
// percentiles instead of silently lowering the rate.
func runOpen(ctx context.Context, cfg *Config, rec *Recorder) {
	s := &cfg.Scenario
	tr := newTransport(cfg.Connections)
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: cfg.RequestTimeout}
	cl := &caller{client: client, target: cfg.Target, apiKey: cfg.APIKey, rec: rec, observe: cfg.Observe}
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

	total := s.totalWeight()
	start := time.Now()
	interval := float64(time.Second) / cfg.Rate
	for w := range cfg.Connections {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), uint64(start.UnixNano())))
			for n := uint64(w); ; n += uint64(cfg.Connections) {
				due := start.Add(time.Duration(float64(n) * interval))
				// Sleeping for every request costs a timer each; a sender
				// that is less than sendAhead early goes at once (and its
				// latency still runs from the later of due and send).
				if ahead := time.Until(due); ahead > sendAhead && !sleep(ctx, ahead) {
					return
				} else if ctx.Err() != nil {
					return
				}
				id := ids[r.IntN(len(ids))]
				cl.do(ctx, taskCall(cfg, s.pickTask(r.IntN(total)), id, r), due)
			}
		}()
	}
	wg.Wait()
}
