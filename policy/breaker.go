package policy

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
)

// BreakerState is a circuit breaker's state; its value is the one the
// opscore_sidecar_breaker_state gauge exports.
type BreakerState int

// The breaker states, numbered as gobreaker numbers them.
const (
	BreakerClosed   BreakerState = BreakerState(gobreaker.StateClosed)
	BreakerHalfOpen BreakerState = BreakerState(gobreaker.StateHalfOpen)
	BreakerOpen     BreakerState = BreakerState(gobreaker.StateOpen)
)

// String returns the state's label value: closed, half_open or open.
func (s BreakerState) String() string {
	switch s {
	case BreakerClosed:
		return "closed"
	case BreakerHalfOpen:
		return "half_open"
	case BreakerOpen:
		return "open"
	}
	return "unknown"
}

// BreakerResult is how an attempt counts for the breaker.
type BreakerResult uint8

// The ways an attempt counts.
const (
	// BreakerSuccess: the upstream answered (2xx-4xx).
	BreakerSuccess BreakerResult = iota
	// BreakerFailure: transport error, timeout or 5xx.
	BreakerFailure
	// BreakerIgnored: the client cancelled; the attempt frees its
	// half-open slot but counts neither way.
	BreakerIgnored
	// BreakerUnreachable: a connection failure, where no HTTP answer came
	// back: the request never reached the upstream (refused, dial error),
	// or the connection was reset or closed before a response (a core
	// that died, or a TCP proxy in front of it that accepts and drops). It
	// counts as a failure; a breaker opened by such failures is closed by
	// Recover as soon as an active health check sees the upstream answer
	// again. Timeouts are not connection failures: a slow upstream is
	// often an overloaded one.
	BreakerUnreachable
)

// BreakerResult says how the attempt counts for the breaker.
func (o Outcome) BreakerResult() BreakerResult {
	switch o.Kind {
	case AttemptCancelled:
		return BreakerIgnored
	case AttemptResponse:
		if o.Status >= 500 {
			return BreakerFailure
		}
		return BreakerSuccess
	case AttemptNotReached, AttemptReset, AttemptClosed:
		return BreakerUnreachable
	}
	return BreakerFailure
}

// ErrBreakerOpen is returned by Allow while the breaker refuses attempts
// (open, or half-open with every probe slot taken).
var ErrBreakerOpen = errors.New("policy: circuit breaker open")

// Sentinels handed to gobreaker's done callback.
var (
	errBreakerFailure = errors.New("policy: attempt failed")
	errBreakerIgnored = errors.New("policy: attempt ignored")
)

// BreakerCounts is a snapshot of a breaker's counts in its current window
// (closed) or probe round (half-open).
type BreakerCounts struct {
	Requests             uint32 `json:"requests"`
	Successes            uint32 `json:"successes"`
	Failures             uint32 `json:"failures"`
	Ignored              uint32 `json:"ignored"`
	ConsecutiveSuccesses uint32 `json:"consecutive_successes"`
	ConsecutiveFailures  uint32 `json:"consecutive_failures"`
}

// BreakerStateFunc observes state changes (for a gauge and a counter). It
// runs under the breaker's lock (Recover's open→closed report excepted,
// which runs after the swap): it must be quick and must not call the
// breaker.
type BreakerStateFunc func(route string, from, to BreakerState)

// breakerBuckets is the number of buckets of gobreaker's rolling window.
const breakerBuckets = 10

// Breaker is a route's circuit breaker: gobreaker's two-step breaker with
// the trip rule, the failure classification and the "time left open" the
// sidecar needs. A disabled breaker allows everything. It is safe for
// concurrent use.
type Breaker struct {
	route string
	cfg   BreakerConfig
	// cb is the current gobreaker (nil when disabled). Recover replaces an
	// open one with a new closed one; a ticket of the old one reports to
	// the old one, which nobody reads any more.
	cb       atomic.Pointer[gobreaker.TwoStepCircuitBreaker[struct{}]]
	openedAt atomic.Int64 // unix nanoseconds of the last trip
	retired  atomic.Bool  // replaced by a reload: no longer reports
	onChange BreakerStateFunc

	// failingSince is the unix nanoseconds of the first failure since the
	// last success (0 while the last attempt succeeded): the time-based
	// trip rule (min_failing_time) reads it.
	failingSince atomic.Int64
	// ratioSince is when the failure-ratio rule was first seen holding (0:
	// it does not hold).
	ratioSince atomic.Int64
	// unreachable and other count the failures since the last success by
	// kind; tripUnreachable records, at the trip, whether most of them
	// were the upstream being unreachable (see Recover).
	unreachable, other atomic.Int64
	tripUnreachable    atomic.Bool
}

// NewBreaker returns the breaker of route. When prev (the breaker the
// route had before a reload) has the same settings it is returned as it
// is, so a reload of unrelated keys keeps the breaker's state; otherwise a
// new closed breaker is built. onChange may be nil.
//
// gobreaker reads the wall clock itself, so tests of the state machine run
// inside testing/synctest.
func NewBreaker(route string, cfg BreakerConfig, prev *Breaker, onChange BreakerStateFunc) (*Breaker, error) {
	if errs := cfg.Validate("breaker"); len(errs) > 0 {
		return nil, fmt.Errorf("policy: invalid breaker config for route %s: %w", route, errors.Join(errs...))
	}
	if prev != nil && prev.route == route && prev.cfg == cfg {
		return prev, nil
	}
	if prev != nil {
		// The new breaker takes over the route's gauge; requests still in
		// flight on prev must not overwrite it.
		prev.retired.Store(true)
	}
	b := &Breaker{route: route, cfg: cfg, onChange: onChange}
	if !cfg.Enabled {
		return b, nil
	}
	b.cb.Store(b.newCB())
	return b, nil
}

// Retire marks b as replaced by a reload: its state changes are no longer
// reported (the route's new breaker owns the gauge). The proxy calls it
// when the new snapshot becomes current, never while building one.
func (b *Breaker) Retire() { b.retired.Store(true) }

// newCB builds a closed gobreaker with b's settings. Its state changes are
// reported only while it is b's current one.
func (b *Breaker) newCB() *gobreaker.TwoStepCircuitBreaker[struct{}] {
	bucket := b.cfg.Window / breakerBuckets
	if bucket <= 0 {
		bucket = b.cfg.Window
	}
	var cb *gobreaker.TwoStepCircuitBreaker[struct{}]
	cb = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:         b.route,
		MaxRequests:  b.cfg.HalfOpenRequests,
		Interval:     b.cfg.Window,
		BucketPeriod: bucket,
		Timeout:      b.cfg.OpenTimeout,
		ReadyToTrip:  b.readyToTrip,
		OnStateChange: func(_ string, from, to gobreaker.State) {
			if b.cb.Load() == cb {
				b.stateChanged(cb, from, to)
			}
		},
		IsExcluded: func(err error) bool { return errors.Is(err, errBreakerIgnored) },
	})
	return cb
}

// readyToTrip trips on consecutive failures, or on the failure ratio of the
// finished attempts once there are enough of them in the window; either
// rule waits until failures have lasted min_failing_time.
func (b *Breaker) readyToTrip(c gobreaker.Counts) bool {
	now := time.Now()
	if b.cfg.ConsecutiveFailures > 0 && c.ConsecutiveFailures >= b.cfg.ConsecutiveFailures &&
		b.lastedLongEnough(b.failingSince.Load(), now) {
		return true
	}
	done := c.TotalSuccesses + c.TotalFailures
	if b.cfg.FailureRatio > 0 && done >= b.cfg.MinRequests && done > 0 &&
		float64(c.TotalFailures)/float64(done) >= b.cfg.FailureRatio {
		// The ratio rule holds; it trips once it has held min_failing_time
		// (successes between the failures do not restart that clock, a
		// ratio below the threshold does).
		b.ratioSince.CompareAndSwap(0, now.UnixNano())
		return b.lastedLongEnough(b.ratioSince.Load(), now)
	}
	b.ratioSince.Store(0)
	return false
}

// lastedLongEnough reports whether a condition that started at since (unix
// nanoseconds, 0: not started) has lasted min_failing_time at now.
func (b *Breaker) lastedLongEnough(since int64, now time.Time) bool {
	if b.cfg.MinFailingTime <= 0 {
		return true
	}
	return since != 0 && now.Sub(time.Unix(0, since)) >= b.cfg.MinFailingTime
}

// stateChanged records the instant of a trip and reports the change.
// gobreaker only notices that an open breaker's timeout has passed when it
// is next asked, so a route with no traffic would report "open" for ever;
// a timer asks it when the timeout ends, so gauges and alerts see the
// half-open state on time.
func (b *Breaker) stateChanged(cb *gobreaker.TwoStepCircuitBreaker[struct{}], from, to gobreaker.State) {
	if to == gobreaker.StateOpen {
		b.openedAt.Store(time.Now().UnixNano())
		b.tripUnreachable.Store(b.unreachable.Load() > b.other.Load())
		time.AfterFunc(b.cfg.OpenTimeout+time.Millisecond, func() { cb.State() })
	}
	b.report(BreakerState(from), BreakerState(to))
}

func (b *Breaker) report(from, to BreakerState) {
	if b.onChange != nil && !b.retired.Load() {
		b.onChange(b.route, from, to)
	}
}

// Recover closes the breaker when it is open (or half-open) because the
// upstream was unreachable, which an active health check has just seen
// answering again: traffic flows at once instead of after open_timeout.
// A breaker opened by errors the upstream answered with (5xx, timeouts:
// an overloaded upstream whose health check still passes) is left to its
// open_timeout and half-open probes. It reports whether it closed.
func (b *Breaker) Recover() bool {
	cb := b.cb.Load()
	if cb == nil {
		return false
	}
	st := cb.State()
	if st == gobreaker.StateClosed || !b.tripUnreachable.Load() {
		return false
	}
	if !b.cb.CompareAndSwap(cb, b.newCB()) {
		return false
	}
	b.failingSince.Store(0)
	b.ratioSince.Store(0)
	b.unreachable.Store(0)
	b.other.Store(0)
	b.report(BreakerState(st), BreakerClosed)
	return true
}

// TrippedUnreachable reports whether the breaker's last trip was caused
// mostly by attempts that could not reach the upstream (the trips Recover
// closes).
func (b *Breaker) TrippedUnreachable() bool { return b.tripUnreachable.Load() }

// record keeps the failure bookkeeping of the time-based trip rule and of
// Recover; it runs before gobreaker hears of the result.
func (b *Breaker) record(r BreakerResult) {
	switch r {
	case BreakerSuccess:
		b.failingSince.Store(0)
		b.unreachable.Store(0)
		b.other.Store(0)
	case BreakerIgnored:
	default:
		b.failingSince.CompareAndSwap(0, time.Now().UnixNano())
		if r == BreakerUnreachable {
			b.unreachable.Add(1)
		} else {
			b.other.Add(1)
		}
	}
}

// Route returns the route the breaker guards.
func (b *Breaker) Route() string { return b.route }

// Config returns the breaker's settings.
func (b *Breaker) Config() BreakerConfig { return b.cfg }

// BreakerTicket is the permission for one attempt. Its zero value (from a
// disabled breaker) reports nothing.
type BreakerTicket struct {
	b      *Breaker
	report func(error)
}

// Done reports the attempt's result to the breaker. Call it exactly once
// per allowed attempt: an attempt never reported holds a half-open probe
// slot until the breaker changes state.
func (t BreakerTicket) Done(r BreakerResult) {
	if t.report == nil {
		return
	}
	t.b.record(r)
	switch r {
	case BreakerSuccess:
		t.report(nil)
	case BreakerIgnored:
		t.report(errBreakerIgnored)
	default:
		t.report(errBreakerFailure)
	}
}

// Allow asks for one attempt. It returns ErrBreakerOpen when the attempt
// must not be made; otherwise the caller reports the attempt's result on
// the ticket.
func (b *Breaker) Allow() (BreakerTicket, error) {
	cb := b.cb.Load()
	if cb == nil {
		return BreakerTicket{}, nil
	}
	report, err := cb.Allow()
	if err != nil {
		return BreakerTicket{}, fmt.Errorf("%w: route %s", ErrBreakerOpen, b.route)
	}
	return BreakerTicket{b: b, report: report}, nil
}

// State returns the current state (an open breaker whose timeout has
// passed reports half-open).
func (b *Breaker) State() BreakerState {
	cb := b.cb.Load()
	if cb == nil {
		return BreakerClosed
	}
	return BreakerState(cb.State())
}

// Counts returns the breaker's current counts.
func (b *Breaker) Counts() BreakerCounts {
	cb := b.cb.Load()
	if cb == nil {
		return BreakerCounts{}
	}
	c := cb.Counts()
	return BreakerCounts{
		Requests: c.Requests, Successes: c.TotalSuccesses, Failures: c.TotalFailures,
		Ignored: c.TotalExclusions, ConsecutiveSuccesses: c.ConsecutiveSuccesses,
		ConsecutiveFailures: c.ConsecutiveFailures,
	}
}

// OpenRemaining returns how long the breaker stays open after now: zero
// when it is not open. A half-open breaker with every probe slot taken
// refuses attempts but reports zero here; callers round up to at least
// one second for Retry-After.
func (b *Breaker) OpenRemaining(now time.Time) time.Duration {
	if b.State() != BreakerOpen {
		return 0
	}
	left := time.Unix(0, b.openedAt.Load()).Add(b.cfg.OpenTimeout).Sub(now)
	return max(left, 0)
}
