package proxy

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"os"

	"opscore-sidecar/policy"
	"opscore-sidecar/proxy/config"
)

// This file is the auth layer of the chain (see the request path in
// docs/architecture.md): the AgentKit webhook HMAC check and the optional
// bearer API-key check, per route, and their per-route state.

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

// AuthRuntime is a route's authentication state.
type AuthRuntime struct {
	// Webhook checks the AgentKit signature; nil when webhook_auth.mode is off.
	Webhook *policy.WebhookVerifier
	// APIKey checks the bearer key; nil when api_key.mode is off.
	APIKey *policy.APIKeyChecker
}

// buildAuth builds a route's AuthRuntime from rc; prev is the route's
// runtime in the previous snapshot (nil at start-up), whose replay cache
// the new verifier shares, so a reload does not let a replay through.
func buildAuth(name string, rc config.RouteConfig, prev *RouteRuntime, c *carry, deps Deps) (AuthRuntime, error) {
	var a AuthRuntime
	var err error
	if rc.WebhookAuth.Mode != policy.AuthOff {
		if prev != nil && prev.Auth.Webhook != nil {
			if a.Webhook, err = prev.Auth.Webhook.With(rc.WebhookAuth, os.Getenv); err == nil {
				w := a.Webhook
				c.then(func() error { w.ResizeReplay(); return nil })
			}
		} else {
			a.Webhook, err = policy.NewWebhookVerifier(rc.WebhookAuth, os.Getenv)
		}
		if err != nil {
			return AuthRuntime{}, err
		}
	}
	if rc.APIKey.Mode != policy.AuthOff {
		if a.APIKey, err = policy.NewAPIKeyChecker(rc.APIKey, os.Getenv); err != nil {
			return AuthRuntime{}, err
		}
	}
	return a, nil
}

// authLayer checks the request's credentials for its route and answers
// 401 through WriteProblem with OutcomeAuthFailed (see auth.go).
func (s *Sidecar) authLayer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.authenticate(w, r) {
			next.ServeHTTP(w, r)
		}
	})
}
