package opscore

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// counterValue returns the value of the counter family name whose label
// has value, or 0 when there is no such series.
func counterValue(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
			if label == "" {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// TestNewMetricsExposesEveryFamily checks the dashboard contract: every
// family is visible after one Gather on a fresh registry.
func TestNewMetricsExposesEveryFamily(t *testing.T) {
	reg := prometheus.NewRegistry()
	NewMetrics(reg)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	got := map[string]bool{}
	for _, mf := range mfs {
		got[mf.GetName()] = true
	}
	for _, name := range []string{
		"opscore_http_requests_total", "opscore_http_request_duration_seconds",
		"opscore_redis_operation_duration_seconds", "opscore_redis_errors_total",
		"opscore_agents_registered_total", "opscore_registration_failures_total",
	} {
		if !got[name] {
			t.Errorf("family %s: got absent, want present after one Gather", name)
		}
	}
}

// TestRequestMetricsCountByRouteAndCode drives a few requests and reads
// the counters back.
func TestRequestMetricsCountByRouteAndCode(t *testing.T) {
	svc, reg := newTestService(t, NewMemoryStore())
	h := svc.Handler()
	call(t, h, "POST", pNotify, registerBody("m-1"), false)
	call(t, h, "POST", pNotify, registerBody(""), false)
	call(t, h, "POST", "/v1/opscore/agent/m-1/state", stateBody("m-1", "idle"), true)
	call(t, h, "GET", "/v1/opscore/agent/m-1/state", "", false)

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	want := map[[2]string]float64{
		{"notify", "200"}: 1, {"notify", "400"}: 1, {"state_update", "202"}: 1, {"state_get", "401"}: 1,
	}
	for _, mf := range mfs {
		if mf.GetName() != "opscore_http_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var k [2]string
			for _, lp := range m.GetLabel() {
				switch lp.GetName() {
				case "route":
					k[0] = lp.GetValue()
				case "code":
					k[1] = lp.GetValue()
				}
			}
			if w, ok := want[k]; ok {
				if got := m.GetCounter().GetValue(); got != w {
					t.Errorf("requests{route=%s,code=%s}: got %v, want %v", k[0], k[1], got, w)
				}
				delete(want, k)
			}
		}
	}
	for k := range want {
		t.Errorf("requests{route=%s,code=%s}: got no series, want one", k[0], k[1])
	}
	if got := counterValue(t, reg, "opscore_agents_registered_total", "", ""); got != 1 {
		t.Errorf("opscore_agents_registered_total: got %v, want 1", got)
	}
	if got := counterValue(t, reg, "opscore_registration_failures_total", "reason", regFailBadRequest); got != 1 {
		t.Errorf("opscore_registration_failures_total{reason=bad_request}: got %v, want 1", got)
	}
	r := call(t, h, "GET", "/metrics", "", false)
	mustStatus(t, "GET /metrics", r, 200)
}

// TestRedisOperationsAreTimed: every Redis store operation is observed in
// opscore_redis_operation_duration_seconds{op}, and only failures count in
// opscore_redis_errors_total.
func TestRedisOperationsAreTimed(t *testing.T) {
	store, _, _ := newRedisStore(t, time.Second)
	svc, reg := newTestService(t, store) // its start-up saved the sample workflow once
	h := svc.Handler()
	mustStatus(t, "register", call(t, h, "POST", pNotify, registerBody("m-1"), false), 200)
	mustStatus(t, "state update", call(t, h, "POST", pState, stateBody("lt-1", "idle"), true), 404)
	mustStatus(t, "state read", call(t, h, "GET", "/v1/opscore/agent/m-1/state", "", true), 200)

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	counts := map[string]uint64{}
	for _, mf := range mfs {
		if mf.GetName() != "opscore_redis_operation_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "op" {
					counts[lp.GetValue()] = m.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	want := map[string]uint64{opRegister: 1, opSetState: 1, opGetState: 1, opPutWorkflow: 1, opDeregister: 0, opPing: 0}
	for op, w := range want {
		if counts[op] != w {
			t.Errorf("opscore_redis_operation_duration_seconds{op=%s} count: got %d, want %d", op, counts[op], w)
		}
	}
	for _, op := range []string{opRegister, opSetState, opGetState} {
		if got := counterValue(t, reg, "opscore_redis_errors_total", "op", op); got != 0 {
			t.Errorf("opscore_redis_errors_total{op=%s}: got %v, want 0 (a missing agent is not a Redis error)", op, got)
		}
	}
}
