package policy

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"sync"
	"time"
)

// The AgentKit webhook headers (docs/admission.md, "The AgentKit signing recipe"). Go canonicalises them to
// X-Agentkit-Timestamp and X-Agentkit-Signature; lookups through
// http.Header.Get are case-insensitive either way.
const (
	HeaderAgentKitTimestamp = "X-AgentKit-Timestamp"
	HeaderAgentKitSignature = "X-AgentKit-Signature"
)

// AuthReason is why authentication refused a request. It is the reason
// label of opscore_sidecar_webhook_auth_failures_total (the values of
// package metrics), so the set is closed: the constants below and nothing else.
type AuthReason string

// The authentication reasons.
const (
	// AuthReasonNone means the request passed.
	AuthReasonNone AuthReason = ""
	// AuthReasonUnsigned means an unsigned request passed in optional mode;
	// it is counted (what required mode would refuse), not refused.
	AuthReasonUnsigned AuthReason = "unsigned"
	// AuthReasonMissing means a signature header was absent.
	AuthReasonMissing AuthReason = "missing_signature"
	// AuthReasonBadTimestamp means X-AgentKit-Timestamp was not a timestamp.
	AuthReasonBadTimestamp AuthReason = "bad_timestamp"
	// AuthReasonBadSignature means the signature was not 64 hex digits or did not match the body.
	AuthReasonBadSignature AuthReason = "bad_signature"
	// AuthReasonExpired means the timestamp was outside the tolerance window, either way.
	AuthReasonExpired AuthReason = "stale_timestamp"
	// AuthReasonReplayed means the same signature was accepted before within the window.
	AuthReasonReplayed AuthReason = "replay"
	// AuthReasonInvalidKey means the bearer API key was absent or wrong.
	AuthReasonInvalidKey AuthReason = "bad_api_key"
)

// AuthVerdict is the result of an authentication check.
type AuthVerdict struct {
	// Allowed says the request may go on.
	Allowed bool
	// Reason is why it was refused, or AuthReasonUnsigned for an unsigned
	// request let through in optional mode.
	Reason AuthReason
}

// WebhookVerifier checks AgentKit's webhook signature: X-AgentKit-Timestamp
// is Unix seconds as a decimal integer (RFC 3339 is also accepted, as
// AgentKit's docs describe it), X-AgentKit-Signature is the hex
// HMAC-SHA256, under the shared secret, of the timestamp header's bytes, a
// '.', and the raw body bytes. The comparison is constant-time; the
// timestamp must be within the tolerance of now, either way; a signature
// accepted once is refused as replayed while its timestamp is in the
// window (the replay cache is bounded, oldest forgotten first). A verifier
// does not change once built (a reload makes the next one with With), so
// it is safe for concurrent use.
type WebhookVerifier struct {
	mode      string
	tolerance time.Duration
	macs      *sync.Pool // HMAC-SHA256 hashes keyed with the secret
	replay    *replayCache
	// replaySize is replay_cache_size; the shared cache takes it on
	// ResizeReplay.
	replaySize int
}

// NewWebhookVerifier builds a verifier from cfg, reading the secret (when
// the mode is not off) from cfg.SecretFile or the variable cfg.SecretEnv
// through getenv (os.Getenv when nil).
func NewWebhookVerifier(cfg WebhookAuthConfig, getenv func(string) string) (*WebhookVerifier, error) {
	return newWebhookVerifier(cfg, getenv, nil)
}

// With returns a new verifier configured by cfg, re-reading the secret,
// that shares v's replay cache: a config reload builds the next snapshot's
// verifier this way, so a delivery accepted before the reload is still a
// replay after it. A changed replay_cache_size resizes the shared cache in
// place, keeping its newest entries; a changed tolerance applies to the
// remembered entries too (they hold their timestamps, see
// policy/webhook_auth_replay.go). v's other settings are unchanged.
//
// The shared cache keeps its size until ResizeReplay is called on the new
// verifier, which a reload does only once the new configuration is being
// put in place, so a reload that fails changes nothing the running
// verifier uses.
func (v *WebhookVerifier) With(cfg WebhookAuthConfig, getenv func(string) string) (*WebhookVerifier, error) {
	return newWebhookVerifier(cfg, getenv, v.replay)
}

// ResizeReplay sets the shared replay cache to this verifier's
// replay_cache_size, keeping the newest remembered signatures.
func (v *WebhookVerifier) ResizeReplay() { v.replay.resize(v.replaySize) }

// newWebhookVerifier builds a verifier from cfg around replay (resized to
// cfg.ReplayCacheSize), or around a new replay cache when replay is nil.
func newWebhookVerifier(cfg WebhookAuthConfig, getenv func(string) string, replay *replayCache) (*WebhookVerifier, error) {
	if err := errors.Join(cfg.Validate("webhook_auth")...); err != nil {
		return nil, err
	}
	var secret Secret
	if cfg.Mode != AuthOff {
		var err error
		if secret, err = LoadSecret(cfg.SecretFile, cfg.SecretEnv, getenv); err != nil {
			return nil, fmt.Errorf("webhook_auth: %w", err)
		}
	}
	if replay == nil {
		replay = newReplayCache(cfg.ReplayCacheSize)
	}
	key := secret.b
	return &WebhookVerifier{
		mode: cfg.Mode, tolerance: cfg.Tolerance, replay: replay, replaySize: cfg.ReplayCacheSize,
		macs: &sync.Pool{New: func() any { return hmac.New(sha256.New, key) }},
	}, nil
}

// Mode returns the verifier's mode: off, optional or required.
func (v *WebhookVerifier) Mode() string { return v.mode }

// Precheck checks what needs no body: the mode, the presence of the
// headers, the timestamp's form and window, and the signature's form (64
// hex digits). When needBody is false the verdict is final and the body
// need not be read at all, so a request that fails these cheap checks
// costs no body read (proxy/auth.go calls it before reading); when it is
// true, Verify decides.
func (v *WebhookVerifier) Precheck(timestamp, signature string, now time.Time) (verdict AuthVerdict, needBody bool) {
	verdict, _, _, needBody = v.precheck(timestamp, signature, now)
	return verdict, needBody
}

func (v *WebhookVerifier) precheck(timestamp, signature string, now time.Time) (verdict AuthVerdict, ts time.Time, sig [sha256.Size]byte, needBody bool) {
	switch {
	case v.mode == AuthOff:
		return AuthVerdict{Allowed: true}, ts, sig, false
	case timestamp == "" && signature == "" && v.mode == AuthOptional:
		return AuthVerdict{Allowed: true, Reason: AuthReasonUnsigned}, ts, sig, false
	case timestamp == "" || signature == "":
		return AuthVerdict{Reason: AuthReasonMissing}, ts, sig, false
	}
	ts, ok := parseWebhookTimestamp(timestamp)
	if !ok {
		return AuthVerdict{Reason: AuthReasonBadTimestamp}, ts, sig, false
	}
	if len(signature) != hex.EncodedLen(sha256.Size) {
		return AuthVerdict{Reason: AuthReasonBadSignature}, ts, sig, false
	}
	if _, err := hex.Decode(sig[:], []byte(signature)); err != nil {
		return AuthVerdict{Reason: AuthReasonBadSignature}, ts, sig, false
	}
	if d := now.Sub(ts); d > v.tolerance || d < -v.tolerance {
		return AuthVerdict{Reason: AuthReasonExpired}, ts, sig, false
	}
	return AuthVerdict{}, ts, sig, true
}

// Verify checks one request's headers and raw body at now.
func (v *WebhookVerifier) Verify(timestamp, signature string, body []byte, now time.Time) AuthVerdict {
	verdict, ts, got, needBody := v.precheck(timestamp, signature, now)
	if !needBody {
		return verdict
	}
	want := webhookMAC(v.macs, timestamp, body)
	if !hmac.Equal(got[:], want[:]) {
		return AuthVerdict{Reason: AuthReasonBadSignature}
	}
	if v.replay.seen(got, ts.Unix(), v.tolerance, now) {
		return AuthVerdict{Reason: AuthReasonReplayed}
	}
	return AuthVerdict{Allowed: true}
}

// webhookMAC computes HMAC-SHA256(secret, timestamp || "." || body) with
// a hash from macs, which are keyed with the secret.
func webhookMAC(macs *sync.Pool, timestamp string, body []byte) [sha256.Size]byte {
	mac := macs.Get().(hash.Hash)
	mac.Reset()
	sum := signedSum(mac, timestamp, body)
	macs.Put(mac)
	return sum
}

// signedSum writes what AgentKit signs, timestamp || "." || body, to the
// keyed mac and returns the sum.
func signedSum(mac hash.Hash, timestamp string, body []byte) [sha256.Size]byte {
	mac.Write([]byte(timestamp))
	mac.Write([]byte{'.'})
	mac.Write(body)
	var sum [sha256.Size]byte
	mac.Sum(sum[:0])
	return sum
}

// SignWebhook returns the lowercase hex signature AgentKit sends for
// timestamp and body under secret; tests and the load generator use it.
func SignWebhook(secret []byte, timestamp string, body []byte) string {
	sum := signedSum(hmac.New(sha256.New, secret), timestamp, body)
	return hex.EncodeToString(sum[:])
}

// parseWebhookTimestamp accepts Unix seconds as 1 to 12 ASCII digits (what
// AgentKit sends) or an RFC 3339 time (what its docs describe).
func parseWebhookTimestamp(s string) (time.Time, bool) {
	if len(s) >= 1 && len(s) <= 12 && allDigits(s) {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return time.Time{}, false
		}
		return time.Unix(sec, 0), true
	}
	if len(s) < len("2006-01-02T15:04:05Z") || len(s) > 40 {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	return t, err == nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
