package metrics

import (
	"sort"
	"sync"
	"sync/atomic"
	"time"

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
	requestDuration childCache[routeOutcomeKey, *durationChild]
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
	return m.requestDuration(route, outcome).obs
}

func (m *Metrics) requestDuration(route, outcome string) *durationChild {
	return m.children.requestDuration.get(m, routeOutcomeKey{route, outcome}, func(m *Metrics, k routeOutcomeKey) *durationChild {
		c := &durationChild{obs: m.RequestDuration.WithLabelValues(k.route, k.outcome), last: make([]atomic.Int64, len(LatencyBuckets)+1)}
		c.eo, _ = c.obs.(prometheus.ExemplarObserver)
		return c
	})
}

// ExemplarInterval is the least time between two exemplars of one bucket
// of one request_duration_seconds series. Only a bucket's latest
// exemplar is exposed and Prometheus scrapes every 15 s or so, so a bucket
// still always shows a trace of at most this age, while a busy sidecar
// does not build an exemplar (labels, timestamp: 8 allocations) for every
// request. See docs/performance.md.
const ExemplarInterval = time.Second

// durationChild is a request_duration_seconds child with the time of the
// last exemplar of each bucket (Unix ns; the last entry is +Inf).
type durationChild struct {
	obs  prometheus.Observer
	eo   prometheus.ExemplarObserver // nil when obs takes no exemplars
	last []atomic.Int64
}

// ObserveRequestDuration observes d on
// request_duration_seconds{route,outcome}, attaching traceID as the
// trace_id exemplar when it is not empty and the bucket d falls in got no
// exemplar within ExemplarInterval before now.
func (m *Metrics) ObserveRequestDuration(route, outcome string, d time.Duration, traceID string, now time.Time) {
	c := m.requestDuration(route, outcome)
	v := d.Seconds()
	if traceID == "" || c.eo == nil {
		c.obs.Observe(v)
		return
	}
	last := &c.last[sort.SearchFloat64s(LatencyBuckets, v)]
	t, ns := last.Load(), now.UnixNano()
	if ns-t < int64(ExemplarInterval) || !last.CompareAndSwap(t, ns) {
		c.obs.Observe(v)
		return
	}
	c.eo.ObserveWithExemplar(v, prometheus.Labels{"trace_id": traceID})
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
