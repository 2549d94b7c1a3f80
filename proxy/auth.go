package proxy

import (
	"bytes"
	"errors"
	"io"
	"net/http"

	"opscore-sidecar/policy"
)

// authenticate runs the route's API-key and webhook checks. It returns
// true when the request may go on; otherwise it has answered 401 (or 413
// when the body to verify is over the route's limit) and counted the
// failure in webhook_auth_failures_total{reason}.
func (s *Sidecar) authenticate(w http.ResponseWriter, r *http.Request) bool {
	info := InfoFrom(r.Context())
	auth := info.Runtime.Auth
	if auth.APIKey != nil {
		if v := auth.APIKey.Check(r.Header.Get("Authorization")); !v.Allowed {
			s.deps.Metrics.WebhookAuthFailures.WithLabelValues(string(v.Reason)).Inc()
			authFailed(w, r, v.Reason, "Bearer")
			return false
		}
	}
	if auth.Webhook == nil {
		return true
	}
	ts, sig := r.Header.Get(policy.HeaderAgentKitTimestamp), r.Header.Get(policy.HeaderAgentKitSignature)
	now := s.deps.now()
	// The headers alone decide most refusals (missing, malformed, out of
	// the window): answer those before reading a byte of the body, so that
	// junk-signed requests cannot make the sidecar buffer their bodies.
	v, needBody := auth.Webhook.Precheck(ts, sig, now)
	if needBody {
		body, err := readBody(r)
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				WriteProblem(w, r, problemTooLarge(mbe.Limit))
				return false
			}
			writeClientClosed(w, r)
			return false
		}
		v = auth.Webhook.Verify(ts, sig, body, now)
	}
	if v.Reason != policy.AuthReasonNone {
		s.deps.Metrics.WebhookAuthFailures.WithLabelValues(string(v.Reason)).Inc()
	}
	if !v.Allowed {
		authFailed(w, r, v.Reason, webhookChallenge)
		return false
	}
	return true
}

// readBody reads the whole body (already bounded by the route layer's
// MaxBytesReader) and puts it back so the proxy forwards the same bytes.
func readBody(r *http.Request) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	body, err := io.ReadAll(r.Body)
	_ = r.Body.Close()
	if err != nil {
		return nil, err
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	return body, nil
}

// authDetails explains each refusal; the request's own values are never
// echoed back.
var authDetails = map[policy.AuthReason]string{
	policy.AuthReasonMissing:      "X-AgentKit-Timestamp and X-AgentKit-Signature are required on this route",
	policy.AuthReasonBadTimestamp: "X-AgentKit-Timestamp must be Unix seconds as a decimal integer",
	policy.AuthReasonBadSignature: "X-AgentKit-Signature does not match the request body",
	policy.AuthReasonExpired:      "X-AgentKit-Timestamp is outside the allowed clock skew",
	policy.AuthReasonReplayed:     "this signed request was already accepted",
	policy.AuthReasonInvalidKey:   "Invalid authentication credentials",
}

// webhookChallenge is the WWW-Authenticate value of a webhook 401: the
// AgentKit scheme has no registered name, so it names its headers.
const webhookChallenge = `AgentKit-HMAC-SHA256 headers="X-AgentKit-Timestamp X-AgentKit-Signature"`

// authFailed answers 401 for reason with the WWW-Authenticate challenge
// RFC 9110 asks of every 401.
func authFailed(w http.ResponseWriter, r *http.Request, reason policy.AuthReason, challenge string) {
	WriteProblem(w, r, Problem{Status: http.StatusUnauthorized, Outcome: OutcomeAuthFailed, Reason: string(reason),
		Title: "Authentication failed", Detail: authDetails[reason],
		Header: http.Header{"Www-Authenticate": {challenge}}})
}
