package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"opscore-sidecar/metrics"
	"opscore-sidecar/policy"
	"opscore-sidecar/proxy/config"
)

// This file is the admission layer of the chain (see the request path in
// docs/architecture.md): the token buckets (global, route, per key) and
// the concurrency gate with its priority queue, the decision and the
// refusals. The policy objects are stateful and are carried across a
// reload (see carry in snapshot.go).

// Response header names of a rate-limit refusal: the IETF draft's fields
// (draft-ietf-httpapi-ratelimit-headers-10) and Retry-After.
const (
	HeaderRateLimitPolicy = "RateLimit-Policy"
	HeaderRateLimit       = "RateLimit"
	HeaderRetryAfter      = "Retry-After"
)

// admission is an admitted request's hold on the concurrency gate: its
// slot and its count against the client's per_client_limit.
type admission struct {
	slot    policy.GateSlot
	clients *policy.ClientSlots
	client  string // counted in clients when non-empty
}

// release gives the slot and the client's count back.
func (a admission) release() {
	a.slot.Release()
	if a.client != "" {
		a.clients.Release(a.client)
	}
}

// yieldSlot gives the request's concurrency slot back while it waits in a
// hold (hold.go): a held request sends nothing, and the slot is better used
// by traffic that can. The client's count is kept.
func (ri *RequestInfo) yieldSlot() {
	ri.adm.slot.Release()
	ri.adm.slot = policy.GateSlot{}
}

// retakeSlot takes a concurrency slot again for a request released from a
// hold, waiting in the gate's queue like any request of its class (so a
// recovery never sends the core more than the gate allows). Without a gate
// (admission off, or a test that drives the transport alone) it does
// nothing.
func (ri *RequestInfo) retakeSlot(ctx context.Context) error {
	if ri.Snapshot == nil || ri.Runtime == nil || ri.Snapshot.GlobalAdmission.Gate == nil {
		return nil
	}
	slot, _, err := ri.Snapshot.GlobalAdmission.Gate.Acquire(ctx, ri.Runtime.Class)
	if err != nil {
		return err
	}
	ri.adm.slot = slot
	return nil
}

// admit runs the token buckets, then the per-client cap, then the
// concurrency gate. It returns the admission and true when the request may
// be forwarded; otherwise it has answered (429, 503, or nothing when the
// client left while queued, logged as 499). Every
// refusal and every shadow-mode would-be refusal is counted in
// admission_rejections_total{route,class,reason,mode}; shadow ones are
// also listed in the access log line's "shadow" field.
func (s *Sidecar) admit(w http.ResponseWriter, r *http.Request) (admission, bool) {
	info := InfoFrom(r.Context())
	rt, global := info.Runtime, &info.Snapshot.GlobalAdmission
	adm := &rt.Admission

	d := global.Rates.Allow(adm.Rate, admissionKey(adm.Key, r, info, global.Trusted), s.deps.now())
	if adm.Key.Kind != policy.KeyNone && adm.keys != nil {
		adm.keys.Set(float64(adm.Rate.Keys()))
	}
	if d.Reason != policy.ReasonNone {
		s.countRejection(info, d.Reason, d.Mode)
	}
	if !d.Allowed {
		WriteProblem(w, r, rateLimited(info.Route, d))
		return admission{}, false
	}

	var held admission
	// The per-client cap is for bulk traffic. Critical requests (AgentKit's
	// webhooks and workflow triggers) come from one address by design and
	// are held through a core outage (hold.go): counting them would refuse
	// registrations exactly when they are being kept. The gate's limit and
	// the routes' rate limits bound them.
	if global.Clients != nil && rt.Class == policy.ClassBulk && info.Snapshot.Config.Admission.Concurrency.Limit > 0 {
		client := policy.ClientAddrKey(global.Trusted.ClientIP(r.RemoteAddr, r.Header["X-Forwarded-For"]))
		switch {
		case global.Clients.Acquire(client):
			held = admission{clients: global.Clients, client: client}
		case info.Snapshot.Config.Admission.Concurrency.Mode == policy.ModeShadow:
			s.countRejection(info, policy.ReasonClientLimit, policy.ModeShadow)
		default:
			s.countRejection(info, policy.ReasonClientLimit, policy.ModeEnforce)
			WriteProblem(w, r, clientLimited(info.Snapshot.Config.Admission.Concurrency.PerClientLimit))
			return admission{}, false
		}
	}
	slot, ok := s.acquireSlot(w, r, info)
	if !ok {
		held.release()
		return admission{}, false
	}
	held.slot = slot
	return held, true
}

// acquireSlot takes a concurrency slot, waiting in the queue when allowed.
func (s *Sidecar) acquireSlot(w http.ResponseWriter, r *http.Request, info *RequestInfo) (policy.GateSlot, bool) {
	rt, global := info.Runtime, &info.Snapshot.GlobalAdmission
	var slot policy.GateSlot
	var reason policy.AdmissionReason
	var err error
	if s.Draining() {
		slot, reason, err = global.Gate.AcquireNow(rt.Class)
		if err != nil {
			reason = policy.ReasonDraining
		}
	} else {
		start := s.deps.now()
		slot, reason, err = global.Gate.Acquire(r.Context(), rt.Class)
		if slot.Waited() || err != nil {
			info.AddQueueTime(s.deps.now().Sub(start))
		}
	}
	switch {
	case err == nil && reason != policy.ReasonNone:
		s.countRejection(info, reason, policy.ModeShadow)
		return slot, true
	case err == nil:
		return slot, true
	case reason == policy.ReasonCanceled:
		writeClientClosed(w, r)
		return slot, false
	}
	s.countRejection(info, reason, policy.ModeEnforce)
	WriteProblem(w, r, overloaded(info, reason, err))
	return slot, false
}

// admissionKey returns the request's per-key bucket key, "" for none.
func admissionKey(ks policy.KeySource, r *http.Request, info *RequestInfo, tp policy.TrustedProxies) string {
	switch ks.Kind {
	case policy.KeyAgentID:
		return info.AgentID
	case policy.KeyClientIP:
		return tp.ClientIP(r.RemoteAddr, r.Header["X-Forwarded-For"])
	case policy.KeyHeader:
		if v := r.Header[ks.Header]; len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

func (s *Sidecar) countRejection(info *RequestInfo, reason policy.AdmissionReason, mode policy.Mode) {
	s.deps.Metrics.AdmissionRejections.WithLabelValues(info.Route, string(info.Class), string(reason), string(mode)).Inc()
	if mode == policy.ModeShadow {
		info.AddShadow("admission:" + string(reason))
		s.deps.Logger.Debug("shadow mode: request would have been refused",
			"request_id", info.RequestID, "route", info.Route, "reason", string(reason))
	}
}

// clientLimited is the 429 of a client over per_client_limit. Retry-After
// is 1 s: one of the client's own requests finishing frees a place.
func clientLimited(limit int) Problem {
	return Problem{
		Status: http.StatusTooManyRequests, Outcome: OutcomeRateLimited, Reason: string(policy.ReasonClientLimit),
		Title:  "Too many requests",
		Detail: fmt.Sprintf("this client already has %d requests in flight or waiting (the per-client limit)", limit),
		Header: http.Header{HeaderRetryAfter: {"1"}},
	}
}

// rateLevelNames names the bucket of each rate-limit reason for a detail.
var rateLevelNames = map[policy.AdmissionReason]string{
	policy.ReasonGlobalRate: "the sidecar-wide", policy.ReasonRouteRate: "this route's", policy.ReasonKeyRate: "this client's",
}

// rateLimited is the 429 of a token-bucket refusal.
func rateLimited(route string, d policy.RateDecision) Problem {
	h := http.Header{}
	h.Set(HeaderRetryAfter, strconv.Itoa(d.State.RetryAfter))
	h.Set(HeaderRateLimitPolicy, d.State.PolicyField())
	h.Set(HeaderRateLimit, d.State.Field())
	return Problem{
		Status: http.StatusTooManyRequests, Outcome: OutcomeRateLimited, Reason: string(d.Reason),
		Title:  "Too many requests",
		Detail: fmt.Sprintf("%s rate limit (%d requests per %d s on route %s) is exhausted; retry after %d s", rateLevelNames[d.Reason], d.State.Quota, d.State.Window, route, d.State.RetryAfter),
		Header: h,
	}
}

// overloaded is the 503 of a concurrency refusal: shed, queue full, queue
// timeout or draining. Retry-After is 1 s: a slot frees as soon as any
// request in flight finishes, and a draining sidecar's peers are ready.
func overloaded(info *RequestInfo, reason policy.AdmissionReason, err error) Problem {
	p := Problem{Status: http.StatusServiceUnavailable, Outcome: OutcomeShed, Reason: string(reason),
		Title: "Over capacity", Header: http.Header{HeaderRetryAfter: {"1"}}}
	switch {
	case reason == policy.ReasonDraining:
		p.Title, p.Detail = "Shutting down", "the sidecar is draining and has no free slot for this request"
	case errors.Is(err, policy.ErrQueueTimeout):
		p.Outcome, p.Title = OutcomeQueueTimeout, "Queue timeout"
		p.Detail = fmt.Sprintf("no %s slot came free within the queue timeout", info.Class)
	case errors.Is(err, policy.ErrQueueFull):
		p.Detail = fmt.Sprintf("every %s slot is busy and the wait queue is full", info.Class)
	default:
		p.Detail = fmt.Sprintf("every %s slot is busy and the request could not wait", info.Class)
	}
	return p
}

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
