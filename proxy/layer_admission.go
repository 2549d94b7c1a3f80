package proxy

import (
	"net/http"
	"opscore-sidecar/proxy/config"

	"github.com/prometheus/client_golang/prometheus"

	"opscore-sidecar/metrics"
	"opscore-sidecar/policy"
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
// updated in place and carried over.
func buildAdmission(name string, rc config.RouteConfig, prev *RouteRuntime, deps Deps) (AdmissionRuntime, error) {
	key, err := policy.ParseKeySource(rc.RateLimit.Key)
	if err != nil {
		return AdmissionRuntime{}, err
	}
	a := AdmissionRuntime{Key: key}
	if prev != nil && prev.Admission.Rate != nil {
		a.Rate = prev.Admission.Rate
		err = a.Rate.Update(deps.now(), name, rc.RateLimit)
	} else {
		a.Rate, err = policy.NewRouteRateLimiter(name, rc.RateLimit)
	}
	if err != nil {
		return AdmissionRuntime{}, err
	}
	if deps.Metrics != nil {
		a.keys = deps.Metrics.RateLimitKeys.WithLabelValues(name)
		a.keys.Set(float64(a.Rate.Keys()))
	}
	return a, nil
}

// buildGlobalAdmission builds the sidecar-wide admission state; prev is
// the previous snapshot's (nil at start-up), whose global bucket and gate
// are updated in place and carried over.
func buildGlobalAdmission(cfg *config.Config, prev *GlobalRuntime, deps Deps) (GlobalAdmissionRuntime, error) {
	var g GlobalAdmissionRuntime
	var err error
	if g.Trusted, err = policy.ParseTrustedProxies(cfg.Admission.TrustedProxies); err != nil {
		return GlobalAdmissionRuntime{}, err
	}
	if prev != nil && prev.Admission.Clients != nil {
		g.Clients = prev.Admission.Clients
		g.Clients.SetLimit(cfg.Admission.Concurrency.PerClientLimit)
	} else {
		g.Clients = policy.NewClientSlots(cfg.Admission.Concurrency.PerClientLimit)
	}
	if prev != nil && prev.Admission.Rates != nil {
		g.Rates, g.Gate = prev.Admission.Rates, prev.Admission.Gate
		if err = g.Rates.Update(deps.now(), cfg.Admission.GlobalRateLimit, nil); err == nil {
			err = g.Gate.Update(cfg.Admission.Concurrency)
		}
	} else {
		if g.Rates, err = policy.NewRateLimiter(cfg.Admission.GlobalRateLimit, nil); err == nil {
			g.Gate, err = policy.NewConcurrencyGate(cfg.Admission.Concurrency)
		}
	}
	if err != nil {
		return GlobalAdmissionRuntime{}, err
	}
	if deps.Metrics != nil {
		g.Gate.Observe(gateGauges(deps.Metrics))
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
