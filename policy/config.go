package policy

import (
	"fmt"
	"time"
)

// This file holds the configuration of every policy. The YAML key of each
// field is its mapstructure tag; the reference file configs/sidecar.yaml
// shows every key with its default. The proxy's config tree embeds these
// types, so names here are a contract with docs, dashboards and tests.

// Mode says whether a policy refuses requests (enforce) or only counts and
// logs the requests it would have refused (shadow).
type Mode string

// The policy modes.
const (
	ModeEnforce Mode = "enforce"
	ModeShadow  Mode = "shadow"
)

// Class is a request's priority class. Critical traffic (registration,
// workflow) is admitted before bulk traffic (state reports) and has a share
// of the concurrency slots reserved for it.
type Class string

// The priority classes.
const (
	ClassCritical Class = "critical"
	ClassBulk     Class = "bulk"
)

// RateLimitConfig is a token bucket: RPS tokens per second, up to Burst at
// once. RPS 0 turns the bucket off.
type RateLimitConfig struct {
	// RPS is the sustained rate in requests per second; 0 means no limit.
	RPS float64 `mapstructure:"rps" json:"rps" yaml:"rps"`
	// Burst is the bucket size in requests; 0 means max(1, ceil(RPS)).
	Burst int `mapstructure:"burst" json:"burst" yaml:"burst"`
	// Mode is enforce (refuse with 429) or shadow (count only). Default enforce.
	Mode Mode `mapstructure:"mode" json:"mode" yaml:"mode"`
}

// RouteRateLimitConfig is a route's bucket plus an optional bucket per key.
type RouteRateLimitConfig struct {
	// RPS is the route's sustained rate in requests per second; 0 means no route bucket.
	RPS float64 `mapstructure:"rps" json:"rps" yaml:"rps"`
	// Burst is the route bucket's size; 0 means max(1, ceil(RPS)).
	Burst int `mapstructure:"burst" json:"burst" yaml:"burst"`
	// Key selects the per-key bucket: "agent_id" (path parameter),
	// "client_ip" (peer address, X-Forwarded-For only from trusted proxies)
	// or "header:<Name>". Empty means no per-key buckets.
	Key string `mapstructure:"key" json:"key" yaml:"key"`
	// PerKeyRPS is each key's sustained rate in requests per second; 0 means no per-key bucket.
	PerKeyRPS float64 `mapstructure:"per_key_rps" json:"per_key_rps" yaml:"per_key_rps"`
	// PerKeyBurst is each key's bucket size; 0 means max(1, ceil(PerKeyRPS)).
	PerKeyBurst int `mapstructure:"per_key_burst" json:"per_key_burst" yaml:"per_key_burst"`
	// MaxKeys bounds the per-key table; the least recently used key is
	// evicted beyond it. Default 10000.
	MaxKeys int `mapstructure:"max_keys" json:"max_keys" yaml:"max_keys"`
	// Mode is enforce or shadow. Default enforce.
	Mode Mode `mapstructure:"mode" json:"mode" yaml:"mode"`
}

// ConcurrencyConfig bounds the requests in flight to the upstream.
type ConcurrencyConfig struct {
	// Limit is the number of requests in flight to the upstream; 0 means unlimited.
	Limit int `mapstructure:"limit" json:"limit" yaml:"limit"`
	// CriticalReserved is the share (0..1) of Limit that only critical
	// requests may use. Default 0.25.
	CriticalReserved float64 `mapstructure:"critical_reserved" json:"critical_reserved" yaml:"critical_reserved"`
	// QueueSize is how many requests may wait for a slot; 0 means none wait.
	QueueSize int `mapstructure:"queue_size" json:"queue_size" yaml:"queue_size"`
	// QueueTimeout is the longest a request waits for a slot. Must be > 0 when QueueSize > 0.
	QueueTimeout time.Duration `mapstructure:"queue_timeout" json:"queue_timeout" yaml:"queue_timeout"`
	// Mode is enforce or shadow. Default enforce.
	Mode Mode `mapstructure:"mode" json:"mode" yaml:"mode"`
	// PerClientLimit caps the bulk-class requests one client address may
	// have holding or waiting for a slot at once (a count of requests); one
	// more gets 429 client_limit. Critical requests are not counted: they
	// come from AgentKit's one address and are held through core outages. The address is the peer's, or X-Forwarded-For's from a
	// trusted proxy (admission.trusted_proxies); IPv6 addresses count per /64. Behind
	// a load balancer that is not in admission.trusted_proxies every client shares
	// one address. 0 means no per-client cap; it applies only when Limit is
	// set (> 0). Default 128. It follows Mode.
	PerClientLimit int `mapstructure:"per_client_limit" json:"per_client_limit" yaml:"per_client_limit"`
}

// AdmissionConfig is the sidecar-wide admission settings.
type AdmissionConfig struct {
	// GlobalRateLimit is one bucket shared by every request; RPS 0 turns it off.
	GlobalRateLimit RateLimitConfig `mapstructure:"global_rate_limit" json:"global_rate_limit" yaml:"global_rate_limit"`
	// Concurrency is the in-flight limit with its wait queue.
	Concurrency ConcurrencyConfig `mapstructure:"concurrency" json:"concurrency" yaml:"concurrency"`
	// TrustedProxies lists CIDRs whose X-Forwarded-For is believed for the
	// client_ip key. Empty means the peer address is always used.
	TrustedProxies []string `mapstructure:"trusted_proxies" json:"trusted_proxies" yaml:"trusted_proxies"`
}

// Webhook authentication modes.
const (
	AuthOff      = "off"
	AuthOptional = "optional"
	AuthRequired = "required"
)

// WebhookAuthConfig checks AgentKit's signature on a route.
type WebhookAuthConfig struct {
	// Mode is off, optional (verify when signed, count unsigned) or required. Default off.
	Mode string `mapstructure:"mode" json:"mode" yaml:"mode"`
	// SecretEnv names the environment variable holding the HMAC secret. Default OPSCORE_WEBHOOK_SECRET.
	SecretEnv string `mapstructure:"secret_env" json:"secret_env" yaml:"secret_env"`
	// SecretFile is a file holding the secret (trailing newline trimmed); it wins over SecretEnv when set.
	SecretFile string `mapstructure:"secret_file" json:"secret_file" yaml:"secret_file"`
	// Tolerance is how far X-AgentKit-Timestamp may be from now, either way. Default 5m.
	Tolerance time.Duration `mapstructure:"tolerance" json:"tolerance" yaml:"tolerance"`
	// ReplayCacheSize bounds the signatures remembered for replay detection. Default 100000.
	ReplayCacheSize int `mapstructure:"replay_cache_size" json:"replay_cache_size" yaml:"replay_cache_size"`
}

// APIKeyConfig optionally enforces the bearer API key in the sidecar.
type APIKeyConfig struct {
	// Mode is off or required. Default off (Ops-Core checks the key itself).
	Mode string `mapstructure:"mode" json:"mode" yaml:"mode"`
	// KeyEnv names the environment variable holding the key. Default OPSCORE_API_KEY.
	KeyEnv string `mapstructure:"key_env" json:"key_env" yaml:"key_env"`
	// KeyFile is a file holding the key; it wins over KeyEnv when set.
	KeyFile string `mapstructure:"key_file" json:"key_file" yaml:"key_file"`
}

// RetryConfig is a route's retry policy.
type RetryConfig struct {
	// Attempts is the maximum number of tries including the first (1..10). Default 4.
	Attempts int `mapstructure:"attempts" json:"attempts" yaml:"attempts"`
	// PerTryTimeout bounds one attempt, up to the response headers. Default 2s.
	PerTryTimeout time.Duration `mapstructure:"per_try_timeout" json:"per_try_timeout" yaml:"per_try_timeout"`
	// Deadline bounds all attempts and backoffs together. Default 10s; must be >= PerTryTimeout.
	Deadline time.Duration `mapstructure:"deadline" json:"deadline" yaml:"deadline"`
	// BackoffBase is the first backoff's cap; each retry doubles it (full jitter). Default 25ms.
	BackoffBase time.Duration `mapstructure:"backoff_base" json:"backoff_base" yaml:"backoff_base"`
	// BackoffMax caps any one backoff. Default 1s.
	BackoffMax time.Duration `mapstructure:"backoff_max" json:"backoff_max" yaml:"backoff_max"`
	// BudgetRatio caps retries at this share of the requests seen in BudgetWindow. Default 0.2.
	BudgetRatio float64 `mapstructure:"budget_ratio" json:"budget_ratio" yaml:"budget_ratio"`
	// BudgetMinPerSecond is the floor of retries per second always allowed. Default 10.
	BudgetMinPerSecond float64 `mapstructure:"budget_min_per_second" json:"budget_min_per_second" yaml:"budget_min_per_second"`
	// BudgetWindow is the sliding window of the budget. Default 10s.
	BudgetWindow time.Duration `mapstructure:"budget_window" json:"budget_window" yaml:"budget_window"`
	// Idempotent says a request that may have reached the upstream can be
	// retried (resets, timeouts, 502/503/504). When false, only requests that
	// never reached the upstream are retried, unless they carry an
	// Idempotency-Key header. Default true except for the workflow route.
	Idempotent bool `mapstructure:"idempotent" json:"idempotent" yaml:"idempotent"`
	// BufferLimit is the largest request body buffered for replay, in bytes;
	// a larger body is streamed and never retried. Default 1048576.
	BufferLimit int64 `mapstructure:"buffer_limit" json:"buffer_limit" yaml:"buffer_limit"`
}

// BreakerConfig is a route's circuit breaker (sony/gobreaker v2).
type BreakerConfig struct {
	// ConsecutiveFailures trips the breaker after this many failures in a row; 0 disables this rule. Default 5.
	ConsecutiveFailures uint32 `mapstructure:"consecutive_failures" json:"consecutive_failures" yaml:"consecutive_failures"`
	// FailureRatio trips the breaker when failures/requests in Window reach it; 0 disables this rule. Default 0.5.
	FailureRatio float64 `mapstructure:"failure_ratio" json:"failure_ratio" yaml:"failure_ratio"`
	// MinRequests is the fewest requests in Window before FailureRatio applies. Default 20.
	MinRequests uint32 `mapstructure:"min_requests" json:"min_requests" yaml:"min_requests"`
	// Window is the rolling window over which counts are kept while closed. Default 10s.
	Window time.Duration `mapstructure:"window" json:"window" yaml:"window"`
	// OpenTimeout is how long the breaker stays open before half-open probes. Default 5s.
	OpenTimeout time.Duration `mapstructure:"open_timeout" json:"open_timeout" yaml:"open_timeout"`
	// HalfOpenRequests is the number of probes allowed while half-open. Default 3.
	HalfOpenRequests uint32 `mapstructure:"half_open_requests" json:"half_open_requests" yaml:"half_open_requests"`
	// MinFailingTime is how long failures must have lasted (since the last
	// success) before either trip rule may open the breaker, so a blip of a
	// few failed attempts does not open it. 0 means the count rules alone
	// decide. Default 1s.
	MinFailingTime time.Duration `mapstructure:"min_failing_time" json:"min_failing_time" yaml:"min_failing_time"`
	// Enabled turns the breaker on. Default true.
	Enabled bool `mapstructure:"enabled" json:"enabled" yaml:"enabled"`
}

// HoldConfig is a route's hold: a request that finds the upstream
// unreachable or the route's breaker open waits in a bounded FIFO queue
// for the upstream to come back (see docs/resilience.md), within the
// route's retry deadline, instead of failing at once.
type HoldConfig struct {
	// Enabled turns the hold on. Default true for notify, false elsewhere.
	Enabled bool `mapstructure:"enabled" json:"enabled" yaml:"enabled"`
	// MaxRequests caps the requests held at once; one more fails at once
	// (or goes to the outbox). Default 1024.
	MaxRequests int `mapstructure:"max_requests" json:"max_requests" yaml:"max_requests"`
	// MaxBytes caps the request bodies held at once, in bytes. Default 16777216 (16 MiB).
	MaxBytes int64 `mapstructure:"max_bytes" json:"max_bytes" yaml:"max_bytes"`
	// ReleaseConcurrency is how many held requests may be on their way to
	// the upstream at once when it comes back; they are released in arrival
	// order. Default 8.
	ReleaseConcurrency int `mapstructure:"release_concurrency" json:"release_concurrency" yaml:"release_concurrency"`
}

// DefaultHold returns a route's hold settings; enabled says whether the route holds.
func DefaultHold(enabled bool) HoldConfig {
	return HoldConfig{Enabled: enabled, MaxRequests: 1024, MaxBytes: 16 << 20, ReleaseConcurrency: 8}
}

// Validate reports every problem of c; each error names its key under prefix.
func (c HoldConfig) Validate(prefix string) []error {
	var p problems
	if c.MaxRequests < 1 || c.MaxRequests > 1_000_000 {
		p.add(prefix+".max_requests", "must be between 1 and 1000000, got %d", c.MaxRequests)
	}
	if c.MaxBytes < 1 {
		p.add(prefix+".max_bytes", "must be >= 1, got %d", c.MaxBytes)
	}
	if c.ReleaseConcurrency < 1 || c.ReleaseConcurrency > 4096 {
		p.add(prefix+".release_concurrency", "must be between 1 and 4096, got %d", c.ReleaseConcurrency)
	}
	return p.errs
}

// DefaultAdmission returns the admission defaults (docs/admission.md).
func DefaultAdmission() AdmissionConfig {
	return AdmissionConfig{
		GlobalRateLimit: RateLimitConfig{Mode: ModeEnforce},
		Concurrency: ConcurrencyConfig{
			Limit: 256, CriticalReserved: 0.25, QueueSize: 1024,
			QueueTimeout: 500 * time.Millisecond, Mode: ModeEnforce,
			PerClientLimit: 128,
		},
	}
}

// DefaultRouteRateLimit returns a route bucket that is off.
func DefaultRouteRateLimit() RouteRateLimitConfig {
	return RouteRateLimitConfig{MaxKeys: 10000, Mode: ModeEnforce}
}

// DefaultWebhookAuth returns the webhook check, off by default so the
// seed's unsigned load tests keep working.
func DefaultWebhookAuth() WebhookAuthConfig {
	return WebhookAuthConfig{Mode: AuthOff, SecretEnv: "OPSCORE_WEBHOOK_SECRET", Tolerance: 5 * time.Minute, ReplayCacheSize: 100000}
}

// DefaultAPIKey returns the sidecar's API-key check, off by default.
func DefaultAPIKey() APIKeyConfig {
	return APIKeyConfig{Mode: AuthOff, KeyEnv: "OPSCORE_API_KEY"}
}

// DefaultRetry returns the retry defaults; idempotent says whether the route's requests may be replayed after reaching the upstream.
func DefaultRetry(idempotent bool) RetryConfig {
	return RetryConfig{
		Attempts: 4, PerTryTimeout: 2 * time.Second, Deadline: 10 * time.Second,
		BackoffBase: 25 * time.Millisecond, BackoffMax: time.Second,
		BudgetRatio: 0.2, BudgetMinPerSecond: 10, BudgetWindow: 10 * time.Second,
		Idempotent: idempotent, BufferLimit: 1 << 20,
	}
}

// DefaultBreaker returns the breaker defaults.
func DefaultBreaker() BreakerConfig {
	return BreakerConfig{
		ConsecutiveFailures: 5, FailureRatio: 0.5, MinRequests: 20, Window: 10 * time.Second,
		OpenTimeout: 5 * time.Second, HalfOpenRequests: 3, MinFailingTime: time.Second, Enabled: true,
	}
}

// problems collects validation errors, each naming its key.
type problems struct{ errs []error }

func (p *problems) add(key, format string, args ...any) {
	p.errs = append(p.errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
}

func (p *problems) mode(key string, m Mode) {
	if m != ModeEnforce && m != ModeShadow {
		p.add(key, "must be %q or %q, got %q", ModeEnforce, ModeShadow, m)
	}
}

// Validate reports every problem of c; each error names its key under prefix.
func (c RateLimitConfig) Validate(prefix string) []error {
	var p problems
	if c.RPS < 0 {
		p.add(prefix+".rps", "must be >= 0, got %v", c.RPS)
	}
	if c.Burst < 0 {
		p.add(prefix+".burst", "must be >= 0, got %d", c.Burst)
	}
	p.mode(prefix+".mode", c.Mode)
	return p.errs
}

// Validate reports every problem of c; each error names its key under prefix.
func (c RouteRateLimitConfig) Validate(prefix string) []error {
	var p problems
	if c.RPS < 0 {
		p.add(prefix+".rps", "must be >= 0, got %v", c.RPS)
	}
	if c.Burst < 0 {
		p.add(prefix+".burst", "must be >= 0, got %d", c.Burst)
	}
	if c.PerKeyRPS < 0 {
		p.add(prefix+".per_key_rps", "must be >= 0, got %v", c.PerKeyRPS)
	}
	if c.PerKeyBurst < 0 {
		p.add(prefix+".per_key_burst", "must be >= 0, got %d", c.PerKeyBurst)
	}
	if _, err := ParseKeySource(c.Key); err != nil {
		p.add(prefix+".key", "must be %s, got %q", keySourceForms, c.Key)
	}
	if c.PerKeyRPS > 0 && c.Key == "" {
		p.add(prefix+".key", "must be set when per_key_rps > 0")
	}
	if c.MaxKeys < 1 || c.MaxKeys > 10_000_000 {
		p.add(prefix+".max_keys", "must be between 1 and 10000000, got %d", c.MaxKeys)
	}
	p.mode(prefix+".mode", c.Mode)
	return p.errs
}

// Validate reports every problem of c; each error names its key under prefix.
func (c ConcurrencyConfig) Validate(prefix string) []error {
	var p problems
	if c.Limit < 0 {
		p.add(prefix+".limit", "must be >= 0, got %d", c.Limit)
	}
	if c.CriticalReserved < 0 || c.CriticalReserved >= 1 {
		p.add(prefix+".critical_reserved", "must be in [0, 1), got %v", c.CriticalReserved)
	}
	if c.QueueSize < 0 {
		p.add(prefix+".queue_size", "must be >= 0, got %d", c.QueueSize)
	}
	if c.PerClientLimit < 0 {
		p.add(prefix+".per_client_limit", "must be >= 0, got %d", c.PerClientLimit)
	}
	if c.QueueSize > 0 && c.QueueTimeout <= 0 {
		p.add(prefix+".queue_timeout", "must be > 0 when queue_size > 0, got %s", c.QueueTimeout)
	}
	p.mode(prefix+".mode", c.Mode)
	return p.errs
}

// Validate reports every problem of c; each error names its key under prefix.
func (c AdmissionConfig) Validate(prefix string) []error {
	errs := c.GlobalRateLimit.Validate(prefix + ".global_rate_limit")
	errs = append(errs, c.Concurrency.Validate(prefix+".concurrency")...)
	return errs
}

// Validate reports every problem of c; each error names its key under prefix.
func (c WebhookAuthConfig) Validate(prefix string) []error {
	var p problems
	switch c.Mode {
	case AuthOff, AuthOptional, AuthRequired:
	default:
		p.add(prefix+".mode", "must be %q, %q or %q, got %q", AuthOff, AuthOptional, AuthRequired, c.Mode)
	}
	if c.Mode != AuthOff && c.SecretEnv == "" && c.SecretFile == "" {
		p.add(prefix+".secret_env", "must be set (or secret_file) when mode is %q", c.Mode)
	}
	if c.Tolerance <= 0 {
		p.add(prefix+".tolerance", "must be > 0, got %s", c.Tolerance)
	}
	if c.ReplayCacheSize < 1 {
		p.add(prefix+".replay_cache_size", "must be >= 1, got %d", c.ReplayCacheSize)
	}
	return p.errs
}

// Validate reports every problem of c; each error names its key under prefix.
func (c APIKeyConfig) Validate(prefix string) []error {
	var p problems
	switch c.Mode {
	case AuthOff, AuthRequired:
	default:
		p.add(prefix+".mode", "must be %q or %q, got %q", AuthOff, AuthRequired, c.Mode)
	}
	if c.Mode == AuthRequired && c.KeyEnv == "" && c.KeyFile == "" {
		p.add(prefix+".key_env", "must be set (or key_file) when mode is %q", c.Mode)
	}
	return p.errs
}

// Validate reports every problem of c; each error names its key under prefix.
func (c RetryConfig) Validate(prefix string) []error {
	var p problems
	if c.Attempts < 1 || c.Attempts > 10 {
		p.add(prefix+".attempts", "must be between 1 and 10, got %d", c.Attempts)
	}
	if c.PerTryTimeout <= 0 {
		p.add(prefix+".per_try_timeout", "must be > 0, got %s", c.PerTryTimeout)
	}
	if c.Deadline < c.PerTryTimeout {
		p.add(prefix+".deadline", "must be >= per_try_timeout (%s), got %s", c.PerTryTimeout, c.Deadline)
	}
	if c.BackoffBase < 0 {
		p.add(prefix+".backoff_base", "must be >= 0, got %s", c.BackoffBase)
	}
	if c.BackoffMax < c.BackoffBase {
		p.add(prefix+".backoff_max", "must be >= backoff_base (%s), got %s", c.BackoffBase, c.BackoffMax)
	}
	if c.BudgetRatio < 0 || c.BudgetRatio > 10 {
		p.add(prefix+".budget_ratio", "must be between 0 and 10, got %v", c.BudgetRatio)
	}
	if c.BudgetMinPerSecond < 0 {
		p.add(prefix+".budget_min_per_second", "must be >= 0, got %v", c.BudgetMinPerSecond)
	}
	if c.BudgetWindow < time.Second {
		p.add(prefix+".budget_window", "must be >= 1s, got %s", c.BudgetWindow)
	}
	if c.BufferLimit < 0 {
		p.add(prefix+".buffer_limit", "must be >= 0, got %d", c.BufferLimit)
	}
	return p.errs
}

// Validate reports every problem of c; each error names its key under prefix.
func (c BreakerConfig) Validate(prefix string) []error {
	var p problems
	if c.FailureRatio < 0 || c.FailureRatio > 1 {
		p.add(prefix+".failure_ratio", "must be in [0, 1], got %v", c.FailureRatio)
	}
	if c.Enabled && c.ConsecutiveFailures == 0 && c.FailureRatio == 0 {
		p.add(prefix+".consecutive_failures", "must be > 0 when failure_ratio is 0 (nothing would trip the breaker)")
	}
	if c.Window <= 0 {
		p.add(prefix+".window", "must be > 0, got %s", c.Window)
	}
	if c.OpenTimeout <= 0 {
		p.add(prefix+".open_timeout", "must be > 0, got %s", c.OpenTimeout)
	}
	if c.HalfOpenRequests < 1 {
		p.add(prefix+".half_open_requests", "must be >= 1, got %d", c.HalfOpenRequests)
	}
	if c.MinFailingTime < 0 || c.MinFailingTime > time.Hour {
		p.add(prefix+".min_failing_time", "must be between 0 and 1h, got %s", c.MinFailingTime)
	}
	return p.errs
}
