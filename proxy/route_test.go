package proxy

import (
	"strings"
	"testing"

	"opscore-sidecar/proxy/config"
)

func TestRouteTableMatchesOpsCoreAPI(t *testing.T) {
	table, err := newRouteTable(config.Defaults())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		method, path string
		route, agent string
	}{
		{"POST", "/v1/opscore/internal/agent/notify", config.RouteNotify, ""},
		{"GET", "/v1/opscore/internal/agent/notify", config.RouteDefault, ""},
		{"POST", "/v1/opscore/agent/a-1/state", config.RouteStateUpdate, "a-1"},
		{"GET", "/v1/opscore/agent/a-1/state", config.RouteStateGet, "a-1"},
		{"HEAD", "/v1/opscore/agent/a-1/state", config.RouteStateGet, "a-1"},
		{"HEAD", "/v1/opscore/internal/agent/notify", config.RouteDefault, ""},
		{"PUT", "/v1/opscore/agent/a-1/state", config.RouteDefault, ""},
		{"POST", "/v1/opscore/agent/a-1/workflow", config.RouteWorkflow, "a-1"},
		{"POST", "/v1/opscore/agent//state", config.RouteDefault, ""},
		{"POST", "/v1/opscore/agent/a/b/state", config.RouteDefault, ""},
		{"POST", "/v1/opscore/agent/a-1/state/", config.RouteDefault, ""},
		{"POST", "/v1/opscore/agent/a-1", config.RouteDefault, ""},
		{"GET", "/health", config.RouteDefault, ""},
		{"GET", "/", config.RouteDefault, ""},
		{"GET", "", config.RouteDefault, ""},
		{"GET", "*", config.RouteDefault, ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			route, agent := table.Match(tt.method, tt.path)
			if route != tt.route || agent != tt.agent {
				t.Errorf("Match(%q, %q) = (%q, %q), want (%q, %q)", tt.method, tt.path, route, agent, tt.route, tt.agent)
			}
		})
	}
}

func TestRouteMatchOverride(t *testing.T) {
	cfg := config.Defaults()
	rc := cfg.Routes[config.RouteWorkflow]
	rc.Match = config.MatchConfig{Path: "/v2/{agent_id}/run"} // any method
	cfg.Routes[config.RouteWorkflow] = rc
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	table, err := newRouteTable(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"GET", "PUT"} {
		if route, agent := table.Match(m, "/v2/x9/run"); route != config.RouteWorkflow || agent != "x9" {
			t.Errorf("Match(%s /v2/x9/run) = (%q, %q), want (workflow, x9)", m, route, agent)
		}
	}
	if route, _ := table.Match("POST", "/v1/opscore/agent/a/workflow"); route != config.RouteDefault {
		t.Errorf("old workflow path: got %q, want default", route)
	}
}

// FuzzRouteMatch checks the matcher against a straightforward reference:
// split on "/" and compare segment by segment.
func FuzzRouteMatch(f *testing.F) {
	f.Add("POST", "/v1/opscore/agent/a/state")
	f.Add("GET", "/v1/opscore/agent//state")
	f.Add("POST", "/v1/opscore/internal/agent/notify/")
	f.Add("GET", "//")
	table, err := newRouteTable(config.Defaults())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, method, path string) {
		route, agent := table.Match(method, path)
		want, wantAgent := config.RouteDefault, ""
		for _, e := range table.entries {
			if e.method != "" && e.method != method {
				continue
			}
			if ok, id := referenceMatch(e.pat.String(), path); ok {
				want, wantAgent = e.name, id
				break
			}
		}
		if route != want || agent != wantAgent {
			t.Errorf("Match(%q, %q) = (%q, %q), reference says (%q, %q)", method, path, route, agent, want, wantAgent)
		}
	})
}

func referenceMatch(pattern, path string) (bool, string) {
	if !strings.HasPrefix(path, "/") {
		return false, ""
	}
	ps, xs := strings.Split(pattern, "/"), strings.Split(path, "/")
	if len(ps) != len(xs) {
		return false, ""
	}
	agent := ""
	for i := range ps {
		if strings.HasPrefix(ps[i], "{") {
			if xs[i] == "" {
				return false, ""
			}
			if ps[i] == "{agent_id}" {
				agent = xs[i]
			}
		} else if ps[i] != xs[i] {
			return false, ""
		}
	}
	return true, agent
}

// TestRouteTableAllowed: a path that a method-bound route owns reports the
// methods it takes (HEAD with GET), so the route layer can answer 405
// instead of letting another method through the default route.
func TestRouteTableAllowed(t *testing.T) {
	table, err := newRouteTable(config.Defaults())
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		"/v1/opscore/agent/a-1/state":       "GET, HEAD, POST",
		"/v1/opscore/internal/agent/notify": "POST",
		"/v1/opscore/agent/a-1/workflow":    "POST",
		"/health":                           "",
		"/v1/opscore/agent/a-1/state/":      "",
	} {
		if got := table.Allowed(path); got != want {
			t.Errorf("Allowed(%q) = %q, want %q", path, got, want)
		}
	}
}
