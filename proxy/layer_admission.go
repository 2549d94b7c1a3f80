package proxy

import (
	"errors"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"opscore-sidecar/metrics"
	"opscore-sidecar/policy"
	"opscore-sidecar/proxy/config"
)

// This file is the admission layer of the chain (DESIGN.md step 5): the
// token buckets (global, route, per key) and the concurrency gate with
// its priority queue. The decision and the refusals are in admission.go.
// The policy objects are stateful: a reload updates them in place (limits
// changed, buckets and queued requests kept) and the next snapshot holds
// the same objects.

// AdmissionRuntime is a route's admission state.
type AdmissionRuntime struct {
	// Rate is the route's bucket and per-key table.
	Rate *policy.RouteRateLimiter
	// Key says where the per-key bucket's key comes from.
	Key policy.KeySource
	// keys is the route's ratelimit_keys gauge; nil without metrics.
	keys prometheus.Gauge
}

// GlobalAdmissionRuntime is the sidecar-wide admission state.
type GlobalAdmissionRuntime struct {
	// Rates holds the global bucket.
	Rates *policy.RateLimiter
	// Gate is the concurrency limit with its wait queue.
	Gate *policy.ConcurrencyGate
	// Trusted are the proxies whose X-Forwarded-For is believed.
	Trusted policy.TrustedProxies
	// Clients counts each client address's requests holding or waiting
	// for a slot (admission.concurrency.per_client_limit).
	Clients *policy.ClientSlots
}

// buildAdmission builds a route's AdmissionRuntime; prev is the route's
// runtime in the previous snapshot (nil at start-up), whose buckets are
// carried (see carry in snapshot.go): the same limiter, its new limits
// applied at commit.
func buildAdmission(name string, rc config.RouteConfig, prev *RouteRuntime, deps Deps, c *carry) (AdmissionRuntime, error) {
	key, err := policy.ParseKeySource(rc.RateLimit.Key)
	if err != nil {
		return AdmissionRuntime{}, err
	}
	a := AdmissionRuntime{Key: key}
	if prev != nil && prev.Admission.Rate != nil {
		if err := errors.Join(rc.RateLimit.Validate("routes." + name + ".rate_limit")...); err != nil {
			return AdmissionRuntime{}, err
		}
		a.Rate = prev.Admission.Rate
		c.then(func() error { return a.Rate.Update(deps.now(), name, rc.RateLimit) })
	} else if a.Rate, err = policy.NewRouteRateLimiter(name, rc.RateLimit); err != nil {
		return AdmissionRuntime{}, err
	}
	if deps.Metrics != nil {
		a.keys = deps.Metrics.RateLimitKeys.WithLabelValues(name)
		keys, rate := a.keys, a.Rate
		c.then(func() error { keys.Set(float64(rate.Keys())); return nil })
	}
	return a, nil
}

// buildGlobalAdmission builds the sidecar-wide admission state; prev is
// the previous snapshot's (nil at start-up), whose global bucket, gate and
// client slots are carried (see carry in snapshot.go): the same objects,
// their new limits applied at commit.
func buildGlobalAdmission(cfg *config.Config, prev *GlobalAdmissionRuntime, deps Deps, c *carry) (GlobalAdmissionRuntime, error) {
	var g GlobalAdmissionRuntime
	var err error
	if g.Trusted, err = policy.ParseTrustedProxies(cfg.Admission.TrustedProxies); err != nil {
		return GlobalAdmissionRuntime{}, err
	}
	adm := cfg.Admission
	if prev != nil && prev.Clients != nil {
		g.Clients = prev.Clients
		c.then(func() error { g.Clients.SetLimit(adm.Concurrency.PerClientLimit); return nil })
	} else {
		g.Clients = policy.NewClientSlots(adm.Concurrency.PerClientLimit)
	}
	if prev != nil && prev.Rates != nil {
		// Validate here what the carried steps will apply, so that commit
		// cannot fail half-way.
		if err = errors.Join(append(adm.GlobalRateLimit.Validate("admission.global_rate_limit"), adm.Concurrency.Validate("admission.concurrency")...)...); err != nil {
			return GlobalAdmissionRuntime{}, err
		}
		g.Rates, g.Gate = prev.Rates, prev.Gate
		rates, gate := g.Rates, g.Gate
		c.then(func() error {
			return errors.Join(rates.Update(deps.now(), adm.GlobalRateLimit, nil), gate.Update(adm.Concurrency))
		})
	} else {
		if g.Rates, err = policy.NewRateLimiter(adm.GlobalRateLimit, nil); err == nil {
			g.Gate, err = policy.NewConcurrencyGate(adm.Concurrency)
		}
	}
	if err != nil {
		return GlobalAdmissionRuntime{}, err
	}
	if deps.Metrics != nil {
		gate := g.Gate
		c.then(func() error { gate.Observe(gateGauges(deps.Metrics)); return nil })
	}
	return g, nil
}

// gateGauges returns the gate observer that keeps queue_depth and
// concurrency_limit and admission_inflight_requests current, per class.
func gateGauges(m *metrics.Metrics) func(policy.GateStats) {
	type gauges struct {
		class                  policy.Class
		depth, limit, inflight prometheus.Gauge
	}
	var gs []gauges
	for _, c := range []policy.Class{policy.ClassCritical, policy.ClassBulk} {
		gs = append(gs, gauges{c, m.QueueDepth.WithLabelValues(string(c)), m.ConcurrencyLimit.WithLabelValues(string(c)), m.AdmissionInflight.WithLabelValues(string(c))})
	}
	return func(st policy.GateStats) {
		for _, g := range gs {
			g.depth.Set(float64(st.QueuedOf(g.class)))
			g.limit.Set(float64(st.ClassLimit(g.class)))
			g.inflight.Set(float64(st.InFlightOf(g.class)))
		}
	}
}

// admissionLayer admits, queues, sheds or rate-limits the request and
// answers 429/503 through WriteProblem (see admission.go). An admitted
// request holds its concurrency slot (and its count against the client's
// per_client_limit) until the response is written. The body step before
// it (bodyLayer, request_body.go) has already read the request body, so a
// slow client never holds a slot while it sends.
func (s *Sidecar) admissionLayer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		adm, ok := s.admit(w, r)
		if !ok {
			return
		}
		info := InfoFrom(r.Context())
		info.adm = adm
		defer func() { info.adm.release() }()
		next.ServeHTTP(w, r)
	})
}
