package opscore

import (
	"context"
	"net/http"
	"time"
)

// readyzTimeout bounds the store ping of /readyz.
const readyzTimeout = time.Second

// handleHealth is GET /health: liveness only, it never touches the store.
func (s *Service) handleHealth(w http.ResponseWriter, _ *http.Request, _ string) {
	writeRaw(w, http.StatusOK, []byte(`{"status":"ok"}`))
}

// handleReadyz is GET /readyz: 200 when the store answers a ping, else 503.
func (s *Service) handleReadyz(w http.ResponseWriter, r *http.Request, _ string) {
	ctx, cancel := context.WithTimeout(r.Context(), readyzTimeout)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		s.writeStoreError(w, r, "readiness check", err)
		return
	}
	writeRaw(w, http.StatusOK, []byte(`{"status":"ready"}`))
}

// handleMetrics is GET /metrics (OpenMetrics when asked for it).
func (s *Service) handleMetrics(w http.ResponseWriter, r *http.Request, _ string) {
	s.metricsHTTP.ServeHTTP(w, r)
}
