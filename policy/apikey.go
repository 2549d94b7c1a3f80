package policy

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"
)

// APIKeyChecker enforces a bearer API key in the sidecar, as Ops-Core
// does itself (docs/opscore.md, "Bearer key"): the Authorization header split at its first
// space into a scheme, compared case-insensitively with "Bearer", and a
// token. Unlike Ops-Core, the token is compared in constant time (over
// SHA-256 digests, so the key's length does not leak either). A checker
// does not change once built (a reload builds a new one), so it is safe
// for concurrent use.
type APIKeyChecker struct {
	mode   string
	digest [sha256.Size]byte
}

// NewAPIKeyChecker builds a checker from cfg, reading the key (when the
// mode is required) from cfg.KeyFile or the variable cfg.KeyEnv through
// getenv (os.Getenv when nil).
func NewAPIKeyChecker(cfg APIKeyConfig, getenv func(string) string) (*APIKeyChecker, error) {
	if err := errors.Join(cfg.Validate("api_key")...); err != nil {
		return nil, err
	}
	var key Secret
	if cfg.Mode == AuthRequired {
		var err error
		if key, err = LoadSecret(cfg.KeyFile, cfg.KeyEnv, getenv); err != nil {
			return nil, fmt.Errorf("api_key: %w", err)
		}
	}
	return &APIKeyChecker{mode: cfg.Mode, digest: sha256.Sum256(key.b)}, nil
}

// Check decides on one request's Authorization header value.
func (c *APIKeyChecker) Check(authorization string) AuthVerdict {
	if c.mode != AuthRequired {
		return AuthVerdict{Allowed: true}
	}
	scheme, token, _ := strings.Cut(authorization, " ")
	got := sha256.Sum256([]byte(token))
	match := subtle.ConstantTimeCompare(got[:], c.digest[:]) == 1
	if !strings.EqualFold(scheme, "bearer") || token == "" || !match {
		return AuthVerdict{Reason: AuthReasonInvalidKey}
	}
	return AuthVerdict{Allowed: true}
}
