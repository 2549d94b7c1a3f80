package proxy

import (
	"encoding/json"
	"net/http"
	"net/http/pprof"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// AdminServer is the admin listener's handler: /healthz, /readyz,
// /metrics, /debug/pprof/, /admin/config and /admin/breakers
// (admin_breakers.go). RunOptions.SetupAdmin may add more with Handle.
type AdminServer struct {
	mux     *http.ServeMux
	sidecar *Sidecar
	ready   func() bool
}

// NewAdminServer returns the admin handler for s. gatherer is the
// registry whose metrics /metrics serves (in OpenMetrics format when the
// scraper asks for it, so exemplars are exposed). ready reports whether
// the proxy listener is up; /readyz is 503 while it is false, while no
// config is loaded, or once a drain started.
func NewAdminServer(s *Sidecar, gatherer prometheus.Gatherer, ready func() bool) *AdminServer {
	a := &AdminServer{mux: http.NewServeMux(), sidecar: s, ready: ready}
	a.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	a.mux.HandleFunc("GET /readyz", a.readyz)
	a.mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{EnableOpenMetrics: true}))
	a.mux.HandleFunc("GET /admin/config", a.config)
	a.mux.HandleFunc("GET /admin/breakers", a.breakers)
	a.mux.HandleFunc("/debug/pprof/", pprof.Index)
	a.mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	a.mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	a.mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	a.mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return a
}

// Handle registers handler for pattern (http.ServeMux syntax, e.g.
// "GET /admin/breakers"). It panics on a conflicting pattern, as ServeMux does.
func (a *AdminServer) Handle(pattern string, handler http.Handler) { a.mux.Handle(pattern, handler) }

// ServeHTTP serves the admin endpoints.
func (a *AdminServer) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

func (a *AdminServer) readyz(w http.ResponseWriter, r *http.Request) {
	switch {
	case a.sidecar == nil || a.sidecar.Snapshot() == nil:
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "no config"})
	case a.sidecar.Draining():
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "draining"})
	case a.ready != nil && !a.ready():
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "starting"})
	default:
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	}
}

// config serves the effective configuration with secrets redacted, and
// when it was loaded.
func (a *AdminServer) config(w http.ResponseWriter, r *http.Request) {
	snap := a.sidecar.Snapshot()
	writeJSON(w, http.StatusOK, map[string]any{
		"loaded": snap.Loaded,
		"config": snap.Config.Redacted().Tree(),
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
