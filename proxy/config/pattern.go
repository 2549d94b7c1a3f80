package config

import (
	"fmt"
	"strings"
)

// Pattern is a compiled path pattern of routes.<name>.match.path: literal
// segments and "{name}" wildcards. The request pipeline matches requests
// with it (proxy/route.go); validation compiles it to check the key.
type Pattern struct {
	raw  string
	segs []segment
}

type segment struct {
	literal string // used when name is empty
	name    string // wildcard name, e.g. "agent_id"
}

// CompilePattern parses a path pattern such as
// "/v1/opscore/agent/{agent_id}/state". A "{name}" segment matches one
// non-empty path segment; every other segment matches literally.
func CompilePattern(p string) (Pattern, error) {
	if p == "" || p[0] != '/' {
		return Pattern{}, fmt.Errorf("must start with /, got %q", p)
	}
	if strings.ContainsAny(p, "?#") {
		return Pattern{}, fmt.Errorf("must not contain ? or #, got %q", p)
	}
	pat := Pattern{raw: p}
	names := map[string]bool{}
	for _, s := range strings.Split(p[1:], "/") {
		if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") {
			name := s[1 : len(s)-1]
			if name == "" || strings.ContainsAny(name, "{}") {
				return Pattern{}, fmt.Errorf("bad wildcard %q in %q", s, p)
			}
			if names[name] {
				return Pattern{}, fmt.Errorf("wildcard {%s} repeated in %q", name, p)
			}
			names[name] = true
			pat.segs = append(pat.segs, segment{name: name})
			continue
		}
		if strings.ContainsAny(s, "{}") {
			return Pattern{}, fmt.Errorf("a wildcard must be a whole segment, got %q in %q", s, p)
		}
		pat.segs = append(pat.segs, segment{literal: s})
	}
	return pat, nil
}

// Match reports whether path matches and, when it does, the value of the
// agent_id wildcard (empty if the pattern has none). It does not allocate.
func (p *Pattern) Match(path string) (ok bool, agentID string) {
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

// String returns the pattern as written in the config.
func (p *Pattern) String() string { return p.raw }
