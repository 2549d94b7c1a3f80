package proxy

import (
	"context"
	"maps"
	"net/http"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"opscore-sidecar/proxy/config"
)

// scriptHandler answers the n-th request with statuses[n] (the last one
// repeats) and the given Retry-After on 503s, and records when each
// request arrived.
type scriptHandler struct {
	statuses   []int
	retryAfter string
	calls      atomic.Int64
	arrivals   chan time.Time
}

func (h *scriptHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := int(h.calls.Add(1)) - 1
	h.arrivals <- time.Now()
	status := h.statuses[min(n, len(h.statuses)-1)]
	if status == http.StatusServiceUnavailable && h.retryAfter != "" {
		w.Header().Set("Retry-After", h.retryAfter)
	}
	w.WriteHeader(status)
}

// TestRetryWaitsForTheUpstreamsRetryAfter: in fake time, a 503 with
// Retry-After: 3 is retried no sooner than 3 s later.
func TestRetryWaitsForTheUpstreamsRetryAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rig := newRetryRig(t, "http://upstream.test", fastRetries)
		h := &scriptHandler{statuses: []int{503, 200}, retryAfter: "3", arrivals: make(chan time.Time, 4)}
		stop := pipeUpstream(rig, h)
		defer stop()
		rec := rig.do(t, context.Background(), "POST", pathNotify, "{}")
		if rec.Code != 200 || rec.Header().Get(HeaderAttempts) != "2" {
			t.Fatalf("got %d after %s attempts, want 200 after 2", rec.Code, rec.Header().Get(HeaderAttempts))
		}
		first, second := <-h.arrivals, <-h.arrivals
		if gap := second.Sub(first); gap < 3*time.Second {
			t.Errorf("retry came %s after the 503, want >= 3s (Retry-After: 3)", gap)
		}
	})
}

// TestRetryStopsWhenTheClientLeavesDuringBackoff: the client goes away
// while the sidecar waits out a Retry-After; no further attempt is made.
func TestRetryStopsWhenTheClientLeavesDuringBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rig := newRetryRig(t, "http://upstream.test", fastRetries)
		h := &scriptHandler{statuses: []int{503, 200}, retryAfter: "3", arrivals: make(chan time.Time, 4)}
		stop := pipeUpstream(rig, h)
		defer stop()
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			<-h.arrivals
			time.Sleep(time.Second)
			cancel()
		}()
		rec := rig.do(t, ctx, "POST", pathNotify, "{}")
		if rec.Code != codeAborted {
			t.Errorf("status %d, want the connection closed without a response", rec.Code)
		}
		time.Sleep(5 * time.Second) // past the Retry-After: a retry would have come by now
		if got := h.calls.Load(); got != 1 {
			t.Errorf("upstream calls %d, want 1", got)
		}
	})
}

// TestReloadKeepsAnUnchangedBreaker: a reload that changes another key
// keeps the route's open breaker; changing the breaker's settings gives a
// new, closed one.
func TestReloadKeepsAnUnchangedBreaker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rig := newRetryRig(t, "http://upstream.test", fastRetries)
		h := &scriptHandler{statuses: []int{502}, arrivals: make(chan time.Time, 64)}
		stop := pipeUpstream(rig, h)
		defer stop()
		for range 2 {
			rig.do(t, context.Background(), "POST", pathNotify, "{}")
		}
		old := rig.s.Snapshot().Runtime[config.RouteNotify].Breaker
		if old.State().String() != "open" {
			t.Fatalf("breaker %s, want open", old.State())
		}

		cfg := *rig.s.Snapshot().Config
		cfg.Routes = maps.Clone(cfg.Routes)
		route(&cfg, config.RouteNotify, func(rc *config.RouteConfig) { rc.Retry.Attempts = 2 })
		if err := rig.s.Apply(&cfg); err != nil {
			t.Fatal(err)
		}
		if got := rig.s.Snapshot().Runtime[config.RouteNotify].Breaker; got != old {
			t.Error("reload of a retry key replaced the breaker, want it kept")
		}
		if rec := rig.do(t, context.Background(), "POST", pathNotify, "{}"); rec.Code != 503 || rec.Header().Get("Retry-After") == "" {
			t.Errorf("after reload: %d Retry-After %q, want 503 breaker_open", rec.Code, rec.Header().Get("Retry-After"))
		}

		route(&cfg, config.RouteNotify, func(rc *config.RouteConfig) { rc.Breaker.OpenTimeout = time.Second })
		if err := rig.s.Apply(&cfg); err != nil {
			t.Fatal(err)
		}
		nb := rig.s.Snapshot().Runtime[config.RouteNotify].Breaker
		if nb == old || nb.State().String() != "closed" {
			t.Errorf("reload of a breaker key: same=%v state %s, want a new closed breaker", nb == old, nb.State())
		}
		if got := counter(t, rig.metrics.BreakerState.WithLabelValues(config.RouteNotify)); got != 0 {
			t.Errorf("breaker_state gauge %v after the new breaker, want 0", got)
		}
	})
}
