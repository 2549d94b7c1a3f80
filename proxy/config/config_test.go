package config

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"opscore-sidecar/proxy/config/internal/keydoc"
)

var update = flag.Bool("update", false, "rewrite golden files")

const (
	referenceFile     = "../../configs/sidecar.yaml"
	effectiveGolden   = "../../configs/testdata/effective_default.json"
	effectiveOverride = "../../configs/testdata/effective_override.json"
)

// golden compares got with the golden file, or rewrites it with -update.
func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden %s: %v (run go test ./proxy/config -run %s -update)", path, err, t.Name())
	}
	if string(got) != string(want) {
		t.Errorf("%s differs from the effective config (run with -update to accept):\ngot:\n%s", path, got)
	}
}

func effectiveJSON(t *testing.T, cfg *Config) []byte {
	t.Helper()
	b, err := json.MarshalIndent(cfg.Redacted().Tree(), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

func TestDefaultsAreValid(t *testing.T) {
	if err := Defaults().Validate(); err != nil {
		t.Fatalf("Defaults().Validate() = %v, want nil", err)
	}
}

func TestLoadWithoutFileGivesDefaults(t *testing.T) {
	cfg, err := Load(LoadOptions{})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if !reflect.DeepEqual(cfg, Defaults()) {
		t.Errorf("Load() without a file differs from Defaults():\ngot  %+v\nwant %+v", cfg, Defaults())
	}
	golden(t, effectiveGolden, effectiveJSON(t, cfg))
}

func TestReferenceFileEqualsDefaults(t *testing.T) {
	if *update {
		if err := os.WriteFile(referenceFile, []byte(ReferenceYAML(Defaults())), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := Load(LoadOptions{Path: referenceFile})
	if err != nil {
		t.Fatalf("Load(%s): %v", referenceFile, err)
	}
	if !reflect.DeepEqual(cfg, Defaults()) {
		t.Errorf("%s differs from the built-in defaults:\ngot  %+v\nwant %+v", referenceFile, cfg, Defaults())
	}
	b, _ := os.ReadFile(referenceFile)
	if string(b) != ReferenceYAML(Defaults()) {
		t.Errorf("%s is not ReferenceYAML(Defaults()); regenerate with -update", referenceFile)
	}
}

// TestReferenceFileCommentsEveryKey: every key, blocks and route names
// included, has a doc comment to show in the reference file.
func TestReferenceFileCommentsEveryKey(t *testing.T) {
	walk(reflect.ValueOf(Defaults()).Elem(), func(n node) {
		if n.Doc == "" {
			t.Errorf("key %s has no doc comment (on its struct field, or its route name constant)", n.Key)
		}
	})
}

// TestKeyDocsAreCurrent: keydoc_gen.go is what go generate makes from the
// struct comments now, so a comment is edited in one place only.
func TestKeyDocsAreCurrent(t *testing.T) {
	want, err := keydoc.Generate(".", keydoc.Sources)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("keydoc_gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("keydoc_gen.go is stale: run go generate ./proxy/config")
	}
}

func TestPartialFileMergesWithDefaults(t *testing.T) {
	doc := `
upstream:
  url: http://10.0.0.5:9000
routes:
  notify:
    retry:
      attempts: 2
  workflow:
    breaker:
      enabled: false
`
	cfg, err := LoadBytes([]byte(doc), nil)
	if err != nil {
		t.Fatalf("LoadBytes: %v", err)
	}
	want := Defaults()
	want.Upstream.URL = "http://10.0.0.5:9000"
	n := want.Routes[RouteNotify]
	n.Retry.Attempts = 2
	want.Routes[RouteNotify] = n
	w := want.Routes[RouteWorkflow]
	w.Breaker.Enabled = false
	want.Routes[RouteWorkflow] = w
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("merged config:\ngot  %+v\nwant %+v", cfg, want)
	}
	golden(t, effectiveOverride, effectiveJSON(t, cfg))
}

func TestLoadRejects(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want []string // substrings that must all appear in the error
		not  []string // substrings that must not appear (noise)
	}{
		{"unknown top-level key", "lisen: ':8080'\n", []string{"lisen: unknown key"}, nil},
		{"unknown nested key", "routes:\n  notify:\n    retyr:\n      attempts: 2\n", []string{"routes.notify.retyr: unknown key"}, nil},
		{"unknown key holding an empty map", "upstream:\n  pool: {}\n", []string{"upstream.pool: unknown key"}, nil},
		{"unknown route", "routes:\n  notfy:\n    class: bulk\n", []string{"routes.notfy: unknown route"}, []string{"routes.notfy.retry"}},
		{"duplicate route name", "routes:\n  notify: {}\n  notify: {}\n", []string{`"notify" already defined`}, nil},
		{"upstream not http", "upstream:\n  url: ftp://example.com\n", []string{"upstream.url: must be an http or https URL"}, nil},
		{"upstream without host", "upstream:\n  url: http://\n", []string{"upstream.url: must name a host"}, nil},
		{"upstream with credentials", "upstream:\n  url: http://u:p@host:1\n", []string{"upstream.url: must not carry user info"}, nil},
		{"bad duration", "server:\n  drain_timeout: soon\n", []string{`server.drain_timeout: time: invalid duration, got "soon"`}, []string{"drain_timeout: must be"}},
		{"bare number as a duration", "routes:\n  notify:\n    retry:\n      per_try_timeout: 2\n", []string{`routes.notify.retry.per_try_timeout: "2" has no unit; write e.g. 2s or 250ms`}, []string{"got", "deadline"}},
		{"bare float as a duration", "server:\n  drain_delay: 1.5\n", []string{`server.drain_delay: "1.5" has no unit`}, nil},
		{"quoted bare number as a duration", "reload:\n  debounce: '250'\n", []string{`reload.debounce: "250" has no unit`}, nil},
		{"scalar for a block", "routes:\n  notify:\n    retry: 5\n", []string{"routes.notify.retry"}, nil},
		{"malformed yaml", "listen: [\n", []string{"config: parse"}, nil},
		{
			"every error at once",
			"listen: nope\nroutes:\n  notify:\n    retry:\n      attempts: 0\n  state_get:\n    class: urgent\n",
			[]string{"listen: must be host:port", "routes.notify.retry.attempts: must be between 1 and 10, got 0", `routes.state_get.class: must be "critical" or "bulk", got "urgent"`},
			nil,
		},
		{
			"every error at once, with an unknown key and a value that cannot be decoded",
			"upstream:\n  url: ftp://x\nserver:\n  read_header_timeout: abc\nroutes:\n  notify:\n    retyr: {}\n    retry:\n      attempts: 0\n",
			[]string{"routes.notify.retyr: unknown key", `server.read_header_timeout: time: invalid duration, got "abc"`,
				"upstream.url: must be an http or https URL", "routes.notify.retry.attempts: must be between 1 and 10, got 0"},
			[]string{"read_header_timeout: must be"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadBytes([]byte(tt.doc), nil)
			if err == nil {
				t.Fatalf("LoadBytes(%q) = nil error, want one containing %q", tt.doc, tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(err.Error(), n) {
					t.Errorf("error %q contains %q, want it left out", err, n)
				}
			}
		})
	}
}

// TestEnvValueThatCannotBeDecodedNamesKeyAndVariable: a bad value in the
// environment is reported with its dotted key, its value and its variable.
func TestEnvValueThatCannotBeDecodedNamesKeyAndVariable(t *testing.T) {
	t.Setenv("SIDECAR_ROUTES_NOTIFY_RETRY_ATTEMPTS", "many")
	_, err := LoadBytes([]byte("{}\n"), nil)
	want := `routes.notify.retry.attempts: cannot parse value as 'int': strconv.ParseInt: invalid syntax, got "many" (from SIDECAR_ROUTES_NOTIFY_RETRY_ATTEMPTS)`
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}

// TestDurationWithoutUnitFromEnv: a bare number in the environment is
// refused like one in the file, naming the key and the variable.
func TestDurationWithoutUnitFromEnv(t *testing.T) {
	t.Setenv("SIDECAR_ROUTES_NOTIFY_RETRY_PER_TRY_TIMEOUT", "2")
	_, err := LoadBytes([]byte("{}\n"), nil)
	want := `routes.notify.retry.per_try_timeout: "2" has no unit; write e.g. 2s or 250ms (from SIDECAR_ROUTES_NOTIFY_RETRY_PER_TRY_TIMEOUT)`
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}

// TestDurationZeroWithoutUnit: 0 is the same in every unit, so a bare 0
// stays allowed, in the file and in the environment.
func TestDurationZeroWithoutUnit(t *testing.T) {
	t.Setenv("SIDECAR_UPSTREAM_RESPONSE_HEADER_TIMEOUT", "0")
	cfg, err := LoadBytes([]byte("server:\n  write_timeout: 0\n  drain_delay: 0.0\n"), nil)
	if err != nil {
		t.Fatalf("LoadBytes: %v", err)
	}
	if cfg.Server.WriteTimeout != 0 || cfg.Server.DrainDelay != 0 || cfg.Upstream.ResponseHeaderTimeout != 0 {
		t.Errorf("got write_timeout %s, drain_delay %s, response_header_timeout %s; want all 0",
			cfg.Server.WriteTimeout, cfg.Server.DrainDelay, cfg.Upstream.ResponseHeaderTimeout)
	}
}

// TestUnknownEnvIsAnError: every SIDECAR_* variable that maps to no key is
// an error (all of them at once, with a suggestion when one is close),
// while real keys, SIDECAR_CONFIG and Kubernetes' service-link variables
// are not.
func TestUnknownEnvIsAnError(t *testing.T) {
	t.Setenv("SIDECAR_ROUTES_NOTIFY_WEBHOOKAUTH_MODE", "required")
	t.Setenv("SIDECAR_ROUTES_NOTIFY_RETRY", "3")
	t.Setenv("SIDECAR_LISTN", "127.0.0.1:1")
	t.Setenv("Sidecar_Admin_Listen", "127.0.0.1:2")
	t.Setenv("SIDECAR_NOTHING_LIKE_ANY_KEY_AT_ALL", "1")
	// Not errors:
	t.Setenv("SIDECAR_LISTEN", "127.0.0.1:3")
	t.Setenv("SIDECAR_CONFIG", "/etc/sidecar/sidecar.yaml")
	t.Setenv("SIDECAR_SERVICE_HOST", "10.0.0.1")
	t.Setenv("SIDECAR_PORT", "tcp://10.0.0.1:8080")
	t.Setenv("SIDECAR_PORT_8080_TCP_ADDR", "10.0.0.1")
	t.Setenv("SIDECAR_METRICS_SERVICE_HOST", "10.0.0.2") // a Service named sidecar-metrics
	t.Setenv("SIDECAR_METRICS_SERVICE_PORT_HTTP", "9901")
	t.Setenv("SIDECAR_METRICS_PORT_9901_TCP_PROTO", "tcp")
	t.Setenv("SIDECARS", "x")
	_, err := LoadBytes([]byte("{}\n"), nil)
	want := []string{
		"SIDECAR_LISTN: unknown environment variable: no config key has this name; did you mean SIDECAR_LISTEN?",
		"SIDECAR_NOTHING_LIKE_ANY_KEY_AT_ALL: unknown environment variable: no config key has this name",
		"SIDECAR_ROUTES_NOTIFY_RETRY: unknown environment variable: routes.notify.retry is a block, not a key; set its keys (e.g. SIDECAR_ROUTES_NOTIFY_RETRY_...)",
		"SIDECAR_ROUTES_NOTIFY_WEBHOOKAUTH_MODE: unknown environment variable: no config key has this name; did you mean SIDECAR_ROUTES_NOTIFY_WEBHOOK_AUTH_MODE?",
		"Sidecar_Admin_Listen: unknown environment variable: no config key has this name; did you mean SIDECAR_ADMIN_LISTEN?",
	}
	var got []string
	for _, e := range SplitErrors(err) {
		got = append(got, e.Error())
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestValidateNamesEveryRule breaks one rule at a time and checks the error
// names the key and the rule.
func TestValidateNamesEveryRule(t *testing.T) {
	route := func(c *Config, name string, f func(*RouteConfig)) {
		rc := c.Routes[name]
		f(&rc)
		c.Routes[name] = rc
	}
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"listen", func(c *Config) { c.Listen = "8080" }, "listen: must be host:port"},
		{"admin listen", func(c *Config) { c.Admin.Listen = "" }, "admin.listen: must be host:port"},
		{"idle conn timeout", func(c *Config) { c.Upstream.IdleConnTimeout = 0 }, "upstream.idle_conn_timeout: must be > 0"},
		{"max idle conns", func(c *Config) { c.Upstream.MaxIdleConns = 0 }, "upstream.max_idle_conns: must be >= 1"},
		{"max conns per host", func(c *Config) { c.Upstream.MaxConnsPerHost = -1 }, "upstream.max_conns_per_host: must be >= 0"},
		{"dial timeout", func(c *Config) { c.Upstream.DialTimeout = 0 }, "upstream.dial_timeout: must be > 0"},
		{"response header timeout", func(c *Config) { c.Upstream.ResponseHeaderTimeout = -1 }, "upstream.response_header_timeout: must be >= 0"},
		{"gc heap floor too small", func(c *Config) { c.Server.GCHeapFloor = 8 }, "server.gc_heap_floor: must be 0 (Go's default) or between 4194304"},
		{"gc heap floor under Go's own minimum", func(c *Config) { c.Server.GCHeapFloor = 2 << 20 }, "server.gc_heap_floor: must be 0 (Go's default) or between 4194304"},
		{"gc heap floor negative", func(c *Config) { c.Server.GCHeapFloor = -1 }, "server.gc_heap_floor: must be 0 (Go's default) or between 4194304"},
		{"tls handshake timeout", func(c *Config) { c.Upstream.TLSHandshakeTimeout = 0 }, "upstream.tls_handshake_timeout: must be > 0"},
		{"read header timeout", func(c *Config) { c.Server.ReadHeaderTimeout = 0 }, "server.read_header_timeout: must be > 0"},
		{"read timeout", func(c *Config) { c.Server.ReadTimeout = -1 }, "server.read_timeout: must be >= 0"},
		{"write timeout", func(c *Config) { c.Server.WriteTimeout = -1 }, "server.write_timeout: must be >= 0"},
		{"idle timeout", func(c *Config) { c.Server.IdleTimeout = 30 * time.Second }, "server.idle_timeout: must be >= 90s"},
		{"max header bytes", func(c *Config) { c.Server.MaxHeaderBytes = 10 }, "server.max_header_bytes: must be between 4096 and 1048576"},
		{"drain delay", func(c *Config) { c.Server.DrainDelay = -1 }, "server.drain_delay: must be >= 0"},
		{"drain timeout", func(c *Config) { c.Server.DrainTimeout = 0 }, "server.drain_timeout: must be > 0"},
		{"otlp endpoint", func(c *Config) { c.Tracing.OTLPEndpoint = "collector:4318" }, "tracing.otlp_endpoint: must be an http(s) URL"},
		{"sample ratio", func(c *Config) { c.Tracing.SampleRatio = 1.5 }, "tracing.sample_ratio: must be in [0, 1]"},
		{"service name", func(c *Config) { c.Tracing.ServiceName = "" }, "tracing.service_name: must not be empty"},
		{"log level", func(c *Config) { c.Log.Level = "loud" }, "log.level: must be debug, info, warn or error"},
		{"reload debounce", func(c *Config) { c.Reload.Debounce = time.Hour }, "reload.debounce: must be between 0 and 1m"},
		{"admission (policy)", func(c *Config) { c.Admission.Concurrency.QueueTimeout = 0 }, "admission.concurrency.queue_timeout: must be > 0 when queue_size > 0"},
		{"missing route", func(c *Config) { delete(c.Routes, RouteStateGet) }, "routes.state_get: missing"},
		{"class", func(c *Config) { route(c, RouteNotify, func(r *RouteConfig) { r.Class = "gold" }) }, "routes.notify.class: must be"},
		{"body limit", func(c *Config) { route(c, RouteNotify, func(r *RouteConfig) { r.BodyLimit = -1 }) }, "routes.notify.body_limit: must be >= 0"},
		{"default match", func(c *Config) { route(c, RouteDefault, func(r *RouteConfig) { r.Match.Path = "/x" }) }, "routes.default.match: must be empty"},
		{"match method", func(c *Config) { route(c, RouteWorkflow, func(r *RouteConfig) { r.Match.Method = "post" }) }, "routes.workflow.match.method: must be empty or an upper-case HTTP method"},
		{"match path", func(c *Config) { route(c, RouteWorkflow, func(r *RouteConfig) { r.Match.Path = "v1/x" }) }, "routes.workflow.match.path: must start with /"},
		{"match wildcard", func(c *Config) { route(c, RouteWorkflow, func(r *RouteConfig) { r.Match.Path = "/a/x{id}" }) }, "routes.workflow.match.path: a wildcard must be a whole segment"},
		{"duplicate match", func(c *Config) {
			route(c, RouteWorkflow, func(r *RouteConfig) { r.Match = c.Routes[RouteStateUpdate].Match })
		}, "routes.workflow.match: same method and path as routes.state_update"},
		{"rate limit (policy)", func(c *Config) { route(c, RouteNotify, func(r *RouteConfig) { r.RateLimit.Key = "cookie" }) }, "routes.notify.rate_limit.key: must be"},
		{"webhook auth (policy)", func(c *Config) { route(c, RouteNotify, func(r *RouteConfig) { r.WebhookAuth.Mode = "on" }) }, "routes.notify.webhook_auth.mode: must be"},
		{"api key (policy)", func(c *Config) { route(c, RouteStateGet, func(r *RouteConfig) { r.APIKey.Mode = "maybe" }) }, "routes.state_get.api_key.mode: must be"},
		{"retry (policy)", func(c *Config) { route(c, RouteNotify, func(r *RouteConfig) { r.Retry.Attempts = 0 }) }, "routes.notify.retry.attempts: must be between 1 and 10, got 0"},
		{"retry deadline (policy)", func(c *Config) { route(c, RouteNotify, func(r *RouteConfig) { r.Retry.Deadline = time.Second }) }, "routes.notify.retry.deadline: must be >= per_try_timeout"},
		{"breaker (policy)", func(c *Config) { route(c, RouteDefault, func(r *RouteConfig) { r.Breaker.HalfOpenRequests = 0 }) }, "routes.default.breaker.half_open_requests: must be >= 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Defaults()
			tt.mutate(c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestEnvOverridesEveryLevel(t *testing.T) {
	t.Setenv("SIDECAR_LISTEN", "127.0.0.1:18080")
	t.Setenv("SIDECAR_UPSTREAM_URL", "http://127.0.0.1:18000")
	t.Setenv("SIDECAR_ROUTES_NOTIFY_RETRY_ATTEMPTS", "7")
	t.Setenv("SIDECAR_ROUTES_WORKFLOW_BREAKER_OPEN_TIMEOUT", "9s")
	t.Setenv("SIDECAR_ADMISSION_TRUSTED_PROXIES", "10.0.0.0/8,192.168.0.0/16")
	// The file says otherwise: the environment wins over the file.
	cfg, err := LoadBytes([]byte("upstream:\n  url: http://127.0.0.1:1\n"), nil)
	if err != nil {
		t.Fatalf("LoadBytes: %v", err)
	}
	checks := []struct {
		key       string
		got, want any
	}{
		{"listen", cfg.Listen, "127.0.0.1:18080"},
		{"upstream.url", cfg.Upstream.URL, "http://127.0.0.1:18000"},
		{"routes.notify.retry.attempts", cfg.Routes[RouteNotify].Retry.Attempts, 7},
		{"routes.workflow.breaker.open_timeout", cfg.Routes[RouteWorkflow].Breaker.OpenTimeout, 9 * time.Second},
		{"admission.trusted_proxies", cfg.Admission.TrustedProxies, []string{"10.0.0.0/8", "192.168.0.0/16"}},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s (env %s): got %v, want %v", c.key, EnvName(c.key), c.got, c.want)
		}
	}
}

func TestOverridesWinOverEnvAndFile(t *testing.T) {
	t.Setenv("SIDECAR_ADMIN_LISTEN", "127.0.0.1:1111")
	path := filepath.Join(t.TempDir(), "sidecar.yaml")
	if err := os.WriteFile(path, []byte("admin:\n  listen: 127.0.0.1:2222\nlisten: 127.0.0.1:3333\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(LoadOptions{Path: path, Overrides: map[string]any{"admin.listen": "127.0.0.1:4444"}})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if cfg.Admin.Listen != "127.0.0.1:4444" {
		t.Errorf("admin.listen: got %q, want the override 127.0.0.1:4444", cfg.Admin.Listen)
	}
	if cfg.Listen != "127.0.0.1:3333" {
		t.Errorf("listen: got %q, want the file's 127.0.0.1:3333", cfg.Listen)
	}
}

func TestEnvNameOfKey(t *testing.T) {
	if got, want := EnvName("routes.state_update.rate_limit.per_key_rps"), "SIDECAR_ROUTES_STATE_UPDATE_RATE_LIMIT_PER_KEY_RPS"; got != want {
		t.Errorf("EnvName: got %q, want %q", got, want)
	}
}

func TestRedactedHidesURLCredentials(t *testing.T) {
	c := Defaults()
	c.Tracing.OTLPEndpoint = "https://user:s3cret@collector:4318"
	c.Outbox.RedisURL = "redis://:s3cret@redis:6379/0"
	if got := c.Redacted().Tracing.OTLPEndpoint; strings.Contains(got, "s3cret") {
		t.Errorf("Redacted tracing.otlp_endpoint = %q, still holds the password", got)
	}
	if got := c.Redacted().Outbox.RedisURL; strings.Contains(got, "s3cret") {
		t.Errorf("Redacted outbox.redis_url = %q, still holds the password", got)
	}
	c.Outbox.Backend, c.Outbox.RedisURL = OutboxRedis, "http://:s3cret@redis:6379/0"
	if err := c.Validate(); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("Validate of a bad outbox.redis_url with a password: got %v, want an error without the password", err)
	}
	c.Outbox.RedisURL = "redis://:s3cret@redis:6379/0"
	if c.Tracing.OTLPEndpoint != "https://user:s3cret@collector:4318" {
		t.Errorf("Redacted modified its receiver")
	}
}
