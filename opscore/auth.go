package opscore

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// constantTimeCompare is subtle.ConstantTimeCompare; a test replaces it to
// see what authorize compares.
var constantTimeCompare = subtle.ConstantTimeCompare

// authorize checks "Authorization: Bearer <key>" as the original does
// (scheme split at the first space, compared case-insensitively; token
// compared exactly). The SHA-256 digest of the token is compared with the
// key's in constant time, so the time taken depends on neither the key's
// length nor the token's (comparing the raw bytes would return at once on a
// length mismatch and leak the key's length). It writes the 401 itself and
// returns false when the request must stop. No WWW-Authenticate header is
// sent, as in the original.
func (s *Service) authorize(w http.ResponseWriter, r *http.Request) bool {
	vals, present := r.Header["Authorization"]
	if !present || len(vals) == 0 {
		writeDetail(w, http.StatusUnauthorized, "Authorization header missing")
		return false
	}
	scheme, token, _ := strings.Cut(vals[0], " ")
	if !strings.EqualFold(scheme, "bearer") || token == "" || !s.keyMatches(token) {
		writeDetail(w, http.StatusUnauthorized, "Invalid authentication credentials")
		return false
	}
	return true
}

// keyMatches reports whether token is the API key, comparing fixed-size
// digests in constant time.
func (s *Service) keyMatches(token string) bool {
	sum := sha256.Sum256([]byte(token))
	return constantTimeCompare(sum[:], s.apiKeySum[:]) == 1
}
