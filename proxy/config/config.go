package config

import (
	"time"

	"opscore-sidecar/policy"
)

// Config is the sidecar's whole configuration (the keys are listed in docs/sidecar.md).
// The YAML key of each field is its mapstructure tag; every key can be
// overridden by the environment variable SIDECAR_<PATH> (dots become
// underscores, e.g. SIDECAR_UPSTREAM_URL). configs/sidecar.yaml shows
// every key with its default. Policy blocks use the types of package
// policy, which are a shared contract.
type Config struct {
	// Listen is the proxy's listen address. Default ":8080". Changing it needs a restart.
	Listen string `mapstructure:"listen" json:"listen" yaml:"listen"`
	// Admin is the admin server (health, metrics, pprof, config view).
	Admin AdminConfig `mapstructure:"admin" json:"admin" yaml:"admin"`
	// Upstream is the one upstream every request goes to.
	Upstream UpstreamConfig `mapstructure:"upstream" json:"upstream" yaml:"upstream"`
	// Server holds the client-facing HTTP server's limits and the drain.
	Server ServerConfig `mapstructure:"server" json:"server" yaml:"server"`
	// Tracing is OpenTelemetry tracing.
	Tracing TracingConfig `mapstructure:"tracing" json:"tracing" yaml:"tracing"`
	// Log is the process log and the access log.
	Log LogConfig `mapstructure:"log" json:"log" yaml:"log"`
	// Reload is the hot reload of the config file.
	Reload ReloadConfig `mapstructure:"reload" json:"reload" yaml:"reload"`
	// HealthCheck is the active health check of the upstream, run while it
	// looks down (see docs/resilience.md).
	HealthCheck HealthCheckConfig `mapstructure:"health_check" json:"health_check" yaml:"health_check"`
	// Outbox is the durable store of requests accepted with 202 while the
	// upstream is down (see docs/resilience.md). Changing it needs a restart.
	Outbox OutboxConfig `mapstructure:"outbox" json:"outbox" yaml:"outbox"`
	// Admission is the sidecar-wide admission control.
	Admission policy.AdmissionConfig `mapstructure:"admission" json:"admission" yaml:"admission"`
	// Routes holds one entry per fixed route name (RouteNames); a missing
	// entry keeps its defaults, an unknown name is an error.
	Routes map[string]RouteConfig `mapstructure:"routes" json:"routes" yaml:"routes"`
}

// AdminConfig is the admin server.
type AdminConfig struct {
	// Listen is the admin listen address. Default "127.0.0.1:9901"; bind
	// 0.0.0.0 only where Prometheus must scrape it from another host.
	Listen string `mapstructure:"listen" json:"listen" yaml:"listen"`
}

// UpstreamConfig is the upstream and the transport in front of it (proxy/transport.go).
type UpstreamConfig struct {
	// URL is the upstream's base URL (http or https). Default "http://127.0.0.1:8000".
	// The request's Host and URL never change where a request goes.
	URL string `mapstructure:"url" json:"url" yaml:"url"`
	// IdleConnTimeout closes a pooled connection idle this long. Default 4s:
	// shorter than uvicorn's 5 s keep-alive, so the sidecar closes first.
	IdleConnTimeout time.Duration `mapstructure:"idle_conn_timeout" json:"idle_conn_timeout" yaml:"idle_conn_timeout"`
	// MaxIdleConns is the number of idle keep-alive connections kept to the
	// upstream (also per host). Default 512.
	MaxIdleConns int `mapstructure:"max_idle_conns" json:"max_idle_conns" yaml:"max_idle_conns"`
	// MaxConnsPerHost caps connections to the upstream, in use or idle; 0 means no cap. Set, it
	// makes net/http's Transport send every request, which queues for a connection under the
	// cap (the default transport, proxy/h1, has no queue). Default 0.
	MaxConnsPerHost int `mapstructure:"max_conns_per_host" json:"max_conns_per_host" yaml:"max_conns_per_host"`
	// DialTimeout bounds a TCP connect. Default 1s.
	DialTimeout time.Duration `mapstructure:"dial_timeout" json:"dial_timeout" yaml:"dial_timeout"`
	// ResponseHeaderTimeout bounds the wait for response headers after the
	// request is written (from when the sidecar has handed it to the
	// connection); each attempt's own timer applies it. 0 means none. Default 10s.
	ResponseHeaderTimeout time.Duration `mapstructure:"response_header_timeout" json:"response_header_timeout" yaml:"response_header_timeout"`
	// TLSHandshakeTimeout bounds a TLS handshake with an https upstream. Default 5s.
	TLSHandshakeTimeout time.Duration `mapstructure:"tls_handshake_timeout" json:"tls_handshake_timeout" yaml:"tls_handshake_timeout"`
	// HTTP2 lets the transport negotiate HTTP/2 with an https upstream. Default false (Ops-Core speaks HTTP/1.1).
	HTTP2 bool `mapstructure:"http2" json:"http2" yaml:"http2"`
}

// ServerConfig is the client-facing server. Changing it needs a restart,
// except drain_delay and drain_timeout, which are read at drain time.
type ServerConfig struct {
	// ReadHeaderTimeout bounds reading a request's headers (slowloris). Default 5s.
	ReadHeaderTimeout time.Duration `mapstructure:"read_header_timeout" json:"read_header_timeout" yaml:"read_header_timeout"`
	// ReadTimeout bounds reading a whole request, body included; 0 means none. Default 30s.
	ReadTimeout time.Duration `mapstructure:"read_timeout" json:"read_timeout" yaml:"read_timeout"`
	// WriteTimeout bounds writing a response; 0 means none (the routes'
	// retry deadlines bound the upstream wait). Default 0.
	WriteTimeout time.Duration `mapstructure:"write_timeout" json:"write_timeout" yaml:"write_timeout"`
	// IdleTimeout closes a client keep-alive connection idle this long; at least 90s. Default 120s.
	IdleTimeout time.Duration `mapstructure:"idle_timeout" json:"idle_timeout" yaml:"idle_timeout"`
	// MaxHeaderBytes caps the request line plus headers, in bytes. Default 65536.
	MaxHeaderBytes int `mapstructure:"max_header_bytes" json:"max_header_bytes" yaml:"max_header_bytes"`
	// BodyReadTimeout bounds receiving a request's whole body, counted from
	// the moment the sidecar starts on the request; the body is read before
	// the request may take a concurrency slot, and a body not in by then
	// gets 408. It never extends ReadTimeout. 0 means no body deadline of
	// its own (ReadTimeout still applies). Default 5s.
	BodyReadTimeout time.Duration `mapstructure:"body_read_timeout" json:"body_read_timeout" yaml:"body_read_timeout"`
	// MaxConnections caps the client connections open at once, idle
	// keep-alive ones included; a connection accepted beyond it is closed
	// at once, before anything is read (the client sees the connection
	// closed, and may retry). 0 means no cap. Default 4096.
	MaxConnections int `mapstructure:"max_connections" json:"max_connections" yaml:"max_connections"`
	// GCHeapFloor is the smallest heap goal of the Go garbage collector, in
	// bytes: while the live heap is small, GOGC is raised so that a
	// collection starts when the heap reaches this size, not at about twice
	// the live heap. At saturation that saves about a quarter of the
	// collections for about half a MiB of memory (docs/performance.md).
	// Once the live heap is large enough, Go's default GOGC=100 applies. 0
	// means Go's default throughout; a GOGC set in the environment wins
	// over it. 0, or 4194304 (4 MiB, Go's own smallest goal) up to 1 TiB.
	// Default 8388608 (8 MiB).
	GCHeapFloor int64 `mapstructure:"gc_heap_floor" json:"gc_heap_floor" yaml:"gc_heap_floor"`
	// DrainDelay is how long /readyz reports 503 before the listener stops
	// accepting, so load balancers notice first. Default 2s; 0 means none.
	DrainDelay time.Duration `mapstructure:"drain_delay" json:"drain_delay" yaml:"drain_delay"`
	// DrainTimeout is how long in-flight requests may take to finish after
	// the listener stops. Default 20s.
	DrainTimeout time.Duration `mapstructure:"drain_timeout" json:"drain_timeout" yaml:"drain_timeout"`
}

// TracingConfig is OpenTelemetry tracing. The W3C trace-context
// propagator is always on; spans are exported only when OTLPEndpoint is
// set. Changing it needs a restart.
type TracingConfig struct {
	// OTLPEndpoint is the OTLP/HTTP collector URL: a base URL ("http://127.0.0.1:4318", /v1/traces is added) or the full traces URL; empty means no export. Default "".
	OTLPEndpoint string `mapstructure:"otlp_endpoint" json:"otlp_endpoint" yaml:"otlp_endpoint"`
	// SampleRatio is the share (0..1) of new traces sampled; an incoming
	// traceparent's sampled flag is followed. Default 1.0.
	SampleRatio float64 `mapstructure:"sample_ratio" json:"sample_ratio" yaml:"sample_ratio"`
	// ServiceName is the OTel service.name resource attribute. Default "opscore-sidecar".
	ServiceName string `mapstructure:"service_name" json:"service_name" yaml:"service_name"`
}

// LogConfig is logging. Both logs are JSON lines (slog) on standard output.
type LogConfig struct {
	// Level is debug, info, warn or error. Default info.
	Level string `mapstructure:"level" json:"level" yaml:"level"`
	// Access writes one access-log line per request. Default true.
	Access bool `mapstructure:"access" json:"access" yaml:"access"`
}

// ReloadConfig is the hot reload of the config file.
type ReloadConfig struct {
	// Enabled watches the config file's directory and reloads on change. Default true.
	Enabled bool `mapstructure:"enabled" json:"enabled" yaml:"enabled"`
	// Debounce waits this long after the last change before reloading. Default 250ms.
	Debounce time.Duration `mapstructure:"debounce" json:"debounce" yaml:"debounce"`
}

// HealthCheckConfig is the active health check of the upstream. It runs
// only while the upstream looks down (an attempt could not reach it, or a
// breaker is open): it probes Path every Interval (plus jitter) and, at the
// first good answer, closes the breakers that the outage opened and
// releases the held requests, instead of waiting for open_timeout.
type HealthCheckConfig struct {
	// Enabled turns active health checking on. Default true.
	Enabled bool `mapstructure:"enabled" json:"enabled" yaml:"enabled"`
	// Path is the upstream path probed with GET; a 2xx answer is healthy. Default "/health".
	Path string `mapstructure:"path" json:"path" yaml:"path"`
	// Interval is the time between probes while the upstream looks down. Default 100ms.
	Interval time.Duration `mapstructure:"interval" json:"interval" yaml:"interval"`
	// Jitter adds a random share (0..1) of Interval to each wait, so replicas
	// do not probe in step. Default 0.5.
	Jitter float64 `mapstructure:"jitter" json:"jitter" yaml:"jitter"`
	// Timeout bounds one probe. Default 500ms.
	Timeout time.Duration `mapstructure:"timeout" json:"timeout" yaml:"timeout"`
}

// OutboxConfig is the durable outbox: where requests accepted with 202
// while the upstream is down are kept until they are delivered.
type OutboxConfig struct {
	// Enabled turns the outbox on; routes with outbox.enabled then answer 202
	// instead of failing when the upstream stays down. Default true.
	Enabled bool `mapstructure:"enabled" json:"enabled" yaml:"enabled"`
	// Backend is "bolt" (a local file under Dir, the default) or "redis"
	// (Redis Streams shared by several sidecar replicas).
	Backend string `mapstructure:"backend" json:"backend" yaml:"backend"`
	// Dir is the bolt backend's data directory (file outbox.db in it),
	// created 0700 if missing; relative to the working directory. Default "data".
	Dir string `mapstructure:"dir" json:"dir" yaml:"dir"`
	// RedisURL is the redis backend's server, e.g. "redis://127.0.0.1:6379/0". Default "".
	RedisURL string `mapstructure:"redis_url" json:"redis_url" yaml:"redis_url"`
	// Stream is the redis backend's stream name; the consumer group, lease
	// and counters use it as their prefix. Default "opscore-sidecar:outbox".
	Stream string `mapstructure:"stream" json:"stream" yaml:"stream"`
	// Group is the redis backend's consumer group. Default "opscore-sidecar".
	Group string `mapstructure:"group" json:"group" yaml:"group"`
	// Lease is how long a replica's delivery lease lasts without renewal
	// (redis backend); another replica takes over after it. Default 5s.
	Lease time.Duration `mapstructure:"lease" json:"lease" yaml:"lease"`
	// MaxMessages caps the queued messages; past it a request fails with
	// 503 instead of being queued. 0 means no cap. Default 100000.
	MaxMessages int `mapstructure:"max_messages" json:"max_messages" yaml:"max_messages"`
	// MaxBytes caps the queued bodies, in bytes. 0 means no cap. Default 268435456 (256 MiB).
	MaxBytes int64 `mapstructure:"max_bytes" json:"max_bytes" yaml:"max_bytes"`
	// BackoffBase is the first wait after a failed delivery; it doubles (full jitter). Default 100ms.
	BackoffBase time.Duration `mapstructure:"backoff_base" json:"backoff_base" yaml:"backoff_base"`
	// BackoffMax caps the wait between deliveries of a failing message. Default 5s.
	BackoffMax time.Duration `mapstructure:"backoff_max" json:"backoff_max" yaml:"backoff_max"`
}

// RouteOutboxConfig is a route's use of the outbox.
type RouteOutboxConfig struct {
	// Enabled accepts the route's request with 202 into the outbox when the
	// upstream is still unreachable (or failing) at the end of its hold or
	// retries, instead of answering 502/503/504. Default true for notify
	// (AgentKit sends the webhook once), false elsewhere. Whatever this
	// says, a notify or state_update for an agent that already has queued
	// messages is queued behind them, so it cannot overtake them.
	Enabled bool `mapstructure:"enabled" json:"enabled" yaml:"enabled"`
}

// RouteConfig is one named route and its policies.
type RouteConfig struct {
	// Class is the priority class: critical or bulk.
	Class policy.Class `mapstructure:"class" json:"class" yaml:"class"`
	// BodyLimit is the largest request body in bytes; a larger one gets 413
	// before anything is forwarded. 0 means no limit. Default 1048576.
	BodyLimit int64 `mapstructure:"body_limit" json:"body_limit" yaml:"body_limit"`
	// Match overrides the route's method and path pattern. The default
	// route matches everything the others do not; its match must stay empty.
	Match MatchConfig `mapstructure:"match" json:"match" yaml:"match"`
	// RateLimit is the route's token bucket and per-key buckets.
	RateLimit policy.RouteRateLimitConfig `mapstructure:"rate_limit" json:"rate_limit" yaml:"rate_limit"`
	// WebhookAuth checks the AgentKit webhook signature.
	WebhookAuth policy.WebhookAuthConfig `mapstructure:"webhook_auth" json:"webhook_auth" yaml:"webhook_auth"`
	// APIKey optionally checks the bearer API key in the sidecar.
	APIKey policy.APIKeyConfig `mapstructure:"api_key" json:"api_key" yaml:"api_key"`
	// Retry is the route's retry policy.
	Retry policy.RetryConfig `mapstructure:"retry" json:"retry" yaml:"retry"`
	// Breaker is the route's circuit breaker.
	Breaker policy.BreakerConfig `mapstructure:"breaker" json:"breaker" yaml:"breaker"`
	// Hold makes a request that finds the upstream unreachable or the
	// breaker open wait for it to come back, within retry.deadline.
	Hold policy.HoldConfig `mapstructure:"hold" json:"hold" yaml:"hold"`
	// Outbox accepts the request with 202 into the durable outbox when the
	// upstream stays down past the deadline.
	Outbox RouteOutboxConfig `mapstructure:"outbox" json:"outbox" yaml:"outbox"`
	// ForwardPaths lists the paths the default route forwards to the
	// upstream; any other path that no named route matches gets a 404
	// problem from the sidecar and is never forwarded, so the core's
	// /metrics and /readyz stay off the public port. An entry ending in "/"
	// is a prefix ("/v1/opscore/" forwards everything under it); any other
	// entry forwards that path and the paths under it ("/health" forwards
	// /health and /health/x, not /healthz). A path with a "." or ".."
	// segment is never forwarded. Default route only (empty on the others);
	// default ["/v1/opscore/", "/health"]; empty means the default route
	// forwards nothing, ["/"] forwards every path (see proxy/forward_paths.go and proxy/config/forward_paths.go).
	ForwardPaths []string `mapstructure:"forward_paths" json:"forward_paths" yaml:"forward_paths"`
}

// MatchConfig is a route's request matcher.
type MatchConfig struct {
	// Method is the HTTP method matched (e.g. "POST"); empty means any.
	Method string `mapstructure:"method" json:"method" yaml:"method"`
	// Path is a path pattern: literal segments and "{name}" wildcards, each
	// matching one non-empty segment (e.g. "/v1/opscore/agent/{agent_id}/state").
	Path string `mapstructure:"path" json:"path" yaml:"path"`
}

// The fixed route names. Each one's doc comment documents its entry
// under routes in configs/sidecar.yaml.
const (
	// RouteNotify is POST /v1/opscore/internal/agent/notify: the AgentKit
	// registration webhook, sent once and never retried by AgentKit.
	RouteNotify = "notify"
	// RouteStateUpdate is POST /v1/opscore/agent/{agent_id}/state: agent state reports.
	RouteStateUpdate = "state_update"
	// RouteStateGet is GET (and HEAD) /v1/opscore/agent/{agent_id}/state: state reads.
	RouteStateGet = "state_get"
	// RouteWorkflow is POST /v1/opscore/agent/{agent_id}/workflow: workflow triggers (not idempotent).
	RouteWorkflow = "workflow"
	// RouteDefault is every request no other route matches (e.g. GET
	// /health); its match stays empty and it forwards only forward_paths.
	RouteDefault = "default"
)

// NotifyDeadline is the notify route's default retry deadline: the hold
// and the retries end in time to answer (202 from the outbox at worst)
// before AgentKit's 10s client timeout.
const NotifyDeadline = 8 * time.Second

// The outbox backends.
const (
	OutboxBolt  = "bolt"
	OutboxRedis = "redis"
)

// RouteNames lists the fixed routes in matching order; default is last
// and matches what no other route does.
var RouteNames = []string{RouteNotify, RouteStateUpdate, RouteStateGet, RouteWorkflow, RouteDefault}

// Defaults returns the built-in configuration: Ops-Core's routes with safe
// limits, so the sidecar works with no file at all.
//
// Retry idempotency: notify (registration is idempotent in our core) and
// the state routes are idempotent; workflow and default are not, so a
// request that may have reached the upstream is retried there only when it
// carries an Idempotency-Key. The default route (e.g. GET /health) stays
// non-idempotent because it can carry any method; a request that never
// reached the upstream is always retried.
func Defaults() *Config {
	route := func(class policy.Class, method, path string, idempotent bool) RouteConfig {
		return RouteConfig{
			Class: class, BodyLimit: 1 << 20,
			Match:       MatchConfig{Method: method, Path: path},
			RateLimit:   policy.DefaultRouteRateLimit(),
			WebhookAuth: policy.DefaultWebhookAuth(),
			APIKey:      policy.DefaultAPIKey(),
			Retry:       policy.DefaultRetry(idempotent),
			Breaker:     policy.DefaultBreaker(),
			Hold:        policy.DefaultHold(false),
		}
	}
	// The registration webhook is sent once and never retried by AgentKit,
	// whose client gives up after 10s: it is held through an upstream
	// outage for up to 8s, then accepted into the outbox with 202.
	notify := route(policy.ClassCritical, "POST", "/v1/opscore/internal/agent/notify", true)
	notify.Retry.Deadline = NotifyDeadline
	notify.Hold.Enabled = true
	notify.Outbox.Enabled = true
	defaultRoute := route(policy.ClassBulk, "", "", false)
	defaultRoute.ForwardPaths = DefaultForwardPaths()
	return &Config{
		Listen: ":8080",
		Admin:  AdminConfig{Listen: "127.0.0.1:9901"},
		Upstream: UpstreamConfig{
			URL: "http://127.0.0.1:8000", IdleConnTimeout: 4 * time.Second, MaxIdleConns: 512,
			DialTimeout: time.Second, ResponseHeaderTimeout: 10 * time.Second, TLSHandshakeTimeout: 5 * time.Second,
		},
		Server: ServerConfig{
			ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second,
			MaxHeaderBytes: 65536, DrainDelay: 2 * time.Second, DrainTimeout: 20 * time.Second,
			BodyReadTimeout: 5 * time.Second, MaxConnections: 4096, GCHeapFloor: 8 << 20,
		},
		HealthCheck: HealthCheckConfig{
			Enabled: true, Path: "/health", Interval: 100 * time.Millisecond, Jitter: 0.5, Timeout: 500 * time.Millisecond,
		},
		Outbox: OutboxConfig{
			Enabled: true, Backend: OutboxBolt, Dir: "data", Stream: "opscore-sidecar:outbox", Group: "opscore-sidecar",
			Lease: 5 * time.Second, MaxMessages: 100000, MaxBytes: 256 << 20,
			BackoffBase: 100 * time.Millisecond, BackoffMax: 5 * time.Second,
		},
		Tracing:   TracingConfig{SampleRatio: 1.0, ServiceName: "opscore-sidecar"},
		Log:       LogConfig{Level: "info", Access: true},
		Reload:    ReloadConfig{Enabled: true, Debounce: 250 * time.Millisecond},
		Admission: policy.DefaultAdmission(),
		Routes: map[string]RouteConfig{
			RouteNotify:      notify,
			RouteStateUpdate: route(policy.ClassBulk, "POST", "/v1/opscore/agent/{agent_id}/state", true),
			RouteStateGet:    route(policy.ClassBulk, "GET", "/v1/opscore/agent/{agent_id}/state", true),
			RouteWorkflow:    route(policy.ClassCritical, "POST", "/v1/opscore/agent/{agent_id}/workflow", false),
			RouteDefault:     defaultRoute,
		},
	}
}

// DefaultForwardPaths is routes.default.forward_paths by default: the
// Ops-Core API and its liveness check, nothing else of the core.
func DefaultForwardPaths() []string { return []string{"/v1/opscore/", "/health"} }
