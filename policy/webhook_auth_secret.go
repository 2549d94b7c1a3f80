package policy

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
)

// ErrNoSecret means a check that needs a secret found none.
var ErrNoSecret = errors.New("policy: secret not set")

// Secret is key material (the webhook HMAC secret, the API key). Every way
// of printing or encoding it (fmt verbs, slog, JSON, text) shows
// "[REDACTED]", so it cannot leak into logs or the admin config view.
type Secret struct {
	b []byte
}

const redactedText = "[REDACTED]"

// NewSecret wraps key bytes (copied).
func NewSecret(b []byte) Secret { return Secret{b: append([]byte(nil), b...)} }

// LoadSecret reads a secret from file when file is set (one trailing
// newline, CRLF or LF, trimmed), else from the environment variable env
// through getenv (os.Getenv when nil). An empty result is ErrNoSecret.
func LoadSecret(file, env string, getenv func(string) string) (Secret, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	var v string
	switch {
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return Secret{}, fmt.Errorf("policy: reading secret file: %w", err)
		}
		v = strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
		if v == "" {
			return Secret{}, fmt.Errorf("%w: file %s is empty", ErrNoSecret, file)
		}
	case env != "":
		v = getenv(env)
		if v == "" {
			return Secret{}, fmt.Errorf("%w: environment variable %s is empty or unset", ErrNoSecret, env)
		}
	default:
		return Secret{}, fmt.Errorf("%w: neither a file nor an environment variable is configured", ErrNoSecret)
	}
	return Secret{b: []byte(v)}, nil
}

// IsSet reports whether the secret holds any bytes.
func (s Secret) IsSet() bool { return len(s.b) > 0 }

// String returns "[REDACTED]" (or "" when unset).
func (s Secret) String() string {
	if !s.IsSet() {
		return ""
	}
	return redactedText
}

// GoString keeps %#v from printing the bytes.
func (s Secret) GoString() string { return "policy.Secret(" + s.String() + ")" }

// Format makes every fmt verb print the redacted form.
func (s Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(s.String())) }

// LogValue makes slog print the redacted form.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalText makes encoders (JSON, YAML) write the redacted form.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }
