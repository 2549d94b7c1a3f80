package proxy

import (
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"opscore-sidecar/metrics"
)

// healthChecker is the active health check of the upstream. It is idle
// while the upstream answers. When an attempt cannot reach it (refused,
// dial error) or a breaker opens, suspect starts a probe loop: GET
// health_check.path every health_check.interval plus jitter. At the first
// good (2xx) answer the checker calls up, which closes the breakers the
// outage opened (policy.Breaker.Recover), opens every route's hold and
// wakes the outbox deliverer, and the loop stops.
//
// This is active health checking next to the breaker's passive outlier
// detection, as Envoy has both: the breaker still decides when to stop
// sending (failures lasting breaker.min_failing_time), the probe decides
// when to start again, within one interval of the upstream's return
// instead of after a fixed open_timeout. A breaker opened by answers (5xx,
// timeouts) is not closed by a passing probe: an overloaded upstream
// usually still answers its health check. docs/resilience.md has the
// details.
type healthChecker struct {
	snap    func() *Snapshot
	up      func()
	healthy func(bool)
	metrics *metrics.Metrics

	mu      sync.Mutex
	probing bool
	stop    chan struct{}
	stopped bool
}

func newHealthChecker(snap func() *Snapshot, up func(), healthy func(bool), m *metrics.Metrics) *healthChecker {
	return &healthChecker{snap: snap, up: up, healthy: healthy, metrics: m, stop: make(chan struct{})}
}

// suspect says the upstream may be down: the probe loop starts unless it
// runs already. It never blocks.
func (h *healthChecker) suspect() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.probing || h.stopped {
		return
	}
	h.probing = true
	h.healthy(false)
	go h.loop()
}

// down reports whether the upstream looks down: the probe loop runs.
func (h *healthChecker) down() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.probing
}

// close stops the probe loop for good.
func (h *healthChecker) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.stopped {
		h.stopped = true
		close(h.stop)
	}
}

func (h *healthChecker) loop() {
	for {
		cfg := h.snap().Config.HealthCheck
		wait := cfg.Interval + time.Duration(rand.Float64()*cfg.Jitter*float64(cfg.Interval))
		timer := time.NewTimer(wait)
		select {
		case <-h.stop:
			timer.Stop()
			return
		case <-timer.C:
		}
		if !h.probe() {
			continue
		}
		h.mu.Lock()
		h.probing = false
		h.mu.Unlock()
		h.healthy(true)
		h.up()
		return
	}
}

// probe sends one health check and reports whether it passed. With
// health_check.enabled false nothing is sent: the loop then only waits an
// interval before saying "try again", a blind retry timer.
func (h *healthChecker) probe() bool {
	snap := h.snap()
	cfg := snap.Config.HealthCheck
	if !cfg.Enabled {
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Timeout)
	defer cancel()
	u := *snap.Upstream
	u.Path = joinPath(u.Path, cfg.Path)
	u.RawPath, u.RawQuery = "", ""
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return false
	}
	req.Header.Set("User-Agent", "opscore-sidecar-health-check")
	resp, err := snap.Transport.RoundTrip(req)
	ok := err == nil && resp.StatusCode >= 200 && resp.StatusCode < 300
	if err == nil {
		_, _ = io.CopyN(io.Discard, resp.Body, 4<<10)
		resp.Body.Close()
	}
	res := "fail"
	if ok {
		res = "ok"
	}
	h.metrics.HealthProbes.WithLabelValues(res).Inc()
	return ok
}

// joinPath joins the upstream's base path and p with one slash.
func joinPath(base, p string) string {
	switch {
	case base == "" || base == "/":
		return p
	case base[len(base)-1] == '/' && p != "" && p[0] == '/':
		return base + p[1:]
	}
	return base + p
}
