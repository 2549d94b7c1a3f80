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
	// blind is called instead of probing when health_check.enabled is
	// false: an interval after a connection failure, the holds are opened
	// for another try (nothing is known of the upstream, so no breaker is
	// closed and the gauge is left alone).
	blind   func()
	metrics *metrics.Metrics

	mu        sync.Mutex
	probing   bool        // the upstream looks down: the probe loop runs
	confirmed bool        // a probe has failed since probing started
	downSince time.Time   // when probing started
	blinding  bool        // a blind retry is scheduled (health_check.enabled false)
	cur       *probeRound // the probe in flight or scheduled, nil if none
	lastStart time.Time   // when the last probe was (to be) sent
	gen       int         // counts outages; a loop of an older one stops
	stop      chan struct{}
	stopped   bool
}

// probeRound is one health probe, shared by every caller waiting for it.
type probeRound struct {
	started time.Time     // when it is sent
	done    chan struct{} // closed when ok is set
	ok      bool
}

// probeGap is the least time between two probes, however many requests
// ask for one (check): a down upstream gets at most 200 probes a second.
const probeGap = 5 * time.Millisecond

func newHealthChecker(snap func() *Snapshot, up, blind func(), healthy func(bool), m *metrics.Metrics) *healthChecker {
	return &healthChecker{snap: snap, up: up, blind: blind, healthy: healthy, metrics: m, stop: make(chan struct{})}
}

// suspect says the upstream may be down: the probe loop starts unless it
// runs already. It never blocks. With health_check.enabled false nothing
// is probed: a blind retry opens the holds an interval later.
func (h *healthChecker) suspect() {
	cfg := h.snap().Config.HealthCheck
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopped {
		return
	}
	if !cfg.Enabled {
		if !h.blinding {
			h.blinding = true
			time.AfterFunc(cfg.Interval, func() {
				h.mu.Lock()
				h.blinding = false
				h.mu.Unlock()
				h.blind()
			})
		}
		return
	}
	if h.probing {
		return
	}
	h.probing, h.confirmed, h.downSince = true, false, time.Now()
	h.gen++
	h.healthy(false)
	go h.loop(h.gen)
}

// knownDown reports whether a probe has confirmed the upstream down since
// the last one passed: a single reset or closed connection (the keep-alive
// race) starts the probes but is not taken for an outage.
func (h *healthChecker) knownDown() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.probing && h.confirmed
}

// down reports whether the upstream looks down: the probe loop runs.
func (h *healthChecker) down() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.probing
}

// downFor returns how long the upstream has looked down, once a probe has
// confirmed it (0 otherwise).
func (h *healthChecker) downFor() time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.probing || !h.confirmed {
		return 0
	}
	return time.Since(h.downSince)
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

// loop probes every interval (plus jitter) until a probe passes, or a
// request's probe (check) saw the upstream back first.
func (h *healthChecker) loop(gen int) {
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
		h.mu.Lock()
		if !h.probing || h.gen != gen {
			h.mu.Unlock()
			return
		}
		r := h.roundLocked(time.Now())
		h.mu.Unlock()
		select {
		case <-h.stop:
			return
		case <-r.done:
		}
		if h.passed(r) {
			return
		}
	}
}

// check is for a request that found its route's breaker open because the
// upstream was unreachable: it waits (at most maxWait) for a probe sent
// after the request arrived and reports whether the upstream answered. So
// a request that arrives once the upstream is back is never refused on the
// strength of an older probe, and a recovery is seen by the first request
// after it, not one probe interval later. Requests that arrive together
// share one probe, and probes are at least probeGap apart.
func (h *healthChecker) check(ctx context.Context, maxWait time.Duration) bool {
	arrived := time.Now()
	timer := time.NewTimer(maxWait)
	defer timer.Stop()
	for {
		h.mu.Lock()
		if !h.probing {
			h.mu.Unlock()
			return true
		}
		r := h.roundLocked(arrived)
		h.mu.Unlock()
		select {
		case <-r.done:
			if !r.started.Before(arrived) {
				return h.passed(r)
			}
			// An older probe ended: ask for a fresh one.
		case <-timer.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// roundLocked returns the probe in flight or scheduled, or schedules a new
// one (sent at after or later, and probeGap after the last one) when there
// is none. h.mu is held.
func (h *healthChecker) roundLocked(after time.Time) *probeRound {
	if r := h.cur; r != nil {
		return r
	}
	start := time.Now()
	if start.Before(after) {
		start = after
	}
	if next := h.lastStart.Add(probeGap); start.Before(next) {
		start = next
	}
	r := &probeRound{started: start, done: make(chan struct{})}
	h.cur, h.lastStart = r, start
	go h.run(r)
	return r
}

// run sends the probe r at its time and publishes its result.
func (h *healthChecker) run(r *probeRound) {
	if d := time.Until(r.started); d > 0 {
		time.Sleep(d)
	}
	ok := h.probe()
	h.mu.Lock()
	r.ok = ok
	if h.cur == r {
		h.cur = nil
	}
	if !ok && h.probing && !r.started.Before(h.downSince) {
		h.confirmed = true
	}
	h.mu.Unlock()
	close(r.done)
}

// passed reports whether the finished probe r passed and, for the first
// caller to see it pass while the upstream looked down, runs the recovery:
// breakers opened by the outage close and holds open (up) before the gauge
// says healthy.
//
// The recovery and the gauge run under h.mu, so a suspect of the next
// outage cannot slip between them; a probe sent before the current outage
// began says nothing of it and is not taken as a pass.
func (h *healthChecker) passed(r *probeRound) bool {
	if !r.ok {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.probing {
		return true
	}
	if r.started.Before(h.downSince) {
		return false
	}
	h.probing, h.confirmed = false, false
	h.up()
	h.healthy(true)
	return true
}

// probe sends one health check and reports whether it passed.
func (h *healthChecker) probe() bool {
	snap := h.snap()
	cfg := snap.Config.HealthCheck
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
