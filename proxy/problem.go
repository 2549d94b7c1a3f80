package proxy

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// ProblemTypeBase prefixes every problem type URI; the suffix is the outcome.
const ProblemTypeBase = "urn:opscore-sidecar:problem:"

// Problem is a response the sidecar makes itself: an
// application/problem+json body (RFC 9457) plus the request's outcome.
type Problem struct {
	// Status is the HTTP status code.
	Status int
	// Outcome is the request's outcome; it also names the problem type.
	Outcome Outcome
	// Reason is a bounded label value refining the outcome (e.g. "route_rate");
	// optional. It is logged, and sent as the body's "reason" member.
	Reason string
	// Title is a short, fixed summary of the problem type.
	Title string
	// Detail explains this occurrence; a string, so FastAPI-style clients that read detail keep working.
	Detail string
	// Header holds extra response headers (Retry-After, RateLimit-Policy, ...).
	Header http.Header
	// QueuedID is the outbox message id of a 202 queued answer; sent as the
	// body's "queued_id" member.
	QueuedID string
}

// problemBody is the JSON document; field order is the wire order.
// reason is an extension member (RFC 9457 section 3.2) so a client can
// tell, say, a replayed webhook from a bad secret without parsing detail.
type problemBody struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail"`
	Reason    string `json:"reason,omitempty"`
	QueuedID  string `json:"queued_id,omitempty"`
	RequestID string `json:"request_id,omitempty"`
}

// WriteProblem writes p as application/problem+json, sets its headers, and
// records its outcome and reason on the request's RequestInfo. Every
// response the sidecar makes itself goes through here; a client that went
// away gets nothing (writeClientClosed, logged as 499).
func WriteProblem(w http.ResponseWriter, r *http.Request, p Problem) {
	var requestID string
	if info := InfoFrom(r.Context()); info != nil {
		info.SetOutcome(p.Outcome, p.Reason)
		requestID = info.RequestID
	}
	h := w.Header()
	for k, vs := range p.Header {
		h[k] = vs
	}
	if p.Title == "" {
		p.Title = http.StatusText(p.Status)
	}
	body, _ := json.Marshal(problemBody{
		Type: ProblemTypeBase + string(p.Outcome), Title: p.Title, Status: p.Status,
		Detail: p.Detail, Reason: p.Reason, QueuedID: p.QueuedID, RequestID: requestID,
	})
	h.Set("Content-Type", "application/problem+json")
	h.Set("Content-Length", strconv.Itoa(len(body)+1))
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	_, _ = w.Write(append(body, '\n'))
}

// writeClientClosed ends a request whose client went away: outcome
// client_closed, status 499 for the log and the metrics. 499 is never
// sent: the connection is closed without a response (abortClientClosed).
// When the cause was in fact a body the client could not deliver (a
// malformed chunked body, a body past the body deadline: the route
// layer's clientBody kept the error), that is answered instead, with 400
// or 408, through writeBodyError.
func writeClientClosed(w http.ResponseWriter, r *http.Request) {
	if err := InfoFrom(r.Context()).bodyErr(); err != nil {
		writeBodyError(w, r, err)
		return
	}
	if r.Context().Err() == nil {
		// The client is still connected, so it did not go away: a
		// cancellation of the sidecar's own that nothing else explains.
		WriteProblem(w, r, Problem{Status: http.StatusBadGateway, Outcome: OutcomeUpstreamError, Reason: "canceled",
			Title: "Upstream failed", Detail: "the upstream attempt was canceled before it answered"})
		return
	}
	abortClientClosed(w, r)
}

// abortClientClosed records outcome client_closed and status 499 and
// aborts the handler with http.ErrAbortHandler, which makes net/http close
// the connection without writing anything: neither a 499 status line nor
// the 200 net/http would write for a handler that wrote nothing. The
// observe layer logs and counts the request before the panic goes on.
func abortClientClosed(w http.ResponseWriter, r *http.Request) {
	if info := InfoFrom(r.Context()); info != nil {
		info.SetOutcome(OutcomeClientClosed, "")
	}
	if rec, ok := w.(*responseRecorder); ok && rec.status == 0 {
		rec.status = StatusClientClosed
	}
	panic(http.ErrAbortHandler)
}

// RetryAfter formats d as a Retry-After value in whole seconds, rounded
// up, and at least 1.
func RetryAfter(d time.Duration) string {
	s := int64((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return strconv.FormatInt(s, 10)
}

// ProblemError is an error that carries the problem to answer with. A
// RoundTripper under the ReverseProxy (the retry or breaker layer) returns
// one to make the ErrorHandler write exactly that response, e.g. 503
// breaker_open with Retry-After.
type ProblemError struct {
	Problem Problem
	Err     error
}

func (e *ProblemError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("proxy: %s: %v", e.Problem.Outcome, e.Err)
	}
	return fmt.Sprintf("proxy: %s", e.Problem.Outcome)
}

// Unwrap returns the underlying error.
func (e *ProblemError) Unwrap() error { return e.Err }

// problemNotForwarded is the 404 of a path that no named route matches and
// routes.default.forward_paths does not list (see proxy/forward_paths.go).
var problemNotForwarded = Problem{Status: http.StatusNotFound, Outcome: OutcomeNotFound, Title: "Not found",
	Detail: "this path is not forwarded by the sidecar"}

// problemTooLarge is the 413 of a body over the route's body_limit, whether
// declared (route layer), met while verifying a signature (auth layer) or
// met while streaming it upstream (retry layer, ErrorHandler).
func problemTooLarge(limit int64) Problem {
	return Problem{Status: http.StatusRequestEntityTooLarge, Outcome: OutcomeTooLarge, Title: "Request body too large",
		Detail: fmt.Sprintf("request body exceeds this route's limit of %d bytes", limit)}
}
