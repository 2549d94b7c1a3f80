package policy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
)

// ErrHoldFull is returned by Enter when the hold already has
// max_requests requests or max_bytes of bodies.
var ErrHoldFull = errors.New("policy: hold queue full")

// Hold is a route's hold queue: requests that found the upstream
// unreachable (or the route's breaker open) wait here, in arrival order,
// until something says the upstream may answer again: an active health
// check that passed, or the breaker letting attempts through. Open then
// releases them oldest first, at most release_concurrency on their way at
// a time, so a recovering upstream never gets the whole queue at once. A
// released request that finds the upstream down again goes back to its
// place (Again) and closes the hold until the next Open, so a flapping
// upstream is not hammered. Waiting is bounded by the caller's context
// (the route's deadline). It is safe for concurrent use; its zero value
// is not usable.
type Hold struct {
	mu       sync.Mutex
	cfg      HoldConfig
	waiting  []*HoldTicket // by seq, oldest first
	held     int           // tickets entered and not finished (waiting or released)
	bytes    int64
	released int // released tickets whose attempt has not ended
	open     bool
	seq      uint64
}

// HoldTicket is one held request's place in the hold.
type HoldTicket struct {
	h     *Hold
	seq   uint64
	bytes int64
	ch    chan struct{} // closed when released
	state holdState
}

type holdState uint8

const (
	holdWaiting holdState = iota
	holdReleased
	holdFinished
)

// NewHold returns the hold of a route. prev, the route's hold before a
// reload (nil at start-up), is kept with cfg applied, so requests held
// across a reload keep their places.
func NewHold(cfg HoldConfig, prev *Hold) (*Hold, error) {
	if errs := cfg.Validate("hold"); len(errs) > 0 {
		return nil, fmt.Errorf("policy: invalid hold config: %w", errors.Join(errs...))
	}
	if prev != nil {
		prev.mu.Lock()
		prev.cfg = cfg
		prev.pump()
		prev.mu.Unlock()
		return prev, nil
	}
	return &Hold{cfg: cfg}, nil
}

// Config returns the hold's settings.
func (h *Hold) Config() HoldConfig {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.cfg
}

// Enter takes a place at the end of the queue for a request with a body
// of bytes. It returns ErrHoldFull when the hold is full.
func (h *Hold) Enter(bytes int64) (*HoldTicket, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.held >= h.cfg.MaxRequests || h.bytes+bytes > h.cfg.MaxBytes {
		return nil, ErrHoldFull
	}
	h.seq++
	t := &HoldTicket{h: h, seq: h.seq, bytes: bytes, ch: make(chan struct{})}
	h.held++
	h.bytes += bytes
	h.waiting = append(h.waiting, t)
	h.pump()
	return t, nil
}

// Open says the upstream may answer again: waiting requests are released
// in arrival order, release_concurrency at a time.
func (h *Hold) Open() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.open = true
	h.pump()
}

// Close says the upstream looks down again: nothing more is released until
// the next Open (requests already released go on).
func (h *Hold) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.open = false
}

// Len returns the number of requests in the hold (waiting or released and
// not yet finished) and their body bytes.
func (h *Hold) Len() (requests int, bytes int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.held, h.bytes
}

// pump releases waiting tickets while the hold is open and release slots
// are free. h.mu is held.
func (h *Hold) pump() {
	for h.open && len(h.waiting) > 0 && h.released < h.cfg.ReleaseConcurrency {
		t := h.waiting[0]
		h.waiting = h.waiting[1:]
		t.state = holdReleased
		h.released++
		close(t.ch)
	}
}

// Wait blocks until the ticket is released (nil) or ctx ends (ctx's
// error, and the ticket is finished: it leaves the hold).
func (t *HoldTicket) Wait(ctx context.Context) error {
	select {
	case <-t.ch:
		return nil
	case <-ctx.Done():
		t.Done()
		return ctx.Err()
	}
}

// Done finishes the ticket: its request leaves the hold (its released
// attempt ended, or it gave up). Calling it again does nothing.
func (t *HoldTicket) Done() {
	h := t.h
	h.mu.Lock()
	defer h.mu.Unlock()
	switch t.state {
	case holdFinished:
		return
	case holdWaiting:
		if i := slices.Index(h.waiting, t); i >= 0 {
			h.waiting = slices.Delete(h.waiting, i, i+1)
		}
	case holdReleased:
		h.released--
	}
	t.state = holdFinished
	h.held--
	h.bytes -= t.bytes
	h.pump()
}

// Again puts a released ticket back in its place (ahead of every request
// that arrived after it) because its attempt found the upstream down
// again, and closes the hold until the next Open. It returns false when
// the ticket was not released (it is then left as it is).
func (t *HoldTicket) Again() bool {
	h := t.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if t.state != holdReleased {
		return false
	}
	h.released--
	h.open = false
	t.state = holdWaiting
	t.ch = make(chan struct{})
	i, _ := slices.BinarySearchFunc(h.waiting, t.seq, func(w *HoldTicket, seq uint64) int {
		switch {
		case w.seq < seq:
			return -1
		case w.seq > seq:
			return 1
		}
		return 0
	})
	h.waiting = slices.Insert(h.waiting, i, t)
	return true
}
