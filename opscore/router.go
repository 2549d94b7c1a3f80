package opscore

import (
	"net/http"
	"strings"
)

// endpoint is one path with its handlers by method.
type endpoint struct {
	name    string
	methods map[string]func(w http.ResponseWriter, r *http.Request, id string)
	allow   string
}

// match maps a decoded path to an endpoint and its path parameter, the way
// Starlette matches: a parameter is one non-empty segment.
func (s *Service) match(path string) (*endpoint, string) {
	switch path {
	case "/health":
		return s.endpoints[routeHealth], ""
	case "/readyz":
		return s.endpoints[routeReadyz], ""
	case "/metrics":
		return s.endpoints[routeMetrics], "" // nil without a gatherer
	case "/v1/opscore/internal/agent/notify":
		return s.endpoints[routeNotify], ""
	}
	if rest, ok := strings.CutPrefix(path, "/v1/opscore/agent/"); ok {
		id, tail, ok := strings.Cut(rest, "/")
		if !ok || id == "" {
			return nil, ""
		}
		switch tail {
		case "state":
			return s.endpoints[routeStateGet], id
		case "workflow":
			return s.endpoints[routeWorkflow], id
		}
		return nil, ""
	}
	if id, ok := strings.CutPrefix(path, "/v1/opscore/session/"); ok && id != "" && !strings.Contains(id, "/") {
		return s.endpoints[routeSessionGet], id
	}
	return nil, ""
}

// buildEndpoints creates the route table. GET and POST of .../state share
// one path; the route label is chosen per method in routeName. /metrics is
// in the table only when there is a gatherer to serve.
func (s *Service) buildEndpoints() {
	type h = func(w http.ResponseWriter, r *http.Request, id string)
	mk := func(name string, m map[string]h) *endpoint {
		allow := make([]string, 0, len(m)+1)
		for _, k := range []string{http.MethodGet, http.MethodHead, http.MethodPost} {
			_, ok := m[k]
			if k == http.MethodHead {
				_, ok = m[http.MethodGet] // Starlette answers HEAD wherever GET is allowed
			}
			if ok {
				allow = append(allow, k)
			}
		}
		return &endpoint{name: name, methods: m, allow: strings.Join(allow, ", ")}
	}
	s.endpoints = map[string]*endpoint{
		routeHealth: mk(routeHealth, map[string]h{http.MethodGet: s.handleHealth}),
		routeReadyz: mk(routeReadyz, map[string]h{http.MethodGet: s.handleReadyz}),
		routeNotify: mk(routeNotify, map[string]h{http.MethodPost: s.handleNotify}),
		routeStateGet: mk(routeStateGet, map[string]h{
			http.MethodGet: s.handleStateGet, http.MethodPost: s.handleStateUpdate}),
		routeWorkflow:   mk(routeWorkflow, map[string]h{http.MethodPost: s.handleWorkflow}),
		routeSessionGet: mk(routeSessionGet, map[string]h{http.MethodGet: s.handleSessionGet}),
	}
	if s.metricsHTTP != nil {
		s.endpoints[routeMetrics] = mk(routeMetrics, map[string]h{http.MethodGet: s.handleMetrics})
	}
}

// routeName is the metrics label of a matched request.
func routeName(e *endpoint, method string) string {
	if e == nil {
		return routeNotFound
	}
	if e.name == routeStateGet && method == http.MethodPost {
		return routeStateUpdate
	}
	return e.name
}

// route dispatches a request to e, the endpoint match found for its path
// (nil for none), with id the path parameter: 404 and 405 with FastAPI's
// bodies, HEAD answered by the GET handler (as Starlette does; net/http
// drops the body), and the 307 redirect for extra trailing slashes.
func (s *Service) route(w http.ResponseWriter, r *http.Request, e *endpoint, id string) {
	if e == nil {
		if p := r.URL.Path; len(p) > 1 && strings.HasSuffix(p, "/") {
			if e2, _ := s.match(strings.TrimRight(p, "/")); e2 != nil {
				u := *r.URL
				u.Path = strings.TrimRight(p, "/")
				u.RawPath = ""
				w.Header().Set("Location", u.RequestURI())
				w.WriteHeader(http.StatusTemporaryRedirect)
				return
			}
		}
		writeDetail(w, http.StatusNotFound, "Not Found")
		return
	}
	h, ok := e.methods[r.Method]
	if !ok && r.Method == http.MethodHead {
		h, ok = e.methods[http.MethodGet]
	}
	if !ok {
		w.Header().Set("Allow", e.allow)
		writeDetail(w, http.StatusMethodNotAllowed, "Method Not Allowed")
		return
	}
	h(w, r, id)
}
