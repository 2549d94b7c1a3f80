package proxy

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"

	"opscore-sidecar/policy"
	"opscore-sidecar/proxy/config"
)

// Sidecar is the reverse proxy: the handler chain over the current config
// snapshot. Create it with New; the zero value is not usable.
type Sidecar struct {
	deps      Deps
	tracing   *Tracing
	accessLog *slog.Logger

	snap     atomic.Pointer[Snapshot]
	applyMu  sync.Mutex // serializes Apply (reloads); readers never lock
	draining atomic.Bool

	// health is the active health check of the upstream (health.go).
	health *healthChecker
	// queue is the outbox side of the retry layer, set by AttachOutbox.
	queue atomic.Pointer[outboxQueue]

	handler http.Handler
}

// New builds a sidecar serving cfg, which must have passed Validate.
// accessLog receives one line per request (nil: no access log); tracing
// must not be nil.
func New(cfg *config.Config, deps Deps, tracing *Tracing, accessLog *slog.Logger) (*Sidecar, error) {
	if deps.Metrics == nil || tracing == nil {
		return nil, errors.New("proxy: New needs metrics and tracing")
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if accessLog == nil {
		accessLog = slog.New(slog.DiscardHandler)
	}
	s := &Sidecar{deps: deps, tracing: tracing, accessLog: accessLog}
	s.health = newHealthChecker(s.snap.Load, s.upstreamUp, s.openHolds, s.upstreamHealthy, deps.Metrics)
	s.deps.BreakerChange = s.breakerChanged
	snap, err := buildSnapshot(cfg, nil, s.deps)
	if err != nil {
		return nil, err
	}
	if err := snap.commit(); err != nil {
		return nil, err
	}
	s.snap.Store(snap)
	s.handler = s.chain()
	return s, nil
}

// Handler returns the chain (see chain for its order).
func (s *Sidecar) Handler() http.Handler { return s.handler }

// Snapshot returns the snapshot serving new requests.
func (s *Sidecar) Snapshot() *Snapshot { return s.snap.Load() }

// Apply validates cfg, builds a snapshot from it (carrying policy state
// over from the current one) and swaps it in atomically. On error nothing
// changes. Settings that need a restart (listen addresses, server limits
// except the drain keys, tracing, log level, reload) keep their running
// values, so /admin/config shows what is in effect; a warning names them.
func (s *Sidecar) Apply(cfg *config.Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	prev := s.snap.Load()
	cfg, keys := keepRestartKeys(prev.Config, cfg)
	next, err := buildSnapshot(cfg, prev, s.deps)
	if err != nil {
		return fmt.Errorf("proxy: build config: %w", err)
	}
	// The carried state takes its new settings now, just before the swap;
	// commit cannot fail on a validated config, but say so if it ever does.
	if err := next.commit(); err != nil {
		s.deps.Logger.Error("config reload: applying carried state failed", "err", err)
	}
	s.snap.Store(next)
	prev.retire(next)
	if len(keys) > 0 {
		s.deps.Logger.Warn("config changed keys that take effect only after a restart; they keep their running values", "keys", keys)
	}
	return nil
}

// keepRestartKeys returns a copy of cur whose restart-only settings are
// old's, the ones the running listeners, tracer and reloader use, and the
// keys of those that cur changed.
func keepRestartKeys(old, cur *config.Config) (*config.Config, []string) {
	c := *cur
	var keys []string
	if c.Listen != old.Listen {
		keys, c.Listen = append(keys, "listen"), old.Listen
	}
	if c.Admin != old.Admin {
		keys, c.Admin = append(keys, "admin"), old.Admin
	}
	server := old.Server // all but the drain keys, which are read at drain time
	server.DrainDelay, server.DrainTimeout = cur.Server.DrainDelay, cur.Server.DrainTimeout
	if c.Server != server {
		keys, c.Server = append(keys, "server"), server
	}
	if c.Tracing != old.Tracing {
		keys, c.Tracing = append(keys, "tracing"), old.Tracing
	}
	if c.Log.Level != old.Log.Level {
		keys, c.Log.Level = append(keys, "log.level"), old.Log.Level
	}
	if c.Reload != old.Reload {
		keys, c.Reload = append(keys, "reload"), old.Reload
	}
	if c.Outbox != old.Outbox {
		keys, c.Outbox = append(keys, "outbox"), old.Outbox
	}
	return &c, keys
}

// Draining reports whether a drain has started.
func (s *Sidecar) Draining() bool { return s.draining.Load() }

// Close stops the health check and releases the current snapshot's idle
// upstream connections.
func (s *Sidecar) Close() {
	s.health.close()
	s.snap.Load().Transport.CloseIdleConnections()
}

// breakerChanged is every breaker's extra state-change hook (it runs under
// the breaker's lock): a breaker that lets attempts through again opens its
// route's hold. (An opening breaker does not start the health check: the
// attempts that could not reach the upstream have started it already, and
// one opened by 5xx answers is not closed by a passing check anyway.)
func (s *Sidecar) breakerChanged(route string, _, to policy.BreakerState) {
	if to == policy.BreakerOpen {
		return
	}
	if snap := s.snap.Load(); snap != nil {
		if rt := snap.Runtime[route]; rt != nil {
			rt.Hold.Queue.Open()
		}
	}
}

// upstreamHealthy sets the health gauge; the upstream looking down also
// closes every hold, so the first requests of an outage are held instead
// of released into it by an Open left over from the last recovery.
func (s *Sidecar) upstreamHealthy(up bool) {
	if up {
		s.deps.Metrics.UpstreamHealthy.Set(1)
		return
	}
	s.deps.Metrics.UpstreamHealthy.Set(0)
	if snap := s.snap.Load(); snap != nil {
		for _, rt := range snap.Runtime {
			rt.Hold.Queue.Close()
		}
	}
}

// openHolds releases every route's held requests for another try: the
// blind retry of health_check.enabled false, which knows nothing of the
// upstream and so closes no breaker.
func (s *Sidecar) openHolds() {
	if snap := s.snap.Load(); snap != nil {
		for _, rt := range snap.Runtime {
			rt.Hold.Queue.Open()
		}
	}
}

// upstreamUp is called when a health check passes after the upstream
// looked down: breakers opened by the outage close, every hold releases
// its requests in arrival order, and the outbox delivers.
func (s *Sidecar) upstreamUp() {
	snap := s.snap.Load()
	for _, name := range config.RouteNames {
		rt := snap.Runtime[name]
		rt.Breaker.Recover()
		rt.Hold.Queue.Open()
	}
	if q := s.queue.Load(); q != nil {
		q.deliverer.Kick()
	}
}

// Check builds everything a start would build from cfg (policies, loaded
// secrets, the upstream transport) and throws it away, so --check-config
// also catches what Validate cannot see, such as a webhook secret that is
// missing from the environment.
func Check(cfg *config.Config) error {
	snap, err := buildSnapshot(cfg, nil, Deps{})
	if err != nil {
		return err
	}
	snap.Transport.CloseIdleConnections()
	return nil
}
