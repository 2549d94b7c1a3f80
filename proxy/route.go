package proxy

import (
	"fmt"
	"slices"
	"strings"
)

// pattern is a compiled path pattern: literal segments and wildcards.
type pattern struct {
	raw  string
	segs []segment
}

type segment struct {
	literal string // used when name is empty
	name    string // wildcard name, e.g. "agent_id"
}

// compilePattern parses a path pattern such as
// "/v1/opscore/agent/{agent_id}/state". A "{name}" segment matches one
// non-empty path segment; every other segment matches literally.
func compilePattern(p string) (pattern, error) {
	if p == "" || p[0] != '/' {
		return pattern{}, fmt.Errorf("must start with /, got %q", p)
	}
	if strings.ContainsAny(p, "?#") {
		return pattern{}, fmt.Errorf("must not contain ? or #, got %q", p)
	}
	pat := pattern{raw: p}
	names := map[string]bool{}
	for _, s := range strings.Split(p[1:], "/") {
		if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") {
			name := s[1 : len(s)-1]
			if name == "" || strings.ContainsAny(name, "{}") {
				return pattern{}, fmt.Errorf("bad wildcard %q in %q", s, p)
			}
			if names[name] {
				return pattern{}, fmt.Errorf("wildcard {%s} repeated in %q", name, p)
			}
			names[name] = true
			pat.segs = append(pat.segs, segment{name: name})
			continue
		}
		if strings.ContainsAny(s, "{}") {
			return pattern{}, fmt.Errorf("a wildcard must be a whole segment, got %q in %q", s, p)
		}
		pat.segs = append(pat.segs, segment{literal: s})
	}
	return pat, nil
}

// match reports whether path matches and, when it does, the value of the
// agent_id wildcard (empty if the pattern has none). It does not allocate.
func (p *pattern) match(path string) (ok bool, agentID string) {
	if path == "" || path[0] != '/' {
		return false, ""
	}
	rest := path[1:]
	for i, seg := range p.segs {
		var s string
		if j := strings.IndexByte(rest, '/'); j >= 0 {
			s, rest = rest[:j], rest[j+1:]
			if i == len(p.segs)-1 {
				return false, "" // path has more segments
			}
		} else {
			s, rest = rest, ""
			if i != len(p.segs)-1 {
				return false, "" // path has fewer segments
			}
		}
		if seg.name == "" {
			if s != seg.literal {
				return false, ""
			}
			continue
		}
		if s == "" {
			return false, ""
		}
		if seg.name == "agent_id" {
			agentID = s
		}
	}
	return true, agentID
}

// routeEntry is one matchable route.
type routeEntry struct {
	name   string
	method string
	pat    pattern
}

// RouteTable maps a request's method and path to a route name. It is
// immutable and built once per config snapshot.
type RouteTable struct {
	entries []routeEntry
}

// newRouteTable compiles the match rules of every non-default route of
// cfg, in the order of RouteNames. cfg must have passed Validate.
func newRouteTable(cfg *Config) (*RouteTable, error) {
	t := &RouteTable{}
	for _, name := range RouteNames {
		if name == RouteDefault {
			continue
		}
		rc := cfg.Routes[name]
		pat, err := compilePattern(rc.Match.Path)
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
		if ok, id := e.pat.match(path); ok {
			return e.name, id
		}
	}
	return RouteDefault, ""
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
		if ok, _ := e.pat.match(path); !ok || e.method == "" {
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
