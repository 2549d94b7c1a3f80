package proxy

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"opscore-sidecar/metrics"
	"opscore-sidecar/policy"
	"opscore-sidecar/proxy/config"
)

// Snapshot is one immutable configuration with everything built from it:
// the route table, each route's runtime (policy objects) and the upstream
// transport. The sidecar holds the current one in an atomic.Pointer; a
// request loads it once and uses it to the end, so a reload never changes
// a request half-way and request code never takes a lock to read config.
type Snapshot struct {
	// Config is the validated configuration. Treat it as read-only.
	Config *config.Config
	// Routes maps requests to route names.
	Routes *RouteTable
	// Runtime holds each route's runtime, keyed by route name (every name
	// of RouteNames is present).
	Runtime map[string]*RouteRuntime
	// GlobalAdmission is the sidecar-wide admission state: the global
	// bucket and the concurrency gate (admission.go).
	GlobalAdmission GlobalAdmissionRuntime
	// Upstream is the parsed upstream URL.
	Upstream *url.URL
	// Transport is the transport to the upstream (newTransport,
	// transport.go). It is carried over from the previous snapshot while
	// the upstream settings are unchanged, so a reload keeps the warm
	// connection pool.
	Transport upstreamTransport
	// Loaded is when the snapshot was built.
	Loaded time.Time

	// carried is what the snapshot changes in the state it shares with
	// the one it replaces; commit runs it when the snapshot becomes current.
	carried carry
}

// carry is the one way state crosses a reload (see docs/architecture.md,
// "Reload"). A build function takes the stateful objects of the previous
// snapshot's runtime (the same pointers: buckets, gate, client slots, hold
// queue, breaker, replay cache, budget counts) into the next one and never
// changes them while building; every change to such a shared object (new
// limits, a replaced breaker's retirement, gauges) is a step added with
// then, and the steps run in order in commit, once the whole snapshot has
// built, just before it is made current. A build that fails, or one only
// checked (Check), leaves the running snapshot exactly as it was.
type carry struct{ steps []func() error }

// then adds a step to run at commit.
func (c *carry) then(step func() error) { c.steps = append(c.steps, step) }

// commit runs the carried steps, once. Their inputs were validated when
// the snapshot was built, so an error here is a bug; it is returned joined.
func (s *Snapshot) commit() error {
	var errs []error
	for _, step := range s.carried.steps {
		if err := step(); err != nil {
			errs = append(errs, err)
		}
	}
	s.carried.steps = nil
	return errors.Join(errs...)
}

// RouteRuntime is one route's limits and policy objects. Each policy
// layer builds its own part in its build function (buildAuth,
// buildAdmission, buildRetry, buildBreaker), in its own file.
type RouteRuntime struct {
	// Class is the route's priority class.
	Class policy.Class
	// BodyLimit is the largest accepted body in bytes; 0 means no limit.
	BodyLimit int64

	// Auth is the webhook HMAC and API-key check (auth.go).
	Auth AuthRuntime
	// Admission is the route's and the per-key buckets (admission.go).
	Admission AdmissionRuntime
	// Retry decides retries and holds the route's retry budget (retry_transport.go).
	Retry *policy.RetryPolicy
	// Breaker is the circuit breaker; a disabled one allows everything (breaker_transport.go).
	Breaker *policy.Breaker
	// Hold is the hold queue of requests waiting for the upstream (hold.go).
	Hold HoldRuntime
}

// Deps are the shared services a snapshot's policy objects may use.
type Deps struct {
	// Metrics is the sidecar's collectors. A snapshot builds without them
	// (Check); the Sidecar needs them.
	Metrics *metrics.Metrics
	// Logger is the process log.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now. Tests pass a fake clock.
	Now func() time.Time
	// BreakerChange, when set, is told of every breaker state change after
	// the metrics (the Sidecar opens the route's hold when its breaker
	// lets attempts through again). It runs under the breaker's lock.
	BreakerChange policy.BreakerStateFunc
}

func (d Deps) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

// buildSnapshot builds a snapshot from a validated cfg. prev is the
// snapshot being replaced (nil at start-up): each layer's build function
// receives the route's previous runtime and carries its stateful objects
// into the new one by the rule of carry, so that a reload keeps buckets,
// queues and (when their settings are unchanged) breakers. buildSnapshot
// changes nothing in prev; the caller runs commit before storing the result.
func buildSnapshot(cfg *config.Config, prev *Snapshot, deps Deps) (*Snapshot, error) {
	u, err := url.Parse(cfg.Upstream.URL)
	if err != nil {
		return nil, fmt.Errorf("upstream.url: %w", err)
	}
	routes, err := newRouteTable(cfg)
	if err != nil {
		return nil, err
	}
	s := &Snapshot{Config: cfg, Routes: routes, Upstream: u, Runtime: make(map[string]*RouteRuntime, len(config.RouteNames)), Loaded: deps.now()}

	if prev != nil && prev.Config.Upstream == cfg.Upstream {
		s.Transport = prev.Transport
	} else {
		s.Transport = newTransport(cfg.Upstream)
	}

	// Auth is built first, for every route: it is what fails after
	// validation (a secret missing from the environment).
	auth := make(map[string]AuthRuntime, len(config.RouteNames))
	for _, name := range config.RouteNames {
		if auth[name], err = buildAuth(name, cfg.Routes[name], prev.route(name), &s.carried, deps); err != nil {
			return nil, fmt.Errorf("routes.%s: %w", name, err)
		}
	}

	var prevGlobal *GlobalAdmissionRuntime
	if prev != nil {
		prevGlobal = &prev.GlobalAdmission
	}
	c := &s.carried
	if s.GlobalAdmission, err = buildGlobalAdmission(cfg, prevGlobal, deps, c); err != nil {
		return nil, err
	}

	for _, name := range config.RouteNames {
		rc := cfg.Routes[name]
		rt := &RouteRuntime{Class: rc.Class, BodyLimit: rc.BodyLimit, Auth: auth[name]}
		old := prev.route(name)
		var oldRC *config.RouteConfig
		if prev != nil {
			if r, ok := prev.Config.Routes[name]; ok {
				oldRC = &r
			}
		}
		if rt.Admission, err = buildAdmission(name, rc, old, deps, c); err != nil {
			return nil, fmt.Errorf("routes.%s: %w", name, err)
		}
		if rt.Retry, err = buildRetry(rc, old); err != nil {
			return nil, fmt.Errorf("routes.%s: %w", name, err)
		}
		if rt.Breaker, err = buildBreaker(name, rc, old, oldRC, deps, c); err != nil {
			return nil, fmt.Errorf("routes.%s: %w", name, err)
		}
		if rt.Hold, err = buildHold(rc, old, c); err != nil {
			return nil, fmt.Errorf("routes.%s: %w", name, err)
		}
		s.Runtime[name] = rt
	}
	return s, nil
}

// route returns the runtime of the named route, or nil when s is nil (no
// previous snapshot at start-up).
func (s *Snapshot) route(name string) *RouteRuntime {
	if s == nil {
		return nil
	}
	return s.Runtime[name]
}

// retire releases what s holds that next no longer uses: the old
// transport's idle connections (in-flight requests finish normally).
func (s *Snapshot) retire(next *Snapshot) {
	if s != nil && s.Transport != next.Transport {
		s.Transport.CloseIdleConnections()
	}
}
