package metrics

import (
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// The per-request collectors are reached through these accessors instead
// of WithLabelValues: each keeps the children it has resolved in a
// copy-on-write map, so the request path finds a child with one map
// lookup, without hashing the label values into the vector's own map under
// its lock and without allocating. A child is the vector's own child
// (WithLabelValues resolves it the first time), so the exported series are
// the same. See docs/performance.md.

// maxCachedChildren bounds each cache; label values beyond it (only an
// upstream answering with hundreds of different status codes gets there)
// are resolved through WithLabelValues every time.
const maxCachedChildren = 1024

// childCache is a copy-on-write map from label values to a child. Reads
// take no lock; a miss resolves the child and publishes a new map.
type childCache[K comparable, V any] struct {
	m  atomic.Pointer[map[K]V]
	mu sync.Mutex
}

// get returns k's child; resolve (a function without captures, so that a
// hit allocates nothing) resolves a miss.
func (c *childCache[K, V]) get(m *Metrics, k K, resolve func(*Metrics, K) V) V {
	if m := c.m.Load(); m != nil {
		if v, ok := (*m)[k]; ok {
			return v
		}
	}
	v := resolve(m, k)
	c.mu.Lock()
	defer c.mu.Unlock()
	var old map[K]V
	if p := c.m.Load(); p != nil {
		old = *p
	}
	if _, ok := old[k]; ok || len(old) >= maxCachedChildren {
		return v
	}
	next := make(map[K]V, len(old)+1)
	for key, val := range old {
		next[key] = val
	}
	next[k] = v
	c.m.Store(&next)
	return v
}

type requestsKey struct{ route, class, code, outcome string }

type routeOutcomeKey struct{ route, outcome string }

// children holds the caches of a Metrics.
type children struct {
	requests        childCache[requestsKey, prometheus.Counter]
	requestDuration childCache[routeOutcomeKey, prometheus.Observer]
	attempts        childCache[routeOutcomeKey, prometheus.Counter]
	attemptDuration childCache[string, prometheus.Observer]
	inflight        childCache[string, prometheus.Gauge]
}

// RequestsChild is Requests.WithLabelValues(route, class, code, outcome).
func (m *Metrics) RequestsChild(route, class, code, outcome string) prometheus.Counter {
	return m.children.requests.get(m, requestsKey{route, class, code, outcome}, func(m *Metrics, k requestsKey) prometheus.Counter {
		return m.Requests.WithLabelValues(k.route, k.class, k.code, k.outcome)
	})
}

// RequestDurationChild is RequestDuration.WithLabelValues(route, outcome).
func (m *Metrics) RequestDurationChild(route, outcome string) prometheus.Observer {
	return m.children.requestDuration.get(m, routeOutcomeKey{route, outcome}, func(m *Metrics, k routeOutcomeKey) prometheus.Observer {
		return m.RequestDuration.WithLabelValues(k.route, k.outcome)
	})
}

// UpstreamAttemptsChild is UpstreamAttempts.WithLabelValues(route, result).
func (m *Metrics) UpstreamAttemptsChild(route, result string) prometheus.Counter {
	return m.children.attempts.get(m, routeOutcomeKey{route, result}, func(m *Metrics, k routeOutcomeKey) prometheus.Counter {
		return m.UpstreamAttempts.WithLabelValues(k.route, k.outcome)
	})
}

// UpstreamAttemptDurationChild is UpstreamAttemptDuration.WithLabelValues(route).
func (m *Metrics) UpstreamAttemptDurationChild(route string) prometheus.Observer {
	return m.children.attemptDuration.get(m, route, func(m *Metrics, route string) prometheus.Observer {
		return m.UpstreamAttemptDuration.WithLabelValues(route)
	})
}

// InflightChild is Inflight.WithLabelValues(route).
func (m *Metrics) InflightChild(route string) prometheus.Gauge {
	return m.children.inflight.get(m, route, func(m *Metrics, route string) prometheus.Gauge {
		return m.Inflight.WithLabelValues(route)
	})
}
