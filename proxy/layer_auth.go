package proxy

import "net/http"

// This file is the auth seam of the chain (DESIGN.md step 4). It is owned
// by the admission layer, which replaces the identity below with the
// AgentKit webhook HMAC check and the optional bearer API-key check.

// AuthRuntime is a route's authentication state (verifier, replay cache).
// Empty until the admission layer fills it.
type AuthRuntime struct{}

// buildAuth builds a route's AuthRuntime from rc; prev is the route's
// runtime in the previous snapshot (nil at start-up), whose state (e.g.
// the replay cache) may be carried over.
func buildAuth(name string, rc RouteConfig, prev *RouteRuntime, deps Deps) (AuthRuntime, error) {
	return AuthRuntime{}, nil
}

// authLayer checks the request's credentials for its route
// (InfoFrom(r.Context()).Runtime.Auth) and answers 401 through
// WriteProblem with OutcomeAuthFailed. Identity today.
func (s *Sidecar) authLayer(next http.Handler) http.Handler { return next }
