package outbox

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"time"
)

// SendFunc sends m to the upstream once. status is the HTTP status (0
// with err on a transport error).
type SendFunc func(ctx context.Context, m *Message) (status int, err error)

// Observer receives the deliverer's events. Every field is optional; the
// functions are called from the deliverer goroutine and must not block.
type Observer struct {
	Attempt   func(m *Message, status int, err error) // each delivery attempt
	Delivered func(m *Message, latency time.Duration) // latency = now - m.Enqueued
	Dead      func(m *Message, reason string)
}

// Defaults of DelivererOptions.
const (
	DefaultBackoffBase = 100 * time.Millisecond
	DefaultBackoffMax  = 5 * time.Second
	DefaultPoll        = time.Second
)

// DelivererOptions configure a Deliverer; zero fields take the defaults.
type DelivererOptions struct {
	// BackoffBase is the first wait after a failed attempt; the bound
	// doubles with each failure of the same message up to BackoffMax and
	// the wait is drawn uniformly between BackoffBase and that bound
	// (full jitter above a floor). Default 100ms.
	BackoffBase time.Duration
	// BackoffMax caps the wait. Default 5s.
	BackoffMax time.Duration
	// Poll is how often to look for work when idle and not kicked, and
	// to look at Ready again while it is false. Default 1s.
	Poll time.Duration
	// Ready, when set, returns false while the upstream is believed down:
	// the deliverer then claims nothing and waits for Kick or Poll.
	Ready    func() bool
	Logger   *slog.Logger
	Observer Observer
}

// Deliverer sends the messages of a Store one at a time, oldest first.
// A message that fails with a retryable outcome blocks the queue (it is
// retried after a backoff) so that per-agent order holds.
type Deliverer struct {
	s    Store
	send SendFunc
	o    DelivererOptions
	kick chan struct{}
}

// NewDeliverer returns a deliverer of s's messages through send.
func NewDeliverer(s Store, send SendFunc, opts DelivererOptions) *Deliverer {
	if opts.BackoffBase <= 0 {
		opts.BackoffBase = DefaultBackoffBase
	}
	if opts.BackoffMax <= 0 {
		opts.BackoffMax = DefaultBackoffMax
	}
	if opts.BackoffMax < opts.BackoffBase {
		opts.BackoffMax = opts.BackoffBase
	}
	if opts.Poll <= 0 {
		opts.Poll = DefaultPoll
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Deliverer{s: s, send: send, o: opts, kick: make(chan struct{}, 1)}
}

// Kick wakes the deliverer up now if it is idle or waiting for Ready. It
// never blocks. It does not cut a backoff short: a stream of new messages
// while the upstream fails must not turn into a stream of retries.
func (d *Deliverer) Kick() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// outcome is what one attempt leads to.
type outcome int

const (
	outcomeAck outcome = iota
	outcomeDead
	outcomeRetry
)

// classify tells what a delivery attempt's result leads to: 2xx and 3xx
// are delivered, 4xx other than 408, 425 and 429 are dead letters, and
// everything else (5xx, 408, 425, 429, transport errors, other codes) is
// retried.
func classify(status int, err error) outcome {
	switch {
	case err != nil:
		return outcomeRetry
	case status >= 200 && status < 400:
		return outcomeAck
	case status == 408 || status == 425 || status == 429:
		return outcomeRetry
	case status >= 400 && status < 500:
		return outcomeDead
	}
	return outcomeRetry
}

// Run delivers until ctx ends; call it once per Deliverer. When ctx ends during a send, the message
// is left as it is in the store (neither acked nor released): it is sent
// again later, by this process after a restart or by another replica.
func (d *Deliverer) Run(ctx context.Context) {
	failures := 0 // consecutive failures, of the head or of the store
	for ctx.Err() == nil {
		if d.o.Ready != nil && !d.o.Ready() {
			d.idle(ctx)
			continue
		}
		m, err := d.s.Claim(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			d.o.Logger.Warn("outbox: claim failed", "err", err)
			d.sleep(ctx, failures)
			continue
		}
		if m == nil {
			failures = 0
			d.idle(ctx)
			continue
		}
		status, serr := d.send(ctx, m)
		if ctx.Err() != nil {
			return
		}
		if f := d.o.Observer.Attempt; f != nil {
			f(m, status, serr)
		}
		switch classify(status, serr) {
		case outcomeAck:
			failures = 0
			if err := d.s.Ack(ctx, m); err != nil {
				// Sent but still stored: it will be sent again.
				d.o.Logger.Error("outbox: ack failed; the message will be sent again", "id", m.ID, "request_id", m.RequestID, "err", err)
				failures++
				d.sleep(ctx, failures)
				continue
			}
			if f := d.o.Observer.Delivered; f != nil {
				f(m, time.Since(m.Enqueued))
			}
		case outcomeDead:
			failures = 0
			reason := "upstream answered " + strconv.Itoa(status)
			if err := d.s.DeadLetter(ctx, m, reason); err != nil {
				d.o.Logger.Error("outbox: dead-letter failed", "id", m.ID, "request_id", m.RequestID, "err", err)
				failures++
				d.sleep(ctx, failures)
				continue
			}
			d.o.Logger.Warn("outbox: message dead-lettered", "id", m.ID, "request_id", m.RequestID, "agent_id", m.AgentID, "reason", reason)
			if f := d.o.Observer.Dead; f != nil {
				f(m, reason)
			}
		case outcomeRetry:
			failures++
			cause := "upstream answered " + strconv.Itoa(status)
			if serr != nil {
				cause = serr.Error()
			}
			if err := d.s.Release(ctx, m, cause); err != nil && ctx.Err() == nil {
				d.o.Logger.Warn("outbox: release failed", "id", m.ID, "err", err)
			}
			d.sleep(ctx, failures)
		}
	}
}

// idle waits for Kick, Poll or the end of ctx.
func (d *Deliverer) idle(ctx context.Context) {
	t := time.NewTimer(d.o.Poll)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-d.kick:
	case <-t.C:
	}
}

// sleep waits the backoff of the n-th consecutive failure, or until ctx
// ends.
func (d *Deliverer) sleep(ctx context.Context, n int) {
	t := time.NewTimer(d.backoff(n))
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// backoff is the wait after the n-th (n >= 1) consecutive failure: drawn
// uniformly in [BackoffBase, min(BackoffMax, BackoffBase*2^(n-1))].
func (d *Deliverer) backoff(n int) time.Duration {
	base, hi := d.o.BackoffBase, d.o.BackoffBase
	for i := 1; i < n && hi < d.o.BackoffMax; i++ {
		hi *= 2
	}
	hi = min(hi, d.o.BackoffMax)
	if hi <= base {
		return base
	}
	return base + rand.N(hi-base+1)
}
