package opscore

import (
	"crypto/subtle"
	"net/http"
	"strings"
)

// authorize checks "Authorization: Bearer <key>" as the original does
// (scheme split at the first space, compared case-insensitively; token
// compared exactly), but in constant time. It writes the 401 itself and
// returns false when the request must stop. No WWW-Authenticate header is
// sent, as in the original.
func (s *Service) authorize(w http.ResponseWriter, r *http.Request) bool {
	vals, present := r.Header["Authorization"]
	if !present || len(vals) == 0 {
		writeDetail(w, http.StatusUnauthorized, "Authorization header missing")
		return false
	}
	scheme, token, _ := strings.Cut(vals[0], " ")
	if !strings.EqualFold(scheme, "bearer") || token == "" ||
		subtle.ConstantTimeCompare([]byte(token), s.apiKey) != 1 {
		writeDetail(w, http.StatusUnauthorized, "Invalid authentication credentials")
		return false
	}
	return true
}
