package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
)

// Kind is the class of a failed request, used for the failures-by-kind
// chart and the debug-registration verdict.
//
// It is deliberately not policy.Outcome (policy/classify.go): that one
// classifies the sidecar's attempts to the upstream for its retry policy,
// breaker and metrics; this one classifies what the load generator's client
// saw, keyed by Locust/Python messages so runs compare with the seed's, and
// with kinds the sidecar has no use for (http_4xx, http_503, status).
type Kind string

// The failure kinds. Transport kinds have no HTTP status (Locust's status 0).
const (
	KindRefused Kind = "refused"  // connection refused: nothing listens
	KindReset   Kind = "reset"    // TCP RST (or broken pipe) before a response
	KindClosed  Kind = "closed"   // clean close before any response byte
	KindTimeout Kind = "timeout"  // no response within the request timeout
	KindOther   Kind = "other"    // any other transport error
	Kind4xx     Kind = "http_4xx" // a 4xx other than 429
	Kind429     Kind = "http_429" // 429 Too Many Requests
	Kind5xx     Kind = "http_5xx" // a 5xx other than 503
	Kind503     Kind = "http_503" // 503 Service Unavailable
	KindStatus  Kind = "status"   // a registration answered with a non-200 2xx/3xx
)

// Transport reports whether the kind means no HTTP response arrived.
func (k Kind) Transport() bool {
	switch k {
	case KindRefused, KindReset, KindClosed, KindTimeout, KindOther:
		return true
	}
	return false
}

// Failure is one failed request: its kind and the Locust-style message the
// failures table is keyed by.
type Failure struct {
	Kind    Kind
	Message string
	// Reused says the request was sent on a reused keep-alive connection
	// (false for a fresh connection or when none was obtained).
	Reused bool
}

// The Locust/Python messages for transport errors, as in the seed's runs.
const (
	MsgRefused = "ConnectionRefusedError(111, 'Connection refused')"
	MsgReset   = "ConnectionResetError(104, 'Connection reset by peer')"
	MsgPipe    = "BrokenPipeError(32, 'Broken pipe')"
	MsgClosed  = "RemoteDisconnected('Remote end closed connection without response')"
	MsgTimeout = "ReadTimeout('Read timed out.')"
)

// classifyTransport maps a Go client error to a kind and Python's message.
func classifyTransport(err error) (Kind, string) {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return KindRefused, MsgRefused
	case errors.Is(err, syscall.ECONNRESET):
		return KindReset, MsgReset
	case errors.Is(err, syscall.EPIPE):
		return KindReset, MsgPipe
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return KindTimeout, MsgTimeout
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
		strings.Contains(err.Error(), "server closed"),
		strings.Contains(err.Error(), "connection broken"):
		return KindClosed, MsgClosed
	}
	return KindOther, fmt.Sprintf("ConnectionError(%q)", err.Error())
}

// statusKind maps an HTTP status to a kind.
func statusKind(status int) Kind {
	switch {
	case status == http.StatusTooManyRequests:
		return Kind429
	case status == http.StatusServiceUnavailable:
		return Kind503
	case status >= 500:
		return Kind5xx
	case status >= 400:
		return Kind4xx
	}
	return KindStatus
}

// httpErrorMessage is the message python-requests' raise_for_status gives,
// as Locust records it: HTTPError('500 Server Error: Internal Server Error
// for url: <name>').
func httpErrorMessage(status int, name string) string {
	side := "Client"
	if status >= 500 {
		side = "Server"
	}
	return fmt.Sprintf("HTTPError('%d %s Error: %s for url: %s')", status, side, http.StatusText(status), name)
}

// RegistrationFailurePrefix starts every registration failure message;
// Locust's on_start records CatchResponseError('Failed to register agent:
// <status>') with status 0 when no response arrived.
const RegistrationFailurePrefix = "CatchResponseError('Failed to register agent: "

// HeaderQueuedID is the header of the sidecar's 202 Accepted that names
// the outbox message a request became (proxy.HeaderQueuedID in
// proxy/queue.go; a test keeps the two equal): the sidecar stored the
// request durably and delivers it when the core is back.
const HeaderQueuedID = "X-Sidecar-Queued-Id"

// ClassifyResponse is Classify for a request that may have been answered
// by the sidecar's outbox: a 202 carrying HeaderQueuedID means "accepted,
// delivered later" and is a success for every request, a registration
// included (queued is then true); AgentKit sends the webhook once and
// only needs it not to be lost. A 202 without the header is judged by
// Locust's rules (a registration needs 200).
func ClassifyResponse(name string, registration bool, status int, header http.Header, err error) (f *Failure, queued bool) {
	if err == nil && status == http.StatusAccepted && header.Get(HeaderQueuedID) != "" {
		return nil, true
	}
	return Classify(name, registration, status, err), false
}

// Classify applies Locust's rules to one request's outcome and returns nil
// for a success. A registration succeeds only with status 200; any other
// request succeeds with a status below 400. err is the client's transport
// error, if any (status is then ignored and reported as 0).
func Classify(name string, registration bool, status int, err error) *Failure {
	if err != nil {
		kind, msg := classifyTransport(err)
		if registration {
			msg = RegistrationFailurePrefix + "0')"
		}
		return &Failure{Kind: kind, Message: msg}
	}
	if registration {
		if status == http.StatusOK {
			return nil
		}
		return &Failure{Kind: statusKind(status), Message: fmt.Sprintf("%s%d')", RegistrationFailurePrefix, status)}
	}
	if status < 400 {
		return nil
	}
	return &Failure{Kind: statusKind(status), Message: httpErrorMessage(status, name)}
}
