package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"opscore-sidecar/policy"
)

// Validate reports every problem of c at once (errors.Join); each error
// names its key and the rule, e.g.
// "routes.notify.retry.attempts: must be between 1 and 10, got 0".
func (c *Config) Validate() error {
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	addr := func(key, v string) {
		if _, _, err := net.SplitHostPort(v); err != nil {
			add(key, "must be host:port, got %q", v)
		}
	}
	positive := func(key string, d time.Duration) {
		if d <= 0 {
			add(key, "must be > 0, got %s", d)
		}
	}
	nonNegative := func(key string, d time.Duration) {
		if d < 0 {
			add(key, "must be >= 0, got %s", d)
		}
	}

	addr("listen", c.Listen)
	addr("admin.listen", c.Admin.Listen)
	if err := validateUpstreamURL(c.Upstream.URL); err != nil {
		add("upstream.url", "%v", err)
	}
	positive("upstream.idle_conn_timeout", c.Upstream.IdleConnTimeout)
	if c.Upstream.MaxIdleConns < 1 {
		add("upstream.max_idle_conns", "must be >= 1, got %d", c.Upstream.MaxIdleConns)
	}
	if c.Upstream.MaxConnsPerHost < 0 {
		add("upstream.max_conns_per_host", "must be >= 0, got %d", c.Upstream.MaxConnsPerHost)
	}
	positive("upstream.dial_timeout", c.Upstream.DialTimeout)
	nonNegative("upstream.response_header_timeout", c.Upstream.ResponseHeaderTimeout)
	positive("upstream.tls_handshake_timeout", c.Upstream.TLSHandshakeTimeout)

	positive("server.read_header_timeout", c.Server.ReadHeaderTimeout)
	nonNegative("server.read_timeout", c.Server.ReadTimeout)
	nonNegative("server.write_timeout", c.Server.WriteTimeout)
	if c.Server.IdleTimeout < 90*time.Second {
		add("server.idle_timeout", "must be >= 90s (clients keep connections open that long), got %s", c.Server.IdleTimeout)
	}
	if c.Server.MaxHeaderBytes < 4096 || c.Server.MaxHeaderBytes > 1<<20 {
		add("server.max_header_bytes", "must be between 4096 and 1048576, got %d", c.Server.MaxHeaderBytes)
	}
	nonNegative("server.body_read_timeout", c.Server.BodyReadTimeout)
	if c.Server.MaxConnections < 0 {
		add("server.max_connections", "must be >= 0, got %d", c.Server.MaxConnections)
	}
	if c.Server.GCHeapFloor != 0 && (c.Server.GCHeapFloor < 4<<20 || c.Server.GCHeapFloor > 1<<40) {
		add("server.gc_heap_floor", "must be 0 (Go's default) or between 4194304 (4 MiB, Go's own smallest heap goal) and 1099511627776 (1 TiB) bytes, got %d", c.Server.GCHeapFloor)
	}
	nonNegative("server.drain_delay", c.Server.DrainDelay)
	positive("server.drain_timeout", c.Server.DrainTimeout)

	if c.Tracing.OTLPEndpoint != "" {
		if u, err := url.Parse(c.Tracing.OTLPEndpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			add("tracing.otlp_endpoint", "must be an http(s) URL or empty, got %q", c.Tracing.OTLPEndpoint)
		}
	}
	if !(c.Tracing.SampleRatio >= 0 && c.Tracing.SampleRatio <= 1) {
		add("tracing.sample_ratio", "must be in [0, 1], got %v", c.Tracing.SampleRatio)
	}
	if c.Tracing.ServiceName == "" {
		add("tracing.service_name", "must not be empty")
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.Log.Level)); err != nil {
		add("log.level", "must be debug, info, warn or error, got %q", c.Log.Level)
	}
	if c.Reload.Debounce < 0 || c.Reload.Debounce > time.Minute {
		add("reload.debounce", "must be between 0 and 1m, got %s", c.Reload.Debounce)
	}

	if c.HealthCheck.Enabled {
		if !strings.HasPrefix(c.HealthCheck.Path, "/") {
			add("health_check.path", "must be an absolute path such as /health, got %q", c.HealthCheck.Path)
		}
		if c.HealthCheck.Interval < 10*time.Millisecond || c.HealthCheck.Interval > time.Minute {
			add("health_check.interval", "must be between 10ms and 1m, got %s", c.HealthCheck.Interval)
		}
		positive("health_check.timeout", c.HealthCheck.Timeout)
	}
	if !(c.HealthCheck.Jitter >= 0 && c.HealthCheck.Jitter <= 1) {
		add("health_check.jitter", "must be in [0, 1], got %v", c.HealthCheck.Jitter)
	}
	if c.Outbox.Enabled {
		switch c.Outbox.Backend {
		case OutboxBolt:
			if strings.TrimSpace(c.Outbox.Dir) == "" {
				add("outbox.dir", "must not be empty with backend %q", OutboxBolt)
			}
		case OutboxRedis:
			if u, err := url.Parse(c.Outbox.RedisURL); err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
				add("outbox.redis_url", "must be a redis:// or rediss:// URL with backend %q, got %q", OutboxRedis, redactURL(c.Outbox.RedisURL))
			}
			if c.Outbox.Stream == "" {
				add("outbox.stream", "must not be empty with backend %q", OutboxRedis)
			}
			if c.Outbox.Group == "" {
				add("outbox.group", "must not be empty with backend %q", OutboxRedis)
			}
			if c.Outbox.Lease < 500*time.Millisecond {
				add("outbox.lease", "must be >= 500ms, got %s", c.Outbox.Lease)
			}
		default:
			add("outbox.backend", "must be %q or %q, got %q", OutboxBolt, OutboxRedis, c.Outbox.Backend)
		}
		if c.Outbox.MaxMessages < 0 {
			add("outbox.max_messages", "must be >= 0, got %d", c.Outbox.MaxMessages)
		}
		if c.Outbox.MaxBytes < 0 {
			add("outbox.max_bytes", "must be >= 0, got %d", c.Outbox.MaxBytes)
		}
		positive("outbox.backoff_base", c.Outbox.BackoffBase)
		if c.Outbox.BackoffMax < c.Outbox.BackoffBase {
			add("outbox.backoff_max", "must be >= backoff_base (%s), got %s", c.Outbox.BackoffBase, c.Outbox.BackoffMax)
		}
	}

	errs = append(errs, c.Admission.Validate("admission")...)
	errs = append(errs, c.validateRoutes()...)
	return errors.Join(errs...)
}

func (c *Config) validateRoutes() []error {
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	names := make([]string, 0, len(c.Routes))
	for name := range c.Routes {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if !slices.Contains(RouteNames, name) {
			add("routes."+name, "unknown route; must be one of %s", strings.Join(RouteNames, ", "))
		}
	}
	for _, name := range RouteNames {
		if _, ok := c.Routes[name]; !ok {
			add("routes."+name, "missing")
		}
	}
	seen := map[string]string{}
	for _, name := range names {
		if !slices.Contains(RouteNames, name) {
			continue // named above; its zero-valued keys would only add noise
		}
		rc := c.Routes[name]
		p := "routes." + name
		if rc.Class != policy.ClassCritical && rc.Class != policy.ClassBulk {
			add(p+".class", "must be %q or %q, got %q", policy.ClassCritical, policy.ClassBulk, rc.Class)
		}
		if rc.BodyLimit < 0 {
			add(p+".body_limit", "must be >= 0, got %d", rc.BodyLimit)
		}
		if name == RouteDefault {
			if rc.Match != (MatchConfig{}) {
				add(p+".match", "must be empty: the default route matches every request the other routes do not")
			}
		} else {
			if err := validMethod(rc.Match.Method); err != nil {
				add(p+".match.method", "%v", err)
			}
			if _, err := CompilePattern(rc.Match.Path); err != nil {
				add(p+".match.path", "%v", err)
			}
			k := rc.Match.Method + " " + rc.Match.Path
			if other, dup := seen[k]; dup {
				add(p+".match", "same method and path as routes.%s", other)
			}
			seen[k] = name
		}
		errs = append(errs, rc.RateLimit.Validate(p+".rate_limit")...)
		errs = append(errs, rc.WebhookAuth.Validate(p+".webhook_auth")...)
		errs = append(errs, rc.APIKey.Validate(p+".api_key")...)
		errs = append(errs, rc.Retry.Validate(p+".retry")...)
		errs = append(errs, rc.Breaker.Validate(p+".breaker")...)
		errs = append(errs, rc.Hold.Validate(p+".hold")...)
		if (rc.Hold.Enabled || rc.Outbox.Enabled) && !rc.Retry.Idempotent {
			add(p+".retry.idempotent", "must be true while hold.enabled or outbox.enabled is (a held or queued request is sent again later)")
		}
		if name != RouteDefault && len(rc.ForwardPaths) > 0 {
			add(p+".forward_paths", "must be empty: only the default route forwards by path; a named route forwards what its match matches")
		}
		for i, fp := range rc.ForwardPaths {
			if err := validForwardPath(fp); err != nil {
				add(fmt.Sprintf("%s.forward_paths[%d]", p, i), "%v", err)
			}
		}
	}
	return errs
}

// validateUpstreamURL accepts an absolute http or https URL with a host
// and no query, fragment or user info.
func validateUpstreamURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("must be an http(s) URL: %v", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("must be an http or https URL, got scheme %q", u.Scheme)
	}
	if u.Host == "" {
		return fmt.Errorf("must name a host, got %q", raw)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("must not have a query or fragment")
	}
	if u.User != nil {
		return fmt.Errorf("must not carry user info (credentials belong in env or files)")
	}
	return nil
}

// validMethod accepts "" (any method) or an HTTP token in upper case.
func validMethod(m string) error {
	if m == "" {
		return nil
	}
	for _, r := range m {
		if r < 'A' || r > 'Z' {
			return fmt.Errorf("must be empty or an upper-case HTTP method, got %q", m)
		}
	}
	return nil
}
