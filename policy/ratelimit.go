package policy

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// AdmissionReason is why admission refused a request, or would have in
// shadow mode. It is the reason label of
// opscore_sidecar_admission_rejections_total (the values of package
// metrics), so the set is closed: the constants below and nothing else.
type AdmissionReason string

// The admission reasons.
const (
	// ReasonNone means the request was admitted.
	ReasonNone AdmissionReason = ""
	// ReasonGlobalRate means the sidecar-wide bucket was empty.
	ReasonGlobalRate AdmissionReason = "global_rate"
	// ReasonRouteRate means the route's bucket was empty.
	ReasonRouteRate AdmissionReason = "route_rate"
	// ReasonKeyRate means the bucket of the request's key was empty.
	ReasonKeyRate AdmissionReason = "key_rate"
	// ReasonShed means no slot was free and the request could not wait:
	// the queue is off, or a critical arrival took a bulk waiter's place.
	ReasonShed AdmissionReason = "shed"
	// ReasonQueueFull means no slot was free and the wait queue was full.
	ReasonQueueFull AdmissionReason = "queue_full"
	// ReasonQueueTimeout means the request waited queue_timeout for a slot.
	ReasonQueueTimeout AdmissionReason = "queue_timeout"
	// ReasonCanceled means the client went away while the request waited.
	ReasonCanceled AdmissionReason = "canceled"
	// ReasonDraining means the sidecar is shutting down.
	ReasonDraining AdmissionReason = "draining"
	// ReasonClientLimit means the client address already had
	// per_client_limit requests holding or waiting for a slot.
	ReasonClientLimit AdmissionReason = "client_limit"
)

// RateDecision is the verdict of the token buckets on one request.
type RateDecision struct {
	// Allowed is false only when an enforcing bucket was empty.
	Allowed bool
	// Reason names the bucket that refused the request, or would have
	// (Shadow); ReasonNone when every bucket had a token.
	Reason AdmissionReason
	// Mode is the mode of the bucket named by Reason.
	Mode Mode
	// State is the refusing bucket's RateLimit fields; zero when Reason is ReasonNone.
	State RateState
}

// Shadow reports whether a shadow-mode bucket would have refused the
// request that was nevertheless allowed.
func (d RateDecision) Shadow() bool { return d.Reason != ReasonNone && d.Mode == ModeShadow }

// RateLimiter holds the sidecar's token buckets: one global bucket and, per
// route, a route bucket and a bounded table of per-key buckets. Every level
// is optional (RPS 0 turns it off) and has its own mode. A request takes a
// token from every level only when every enforcing level has one, so a
// refused request drains no bucket. Update changes the limits in place
// without refilling or emptying any bucket. Safe for concurrent use.
type RateLimiter struct {
	mu         sync.RWMutex
	global     *TokenBucket
	globalMode Mode
	routes     map[string]*RouteRateLimiter
}

// RouteRateLimiter is one route's bucket and per-key table.
type RouteRateLimiter struct {
	mu     sync.RWMutex
	bucket *TokenBucket
	keys   *KeyTable
	key    string // the rate_limit.key the table's keys came from
	mode   Mode
}

// ErrUnknownRoute is returned when a route name is not in the limiter.
var ErrUnknownRoute = errors.New("policy: unknown route")

// NewRateLimiter builds the buckets of global and of each named route.
func NewRateLimiter(global RateLimitConfig, routes map[string]RouteRateLimitConfig) (*RateLimiter, error) {
	l := &RateLimiter{routes: make(map[string]*RouteRateLimiter, len(routes))}
	if err := l.Update(time.Time{}, global, routes); err != nil {
		return nil, err
	}
	return l, nil
}

func validateRates(global RateLimitConfig, routes map[string]RouteRateLimitConfig) error {
	errs := global.Validate("admission.global_rate_limit")
	for name, rc := range routes {
		errs = append(errs, rc.Validate(fmt.Sprintf("routes.%s.rate_limit", name))...)
	}
	return errors.Join(errs...)
}

// Update applies new limits at now, in place: buckets keep their tokens,
// a level turned on starts full, a level turned off is dropped. A route
// missing from routes keeps its limits; a new route is added.
func (l *RateLimiter) Update(now time.Time, global RateLimitConfig, routes map[string]RouteRateLimitConfig) error {
	if err := validateRates(global, routes); err != nil {
		return err
	}
	l.setGlobal(now, global)
	for name, rc := range routes {
		l.routeOrNew(name).update(now, rc)
	}
	return nil
}

// routeOrNew returns the limiter of route name, adding an empty one (every
// level off) when the route is new.
func (l *RateLimiter) routeOrNew(name string) *RouteRateLimiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.routes[name]
	if r == nil {
		r = &RouteRateLimiter{}
		l.routes[name] = r
	}
	return r
}

func (l *RateLimiter) setGlobal(now time.Time, c RateLimitConfig) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.globalMode = c.Mode
	l.global = resizeBucket(l.global, now, c.RPS, c.Burst)
}

// resizeBucket returns b changed in place to rps/burst, a new full bucket when
// b is nil, or nil when rps is 0 (off).
func resizeBucket(b *TokenBucket, now time.Time, rps float64, burst int) *TokenBucket {
	switch {
	case rps <= 0:
		return nil
	case b == nil:
		return NewTokenBucket(rps, burst)
	default:
		b.SetRate(now, rps, burst)
		return b
	}
}

// NewRouteRateLimiter builds one route's bucket and per-key table on its
// own, for callers that keep route state apart from the RateLimiter (the
// proxy keeps it in each route's runtime); name is the route's config key.
func NewRouteRateLimiter(name string, c RouteRateLimitConfig) (*RouteRateLimiter, error) {
	r := &RouteRateLimiter{}
	if err := r.Update(time.Time{}, name, c); err != nil {
		return nil, err
	}
	return r, nil
}

// Update applies c at now in place, as RateLimiter.Update does.
func (r *RouteRateLimiter) Update(now time.Time, name string, c RouteRateLimitConfig) error {
	if err := errors.Join(c.Validate(fmt.Sprintf("routes.%s.rate_limit", name))...); err != nil {
		return err
	}
	r.update(now, c)
	return nil
}

func (r *RouteRateLimiter) update(now time.Time, c RouteRateLimitConfig) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.mode = c.Mode
	r.bucket = resizeBucket(r.bucket, now, c.RPS, c.Burst)
	switch {
	case c.PerKeyRPS <= 0 || c.Key == "":
		r.keys = nil
	case r.keys == nil || r.key != c.Key:
		// A new key source (agent ids → client addresses) means new keys:
		// the old buckets would never be used again.
		r.keys = NewKeyTable(c.PerKeyRPS, c.PerKeyBurst, c.MaxKeys)
	default:
		r.keys.Update(c.PerKeyRPS, c.PerKeyBurst, c.MaxKeys)
	}
	r.key = c.Key
}

// Route returns the limiter of a route, which stays valid across Updates.
func (l *RateLimiter) Route(name string) (*RouteRateLimiter, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	r := l.routes[name]
	if r == nil {
		return nil, fmt.Errorf("%w %q", ErrUnknownRoute, name)
	}
	return r, nil
}

// Keys returns the number of keys the route's per-key table holds, for
// the ratelimit_keys gauge; 0 when the route has no per-key buckets.
func (r *RouteRateLimiter) Keys() int {
	r.mu.RLock()
	keys := r.keys
	r.mu.RUnlock()
	if keys == nil {
		return 0
	}
	return keys.Len()
}

// rateLevel is one bucket consulted for a request.
type rateLevel struct {
	bucket *TokenBucket
	tokens float64
	reason AdmissionReason
	mode   Mode
}

// Allow decides one request on route r with key (ignored when the route
// has no per-key buckets; an empty key skips the per-key level) at now.
// It takes a token from every level, unless an enforcing level is empty,
// in which case it takes none and refuses. Shadow levels never refuse; the
// first one that was empty is reported.
func (l *RateLimiter) Allow(r *RouteRateLimiter, key string, now time.Time) RateDecision {
	var lv [3]rateLevel
	n := 0
	l.mu.RLock()
	if l.global != nil {
		lv[n] = rateLevel{bucket: l.global, reason: ReasonGlobalRate, mode: l.globalMode}
		n++
	}
	l.mu.RUnlock()
	r.mu.RLock()
	if r.bucket != nil {
		lv[n] = rateLevel{bucket: r.bucket, reason: ReasonRouteRate, mode: r.mode}
		n++
	}
	keys := r.keys
	routeMode := r.mode
	r.mu.RUnlock()
	for i := range n {
		lv[i].tokens = lv[i].bucket.Tokens(now)
	}
	if keys != nil && key != "" {
		b, tokens := keys.peek(key, now)
		lv[n] = rateLevel{bucket: b, tokens: tokens, reason: ReasonKeyRate, mode: routeMode}
		n++
	}
	d := RateDecision{Allowed: true}
	for i := range n {
		if lv[i].tokens >= 1 {
			continue
		}
		if lv[i].mode == ModeEnforce {
			return RateDecision{Reason: lv[i].reason, Mode: ModeEnforce, State: lv[i].bucket.state(lv[i].tokens)}
		}
		if d.Reason == ReasonNone {
			d.Reason, d.Mode, d.State = lv[i].reason, ModeShadow, lv[i].bucket.state(lv[i].tokens)
		}
	}
	for i := range n {
		// Another request may have taken the last token since the peek;
		// an enforcing rateLevel refuses then (its earlier tokens are spent).
		if !lv[i].bucket.Take(now) && lv[i].mode == ModeEnforce {
			return RateDecision{Reason: lv[i].reason, Mode: ModeEnforce, State: lv[i].bucket.state(lv[i].bucket.Tokens(now))}
		}
	}
	return d
}
