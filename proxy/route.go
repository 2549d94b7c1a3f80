package proxy

import (
	"fmt"
	"slices"
	"strings"

	"opscore-sidecar/proxy/config"
)

// routeEntry is one matchable route.
type routeEntry struct {
	name   string
	method string
	pat    config.Pattern
}

// RouteTable maps a request's method and path to a route name. It is
// immutable and built once per config snapshot.
type RouteTable struct {
	entries []routeEntry
}

// newRouteTable compiles the match rules of every non-default route of
// cfg, in the order of RouteNames. cfg must have passed Validate.
func newRouteTable(cfg *config.Config) (*RouteTable, error) {
	t := &RouteTable{}
	for _, name := range config.RouteNames {
		if name == config.RouteDefault {
			continue
		}
		rc := cfg.Routes[name]
		pat, err := config.CompilePattern(rc.Match.Path)
		if err != nil {
			return nil, fmt.Errorf("routes.%s.match.path: %w", name, err)
		}
		t.entries = append(t.entries, routeEntry{name: name, method: rc.Match.Method, pat: pat})
	}
	return t, nil
}

// Match returns the route name for method and path (RouteDefault when no
// route matches) and the agent_id path parameter when the pattern has one.
// Matching uses the decoded path; query strings play no part. A route
// whose method is GET also matches HEAD: HEAD is GET without the body
// (RFC 9110), and the upstream answers it with its GET handler, so it must
// meet the same policies (API key, limits), not the default route's.
func (t *RouteTable) Match(method, path string) (route, agentID string) {
	for i := range t.entries {
		e := &t.entries[i]
		if !methodMatches(e.method, method) {
			continue
		}
		if ok, id := e.pat.Match(path); ok {
			return e.name, id
		}
	}
	return config.RouteDefault, ""
}

// methodMatches reports whether a route matching want (empty: any) takes a
// request with method got.
func methodMatches(want, got string) bool {
	return want == "" || want == got || (want == "GET" && got == "HEAD")
}

// Allowed returns the methods of the routes whose path pattern matches
// path ("GET, HEAD, POST"), or "" when none does. For a request that fell
// to the default route it says the path belongs to another route that does
// not take this method: the route layer answers 405 rather than let the
// request through the default route's (other) policies.
func (t *RouteTable) Allowed(path string) string {
	var methods []string
	for i := range t.entries {
		e := &t.entries[i]
		if ok, _ := e.pat.Match(path); !ok || e.method == "" {
			continue
		}
		methods = append(methods, e.method)
		if e.method == "GET" {
			methods = append(methods, "HEAD")
		}
	}
	slices.Sort(methods)
	return strings.Join(slices.Compact(methods), ", ")
}
