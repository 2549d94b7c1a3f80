package metrics

import (
	"flag"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

var update = flag.Bool("update", false, "rewrite golden files")

// designNames is the metrics contract (docs/architecture.md, "Metrics
// contract"; the list in docs/sidecar.md, "Observability"): name → labels.
// Families may be added, never renamed. The dashboard and the alert rules
// are checked against the same list.
var designNames = map[string][]string{
	"opscore_sidecar_requests_total":                               {"route", "class", "code", "outcome"},
	"opscore_sidecar_request_duration_seconds":                     {"route", "outcome"},
	"opscore_sidecar_inflight_requests":                            {"route"},
	"opscore_sidecar_upstream_attempts_total":                      {"route", "result"},
	"opscore_sidecar_upstream_attempt_duration_seconds":            {"route"},
	"opscore_sidecar_retries_total":                                {"route", "reason"},
	"opscore_sidecar_retry_budget_exhausted_total":                 {"route"},
	"opscore_sidecar_admission_rejections_total":                   {"route", "class", "reason", "mode"},
	"opscore_sidecar_queue_depth":                                  {"class"},
	"opscore_sidecar_concurrency_limit":                            {"class"},
	"opscore_sidecar_admission_inflight_requests":                  {"class"},
	"opscore_sidecar_ratelimit_keys":                               {"route"},
	"opscore_sidecar_breaker_state":                                {"route"},
	"opscore_sidecar_breaker_transitions_total":                    {"route", "from", "to"},
	"opscore_sidecar_webhook_auth_failures_total":                  {"reason"},
	"opscore_sidecar_config_reloads_total":                         {"result"},
	"opscore_sidecar_config_last_reload_success_timestamp_seconds": nil,
	"opscore_sidecar_connections_refused_total":                    nil,
	"opscore_sidecar_build_info":                                   {"version", "goversion"},
	"opscore_sidecar_held_requests":                                {"route"},
	"opscore_sidecar_hold_total":                                   {"route", "result"},
	"opscore_sidecar_outbox_enqueued_total":                        {"route"},
	"opscore_sidecar_outbox_delivered_total":                       {"route"},
	"opscore_sidecar_outbox_dead_letters_total":                    {"route"},
	"opscore_sidecar_outbox_delivery_attempts_total":               {"result"},
	"opscore_sidecar_outbox_delivery_latency_seconds":              nil,
	"opscore_sidecar_outbox_depth":                                 nil,
	"opscore_sidecar_outbox_oldest_age_seconds":                    nil,
	"opscore_sidecar_outbox_dead_letters":                          nil,
	"opscore_sidecar_health_probes_total":                          {"result"},
	"opscore_sidecar_upstream_healthy":                             nil,
}

// TestEveryDesignFamilyVisibleAfterOneGather: a fresh registry exposes
// every family of designNames with exactly its labels.
func TestEveryDesignFamilyVisibleAfterOneGather(t *testing.T) {
	reg := prometheus.NewRegistry()
	New(reg)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*dto.MetricFamily{}
	for _, f := range families {
		got[f.GetName()] = f
	}
	for name, labels := range designNames {
		f, ok := got[name]
		if !ok {
			t.Errorf("family %s missing after one Gather", name)
			continue
		}
		var have []string
		for _, lp := range f.GetMetric()[0].GetLabel() {
			have = append(have, lp.GetName())
		}
		if !slices.Equal(slices.Sorted(slices.Values(have)), slices.Sorted(slices.Values(labels))) {
			t.Errorf("%s labels: got %v, want %v", name, have, labels)
		}
	}
	for name := range got {
		if _, ok := designNames[name]; !ok {
			t.Errorf("family %s is not in designNames; add it there and to docs/sidecar.md's metrics list first", name)
		}
	}
}

// TestMetricsGolden compares the exposition of a registry after a few
// recorded events with testdata/metrics.golden.
func TestMetricsGolden(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	m.Requests.WithLabelValues("notify", "critical", "200", "forwarded").Add(3)
	m.Requests.WithLabelValues("state_update", "bulk", "429", "rate_limited").Inc()
	ObserveDuration(m.RequestDuration.WithLabelValues("notify", "forwarded"), 30*time.Millisecond, "0af7651916cd43dd8448eb211c80319c")
	ObserveDuration(m.RequestDuration.WithLabelValues("notify", "forwarded"), 700*time.Millisecond, "")
	m.UpstreamAttempts.WithLabelValues("notify", ResultRefused).Inc()
	m.BreakerState.WithLabelValues("workflow").Set(2) // open
	m.ReloadResult(false, time.Unix(0, 0))

	const names = "opscore_sidecar_requests_total opscore_sidecar_request_duration_seconds opscore_sidecar_upstream_attempts_total opscore_sidecar_breaker_state opscore_sidecar_config_reloads_total opscore_sidecar_build_info"
	path := "testdata/metrics.golden"
	if *update {
		out, err := testutil.CollectAndFormat(reg, expfmt.TypeTextPlain, strings.Fields(names)...)
		if err != nil {
			t.Fatal(err)
		}
		_ = os.WriteFile(path, out, 0o644)
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./metrics -update)", err)
	}
	// The Go version of the build_info label is the running one.
	expected := strings.ReplaceAll(string(want), "GOVERSION", runtime.Version())
	if err := testutil.GatherAndCompare(reg, strings.NewReader(expected), strings.Fields(names)...); err != nil {
		t.Error(err)
	}
}

func TestObserveDurationAttachesExemplar(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	ObserveDuration(m.RequestDuration.WithLabelValues("notify", "forwarded"), 30*time.Millisecond, "0af7651916cd43dd8448eb211c80319c")
	families, _ := reg.Gather()
	for _, f := range families {
		if f.GetName() != "opscore_sidecar_request_duration_seconds" {
			continue
		}
		for _, mt := range f.GetMetric() {
			for _, b := range mt.GetHistogram().GetBucket() {
				if ex := b.GetExemplar(); ex != nil {
					if ex.GetLabel()[0].GetValue() != "0af7651916cd43dd8448eb211c80319c" || b.GetUpperBound() != 0.05 {
						t.Errorf("exemplar: got %v in bucket le=%v, want the trace id in le=0.05", ex, b.GetUpperBound())
					}
					return
				}
			}
		}
	}
	t.Error("no exemplar found on request_duration_seconds")
}

func TestLatencyBucketsIncludeSLOBoundaries(t *testing.T) {
	for _, slo := range []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5} {
		found := false
		for _, b := range LatencyBuckets {
			found = found || b == slo
		}
		if !found {
			t.Errorf("LatencyBuckets lacks the SLO boundary %v", slo)
		}
	}
}
