package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// keyComments is the one-line comment of every key in the reference file
// configs/sidecar.yaml. Route keys are listed under "routes.*".
var keyComments = map[string]string{
	"listen":                                  "proxy listen address (restart to change)",
	"admin":                                   "admin server: /healthz /readyz /metrics /debug/pprof/ /admin/config",
	"admin.listen":                            "admin listen address; 0.0.0.0 only where Prometheus scrapes from another host",
	"upstream":                                "the one upstream (Ops-Core core) and the tuned transport to it",
	"upstream.url":                            "http(s) base URL; requests never choose another target",
	"upstream.idle_conn_timeout":              "close idle pooled connections before uvicorn's 5s keep-alive does",
	"upstream.max_idle_conns":                 "idle keep-alive connections kept to the upstream",
	"upstream.max_conns_per_host":             "cap on connections to the upstream; 0 = no cap",
	"upstream.dial_timeout":                   "TCP connect timeout",
	"upstream.response_header_timeout":        "wait for response headers after writing the request; 0 = none",
	"upstream.tls_handshake_timeout":          "TLS handshake timeout (https upstreams)",
	"upstream.http2":                          "negotiate HTTP/2 with an https upstream",
	"server":                                  "client-facing server (restart to change, except the drain keys)",
	"server.read_header_timeout":              "time to read request headers (slowloris guard)",
	"server.read_timeout":                     "time to read a whole request including the body; 0 = none",
	"server.write_timeout":                    "time to write a response; 0 = none (route deadlines bound it)",
	"server.idle_timeout":                     "client keep-alive idle timeout; at least 90s",
	"server.max_header_bytes":                 "request line + headers cap in bytes (431 beyond)",
	"server.body_read_timeout":                "time to receive a request body, read before a concurrency slot is taken (408 beyond); 0 = only read_timeout",
	"server.max_connections":                  "client connections open at once; one more is closed at once; 0 = no cap",
	"server.drain_delay":                      "on SIGTERM, /readyz is 503 this long before the listener closes",
	"server.drain_timeout":                    "time in-flight requests get to finish during a drain",
	"tracing":                                 "OpenTelemetry; the W3C traceparent is always continued and forwarded",
	"tracing.otlp_endpoint":                   "OTLP/HTTP collector, e.g. http://127.0.0.1:4318 (/v1/traces added when no path); empty = no export",
	"tracing.sample_ratio":                    "share of new traces sampled (0..1); a caller's sampled flag is followed",
	"tracing.service_name":                    "service.name of the spans",
	"log":                                     "JSON logs on standard output",
	"log.level":                               "debug, info, warn or error",
	"log.access":                              "one access-log line per request",
	"reload":                                  "hot reload of this file (the directory is watched)",
	"reload.enabled":                          "watch the file and reload it on change",
	"reload.debounce":                         "quiet time after the last change before reloading",
	"health_check":                            "active health check of the upstream, run only while it looks down",
	"health_check.enabled":                    "probe the upstream while it looks down; recovery is seen at once, not after open_timeout",
	"health_check.path":                       "upstream path probed with GET; 2xx = healthy",
	"health_check.interval":                   "time between probes while the upstream looks down",
	"health_check.jitter":                     "random share (0..1) of interval added to each wait",
	"health_check.timeout":                    "bound on one probe",
	"outbox":                                  "durable store of requests answered 202 while the upstream is down (restart to change)",
	"outbox.enabled":                          "keep the outbox; routes with outbox.enabled answer 202 instead of failing",
	"outbox.backend":                          "bolt (local file under dir) or redis (Redis Streams shared by replicas)",
	"outbox.dir":                              "bolt data directory (outbox.db inside), relative to the working directory",
	"outbox.redis_url":                        "redis backend server, e.g. redis://127.0.0.1:6379/0",
	"outbox.stream":                           "redis backend stream name and key prefix",
	"outbox.group":                            "redis backend consumer group",
	"outbox.lease":                            "redis backend delivery lease; another replica takes over after it",
	"outbox.max_messages":                     "queued messages cap (503 beyond); 0 = no cap",
	"outbox.max_bytes":                        "queued bodies cap in bytes; 0 = no cap",
	"outbox.backoff_base":                     "first wait after a failed delivery; doubles (full jitter)",
	"outbox.backoff_max":                      "cap on the wait between deliveries of a failing message",
	"admission":                               "sidecar-wide admission control",
	"admission.global_rate_limit":             "one token bucket for all requests",
	"admission.global_rate_limit.rps":         "requests per second; 0 = off",
	"admission.global_rate_limit.burst":       "bucket size; 0 = max(1, ceil(rps))",
	"admission.global_rate_limit.mode":        "enforce (429) or shadow (count only)",
	"admission.concurrency":                   "requests in flight to the upstream, with a wait queue",
	"admission.concurrency.limit":             "in-flight limit; 0 = unlimited",
	"admission.concurrency.critical_reserved": "share of the limit only critical requests may use (0..1)",
	"admission.concurrency.queue_size":        "requests that may wait for a slot; 0 = none wait",
	"admission.concurrency.queue_timeout":     "longest wait for a slot (503 queue_timeout beyond)",
	"admission.concurrency.mode":              "enforce or shadow",
	"admission.concurrency.per_client_limit":  "requests one client address may have in flight or waiting (429 beyond); 0 = no cap",
	"admission.trusted_proxies":               "CIDRs whose X-Forwarded-For is believed for the client_ip key",
	"routes":                                  "fixed route names; match may override the Ops-Core path",
	"routes.notify":                           "POST /v1/opscore/internal/agent/notify: AgentKit registration webhook",
	"routes.state_update":                     "POST /v1/opscore/agent/{agent_id}/state: agent state reports",
	"routes.state_get":                        "GET /v1/opscore/agent/{agent_id}/state: state reads",
	"routes.workflow":                         "POST /v1/opscore/agent/{agent_id}/workflow: workflow triggers (not idempotent)",
	"routes.default":                          "everything else (e.g. GET /health); match must stay empty",
	"routes.*.class":                          "priority class: critical or bulk",
	"routes.*.body_limit":                     "largest request body in bytes (413 beyond); 0 = no limit",
	"routes.*.match":                          "method and path pattern ({name} matches one segment)",
	"routes.*.match.method":                   "HTTP method; empty = any",
	"routes.*.match.path":                     "path pattern; must stay empty on the default route",
	"routes.*.rate_limit":                     "route token bucket and per-key buckets",
	"routes.*.rate_limit.rps":                 "route requests per second; 0 = off",
	"routes.*.rate_limit.burst":               "route bucket size; 0 = max(1, ceil(rps))",
	"routes.*.rate_limit.key":                 `per-key bucket key: "", agent_id, client_ip or header:<Name>`,
	"routes.*.rate_limit.per_key_rps":         "requests per second per key; 0 = off",
	"routes.*.rate_limit.per_key_burst":       "per-key bucket size; 0 = max(1, ceil(per_key_rps))",
	"routes.*.rate_limit.max_keys":            "per-key buckets kept (least recently used evicted)",
	"routes.*.rate_limit.mode":                "enforce (429) or shadow",
	"routes.*.webhook_auth":                   "AgentKit webhook HMAC signature check",
	"routes.*.webhook_auth.mode":              "off, optional or required",
	"routes.*.webhook_auth.secret_env":        "environment variable holding the HMAC secret",
	"routes.*.webhook_auth.secret_file":       "file holding the secret; wins over secret_env",
	"routes.*.webhook_auth.tolerance":         "allowed clock skew of X-AgentKit-Timestamp",
	"routes.*.webhook_auth.replay_cache_size": "signatures remembered to refuse replays",
	"routes.*.api_key":                        "optional bearer API-key check in the sidecar",
	"routes.*.api_key.mode":                   "off or required (Ops-Core checks the key itself)",
	"routes.*.api_key.key_env":                "environment variable holding the key",
	"routes.*.api_key.key_file":               "file holding the key; wins over key_env",
	"routes.*.retry":                          "retries of failed upstream attempts",
	"routes.*.retry.attempts":                 "tries including the first (1..10)",
	"routes.*.retry.per_try_timeout":          "bound on one attempt up to its response headers",
	"routes.*.retry.deadline":                 "bound on all attempts and backoffs together",
	"routes.*.retry.backoff_base":             "first backoff cap; doubles per retry (full jitter)",
	"routes.*.retry.backoff_max":              "cap on any one backoff",
	"routes.*.retry.budget_ratio":             "retries allowed as a share of recent requests",
	"routes.*.retry.budget_min_per_second":    "retries per second always allowed",
	"routes.*.retry.budget_window":            "sliding window of the retry budget",
	"routes.*.retry.idempotent":               "retry requests that may have reached the upstream",
	"routes.*.retry.buffer_limit":             "largest body buffered for replay; larger is never retried",
	"routes.*.breaker":                        "circuit breaker around each attempt",
	"routes.*.breaker.consecutive_failures":   "trip after this many failures in a row; 0 = rule off",
	"routes.*.breaker.failure_ratio":          "trip when failures/requests in window reach this; 0 = rule off",
	"routes.*.breaker.min_requests":           "requests in window before failure_ratio applies",
	"routes.*.breaker.window":                 "rolling window of the counts while closed",
	"routes.*.breaker.open_timeout":           "time open before half-open probes",
	"routes.*.breaker.half_open_requests":     "probes allowed while half-open",
	"routes.*.breaker.min_failing_time":       "failures must have lasted this long before a rule trips; 0 = counts alone",
	"routes.*.breaker.enabled":                "turn the breaker on",
	"routes.*.hold":                           "wait for an unreachable upstream to come back, within retry.deadline",
	"routes.*.hold.enabled":                   "hold requests that find the upstream down or the breaker open",
	"routes.*.hold.max_requests":              "requests held at once (beyond: outbox or 503)",
	"routes.*.hold.max_bytes":                 "request bodies held at once, in bytes",
	"routes.*.hold.release_concurrency":       "held requests sent at once on recovery, in arrival order",
	"routes.*.outbox":                         "accept-and-queue (202) when the upstream stays down",
	"routes.*.outbox.enabled":                 "answer 202 and deliver later instead of 502/503/504",
	"routes.*.forward_paths":                  "default route only: paths forwarded (x/ = prefix, x = x and x/...); others get 404; [] = none",
}

// ReferenceYAML renders cfg as the commented reference file: every key in
// struct order, with its value and one comment. configs/sidecar.yaml is
// this output for Defaults().
func ReferenceYAML(cfg *Config) string {
	var b strings.Builder
	b.WriteString("# opscore-sidecar reference configuration: every key with its default.\n")
	b.WriteString("# Every key can be overridden by SIDECAR_<PATH> (dots -> underscores),\n")
	b.WriteString("# e.g. SIDECAR_UPSTREAM_URL, SIDECAR_ROUTES_NOTIFY_RETRY_ATTEMPTS.\n")
	b.WriteString("# Durations are Go durations (250ms, 2s, 5m); a number without a unit is an\n")
	b.WriteString("# error, except 0. Unknown keys and unknown SIDECAR_* variables are errors.\n")
	b.WriteString("# An empty file is refused: write {} to mean every default.\n")
	writeYAML(&b, "", 0, reflect.ValueOf(cfg).Elem())
	return b.String()
}

func commentFor(key string) string {
	if c, ok := keyComments[key]; ok {
		return c
	}
	parts := strings.Split(key, ".")
	if len(parts) >= 2 && parts[0] == "routes" {
		parts[1] = "*"
	}
	return keyComments[strings.Join(parts, ".")]
}

func writeYAML(b *strings.Builder, prefix string, depth int, v reflect.Value) {
	indent := strings.Repeat("  ", depth)
	line := func(key, name, value string) {
		c := commentFor(key)
		if c != "" {
			c = "  # " + c
		}
		if value == "" {
			fmt.Fprintf(b, "%s%s:%s\n", indent, name, c)
		} else {
			fmt.Fprintf(b, "%s%s: %s%s\n", indent, name, value, c)
		}
	}
	if v.Kind() == reflect.Map {
		for _, name := range RouteNames {
			key := joinKey(prefix, name)
			line(key, name, "")
			writeYAML(b, key, depth+1, v.MapIndex(reflect.ValueOf(name)))
		}
		return
	}
	for i := 0; i < v.NumField(); i++ {
		name := configKey(v.Type().Field(i))
		f := v.Field(i)
		key := joinKey(prefix, name)
		switch {
		case f.Type() == durationType:
			line(key, name, time.Duration(f.Int()).String())
		case f.Kind() == reflect.Struct || f.Kind() == reflect.Map:
			line(key, name, "")
			writeYAML(b, key, depth+1, f)
		case f.Kind() == reflect.Slice:
			items := make([]string, f.Len())
			for j := range items {
				items[j] = strconv.Quote(fmt.Sprint(f.Index(j).Interface()))
			}
			line(key, name, "["+strings.Join(items, ", ")+"]")
		case f.Kind() == reflect.String:
			line(key, name, strconv.Quote(f.String()))
		default:
			line(key, name, fmt.Sprint(f.Interface()))
		}
	}
}
