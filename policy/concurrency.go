package policy

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"
)

// Errors of the concurrency gate; each refusal wraps one of them.
var (
	// ErrShed means the request was refused at once for lack of capacity.
	ErrShed = errors.New("policy: shed for capacity")
	// ErrQueueFull means the wait queue had no room.
	ErrQueueFull = errors.New("policy: wait queue full")
	// ErrQueueTimeout means no slot came free within queue_timeout.
	ErrQueueTimeout = errors.New("policy: queue timeout")
)

// The class indexes of the per-class arrays.
const (
	critIdx = 0
	bulkIdx = 1
)

func classIndex(c Class) int {
	if c == ClassCritical {
		return critIdx
	}
	return bulkIdx
}

// ConcurrencyGate bounds the requests in flight to the upstream, with a
// bounded FIFO wait queue per class and a maximum wait.
//
// Of Limit slots, Reserved (critical_reserved × limit, rounded, at most
// limit-1) are for critical requests only: bulk requests may hold at most
// Limit-Reserved slots, so a flood of state updates always leaves room for
// registration. When a slot frees, a waiting critical request is served
// before any waiting bulk one; within a class, first come first served.
// The queue (queue_size, shared by both classes) is bounded: a bulk
// arrival that finds it full is refused (queue_full), while a critical
// arrival that finds it full takes the place of the most recently queued
// bulk waiter, which is shed. In shadow mode nobody waits or is refused:
// a request that would have had to wait is admitted at once and reported
// with ReasonShed.
//
// Update resizes the gate live: waiters stay queued (a shrunk queue only
// turns new arrivals away until it drains) and a raised limit admits
// waiters at once. Safe for concurrent use.
type ConcurrencyGate struct {
	mu        sync.Mutex
	limit     int
	reserved  int
	queueSize int
	timeout   time.Duration
	mode      Mode
	inflight  [2]int
	queues    [2]waitQueue
	observe   func(GateStats)
}

// GateStats is the gate's state, for the queue_depth, in-flight and
// concurrency_limit gauges. Arrays are indexed critical, bulk.
type GateStats struct {
	// Limit is the slot count; 0 means unlimited.
	Limit int
	// Reserved is the slots only critical requests may use.
	Reserved int
	// InFlight is the slots held per class.
	InFlight [2]int
	// Queued is the requests waiting per class.
	Queued [2]int
}

// ClassLimit returns the slots a class may hold: Limit for critical,
// Limit-Reserved for bulk (0 means unlimited).
func (s GateStats) ClassLimit(c Class) int {
	if c == ClassCritical || s.Limit == 0 {
		return s.Limit
	}
	return s.Limit - s.Reserved
}

// InFlightOf returns the slots held by class c.
func (s GateStats) InFlightOf(c Class) int { return s.InFlight[classIndex(c)] }

// QueuedOf returns the requests of class c waiting for a slot.
func (s GateStats) QueuedOf(c Class) int { return s.Queued[classIndex(c)] }

// GateSlot is a slot held in a ConcurrencyGate. Release it exactly once
// when the upstream exchange is over. The zero GateSlot releases nothing.
type GateSlot struct {
	g      *ConcurrencyGate
	class  int
	waited bool
}

// Waited reports whether the request waited in the queue for its slot.
func (s GateSlot) Waited() bool { return s.waited }

// Release returns the slot to the gate, which hands it to the next waiter.
func (s GateSlot) Release() {
	if s.g == nil {
		return
	}
	s.g.mu.Lock()
	s.g.inflight[s.class]--
	s.g.dispatchLocked()
	s.g.changedLocked()
	s.g.mu.Unlock()
}

// NewConcurrencyGate returns a gate configured by cfg.
func NewConcurrencyGate(cfg ConcurrencyConfig) (*ConcurrencyGate, error) {
	g := &ConcurrencyGate{}
	if err := g.Update(cfg); err != nil {
		return nil, err
	}
	return g, nil
}

// Update applies cfg in place; see ConcurrencyGate for what survives.
func (g *ConcurrencyGate) Update(cfg ConcurrencyConfig) error {
	if err := errors.Join(cfg.Validate("admission.concurrency")...); err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.limit, g.queueSize, g.timeout, g.mode = cfg.Limit, cfg.QueueSize, cfg.QueueTimeout, cfg.Mode
	g.reserved = 0
	if cfg.Limit > 0 {
		g.reserved = min(int(math.Round(float64(cfg.Limit)*cfg.CriticalReserved)), cfg.Limit-1)
	}
	g.dispatchLocked()
	g.changedLocked()
	return nil
}

// Stats returns the gate's current state.
func (g *ConcurrencyGate) Stats() GateStats {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.statsLocked()
}

func (g *ConcurrencyGate) statsLocked() GateStats {
	return GateStats{
		Limit: g.limit, Reserved: g.reserved, InFlight: g.inflight,
		Queued: [2]int{g.queues[critIdx].n, g.queues[bulkIdx].n},
	}
}

// Observe makes the gate call fn with its state after every change (a slot
// taken or returned, a waiter queued or gone, a resize), and once now.
// fn runs under the gate's lock: it must be quick and must not call the
// gate (setting gauges is the intended use). nil stops the calls.
func (g *ConcurrencyGate) Observe(fn func(GateStats)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.observe = fn
	g.changedLocked()
}

func (g *ConcurrencyGate) changedLocked() {
	if g.observe != nil {
		g.observe(g.statsLocked())
	}
}

// Acquire takes a slot for a request of class c, waiting in the queue
// when none is free. It returns the slot and ReasonNone when admitted; a
// slot and a reason when admitted in shadow mode although the request
// would have waited; or a reason and an error wrapping ErrShed,
// ErrQueueFull or ErrQueueTimeout (or ctx's error, with ReasonCanceled)
// when refused.
func (g *ConcurrencyGate) Acquire(ctx context.Context, c Class) (GateSlot, AdmissionReason, error) {
	return g.acquire(ctx, c, true)
}

// AcquireNow is Acquire without waiting: when no slot is free it refuses
// at once with ReasonShed (in shadow mode it admits with ReasonShed). The
// sidecar uses it while draining, so that a drain is not held up by waits.
func (g *ConcurrencyGate) AcquireNow(c Class) (GateSlot, AdmissionReason, error) {
	return g.acquire(context.Background(), c, false)
}

func (g *ConcurrencyGate) acquire(ctx context.Context, c Class, wait bool) (GateSlot, AdmissionReason, error) {
	ci := classIndex(c)
	g.mu.Lock()
	if g.queuesEmptyFor(ci) && g.canTakeLocked(ci) {
		g.inflight[ci]++
		g.changedLocked()
		g.mu.Unlock()
		return GateSlot{g: g, class: ci}, ReasonNone, nil
	}
	if g.mode == ModeShadow {
		g.inflight[ci]++
		g.changedLocked()
		g.mu.Unlock()
		return GateSlot{g: g, class: ci}, ReasonShed, nil
	}
	if g.queueSize == 0 || !wait {
		g.mu.Unlock()
		return GateSlot{}, ReasonShed, fmt.Errorf("%w: %s, no slot free and no queue", ErrShed, c)
	}
	if g.queues[critIdx].n+g.queues[bulkIdx].n >= g.queueSize {
		if ci != critIdx || g.queues[bulkIdx].n == 0 {
			g.mu.Unlock()
			return GateSlot{}, ReasonQueueFull, fmt.Errorf("%w: %s, %d waiting", ErrQueueFull, c, g.queueSize)
		}
		victim := g.queues[bulkIdx].popBack()
		victim.result <- ReasonShed
	}
	w := &gateWaiter{result: make(chan AdmissionReason, 1)}
	g.queues[ci].pushBack(w)
	g.changedLocked()
	timeout := g.timeout
	g.mu.Unlock()
	return g.wait(ctx, w, ci, c, timeout)
}

// wait blocks until w is granted or evicted, its timeout fires or ctx ends.
func (g *ConcurrencyGate) wait(ctx context.Context, w *gateWaiter, ci int, c Class, timeout time.Duration) (GateSlot, AdmissionReason, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var reason AdmissionReason
	var err error
	select {
	case r := <-w.result:
		return g.outcome(r, ci, c)
	case <-timer.C:
		reason, err = ReasonQueueTimeout, fmt.Errorf("%w: %s, waited %s", ErrQueueTimeout, c, timeout)
	case <-ctx.Done():
		reason, err = ReasonCanceled, fmt.Errorf("policy: waiting for a slot: %w", ctx.Err())
	}
	g.mu.Lock()
	if w.queued {
		g.queues[ci].remove(w)
		g.changedLocked()
		g.mu.Unlock()
		return GateSlot{}, reason, err
	}
	g.mu.Unlock()
	// Granted or evicted while the timer or ctx fired: the result is sent.
	slot, r, rerr := g.outcome(<-w.result, ci, c)
	if rerr == nil && reason == ReasonCanceled {
		slot.Release()
		return GateSlot{}, reason, err
	}
	return slot, r, rerr
}

func (g *ConcurrencyGate) outcome(r AdmissionReason, ci int, c Class) (GateSlot, AdmissionReason, error) {
	if r == ReasonNone {
		return GateSlot{g: g, class: ci, waited: true}, ReasonNone, nil
	}
	return GateSlot{}, r, fmt.Errorf("%w: %s waiter evicted for a critical request", ErrShed, c)
}

// queuesEmptyFor reports whether no request waits ahead of a new arrival
// of class ci: nobody of its class, and for bulk nobody critical.
func (g *ConcurrencyGate) queuesEmptyFor(ci int) bool {
	if ci == bulkIdx && g.queues[critIdx].n > 0 {
		return false
	}
	return g.queues[ci].n == 0
}

func (g *ConcurrencyGate) canTakeLocked(ci int) bool {
	if g.limit == 0 {
		return true
	}
	total := g.inflight[critIdx] + g.inflight[bulkIdx]
	if ci == critIdx {
		return total < g.limit
	}
	return total < g.limit && g.inflight[bulkIdx] < g.limit-g.reserved
}

// dispatchLocked hands free slots to waiters, critical first.
func (g *ConcurrencyGate) dispatchLocked() {
	for _, ci := range [2]int{critIdx, bulkIdx} {
		for g.queues[ci].n > 0 && (g.mode == ModeShadow || g.canTakeLocked(ci)) {
			w := g.queues[ci].popFront()
			g.inflight[ci]++
			w.result <- ReasonNone
		}
	}
}
