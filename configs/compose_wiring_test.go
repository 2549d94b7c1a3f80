package configs

import (
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"opscore-sidecar/opscore"
	"opscore-sidecar/policy"
	"opscore-sidecar/proxy/config"
)

// programSources lists, for each service built from this repository, the
// package directories (relative to configs/) of the program it runs.
var programSources = map[string][]string{
	"opscore": {"../cmd/opscore", "../opscore"},
	"sidecar": {"../cmd/sidecar", "../proxy", "../policy", "../metrics"},
}

// otlpTracesPath is where an OTLP/HTTP collector (Jaeger included) takes
// traces.
const otlpTracesPath = "/v1/traces"

// agentkitEnv is what the AgentKit service and its SDK read (docs/deploy.md;
// docs/admission.md, "The AgentKit signing recipe"); AgentKit's sources
// are not in this repository.
var agentkitEnv = []string{"OPSCORE_API_URL", "OPSCORE_API_KEY", "OPSCORE_WEBHOOK_URL", "OPSCORE_WEBHOOK_SECRET"}

// goLiterals returns the text of the non-test Go files under dirs.
func goLiterals(t *testing.T, dirs []string) string {
	t.Helper()
	var b strings.Builder
	for _, dir := range dirs {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no Go files in %s (%v)", dir, err)
		}
		for _, f := range files {
			if !strings.HasSuffix(f, "_test.go") {
				b.WriteString(readFile(t, f))
			}
		}
	}
	return b.String()
}

// composeSidecarConfig loads the sidecar config the compose file mounts,
// with the sidecar service's environment applied, through the sidecar's
// own loader.
func composeSidecarConfig(t *testing.T, c composeFile) *config.Config {
	t.Helper()
	s := c.service(t, "sidecar")
	for k, v := range s.Environment {
		t.Setenv(k, v)
	}
	p, ok := s.hostPath(flagValue(s.Command, "--config"))
	if !ok {
		t.Fatalf("sidecar: config %q is not in a bind mount", flagValue(s.Command, "--config"))
	}
	cfg, err := config.Load(config.LoadOptions{Path: p})
	if err != nil {
		t.Fatalf("sidecar config %s: %v", p, err)
	}
	return cfg
}

func TestComposeEnvIsReadByPrograms(t *testing.T) {
	c := loadCompose(t)
	sidecarEnv := map[string]bool{}
	for _, k := range config.Keys() {
		sidecarEnv[config.EnvName(k)] = true
	}
	cfg := composeSidecarConfig(t, c)
	// Secrets are read from the variables the config names, on the routes
	// where their check is on.
	for _, r := range cfg.Routes {
		if r.WebhookAuth.Mode != policy.AuthOff {
			sidecarEnv[r.WebhookAuth.SecretEnv] = true
		}
		if r.APIKey.Mode != policy.AuthOff {
			sidecarEnv[r.APIKey.KeyEnv] = true
		}
	}
	for k := range c.service(t, "sidecar").Environment {
		if !sidecarEnv[k] {
			t.Errorf("service sidecar sets %s, which the sidecar does not read", k)
		}
	}
	// The core's loader is asked which variables it reads.
	coreEnv := c.service(t, "opscore").Environment
	read := map[string]bool{}
	if _, err := opscore.LoadConfig(nil, func(k string) string { read[k] = true; return coreEnv[k] }); err != nil {
		t.Fatalf("opscore config from the compose environment: %v", err)
	}
	for k := range coreEnv {
		if !read[k] {
			t.Errorf("service opscore sets %s, which opscore.LoadConfig does not read", k)
		}
	}
	for k := range c.service(t, "agentkit").Environment {
		if !slices.Contains(agentkitEnv, k) {
			t.Errorf("service agentkit sets %s, which AgentKit does not read (it reads %v)", k, agentkitEnv)
		}
	}
}

func TestComposePortsAndURLsAgree(t *testing.T) {
	c := loadCompose(t)
	cfg := composeSidecarConfig(t, c)
	core := c.service(t, "opscore")
	coreCfg, err := opscore.LoadConfig(nil, func(k string) string { return core.Environment[k] })
	if err != nil {
		t.Fatalf("opscore config from the compose environment: %v", err)
	}
	corePort := portOf(t, coreCfg.Listen)
	if coreCfg.StorageType != "redis" {
		t.Errorf("opscore storage: got %q, want redis", coreCfg.StorageType)
	}
	if _, ok := c.Services[coreCfg.Redis.Host]; !ok || coreCfg.Redis.Port != 6379 {
		t.Errorf("opscore Redis: got %s:%d, want the redis service on its port 6379", coreCfg.Redis.Host, coreCfg.Redis.Port)
	}
	listenPort := portOf(t, cfg.Listen)
	adminPort := portOf(t, cfg.Admin.Listen)

	if !strings.HasPrefix(cfg.Admin.Listen, "0.0.0.0:") {
		t.Errorf("sidecar admin listens on %q, want 0.0.0.0:<port> so Prometheus can scrape it", cfg.Admin.Listen)
	}
	if got, ok := c.service(t, "sidecar").publishedPort("8000"); !ok || got != listenPort {
		t.Errorf("sidecar: host port 8000 goes to container port %q, want the listen port %s", got, listenPort)
	}
	if !slices.Contains(core.Expose, corePort) {
		t.Errorf("opscore: got expose %v, want the listen port %s", core.Expose, corePort)
	}
	up, err := url.Parse(cfg.Upstream.URL)
	if err != nil || up.Hostname() != "opscore" || up.Port() != corePort {
		t.Errorf("sidecar upstream: got %q, want http://opscore:%s", cfg.Upstream.URL, corePort)
	}
	if tr, err := url.Parse(cfg.Tracing.OTLPEndpoint); err != nil || !slices.Contains(c.Services[tr.Hostname()].containerPorts(), tr.Port()) {
		t.Errorf("sidecar tracing endpoint: got %q, want a URL naming a compose service and one of its ports", cfg.Tracing.OTLPEndpoint)
	} else if tr.Path != otlpTracesPath {
		// The compose file names the full traces URL. (The sidecar adds
		// /v1/traces only to a URL without a path; any other path is
		// posted to as given, and a collector answers it with 404.)
		t.Errorf("sidecar tracing endpoint: got path %q in %q, want %s", tr.Path, cfg.Tracing.OTLPEndpoint, otlpTracesPath)
	}

	// Health checks probe the ports the programs listen on.
	probes := []struct{ service, port string }{{"opscore", corePort}, {"sidecar", adminPort}}
	for _, p := range probes {
		u := flagValue(c.service(t, p.service).Healthcheck.Test, "--url")
		if portOf(t, u) != p.port {
			t.Errorf("%s healthcheck: got URL %q, want port %s", p.service, u, p.port)
		}
	}

	// AgentKit's webhook and state reports go to the sidecar's notify route and listener.
	ak := c.service(t, "agentkit").Environment
	notifyPath := cfg.Routes[config.RouteNotify].Match.Path
	if want := "http://sidecar:" + listenPort + notifyPath; ak["OPSCORE_WEBHOOK_URL"] != want {
		t.Errorf("agentkit OPSCORE_WEBHOOK_URL: got %q, want %q", ak["OPSCORE_WEBHOOK_URL"], want)
	}
	if want := "http://sidecar:" + listenPort + "/v1"; ak["OPSCORE_API_URL"] != want {
		t.Errorf("agentkit OPSCORE_API_URL: got %q, want %q", ak["OPSCORE_API_URL"], want)
	}
	if ak["OPSCORE_API_KEY"] != core.Environment["OPSCORE_API_KEY"] {
		t.Errorf("agentkit API key %q differs from the core's %q", ak["OPSCORE_API_KEY"], core.Environment["OPSCORE_API_KEY"])
	}

	// Prometheus scrapes exactly these two targets; Grafana reads that Prometheus.
	var prom struct {
		ScrapeConfigs []struct {
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	readYAML(t, "prometheus/prometheus.yml", &prom)
	var targets []string
	for _, sc := range prom.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			targets = append(targets, st.Targets...)
		}
	}
	slices.Sort(targets)
	if want := []string{"opscore:" + corePort, "sidecar:" + adminPort}; !slices.Equal(targets, want) {
		t.Errorf("prometheus targets: got %v, want %v", targets, want)
	}
	var ds struct {
		Datasources []struct {
			UID string `yaml:"uid"`
			URL string `yaml:"url"`
		} `yaml:"datasources"`
	}
	readYAML(t, "grafana/provisioning/datasources/datasources.yml", &ds)
	for _, d := range ds.Datasources {
		u, err := url.Parse(d.URL)
		if err != nil {
			t.Errorf("datasource %s: %v", d.UID, err)
			continue
		}
		s, ok := c.Services[u.Hostname()]
		if !ok {
			t.Errorf("datasource %s: got URL %q, want a compose service's", d.UID, d.URL)
			continue
		}
		if !slices.Contains(s.containerPorts(), u.Port()) {
			t.Errorf("datasource %s: port %s is not a port of service %s (ports %v, expose %v)", d.UID, u.Port(), u.Hostname(), s.Ports, s.Expose)
		}
	}
}

func TestComposeWebhookSecretMatches(t *testing.T) {
	c := loadCompose(t)
	cfg := composeSidecarConfig(t, c)
	auth := cfg.Routes[config.RouteNotify].WebhookAuth
	if auth.Mode != policy.AuthRequired {
		t.Errorf("notify webhook_auth.mode: got %q, want %q (AgentKit signs every webhook)", auth.Mode, policy.AuthRequired)
	}
	if auth.SecretFile != "" {
		t.Fatalf("notify webhook_auth.secret_file: got %q, want the secret from env", auth.SecretFile)
	}
	sidecarSecret, ok := c.service(t, "sidecar").Environment[auth.SecretEnv]
	if !ok {
		t.Fatalf("sidecar: secret_env names %s, which the sidecar service does not set", auth.SecretEnv)
	}
	akSecret := c.service(t, "agentkit").Environment["OPSCORE_WEBHOOK_SECRET"]
	if sidecarSecret == "" || sidecarSecret != akSecret {
		t.Errorf("webhook secret: sidecar has %q, agentkit %q; want the same non-empty value", sidecarSecret, akSecret)
	}
}
