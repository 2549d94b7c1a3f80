package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"opscore-sidecar/metrics"
	"opscore-sidecar/policy"
	"opscore-sidecar/proxy/config"
	"opscore-sidecar/proxy/proxytest"
)

// reloadEnv is a sidecar started from a config file, with its reload
// results delivered on a channel.
type reloadEnv struct {
	*testEnv
	results chan error
}

func configDoc(upstream string, notifyLimit int) string {
	return fmt.Sprintf(`listen: 127.0.0.1:0
admin:
  listen: 127.0.0.1:0
upstream:
  url: %s
server:
  drain_delay: 0s
reload:
  debounce: 20ms
routes:
  notify:
    body_limit: %d
`, upstream, notifyLimit)
}

// startFromFile starts a sidecar from the config file at path, which it
// watches.
func startFromFile(t *testing.T, path string) *reloadEnv {
	t.Helper()
	load := config.LoadOptions{Path: path}
	cfg, err := config.Load(load)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	results := make(chan error, 16)
	env := startWith(t, RunOptions{Config: cfg, Load: load, OnReload: func(err error) { results <- err }})
	return &reloadEnv{testEnv: env, results: results}
}

func (e *reloadEnv) next(t *testing.T) error {
	t.Helper()
	select {
	case err := <-e.results:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("no reload within 10s of the file change")
		return nil
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	// Write then rename, as editors do: the watch is on the directory.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestReloadGoodBadGood(t *testing.T) {
	up := proxytest.New(t, proxytest.OK())
	path := filepath.Join(t.TempDir(), "sidecar.yaml")
	writeFile(t, path, configDoc(up.URL, 1000))
	env := startFromFile(t, path)
	m := env.srv.Metrics
	first := env.srv.Sidecar.Snapshot()

	writeFile(t, path, configDoc(up.URL, 1000)+"    retry:\n      attempts: 0\n")
	if err := env.next(t); err == nil {
		t.Fatal("reload of an invalid file: got nil error, want a validation error")
	}
	if got := env.srv.Sidecar.Snapshot(); got != first {
		t.Error("an invalid file replaced the snapshot; the last good config must stay")
	}
	if got := counter(t, m.ConfigReloads.WithLabelValues(metrics.ReloadFailure)); got != 1 {
		t.Errorf("config_reloads_total{result=failure}: got %v, want 1", got)
	}

	writeFile(t, path, configDoc(up.URL, 2000))
	if err := env.next(t); err != nil {
		t.Fatalf("reload of a good file: %v", err)
	}
	snap := env.srv.Sidecar.Snapshot()
	if got := snap.Runtime[config.RouteNotify].BodyLimit; got != 2000 {
		t.Errorf("notify body_limit after reload: got %d, want 2000", got)
	}
	if snap.Transport != first.Transport {
		t.Error("upstream unchanged but the transport (and its warm pool) was replaced")
	}
	if got := counter(t, m.ConfigReloads.WithLabelValues(metrics.ReloadSuccess)); got != 2 {
		t.Errorf("config_reloads_total{result=success}: got %v, want 2 (start + reload)", got)
	}
}

// TestReloadFollowsConfigMapSymlinkSwap reproduces how Kubernetes updates
// a mounted ConfigMap: sidecar.yaml -> ..data/sidecar.yaml, and ..data is
// a symlink swapped atomically to a new timestamped directory.
func TestReloadFollowsConfigMapSymlinkSwap(t *testing.T) {
	up := proxytest.New(t, proxytest.OK())
	dir := t.TempDir()
	version := func(name string, limit int) {
		t.Helper()
		if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name, "sidecar.yaml"), []byte(configDoc(up.URL, limit)), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(name, filepath.Join(dir, "..data_tmp")); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	version("..2026_01_01_v1", 1000)
	path := filepath.Join(dir, "sidecar.yaml")
	if err := os.Symlink(filepath.Join("..data", "sidecar.yaml"), path); err != nil {
		t.Fatal(err)
	}
	env := startFromFile(t, path)

	version("..2026_01_01_v2", 3000)
	if err := env.next(t); err != nil {
		t.Fatalf("reload after the symlink swap: %v", err)
	}
	if got := env.srv.Sidecar.Snapshot().Runtime[config.RouteNotify].BodyLimit; got != 3000 {
		t.Errorf("notify body_limit after the swap: got %d, want 3000", got)
	}
}

func TestApplyChangedUpstreamGetsNewTransport(t *testing.T) {
	up := proxytest.New(t, proxytest.OK())
	env := startSidecar(t, testConfig(up.URL))
	before := env.srv.Sidecar.Snapshot()
	cfg := testConfig(up.URL)
	cfg.Upstream.IdleConnTimeout = 3 * time.Second
	if err := env.srv.Sidecar.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	if env.srv.Sidecar.Snapshot().Transport == before.Transport {
		t.Error("upstream settings changed but the transport was kept")
	}
	bad := testConfig(up.URL)
	bad.Upstream.URL = "ftp://x"
	if err := env.srv.Sidecar.Apply(bad); err == nil {
		t.Error("Apply(invalid) = nil, want an error")
	}
}

// TestReloadOfOneRouteKeepsOtherRoutesState changes only notify's settings
// in the file. The other routes keep their policy objects and their state:
// state_update's open breaker still refuses and state_get's spent token
// bucket still answers 429; the upstream pool is kept too.
func TestReloadOfOneRouteKeepsOtherRoutesState(t *testing.T) {
	up := proxytest.New(t, proxytest.Respond(http.StatusBadGateway, "down"), proxytest.OK())
	doc := func(notifyLimit int) string {
		return configDoc(up.URL, notifyLimit) + `    retry:
      attempts: 1
  state_update:
    retry:
      attempts: 1
    breaker:
      consecutive_failures: 1
      min_failing_time: 0s
      open_timeout: 1h
  state_get:
    rate_limit:
      rps: 0.001
      burst: 1
`
	}
	path := filepath.Join(t.TempDir(), "sidecar.yaml")
	writeFile(t, path, doc(1000))
	env := startFromFile(t, path)
	base := "http://" + env.srv.ProxyAddr()
	send := func(method, path string) int {
		t.Helper()
		resp, _ := do(t, newRequest(t, method, base+path, strings.NewReader("{}")))
		return resp.StatusCode
	}
	if got := send("POST", "/v1/opscore/agent/a1/state"); got != http.StatusBadGateway {
		t.Fatalf("state_update through a failing upstream: got %d, want the upstream's 502", got)
	}
	if got := send("GET", "/v1/opscore/agent/a1/state"); got != http.StatusOK {
		t.Fatalf("first state_get: got %d, want 200", got)
	}
	before := env.srv.Sidecar.Snapshot()

	writeFile(t, path, doc(4000))
	if err := env.next(t); err != nil {
		t.Fatalf("reload: %v", err)
	}
	after := env.srv.Sidecar.Snapshot()
	if after == before || after.Runtime[config.RouteNotify].BodyLimit != 4000 {
		t.Fatalf("notify body_limit after reload: got %d, want 4000 in a new snapshot", after.Runtime[config.RouteNotify].BodyLimit)
	}
	for _, name := range config.RouteNames {
		if name == config.RouteNotify {
			continue
		}
		b, a := before.Runtime[name], after.Runtime[name]
		if a.Breaker != b.Breaker {
			t.Errorf("%s: reload of notify replaced this route's breaker", name)
		}
		if a.Admission.Rate != b.Admission.Rate {
			t.Errorf("%s: reload of notify replaced this route's rate limiter", name)
		}
	}
	if after.GlobalAdmission.Gate != before.GlobalAdmission.Gate || after.Transport != before.Transport {
		t.Error("reload of notify replaced the concurrency gate or the upstream transport")
	}
	if got := send("POST", "/v1/opscore/agent/a1/state"); got != http.StatusServiceUnavailable {
		t.Errorf("state_update after reload: got %d, want 503 (its breaker stays open)", got)
	}
	if got := send("GET", "/v1/opscore/agent/a1/state"); got != http.StatusTooManyRequests {
		t.Errorf("state_get after reload: got %d, want 429 (its bucket stays spent)", got)
	}
}

// TestApplyKeepsRestartOnlyKeysRunning: a reload that changes listen,
// server limits or tracing cannot apply them; the snapshot (and so
// /admin/config) keeps the running values, a warning names them, and the
// reloadable keys of the same file (drain, routes) do take effect.
func TestApplyKeepsRestartOnlyKeysRunning(t *testing.T) {
	up := proxytest.New(t, proxytest.OK())
	env := startSidecar(t, testConfig(up.URL))
	before := *env.srv.Sidecar.Snapshot().Config
	cfg := testConfig(up.URL)
	cfg.Listen = "127.0.0.1:1"
	cfg.Server.IdleTimeout = 10 * time.Minute
	cfg.Tracing.SampleRatio = 0.5
	cfg.Server.DrainTimeout = 7 * time.Second
	route(cfg, config.RouteNotify, func(rc *config.RouteConfig) { rc.BodyLimit = 5000 })
	if err := env.srv.Sidecar.Apply(cfg); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	got := env.srv.Sidecar.Snapshot().Config
	checks := []struct {
		key       string
		got, want any
	}{
		{"listen", got.Listen, before.Listen},
		{"server.idle_timeout", got.Server.IdleTimeout, before.Server.IdleTimeout},
		{"tracing.sample_ratio", got.Tracing.SampleRatio, before.Tracing.SampleRatio},
		{"server.drain_timeout", got.Server.DrainTimeout, 7 * time.Second},
		{"routes.notify.body_limit", got.Routes[config.RouteNotify].BodyLimit, int64(5000)},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s after reload: got %v, want %v", c.key, c.got, c.want)
		}
	}
	warn := env.log.String()
	for _, k := range []string{"take effect only after a restart", `"listen"`, `"server"`, `"tracing"`} {
		if !strings.Contains(warn, k) {
			t.Errorf("process log lacks %s:\n%s", k, warn)
		}
	}
	if cfg.Listen != "127.0.0.1:1" {
		t.Error("Apply modified the caller's config")
	}
}

// reloaderFor builds a Sidecar from the config file at path and a
// Reloader of it whose log goes to the returned buffer. Tests call Reload
// directly: no watch, no timing.
func reloaderFor(t *testing.T, path string) (*Reloader, *Sidecar, *metrics.Metrics, *bytes.Buffer) {
	t.Helper()
	cfg, err := config.Load(config.LoadOptions{Path: path})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	s, m := newTestSidecar(t, cfg)
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	return NewReloader(s, config.LoadOptions{Path: path}, 0, logger), s, m, &logs
}

// TestReloadRefusesEmptyFile: a config file truncated during a save (empty,
// blank or only comments) is refused and counted as a failed reload; the
// last good config, with its required webhook auth, keeps serving.
func TestReloadRefusesEmptyFile(t *testing.T) {
	t.Setenv("OPSCORE_WEBHOOK_SECRET", "s")
	path := filepath.Join(t.TempDir(), "sidecar.yaml")
	writeFile(t, path, "routes:\n  notify:\n    webhook_auth: {mode: required}\n")
	r, s, m, logs := reloaderFor(t, path)
	for i, doc := range []string{"", "\n  \n", "# saved by an editor\n", "---\n"} {
		writeFile(t, path, doc+strings.Repeat(" ", i)) // each content differs, so each is a new attempt
		err := r.Reload()
		if !errors.Is(err, config.ErrEmptyConfig) {
			t.Errorf("reload of %q: got %v, want ErrEmptyConfig", doc, err)
		}
		if got := s.snap.Load().Config.Routes[config.RouteNotify].WebhookAuth.Mode; got != "required" {
			t.Fatalf("after reloading %q: notify webhook_auth.mode is %q, want required kept", doc, got)
		}
	}
	if got := testutil.ToFloat64(m.ConfigReloads.WithLabelValues(metrics.ReloadFailure)); got != 4 {
		t.Errorf("config_reloads_total{result=failure}: got %v, want 4", got)
	}
	if !strings.Contains(logs.String(), "no keys (empty, blank or only comments)") {
		t.Errorf("log does not say why the reload was rejected:\n%s", logs)
	}
	// {} is the explicit way to ask for every default.
	writeFile(t, path, "{}\n")
	if err := r.Reload(); err != nil {
		t.Fatalf("reload of {}: %v", err)
	}
	if got := s.snap.Load().Config.Routes[config.RouteNotify].WebhookAuth.Mode; got != "off" {
		t.Errorf("after reloading {}: notify webhook_auth.mode is %q, want the default off", got)
	}
}

// TestReloadWarnsWhenAuthWeakens: a reload that lowers an auth mode logs
// a warning naming the route, the check and both modes; one that
// strengthens or keeps them logs none.
func TestReloadWarnsWhenAuthWeakens(t *testing.T) {
	t.Setenv("OPSCORE_WEBHOOK_SECRET", "s")
	t.Setenv("OPSCORE_API_KEY", "k")
	path := filepath.Join(t.TempDir(), "sidecar.yaml")
	writeFile(t, path, `routes:
  notify:
    webhook_auth: {mode: required}
  state_update:
    webhook_auth: {mode: optional}
  state_get:
    api_key: {mode: required}
`)
	r, _, _, logs := reloaderFor(t, path)
	writeFile(t, path, `routes:
  notify:
    webhook_auth: {mode: optional}
  state_update:
    webhook_auth: {mode: off}
  workflow:
    webhook_auth: {mode: required}
`)
	if err := r.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	type warning struct {
		Level, Msg, Route, Check, From, To string
	}
	var got []warning
	for line := range strings.Lines(logs.String()) {
		var w warning
		if err := json.Unmarshal([]byte(line), &w); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if w.Level == "WARN" {
			got = append(got, w)
		}
	}
	want := []warning{
		{"WARN", "config reload weakens authentication", "notify", "webhook_auth", "required", "optional"},
		{"WARN", "config reload weakens authentication", "state_update", "webhook_auth", "optional", "off"},
		{"WARN", "config reload weakens authentication", "state_get", "api_key", "required", "off"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("warnings:\ngot  %+v\nwant %+v", got, want)
	}
}

// TestRefusedReloadKeepsTheReplayCache: a reload that shrinks notify's
// replay cache but fails (another route's secret is missing) must leave
// the running verifier's cache as it was, so a delivery it accepted stays
// refused as a replay.
func TestRefusedReloadKeepsTheReplayCache(t *testing.T) {
	t.Setenv("REPLAY_TEST_SECRET", "s3cret")
	cfg := testConfig("http://127.0.0.1:1")
	route(cfg, config.RouteNotify, func(rc *config.RouteConfig) {
		rc.WebhookAuth.Mode, rc.WebhookAuth.SecretEnv, rc.WebhookAuth.ReplayCacheSize = policy.AuthRequired, "REPLAY_TEST_SECRET", 10
	})
	s, _ := newTestSidecar(t, cfg)
	v := s.Snapshot().Runtime[config.RouteNotify].Auth.Webhook
	now := time.Now()
	ts := strconv.FormatInt(now.Unix(), 10)
	var sigs []string
	var bodies [][]byte
	for i := range 5 {
		body := []byte(fmt.Sprintf(`{"n":%d}`, i))
		sig := policy.SignWebhook([]byte("s3cret"), ts, body)
		if got := v.Verify(ts, sig, body, now); !got.Allowed {
			t.Fatalf("delivery %d: %+v, want allowed", i, got)
		}
		sigs, bodies = append(sigs, sig), append(bodies, body)
	}

	bad := *s.Snapshot().Config
	bad.Routes = maps.Clone(bad.Routes)
	route(&bad, config.RouteNotify, func(rc *config.RouteConfig) { rc.WebhookAuth.ReplayCacheSize = 1 })
	route(&bad, config.RouteWorkflow, func(rc *config.RouteConfig) {
		rc.WebhookAuth.Mode, rc.WebhookAuth.SecretEnv = policy.AuthRequired, "REPLAY_TEST_SECRET_MISSING"
	})
	if err := s.Apply(&bad); err == nil {
		t.Fatal("Apply with a missing secret: got nil, want an error")
	}
	if got := v.Verify(ts, sigs[0], bodies[0], now); got.Reason != policy.AuthReasonReplayed {
		t.Errorf("after a refused reload, the oldest accepted delivery again: got %+v, want replayed", got)
	}
}
