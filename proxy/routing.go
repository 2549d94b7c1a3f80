package proxy

import (
	"net/http"

	"opscore-sidecar/proxy/config"
)

// routeLayer is the route step (step 3 of chain.go). It pins the current
// snapshot to the request, names the route from the method and path (never
// from the Host header or an absolute-form URI: the upstream is fixed by
// config), counts the request in flight, and enforces the route's body
// limit: a declared Content-Length over the limit gets 413 at once, a
// chunked body is cut at the limit and the ErrorHandler answers 413. It
// also arms server.body_read_timeout on the body (wrapBody,
// request_body.go), which the body step after auth reads.
// A path with a "." or ".." segment gets 404 on every route, before
// matching (config.HasDotSegment). A request left to the default route
// whose path a named route matches with another method gets 405 with
// Allow; one whose path routes.default.forward_paths does not list gets
// 404 (proxy/forward_paths.go).
func (s *Sidecar) routeLayer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := InfoFrom(r.Context())
		snap := s.snap.Load()
		// A "." or ".." segment (decoded, so %2e%2e too) is refused before
		// routing, on every route: a named route's {agent_id} would take
		// ".." and the upstream may resolve it out of the route's path.
		// It is counted on the default route, like other unforwarded paths.
		dot := config.HasDotSegment(r.URL.Path)
		name, agentID := config.RouteDefault, ""
		if !dot {
			name, agentID = snap.Routes.Match(r.Method, r.URL.Path)
		}
		rt := snap.Runtime[name]
		info.Snapshot, info.Runtime = snap, rt
		info.Route, info.Class, info.AgentID = name, rt.Class, agentID
		if dot {
			WriteProblem(w, r, problemNotForwarded)
			return
		}
		if name == config.RouteDefault {
			// 405 first: a path a named route owns is that route's even
			// when forward_paths does not list it (docs/sidecar.md).
			if allow := snap.Routes.Allowed(r.URL.Path); allow != "" {
				WriteProblem(w, r, Problem{Status: http.StatusMethodNotAllowed, Outcome: OutcomeBadRequest, Reason: reasonMethodNotAllowed,
					Title: "Method not allowed", Detail: "this path takes only " + allow,
					Header: http.Header{"Allow": {allow}}})
				return
			}
			if !forwardedPath(snap.Config.Routes[config.RouteDefault].ForwardPaths, r.URL.Path) {
				WriteProblem(w, r, problemNotForwarded)
				return
			}
		}

		g := s.deps.Metrics.InflightChild(name)
		g.Inc()
		defer g.Dec()

		if rt.BodyLimit > 0 && r.Body != nil && r.Body != http.NoBody {
			if r.ContentLength > rt.BodyLimit {
				WriteProblem(w, r, problemTooLarge(rt.BodyLimit))
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, rt.BodyLimit)
		}
		if r.Body != nil && r.Body != http.NoBody {
			info.body = wrapBody(w, r, info.Start, snap.Config.Server)
		}
		next.ServeHTTP(w, r)
	})
}
