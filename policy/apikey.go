package policy

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"
	"sync"
)

// APIKeyChecker enforces a bearer API key in the sidecar, as Ops-Core
// does itself (spec 1.2): the Authorization header split at its first
// space into a scheme, compared case-insensitively with "Bearer", and a
// token. Unlike Ops-Core, the token is compared in constant time (over
// SHA-256 digests, so the key's length does not leak either). Safe for
// concurrent use.
type APIKeyChecker struct {
	mu     sync.RWMutex
	mode   string
	digest [sha256.Size]byte
}

// NewAPIKeyChecker builds a checker from cfg, reading the key (when the
// mode is required) from cfg.KeyFile or the variable cfg.KeyEnv through
// getenv (os.Getenv when nil).
func NewAPIKeyChecker(cfg APIKeyConfig, getenv func(string) string) (*APIKeyChecker, error) {
	c := &APIKeyChecker{}
	if err := c.Update(cfg, getenv); err != nil {
		return nil, err
	}
	return c, nil
}

// Update applies cfg in place, re-reading the key.
func (c *APIKeyChecker) Update(cfg APIKeyConfig, getenv func(string) string) error {
	if err := errors.Join(cfg.Validate("api_key")...); err != nil {
		return err
	}
	var key Secret
	if cfg.Mode == AuthRequired {
		var err error
		if key, err = LoadSecret(cfg.KeyFile, cfg.KeyEnv, getenv); err != nil {
			return fmt.Errorf("api_key: %w", err)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mode, c.digest = cfg.Mode, sha256.Sum256(key.b)
	return nil
}

// Mode returns off or required.
func (c *APIKeyChecker) Mode() string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.mode
}

// Check decides on one request's Authorization header value.
func (c *APIKeyChecker) Check(authorization string) AuthVerdict {
	c.mu.RLock()
	mode, want := c.mode, c.digest
	c.mu.RUnlock()
	if mode != AuthRequired {
		return AuthVerdict{Allowed: true}
	}
	scheme, token, _ := strings.Cut(authorization, " ")
	got := sha256.Sum256([]byte(token))
	match := subtle.ConstantTimeCompare(got[:], want[:]) == 1
	if !strings.EqualFold(scheme, "bearer") || token == "" || !match {
		return AuthVerdict{Reason: AuthReasonInvalidKey}
	}
	return AuthVerdict{Allowed: true}
}
