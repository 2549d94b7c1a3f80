package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"opscore-sidecar/metrics"
	"opscore-sidecar/policy"
	"opscore-sidecar/proxy/config"
	"opscore-sidecar/proxy/outbox"
)

// HeaderQueuedID is the response header of a 202 that names the outbox
// message the request became; /admin/outbox lists it under that id.
const HeaderQueuedID = "X-Sidecar-Queued-Id"

// HeaderOutboxID is sent with each delivery of an outbox message to the
// upstream, so its logs can tie the request to the 202 the caller got.
const HeaderOutboxID = "X-Sidecar-Outbox-Id"

// replayHeaders are the request headers an outbox message keeps and sends
// with its delivery; the others (hop-by-hop, Content-Length, the
// sidecar's own) are rebuilt or dropped. The Authorization header is kept
// because the core checks the API key itself: the outbox file is created
// 0600 in a 0700 directory (proxy/outbox/bolt.go).
var replayHeaders = []string{
	"Content-Type", "Authorization", "X-Request-Id", "Traceparent", "Tracestate",
	"X-Agentkit-Timestamp", "X-Agentkit-Signature", "Idempotency-Key", "X-Idempotency-Key",
	"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "User-Agent",
}

// outboxQueue is the outbox side of the retry layer: it accepts a request
// into the durable outbox with 202 when the upstream stays down past the
// route's hold (accept), and queues a notify or state_update behind the
// messages already queued for the same agent (behind), so a state update
// never overtakes its agent's queued registration to earn a 404.
type outboxQueue struct {
	store outbox.Store
	// local is store when it answers Pending from memory (the bolt store),
	// nil otherwise; resolved once by newOutboxQueue.
	local     outbox.LocalIndex
	deliverer *outbox.Deliverer
	metrics   *metrics.Metrics
	logger    *slog.Logger
}

func newOutboxQueue(st outbox.Store, d *outbox.Deliverer, m *metrics.Metrics, logger *slog.Logger) *outboxQueue {
	local, _ := st.(outbox.LocalIndex)
	return &outboxQueue{store: st, local: local, deliverer: d, metrics: m, logger: logger}
}

// pendingTimeout bounds the look-up of an agent's queued messages.
const pendingTimeout = 50 * time.Millisecond

// orderedRoutes are the routes whose requests are queued behind their
// agent's queued messages.
func orderedRoute(route string) bool {
	return route == config.RouteNotify || route == config.RouteStateUpdate
}

// behind queues req when its agent already has queued messages. It
// reports false (and the request goes on to the upstream) when it does
// not, or when that cannot be known.
func (q *outboxQueue) behind(ctx context.Context, req *http.Request, info *RequestInfo, body *retryBody) (*http.Response, error, bool) {
	if !orderedRoute(info.Route) || !body.replayable() {
		return nil, nil, false
	}
	agent := agentOf(info, body.buf)
	if agent == "" {
		return nil, nil, false
	}
	if !q.pending(ctx, agent) {
		return nil, nil, false
	}
	return q.enqueue(ctx, req, info, body, agent, info.attemptCount(),
		"an earlier request for this agent is queued; this one was stored behind it")
}

// pending reports whether agent has queued messages, false when that
// cannot be known. A store with a local index answers at once; any other
// is bounded by pendingTimeout: with the Redis backend this is a round
// trip on the request path, and a slow outbox must not slow traffic to a
// healthy core.
func (q *outboxQueue) pending(ctx context.Context, agent string) bool {
	if q.local != nil {
		return q.local.PendingLocal(agent)
	}
	pctx, cancel := context.WithTimeout(ctx, pendingTimeout)
	pending, err := q.store.Pending(pctx, agent)
	cancel()
	if err != nil {
		q.logger.Warn("outbox: cannot tell whether the agent has queued messages; forwarding", "agent_id", agent, "error", err)
		return false
	}
	return pending
}

// accept queues a request whose round r failed with the upstream down or
// failing. It reports false when the outbox refused it (full, or its
// store failed): the caller then answers the failure as usual.
func (q *outboxQueue) accept(ctx context.Context, req *http.Request, info *RequestInfo, body *retryBody, r roundResult) (*http.Response, error, bool) {
	discard(r.resp, r.cancel)
	r.cancel(nil)
	return q.enqueue(ctx, req, info, body, agentOf(info, body.buf), r.wire,
		"the upstream is unavailable; the request was stored durably and will be delivered, in order, when it is back")
}

func (q *outboxQueue) enqueue(ctx context.Context, req *http.Request, info *RequestInfo, body *retryBody, agent string, attempts int, detail string) (*http.Response, error, bool) {
	m := &outbox.Message{
		Route: info.Route, Method: req.Method, Path: req.URL.RequestURI(),
		Header: http.Header{}, Body: body.buf, AgentID: agent, RequestID: info.RequestID,
	}
	for _, k := range replayHeaders {
		if v := req.Header.Values(k); len(v) > 0 {
			m.Header[k] = v
		}
	}
	// Once the store is asked, the write completes even if the client goes
	// away meanwhile: the message is either fully stored or not at all. (A
	// client that went away before this point, during the hold, gets
	// nothing queued: it saw no 202 and may send again.)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if err := q.store.Enqueue(sctx, m); err != nil {
		lvl := slog.LevelError
		if errors.Is(err, outbox.ErrFull) {
			lvl = slog.LevelWarn
		}
		q.logger.Log(ctx, lvl, "outbox: request not queued", "route", info.Route, "request_id", info.RequestID, "error", err)
		return nil, nil, false
	}
	q.metrics.OutboxEnqueued.WithLabelValues(info.Route).Inc()
	q.deliverer.Kick()
	p := Problem{
		Status: http.StatusAccepted, Outcome: OutcomeQueued, Title: "Accepted for delivery",
		Detail:   detail + " (queued as " + m.ID + ")",
		QueuedID: m.ID,
		Header:   withAttempts(http.Header{HeaderQueuedID: {m.ID}}, attempts),
	}
	return nil, &ProblemError{Problem: p}, true
}

// agentOf returns the agent a request is about: the {agent_id} path
// parameter, or for the notify webhook agent_details.agentId of its body.
func agentOf(info *RequestInfo, body []byte) string {
	if info.AgentID != "" || info.Route != config.RouteNotify || len(body) == 0 {
		return info.AgentID
	}
	var v struct {
		Details struct {
			AgentID string `json:"agentId"`
		} `json:"agent_details"`
	}
	if json.Unmarshal(body, &v) != nil {
		return ""
	}
	return v.Details.AgentID
}

// deliver sends one outbox message to the current upstream: the
// outbox.SendFunc of the deliverer. Each delivery is bounded by the
// route's per-try timeout, or by upstream.response_header_timeout when
// that is shorter (the body is in memory: its write takes no time).
func (s *Sidecar) deliver(ctx context.Context, m *outbox.Message) (int, error) {
	snap := s.snap.Load()
	timeout := 5 * time.Second
	if rc, ok := snap.Config.Routes[m.Route]; ok {
		timeout = rc.Retry.PerTryTimeout
	}
	if rht := snap.Config.Upstream.ResponseHeaderTimeout; rht > 0 && rht < timeout {
		timeout = rht
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	u := *snap.Upstream
	target := u.Scheme + "://" + u.Host + m.Path
	req, err := http.NewRequestWithContext(ctx, m.Method, target, bytes.NewReader(m.Body))
	if err != nil {
		return 0, fmt.Errorf("proxy: outbox message %s: %w", m.ID, err)
	}
	req.Header = m.Header.Clone()
	if req.Header == nil {
		req.Header = http.Header{}
	}
	req.Header.Set(HeaderOutboxID, m.ID)
	resp, err := snap.Transport.RoundTrip(req)
	if err != nil {
		// An outbox delivery goes straight to the upstream transport, not
		// through the attempt layer: its error is classified here.
		if policy.Classify(0, err, nil).Kind.ConnectionFailure() {
			s.health.suspect()
		}
		return 0, err
	}
	_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
	resp.Body.Close()
	return resp.StatusCode, nil
}
