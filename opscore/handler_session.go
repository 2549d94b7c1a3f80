package opscore

import (
	"errors"
	"net/http"
)

// handleSessionGet is GET /v1/opscore/session/{sessionId}, an addition to
// the original API so that sessions are visible.
func (s *Service) handleSessionGet(w http.ResponseWriter, r *http.Request, sessionID string) {
	if !s.authorize(w, r) {
		return
	}
	sess, err := s.store.GetSession(r.Context(), sessionID)
	switch {
	case errors.Is(err, ErrSessionNotFound):
		writeDetail(w, http.StatusNotFound, "Session not found: "+sessionID)
	case err != nil:
		s.writeStoreError(w, r, "reading session "+sessionID, err)
	default:
		writeJSON(w, http.StatusOK, sess)
	}
}
