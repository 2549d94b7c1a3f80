package proxy

import (
	"context"
	"errors"
	"fmt"
	"time"

	"opscore-sidecar/metrics"
	"opscore-sidecar/policy"
	"opscore-sidecar/proxy/config"
)

// This file is the hold of the retry layer (retry_transport.go): on a
// route with hold.enabled (notify by default), a request whose attempts
// ended in a connection failure (policy.AttemptKind.ConnectionFailure:
// refused, reset or closed before a response), or was refused by the open
// breaker, waits
// in the route's policy.Hold for the upstream to come back instead of
// failing. The hold is opened by the active health check (health.go) at
// its first good answer and by the breaker leaving the open state; held
// requests are then released oldest first, hold.release_concurrency at a
// time, each starting a new round of attempts. A held request gives its
// concurrency slot back while it waits and takes one again, through the
// gate's queue, when released: the hold can keep more requests than the
// gate has slots, and the gate's limit still bounds what a recovery sends.
// At
// the deadline (retry.deadline less queueMargin) the request leaves the
// hold and, with routes.*.outbox.enabled, is accepted into the outbox
// (queue.go); docs/resilience.md explains the whole path.

// queueMargin is the part of a held request's deadline kept for writing
// it to the outbox and answering 202 when the upstream is still down.
const queueMargin = 500 * time.Millisecond

// HoldRuntime is a route's hold: whether it is on, and the queue, which
// carries over every reload so held requests keep their places.
type HoldRuntime struct {
	// Enabled says the route holds requests (routes.*.hold.enabled).
	Enabled bool
	// Queue is the route's hold queue; never nil.
	Queue *policy.Hold
}

// buildHold builds a route's HoldRuntime; prev is the route's runtime in
// the previous snapshot (nil at start-up), whose queue is carried (see
// carry in snapshot.go), since requests may be waiting in it: the same
// queue, its new settings applied at commit.
func buildHold(rc config.RouteConfig, prev *RouteRuntime, c *carry) (HoldRuntime, error) {
	if prev == nil || prev.Hold.Queue == nil {
		q, err := policy.NewHold(rc.Hold, nil)
		if err != nil {
			return HoldRuntime{}, err
		}
		return HoldRuntime{Enabled: rc.Hold.Enabled, Queue: q}, nil
	}
	if err := errors.Join(rc.Hold.Validate("hold")...); err != nil {
		return HoldRuntime{}, fmt.Errorf("policy: invalid hold config: %w", err)
	}
	q := prev.Hold.Queue
	c.then(func() error { _, err := policy.NewHold(rc.Hold, q); return err })
	return HoldRuntime{Enabled: rc.Hold.Enabled, Queue: q}, nil
}

// holdState is one request's passage through its route's hold.
type holdState struct {
	t        *retryTransport
	info     *RequestInfo
	body     *retryBody
	deadline time.Time

	ticket *policy.HoldTicket // its place in the hold while held or released
	held   bool               // it entered the hold at least once
	result string             // how it left the hold (metrics.Hold*), "" while undecided
}

// errUpstreamDown is the failure of a holding request that skipped its
// attempt because the health check was probing an unreachable upstream;
// finish answers it like a refused connection.
var errUpstreamDown = &AttemptError{
	Outcome: policy.Outcome{Kind: policy.AttemptNotReached, Failure: metrics.ResultRefused},
	Err:     errors.New("proxy: upstream down (health check failing)"),
}

// upstreamKnownDown reports that the request's route holds and the active
// health check is probing an upstream it could not reach: the request is
// held at once instead of spending an attempt on a refused connection.
func (h *holdState) upstreamKnownDown() bool {
	return h.info.Runtime.Hold.Enabled && h.t.health != nil && h.body.replayable() && h.t.health.knownDown()
}

// hold decides whether the failed round r is held and, if so, waits. It
// returns true when the request was released and must start a new round.
func (h *holdState) hold(ctx context.Context, r roundResult) bool {
	rt := h.info.Runtime
	if !rt.Hold.Enabled || !h.body.replayable() || ctx.Err() != nil {
		return false
	}
	if !r.refused && (r.err == nil || !r.last.Kind.ConnectionFailure()) {
		return false // the upstream answered (or timed out: maybe overloaded)
	}
	until := h.deadline.Add(-queueMargin)
	if !h.t.now().Before(until) {
		return false
	}
	if h.t.health != nil && h.ticket == nil && rt.Retry != nil && h.t.health.downFor() > rt.Retry.Config().Deadline {
		// The upstream has been down longer than a hold could last: queue
		// the request now (202 at once) rather than keep it in memory for
		// nothing, where a crash of the sidecar would lose it.
		return false
	}
	if h.ticket != nil {
		h.ticket.Again() // released, and found it down again: keep the place
	} else {
		tk, err := rt.Hold.Queue.Enter(int64(len(h.body.buf)))
		if err != nil {
			h.result = metrics.HoldFull
			return false
		}
		h.ticket, h.held = tk, true
	}
	r.cancel(nil)
	if h.t.health != nil && (!r.refused || rt.Breaker.TrippedUnreachable()) {
		// The core could not be reached: make sure it is being probed. A
		// breaker opened by 5xx answers is not (a passing probe would not
		// close it); its own half-open transition opens the hold.
		h.t.health.suspect()
	}
	g := h.t.metrics.HeldRequests.WithLabelValues(h.info.Route)
	g.Inc()
	h.info.yieldSlot()
	wctx, cancel := context.WithDeadline(ctx, until)
	err := h.ticket.Wait(wctx)
	if err == nil {
		// Back through the gate before the next round: a recovery sends
		// the core no more than the gate allows.
		if err = h.info.retakeSlot(wctx); err != nil {
			h.ticket.Done()
		}
	}
	cancel()
	g.Dec()
	if err == nil {
		return true
	}
	h.ticket = nil // Wait gave the place up
	if ctx.Err() != nil {
		h.result = metrics.HoldClientClosed
	} else {
		h.result = metrics.HoldTimeout
	}
	return false
}

// attemptEnded is called when a round got its answer: a released
// request's place in the hold is freed for the next one.
func (h *holdState) attemptEnded() {
	if h.ticket != nil {
		h.ticket.Done()
		h.ticket = nil
	}
	if h.held && h.result == "" {
		h.result = metrics.HoldReleased
	}
}

// queueable says a failed round may be accepted into the outbox: the route
// queues, the body can be stored, and the upstream is down or failing
// (not reached, refused by the breaker, a transport error or a 5xx).
func (h *holdState) queueable(r roundResult) bool {
	rc, ok := h.info.Snapshot.Config.Routes[h.info.Route]
	if !ok || !rc.Outbox.Enabled || !h.body.replayable() {
		return false
	}
	return r.err != nil || (r.resp != nil && r.resp.StatusCode >= 500)
}

// queued records that the request was accepted into the outbox.
func (h *holdState) queued() {
	if h.held || h.result == metrics.HoldFull {
		h.result = metrics.HoldQueued
	}
}

// finish counts how the request left the hold, if it was ever there.
func (h *holdState) finish() {
	if h.ticket != nil {
		h.ticket.Done()
	}
	if h.held && h.result == "" {
		// Released, then failed another way (a 5xx, or the deadline with
		// no outbox): it still left the hold by being released.
		h.result = metrics.HoldReleased
	}
	if h.result != "" {
		h.t.metrics.Holds.WithLabelValues(h.info.Route, h.result).Inc()
	}
}
