package proxy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"opscore-sidecar/metrics"
	"opscore-sidecar/policy"
	"opscore-sidecar/proxy/config"
)

// HeaderAttempts is the response header that tells the client how many
// attempts the sidecar sent to the upstream for its request.
const HeaderAttempts = "X-Sidecar-Attempts"

// retryTransport is the retry layer (step 7a of chain.go), the ReverseProxy's
// Transport. For each request it buffers the body (up to the route's
// buffer_limit), then runs attempts through next (attempt layer, breaker,
// upstream), each with its per-try timeout inside the route's overall
// deadline, and asks the route's policy after each failed one whether to
// retry and after how long. An open breaker, a client that went away, an
// exhausted budget or deadline end the loop at once.
type retryTransport struct {
	next    http.RoundTripper
	metrics *metrics.Metrics
	now     func() time.Time
	// health is told when an attempt could not reach the upstream (nil:
	// no active health check).
	health *healthChecker
	// queue holds the outbox side of the retry layer once Start has opened
	// the outbox (nil inside: no outbox).
	queue *atomic.Pointer[outboxQueue]
}

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	info := InfoFrom(req.Context())
	if info == nil || info.Runtime == nil || info.Runtime.Retry == nil {
		return t.next.RoundTrip(req)
	}
	pol := info.Runtime.Retry
	cfg := pol.Config()
	start := t.now()
	deadline := start.Add(cfg.Deadline)
	pol.RecordRequest(start)

	body, err := bufferBody(req, info, cfg.BufferLimit)
	if err != nil {
		return nil, err
	}
	ctx := req.Context()
	var queue *outboxQueue
	if t.queue != nil {
		queue = t.queue.Load()
	}
	if queue != nil {
		if resp, err, queued := queue.behind(ctx, req, info, body); queued {
			return resp, err
		}
	}
	h := holdState{t: t, info: info, body: body, deadline: deadline}
	defer h.finish()
	reached := false // some attempt of any round may have reached the upstream
	for first := true; ; first = false {
		var r roundResult
		if first && h.upstreamKnownDown() {
			// The health check is probing a core that could not be
			// reached: go straight to the hold, no attempt.
			r = roundResult{err: errUpstreamDown, cancel: func(error) {}, last: errUpstreamDown.Outcome}
		} else if r = t.round(ctx, req, info, body, deadline); r.done {
			h.attemptEnded()
			return r.resp, r.err
		}
		reached = reached || r.reached
		if h.hold(ctx, r) {
			continue // released: the upstream may answer again
		}
		if ctx.Err() == nil && queue != nil && h.queueable(r) {
			if resp, err, queued := queue.accept(ctx, req, info, body, r); queued {
				h.queued()
				return resp, err
			}
		}
		if r.refused { // the breaker's own 503 with its Retry-After
			r.cancel(nil)
			return nil, r.err
		}
		return t.finish(ctx, r.resp, r.err, r.cancel, r.wire, r.last, reached)
	}
}

// roundResult is how one round of attempts ended: done (with the answer
// to give: a response, a problem or the client's error), or failed with
// the last attempt's result for the hold and the outbox to act on before
// finish answers it.
type roundResult struct {
	done bool
	resp *http.Response
	err  error

	cancel  context.CancelCauseFunc
	wire    int            // wire attempts of the whole request so far
	last    policy.Outcome // the last attempt's outcome
	reached bool           // some attempt may have reached the upstream
	refused bool           // the breaker refused the last attempt
}

// round runs attempts through next until one answers, the route's policy
// stops retrying or the breaker refuses one. The attempt limit applies to
// each round; a held request starts a new round when it is released.
func (t *retryTransport) round(ctx context.Context, req *http.Request, info *RequestInfo, body *retryBody, deadline time.Time) roundResult {
	pol, route := info.Runtime.Retry, info.Route
	cfg := pol.Config()
	idemKey := req.Header.Get("Idempotency-Key") != "" || req.Header.Get("X-Idempotency-Key") != ""
	first := info.attemptCount() // wire attempts before this round
	wire := first
	reached := false // some attempt of this round may have reached the upstream
	for {
		resp, err, cancel := t.attempt(ctx, req, info, body, wire > 0, cfg.PerTryTimeout, deadline)
		now := t.now()
		if pe := asProblemError(err); pe != nil { // the breaker refused the attempt: no retry
			pe.Problem.Header = withAttempts(pe.Problem.Header, wire)
			return roundResult{resp: nil, err: err, cancel: cancel, wire: wire, last: policy.Outcome{Kind: policy.AttemptNotReached}, reached: reached, refused: true}
		}
		before := wire
		if wire = info.attemptCount(); wire <= before {
			wire = before + 1 // no attempt layer below: count the call
		}
		if extra := wire - before - 1; extra > 0 {
			// http.Transport replayed a body-less request on a fresh
			// connection after a pooled one died: a retry nobody asked
			// for. Charge it so that attempts and budget stay true.
			for range extra {
				pol.Budget().RecordRetry(now)
			}
			t.metrics.Retries.WithLabelValues(route, metrics.ResultClosed).Add(float64(extra))
			reached = true
		}
		if cerr := body.clientErr(); err != nil && cerr != nil {
			// Reading the client's streamed body failed (body_limit
			// passed, or the client went away): the ErrorHandler answers
			// 413 (or 499); the upstream is not to blame.
			discard(resp, cancel)
			cancel(nil)
			var mbe *http.MaxBytesError
			if errors.As(cerr, &mbe) {
				p := problemTooLarge(mbe.Limit)
				p.Header = withAttempts(p.Header, wire)
				return roundResult{done: true, err: &ProblemError{Problem: p, Err: cerr}}
			}
			return roundResult{done: true, err: cerr}
		}
		outcome := attemptOutcome(ctx, info, before, resp, err, now)
		reached = reached || outcome.Kind != policy.AttemptNotReached
		d := pol.Decide(now, policy.RetryAttempt{
			Outcome:        outcome,
			Attempts:       wire - first,
			IdempotencyKey: idemKey,
			Replayable:     body.replayable(),
			Remaining:      deadline.Sub(now),
		})
		if d.Retry && outcome.Kind == policy.AttemptNotReached && info.Runtime.Hold.Enabled && body.replayable() {
			// The upstream is not there: a held request waits for the
			// health check to see it back instead of backing off blindly.
			d.Retry = false
		}
		if !d.Retry {
			if d.Stop == policy.RetryStopBudget {
				t.metrics.RetryBudgetExhausted.WithLabelValues(route).Inc()
			}
			r := roundResult{resp: resp, err: err, cancel: cancel, wire: wire, last: outcome, reached: reached}
			if ctx.Err() != nil || (err == nil && resp.StatusCode < 500) {
				resp, err := t.finish(ctx, resp, err, cancel, wire, outcome, reached)
				return roundResult{done: true, resp: resp, err: err}
			}
			return r
		}
		t.metrics.Retries.WithLabelValues(route, d.Reason).Inc()
		discard(resp, cancel)
		cancel(nil)
		if err := wait(ctx, d.Delay); err != nil {
			return roundResult{done: true, err: err} // the client went away during the backoff
		}
	}
}

// attempt sends one attempt of req with a fresh copy of its body (and of
// its header when it is a retry). The attempt's context ends at the
// per-try timeout or the deadline, whichever comes first, or at
// upstream.response_header_timeout after the request was written when
// that is sooner (attemptRun), but only until the response headers
// arrive: a response body being copied to the client is not cut off.
// cancel(nil) releases the attempt and must be called once its response
// body is no longer needed.
func (t *retryTransport) attempt(ctx context.Context, req *http.Request, info *RequestInfo, body *retryBody, retry bool,
	perTry time.Duration, deadline time.Time) (resp *http.Response, err error, cancel context.CancelCauseFunc) {
	actx, cancelCause := context.WithCancelCause(ctx)
	limit, cause := perTry, policy.ErrPerTryTimeout
	if left := deadline.Sub(t.now()); left < limit {
		limit, cause = left, policy.ErrRetryDeadline
	}
	run := newAttemptRun(cancelCause, limit, cause, info.responseHeaderTimeout())
	out := req.WithContext(httptrace.WithClientTrace(actx, &run.trace))
	if retry {
		// The attempt layer writes traceparent into the header map in
		// place. After a failed attempt http.Transport's write loop may
		// still be reading that map (RoundTrip can return on a
		// cancellation before the write ends), so a retry gets its own
		// copy; the first attempt, the success path, copies nothing.
		out.Header = req.Header.Clone()
	}
	body.attach(out, cancelCause)
	info.run = run
	resp, err = t.next.RoundTrip(out)
	info.run = nil
	run.stop()
	return resp, err, cancelCause
}

// attemptRun is one attempt's timer and connection trace. The retry layer
// makes it (attempt) and hands it to the attempt layer below through the
// RequestInfo (takeAttemptRun), so the request is copied once per attempt
// with both the attempt's context and the trace, not once per layer.
//
// The timer ends the attempt at its per-try timeout or the deadline. It
// also implements upstream.response_header_timeout, which http.Transport
// would otherwise time with a timer of its own on every request: when the
// request has been written (httptrace's WroteRequest) and the header
// timeout would end the attempt sooner, the timer is moved up. With the
// defaults (per_try_timeout 2s, response_header_timeout 10s) that can
// never happen, and no hook is installed.
type attemptRun struct {
	// conns counts the connections the attempt used (GotConn): more than
	// one is http.Transport's own hidden replay (see transport.go).
	conns atomic.Int32
	trace httptrace.ClientTrace

	cancel        context.CancelCauseFunc
	headerTimeout time.Duration

	// limitAt is when the per-try timeout or the deadline ends the
	// attempt, and limitCause which of the two.
	limitAt    time.Time
	limitCause error

	mu     sync.Mutex
	timer  *time.Timer
	fireAt time.Time // when timer fires, as last armed
	cause  error     // what the timer ends the attempt with
	done   bool      // the attempt returned: the timer stays stopped
}

func newAttemptRun(cancel context.CancelCauseFunc, limit time.Duration, cause error, headerTimeout time.Duration) *attemptRun {
	r := &attemptRun{cancel: cancel, cause: cause, fireAt: time.Now().Add(limit)}
	r.limitAt, r.limitCause = r.fireAt, cause
	r.trace.GotConn = func(httptrace.GotConnInfo) {
		if r.conns.Add(1) > 1 && r.headerTimeout > 0 {
			// http.Transport replays the request on a new connection: the
			// header timeout counts again from this connection's write, as
			// the transport's own did; until then only the limit holds.
			r.rearm(r.limitAt, r.limitCause)
		}
	}
	if headerTimeout > 0 && headerTimeout < limit {
		// Counted from the end of the write, it can only end the attempt
		// sooner when it is shorter than the timer's limit.
		r.headerTimeout = headerTimeout
		r.trace.WroteRequest = r.wroteRequest
	}
	r.timer = time.AfterFunc(limit, r.fire)
	return r
}

func (r *attemptRun) fire() {
	r.mu.Lock()
	cause := r.cause
	r.mu.Unlock()
	r.cancel(cause)
}

// wroteRequest sets the timer to the response header timeout, counted from
// now, when that comes before the limit. http.Transport calls it from its
// write loop, once per connection the request was written to, when the
// request has been handed to the connection: its last bytes (up to the
// connection's 4 KiB buffer) may still be flushed after it, where
// http.Transport's own ResponseHeaderTimeout started after the flush. The
// difference shows only when the upstream stops reading the request.
func (r *attemptRun) wroteRequest(httptrace.WroteRequestInfo) {
	if at := time.Now().Add(r.headerTimeout); at.Before(r.limitAt) {
		r.rearm(at, policy.ErrResponseHeaderTimeout)
	}
}

// rearm makes the timer fire at at, ending the attempt with cause, unless
// the attempt has returned or the timer has already fired.
func (r *attemptRun) rearm(at time.Time, cause error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done || at.Equal(r.fireAt) {
		return
	}
	if r.timer.Stop() { // not fired yet
		r.fireAt, r.cause = at, cause
		r.timer.Reset(time.Until(at))
	}
}

// stop stops the timer for good: the attempt's response headers are in,
// or it failed.
func (r *attemptRun) stop() {
	r.mu.Lock()
	r.done = true
	r.timer.Stop()
	r.mu.Unlock()
}

// finish returns the last attempt's result to the ReverseProxy with the
// attempt count: on the response's header, or on the problem the
// ErrorHandler will write, mapped from the last attempt's outcome by
// upstreamProblem (503 with Retry-After when it never reached the upstream,
// 504 upstream_timeout, 502 upstream_error). reached says an attempt may
// have reached the upstream: the 503 then does not claim the request was
// not processed. A client that went away gets its error back as it is
// (logged as 499).
func (t *retryTransport) finish(ctx context.Context, resp *http.Response, err error, cancel context.CancelCauseFunc,
	attempts int, last policy.Outcome, reached bool) (*http.Response, error) {
	if err == nil {
		resp.Header.Set(HeaderAttempts, strconv.Itoa(attempts))
		resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
		return resp, nil
	}
	cancel(nil)
	if ctx.Err() != nil {
		return nil, err
	}
	p := upstreamProblem(last, true, reached)
	p.Header = withAttempts(p.Header, attempts)
	return nil, &ProblemError{Problem: p, Err: err}
}

func withAttempts(h http.Header, attempts int) http.Header {
	if h == nil {
		h = http.Header{}
	}
	h.Set(HeaderAttempts, strconv.Itoa(attempts))
	return h
}

// drainTimeout bounds the drain of a response that is being retried.
const drainTimeout = 50 * time.Millisecond

// discard drains a little of a response that is being retried, so its
// connection can go back to the pool, and closes it. A body that does not
// come within drainTimeout is cut off by ending its attempt (cancel, the
// attempt's context), so an upstream that sends a 503's headers but never
// its body cannot hold the retry loop past its deadline.
func discard(resp *http.Response, cancel context.CancelCauseFunc) {
	if resp == nil {
		return
	}
	stop := time.AfterFunc(drainTimeout, func() { cancel(nil) })
	_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
	stop.Stop()
	resp.Body.Close()
}

// wait sleeps for d unless ctx ends first.
func wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// cancelOnClose releases the attempt's context when the ReverseProxy
// closes the response body.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelCauseFunc
}

func (c *cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel(nil)
	return err
}

// The retry layer under the ReverseProxy (see the request path in
// docs/architecture.md). The RoundTripper itself is retryTransport (above): it
// buffers the body, retries per the route's policy and budget, and calls
// next once per attempt. next is the attempt layer (spans, attempt
// metrics, classification: see attempt.go) over the breaker layer over the
// tuned transport.
//
// Beware the transport's own hidden replay (see transport.go): a request
// that is replayable in net/http's sense may be re-sent by http.Transport
// on a reused connection that died; the attempt layer counts such replays
// as attempts and the retry layer charges them to the attempt limit and
// the budget (retryTransport.RoundTrip).

// buildRetry builds a route's retry policy; prev is the route's runtime in
// the previous snapshot (nil at start-up), whose budget counts are carried
// over when the budget window is unchanged.
func buildRetry(rc config.RouteConfig, prev *RouteRuntime) (*policy.RetryPolicy, error) {
	var old *policy.RetryPolicy
	if prev != nil {
		old = prev.Retry
	}
	p, err := policy.NewRetryPolicy(rc.Retry, old, nil)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// retryLayer wraps the per-attempt RoundTripper in the retry loop.
func (s *Sidecar) retryLayer(next http.RoundTripper) http.RoundTripper {
	return &retryTransport{next: next, metrics: s.deps.Metrics, now: s.deps.now, health: s.health, queue: &s.queue}
}
