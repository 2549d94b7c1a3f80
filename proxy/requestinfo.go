package proxy

import (
	"context"
	"sync"
	"time"

	"opscore-sidecar/policy"
)

// Outcome is how the sidecar finished a request: one of a closed set, so
// one dashboard panel shows every failure mode (label outcome).
type Outcome string

// The outcomes (the closed set of docs/architecture.md, "Metrics contract").
const (
	OutcomeForwarded       Outcome = "forwarded"
	OutcomeRateLimited     Outcome = "rate_limited"
	OutcomeShed            Outcome = "shed"
	OutcomeQueueTimeout    Outcome = "queue_timeout"
	OutcomeBreakerOpen     Outcome = "breaker_open"
	OutcomeAuthFailed      Outcome = "auth_failed"
	OutcomeTooLarge        Outcome = "too_large"
	OutcomeNotFound        Outcome = "not_found"
	OutcomeUpstreamError   Outcome = "upstream_error"
	OutcomeUpstreamTimeout Outcome = "upstream_timeout"
	OutcomeClientClosed    Outcome = "client_closed"
	// OutcomeQueued: the upstream was down; the request was accepted into
	// the durable outbox and answered 202 (queue.go).
	OutcomeQueued Outcome = "queued"
	// OutcomeBadRequest: see request_body.go.
)

// RequestInfo is the per-request state shared by the chain's layers. The
// trace layer creates it, the route layer fills the route, the policy
// layers (auth, admission, retry, breaker) record their decisions through
// the setters, and the access log and metrics read it when the request
// ends. Setters are safe for concurrent use (the transport may report
// from its own goroutines).
type RequestInfo struct {
	// Immutable after the trace layer and the route layer ran.
	RequestID string
	TraceID   string
	Method    string
	Path      string

	// Route is the route name, RouteDefault until routing ran.
	Route string
	// Class is the route's priority class.
	Class policy.Class
	// AgentID is the {agent_id} path parameter, if the route has one.
	AgentID string
	// Snapshot is the configuration snapshot this request uses from its
	// start to its end, even if a reload swaps in another one meanwhile.
	Snapshot *Snapshot
	// Runtime is the route's runtime (policy objects) from Snapshot.
	Runtime *RouteRuntime
	// Start is when the observe layer began the request.
	Start time.Time
	// body is the client's body as the route layer wrapped it (nil for
	// none); it keeps the first error met reading it.
	body *clientBody
	// preRead is the body as the body step read it before admission
	// (request_body.go), for the retry layer to take once (takePreRead).
	preRead *preReadBody
	// run is the attempt the retry layer is sending, for the attempt
	// layer below it to take (takeAttemptRun); only the request's own
	// goroutine touches it.
	run *attemptRun

	// adm is the request's hold on the concurrency gate, set by the
	// admission layer and released when it returns; only the request's own
	// goroutine touches it (a held request yields and retakes its slot).
	adm admission

	mu             sync.Mutex
	outcome        Outcome
	reason         string
	attempts       int
	upstreamStatus int
	upstreamTime   time.Duration
	// last is the last attempt's outcome as the attempt layer classified
	// it, recorded when attempts was lastAt.
	last      policy.Outcome
	lastAt    int
	queueTime time.Duration
	shadow    []string
}

type infoKey struct{}

// WithInfo returns ctx carrying info.
func WithInfo(ctx context.Context, info *RequestInfo) context.Context {
	return context.WithValue(ctx, infoKey{}, info)
}

// InfoFrom returns the request's RequestInfo, or nil outside the chain.
func InfoFrom(ctx context.Context) *RequestInfo {
	info, _ := ctx.Value(infoKey{}).(*RequestInfo)
	return info
}

// takePreRead returns the body the body step read, once, if no one has
// read from it since: between the body step and the retry layer only the
// ReverseProxy handles the body, wrapping it without reading. It returns
// nil for a nil RequestInfo, a request without a pre-read body, or when
// it was already taken or read.
func (ri *RequestInfo) takePreRead() *preReadBody {
	if ri == nil || ri.preRead == nil || ri.preRead.r != nil {
		return nil
	}
	pb := ri.preRead
	ri.preRead = nil
	return pb
}

// takeAttemptRun returns the attempt the retry layer above is sending, once;
// nil for a nil RequestInfo or outside the retry layer.
func (ri *RequestInfo) takeAttemptRun() *attemptRun {
	if ri == nil {
		return nil
	}
	r := ri.run
	ri.run = nil
	return r
}

// responseHeaderTimeout is upstream.response_header_timeout of the
// request's snapshot (0: none).
func (ri *RequestInfo) responseHeaderTimeout() time.Duration {
	if ri == nil || ri.Snapshot == nil || ri.Snapshot.Config == nil {
		return 0
	}
	return ri.Snapshot.Config.Upstream.ResponseHeaderTimeout
}

// bodyErr returns the first error met reading the client's body, or nil
// (also for a nil RequestInfo).
func (ri *RequestInfo) bodyErr() error {
	if ri == nil {
		return nil
	}
	return ri.body.readErr()
}

// SetOutcome records how the request ended and why (reason is a bounded
// label value such as "route_rate" or "refused"; it may be empty). The
// last call wins; a request with no outcome set is "forwarded".
func (ri *RequestInfo) SetOutcome(o Outcome, reason string) {
	ri.mu.Lock()
	ri.outcome, ri.reason = o, reason
	ri.mu.Unlock()
}

// AddAttempts adds n upstream attempts (wire attempts: the attempt layer
// counts each connection the transport used, hidden replays included).
func (ri *RequestInfo) AddAttempts(n int) {
	ri.mu.Lock()
	ri.attempts += n
	ri.mu.Unlock()
}

// SetUpstream records the last attempt's status code (0 if it failed
// without a response) and adds d to the time spent waiting on the upstream.
func (ri *RequestInfo) SetUpstream(status int, d time.Duration) {
	ri.mu.Lock()
	ri.upstreamStatus = status
	ri.upstreamTime += d
	ri.mu.Unlock()
}

// recordAttempt records the outcome the attempt layer classified for the
// attempt that just ended (its status, as SetUpstream does) and adds d to
// the time spent waiting on the upstream. The attempt layer calls it after
// AddAttempts, so lastAttempt tells the layers above which attempt it
// belongs to.
func (ri *RequestInfo) recordAttempt(o policy.Outcome, d time.Duration) {
	ri.mu.Lock()
	ri.upstreamStatus = o.Status
	ri.upstreamTime += d
	ri.last, ri.lastAt = o, ri.attempts
	ri.mu.Unlock()
}

// attemptCount returns the wire attempts counted so far.
func (ri *RequestInfo) attemptCount() int {
	ri.mu.Lock()
	defer ri.mu.Unlock()
	return ri.attempts
}

// lastAttempt returns the last recorded attempt outcome and the wire
// attempts counted when it was recorded (0: none recorded).
func (ri *RequestInfo) lastAttempt() (policy.Outcome, int) {
	ri.mu.Lock()
	defer ri.mu.Unlock()
	return ri.last, ri.lastAt
}

// AddQueueTime adds time spent waiting in the admission queue.
func (ri *RequestInfo) AddQueueTime(d time.Duration) {
	ri.mu.Lock()
	ri.queueTime += d
	ri.mu.Unlock()
}

// AddShadow records that a policy in shadow mode would have refused the
// request (e.g. "rate_limit:route_rate"); it is logged, not enforced.
func (ri *RequestInfo) AddShadow(what string) {
	ri.mu.Lock()
	ri.shadow = append(ri.shadow, what)
	ri.mu.Unlock()
}

// InfoView is a consistent copy of a RequestInfo's mutable fields.
type InfoView struct {
	Outcome        Outcome
	Reason         string
	Attempts       int
	UpstreamStatus int
	UpstreamTime   time.Duration
	QueueTime      time.Duration
	Shadow         []string
}

// View returns a copy of the mutable fields.
func (ri *RequestInfo) View() InfoView {
	ri.mu.Lock()
	defer ri.mu.Unlock()
	v := InfoView{
		Outcome: ri.outcome, Reason: ri.reason, Attempts: ri.attempts,
		UpstreamStatus: ri.upstreamStatus, UpstreamTime: ri.upstreamTime,
		QueueTime: ri.queueTime, Shadow: ri.shadow,
	}
	if v.Outcome == "" {
		v.Outcome = OutcomeForwarded
	}
	return v
}
