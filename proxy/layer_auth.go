package proxy

import (
	"net/http"
	"os"

	"opscore-sidecar/policy"
	"opscore-sidecar/proxy/config"
)

// This file is the auth layer of the chain (DESIGN.md step 4): the AgentKit
// webhook HMAC check and the optional bearer API-key check, per route.
// The checks themselves are in auth.go.

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
func buildAuth(name string, rc config.RouteConfig, prev *RouteRuntime, deps Deps) (AuthRuntime, error) {
	var a AuthRuntime
	var err error
	if rc.WebhookAuth.Mode != policy.AuthOff {
		if prev != nil && prev.Auth.Webhook != nil {
			a.Webhook, err = prev.Auth.Webhook.With(rc.WebhookAuth, os.Getenv)
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
