package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"opscore-sidecar/configs"
	"opscore-sidecar/e2e/harness"
	"opscore-sidecar/e2e/loadgen"
)

const (
	promWebhookSecret = "e2e-webhook-secret"
	promAPIKey        = "test-api-key"
	// promTraceID is sent in a traceparent header; it must come back as an
	// exemplar of the latency histogram.
	promTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
)

// promSidecarConfig keeps limits small so that a short load reaches every
// failure mode: a per-agent rate limit, a small body limit, four slots with a
// short queue, breakers that trip after three failures, and on notify no
// retry budget at all and a breaker that does not trip, so that its retries
// are refused by the budget.
const promSidecarConfig = `
admission:
  concurrency: {limit: 4, critical_reserved: 0.25, queue_size: 2, queue_timeout: 50ms}
routes:
  notify:
    webhook_auth: {mode: required}
    breaker: {consecutive_failures: 1000, failure_ratio: 1, min_requests: 1000}
    retry: {budget_ratio: 0, budget_min_per_second: 0}
  state_update:
    body_limit: 4096
    rate_limit: {key: agent_id, per_key_rps: 2, per_key_burst: 2}
    breaker: {consecutive_failures: 3, open_timeout: 1s}
    retry: {budget_ratio: 0.1, budget_min_per_second: 1}
  state_get:
    breaker: {consecutive_failures: 3, open_timeout: 1s}
`

// promStack is the running system under test.
type promStack struct {
	t       *testing.T
	redis   *harness.Redis
	core    *harness.Proc
	sidecar *harness.Proc
	toxi    *harness.Toxi
	cfgPath string
	client  *http.Client
}

// TestPrometheusScrapesStack runs redis, the core and the sidecar (through a
// toxiproxy), scrapes them with a real Prometheus, injects every failure
// mode the dashboard shows, and checks that each dashboard query returns
// data and that the faults are visible in it.
func TestPrometheusScrapesStack(t *testing.T) {
	s := startPromStack(t)
	prom := startPrometheus(t, map[string]string{
		"opscore-sidecar": strings.TrimPrefix(s.sidecar.AdminURL, "http://"),
		"opscore":         strings.TrimPrefix(s.core.URL, "http://"),
	})

	s.driveFaults(prom)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// Wait for a scrape that saw the last fault (the config reload failure).
	promWaitFor(t, ctx, "Prometheus to scrape the reload failure", func() bool {
		r, err := prom.query(ctx, `opscore_sidecar_config_reloads_total{result="failure"} > 0`)
		return err == nil && len(r) > 0
	})

	t.Run("every dashboard query returns data", func(t *testing.T) {
		qs, err := configs.DashboardQueries()
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range qs {
			expr := configs.ExpandGrafanaVars(q.Expr, "1m")
			r, err := prom.query(ctx, expr)
			if err != nil {
				t.Errorf("%s: %v\n  %s", q.Source, err, expr)
			} else if len(r) == 0 {
				t.Errorf("%s: got no data, want at least one series\n  %s", q.Source, expr)
			}
		}
	})

	t.Run("faults are visible", func(t *testing.T) {
		// Counters are read with max_over_time: the core's reset when it was restarted.
		tests := []struct {
			metric, by string
			want       []string // values of label "by" whose series must be > 0
		}{
			{`opscore_sidecar_requests_total`, "outcome", []string{"forwarded", "auth_failed", "too_large", "rate_limited", "breaker_open"}},
			{`label_replace(opscore_sidecar_requests_total{outcome=~"shed|queue_timeout"}, "x", "capacity", "", "")`, "x", []string{"capacity"}},
			{`label_replace(opscore_sidecar_upstream_attempts_total{result=~"refused|reset|closed"}, "x", "core down", "", "")`, "x", []string{"core down"}},
			{`opscore_sidecar_upstream_attempts_total`, "result", []string{"ok", "http_5xx"}},
			{`opscore_sidecar_breaker_transitions_total`, "to", []string{"open", "closed"}},
			{`opscore_sidecar_webhook_auth_failures_total`, "reason", []string{"bad_signature"}},
			{`opscore_sidecar_config_reloads_total`, "result", []string{"success", "failure"}},
			{`opscore_sidecar_retries_total`, "job", []string{"opscore-sidecar"}},
			{`opscore_sidecar_retry_budget_exhausted_total`, "route", []string{"notify"}},
			{`opscore_sidecar_ratelimit_keys`, "route", []string{"state_update"}},
			{`opscore_redis_errors_total`, "job", []string{"opscore"}},
			{`opscore_agents_registered_total`, "job", []string{"opscore"}},
		}
		for _, tt := range tests {
			expr := fmt.Sprintf("sum by (%s) (max_over_time(%s[5m]))", tt.by, tt.metric)
			if strings.HasPrefix(tt.metric, "label_replace") {
				expr = fmt.Sprintf("sum by (%s) (max_over_time((%s)[5m:1s]))", tt.by, tt.metric)
			}
			r, err := prom.query(ctx, expr)
			if err != nil {
				t.Errorf("%s: %v", expr, err)
				continue
			}
			got := map[string]float64{}
			for _, smp := range r {
				got[smp.Metric[tt.by]] = smp.float()
			}
			for _, w := range tt.want {
				if got[w] <= 0 {
					t.Errorf("%s: got %s=%q at %v, want > 0 (all: %v)", expr, tt.by, w, got[w], got)
				}
			}
		}
	})

	t.Run("latency exemplars carry the trace id", func(t *testing.T) {
		var ids []string
		found := func() bool {
			var data []struct {
				Exemplars []struct {
					Labels map[string]string `json:"labels"`
				} `json:"exemplars"`
			}
			now := time.Now()
			err := prom.apiGet(ctx, "/api/v1/query_exemplars", url.Values{
				"query": {"opscore_sidecar_request_duration_seconds_bucket"},
				"start": {strconv.FormatInt(now.Add(-10*time.Minute).Unix(), 10)},
				"end":   {strconv.FormatInt(now.Add(time.Minute).Unix(), 10)},
			}, &data)
			if err != nil {
				t.Fatal(err)
			}
			ids = ids[:0]
			for _, d := range data {
				for _, e := range d.Exemplars {
					ids = append(ids, e.Labels["trace_id"])
				}
			}
			return slices.Contains(ids, promTraceID)
		}
		// The traced request was the last one; wait for the scrape after it.
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		promWaitFor(t, wctx, "an exemplar with trace id "+promTraceID, found)
	})

	t.Run("the alert rules are loaded", func(t *testing.T) {
		var data struct {
			Groups []struct {
				Rules []struct {
					Name   string `json:"name"`
					Health string `json:"health"`
				} `json:"rules"`
			} `json:"groups"`
		}
		if err := prom.apiGet(ctx, "/api/v1/rules", url.Values{}, &data); err != nil {
			t.Fatal(err)
		}
		want, err := configs.AlertRules()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, g := range data.Groups {
			for _, r := range g.Rules {
				got[r.Name] = r.Health
			}
		}
		for _, r := range want {
			if h, ok := got[r.Alert]; !ok || h == "err" {
				t.Errorf("rule %s: got health %q (loaded %v), want it loaded and evaluating", r.Alert, h, ok)
			}
		}
	})
}

// startPromStack starts redis, the core (Redis store), a toxiproxy in front of
// the core and the sidecar with promSidecarConfig.
func startPromStack(t *testing.T) *promStack {
	t.Helper()
	r := harness.StartRedis(t)
	core := harness.StartCore(t, harness.CoreOptions{Storage: "redis", RedisURL: "redis://" + r.Addr,
		Env: []string{"OPSCORE_API_KEY=" + promAPIKey}})
	toxi := harness.StartToxi(t, strings.TrimPrefix(core.URL, "http://"))
	sc, cfgPath := startSidecarWithConfigFile(t, harness.SidecarOptions{UpstreamURL: toxi.URL,
		Env: []string{"OPSCORE_WEBHOOK_SECRET=" + promWebhookSecret}}, promSidecarConfig)
	return &promStack{t: t, redis: r, core: core, sidecar: sc, toxi: toxi, cfgPath: cfgPath,
		client: &http.Client{Timeout: 15 * time.Second}}
}

// promWaitFor polls cond every 200 ms until it holds or ctx ends.
func promWaitFor(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// do sends one request through the sidecar and returns its status (0 for a
// transport error).
func (s *promStack) do(method, path string, body []byte, header http.Header) int {
	req, err := http.NewRequest(method, s.sidecar.URL+path, bytes.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// register sends a REGISTER webhook, signed with secret like AgentKit does
// (no signature when secret is empty), and returns the status.
func (s *promStack) register(id, secret string, header http.Header) int {
	body := registrationBody(id)
	if header == nil {
		header = http.Header{}
	}
	header.Set("Content-Type", "application/json")
	if secret != "" {
		ts, sig := loadgen.Sign(secret, body, time.Now())
		header.Set("X-AgentKit-Timestamp", ts)
		header.Set("X-AgentKit-Signature", sig)
	}
	return s.do(http.MethodPost, "/v1/opscore/internal/agent/notify", body, header)
}

// stateUpdate posts a state report of pad extra bytes for agent id.
func (s *promStack) stateUpdate(id string, pad int) int {
	body := fmt.Sprintf(`{"agentId":%q,"timestamp":"2026-01-01T00:00:00+00:00","state":"idle","details":{"pad":%q}}`, id, strings.Repeat("x", pad))
	return s.do(http.MethodPost, "/v1/opscore/agent/"+id+"/state", []byte(body),
		http.Header{"Authorization": {"Bearer " + promAPIKey}, "Content-Type": {"application/json"}})
}

// promParallel runs f(i) for i in [0, n) concurrently and waits.
func promParallel(n int, f func(i int)) {
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { f(i) })
	}
	wg.Wait()
}
