package metrics

import (
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// The cached children are the vectors' own: what the request path counts
// through them is what WithLabelValues (and a scrape) sees.
func TestChildrenAreTheVectorsChildren(t *testing.T) {
	m := New(prometheus.NewRegistry())
	for range 3 {
		m.RequestsChild("state_update", "bulk", "200", "forwarded").Inc()
		m.RequestsChild("state_update", "bulk", "503", "shed").Inc()
		m.UpstreamAttemptsChild("notify", ResultReset).Inc()
		m.InflightChild("state_get").Inc()
		m.RequestDurationChild("workflow", "forwarded").Observe(0.01)
		m.UpstreamAttemptDurationChild("workflow").Observe(0.01)
	}
	for _, c := range []struct {
		got  float64
		want float64
	}{
		{testutil.ToFloat64(m.Requests.WithLabelValues("state_update", "bulk", "200", "forwarded")), 3},
		{testutil.ToFloat64(m.Requests.WithLabelValues("state_update", "bulk", "503", "shed")), 3},
		{testutil.ToFloat64(m.UpstreamAttempts.WithLabelValues("notify", ResultReset)), 3},
		{testutil.ToFloat64(m.Inflight.WithLabelValues("state_get")), 3},
	} {
		if c.got != c.want {
			t.Errorf("got %v, want %v", c.got, c.want)
		}
	}
	if n := testutil.CollectAndCount(m.RequestDuration, "opscore_sidecar_request_duration_seconds"); n != len(Routes)*len(Outcomes) {
		t.Errorf("request_duration series = %d, want the %d pre-created ones", n, len(Routes)*len(Outcomes))
	}
}

// Looking up a resolved child allocates nothing, so the request path's
// metrics cost no garbage (see docs/performance.md).
func TestChildrenHitDoesNotAllocate(t *testing.T) {
	m := New(prometheus.NewRegistry())
	m.RequestsChild("state_update", "bulk", "200", "forwarded")
	m.RequestDurationChild("state_update", "forwarded")
	m.UpstreamAttemptsChild("state_update", ResultOK)
	m.UpstreamAttemptDurationChild("state_update")
	m.InflightChild("state_update")
	allocs := testing.AllocsPerRun(100, func() {
		m.RequestsChild("state_update", "bulk", "200", "forwarded").Inc()
		m.RequestDurationChild("state_update", "forwarded").Observe(0.001)
		m.UpstreamAttemptsChild("state_update", ResultOK).Inc()
		m.UpstreamAttemptDurationChild("state_update").Observe(0.001)
		m.InflightChild("state_update").Inc()
	})
	if allocs != 0 {
		t.Errorf("%v allocations per lookup round, want 0", allocs)
	}
}

// The cache stops growing at maxCachedChildren; later label values still
// count, through WithLabelValues.
func TestChildrenCacheIsBounded(t *testing.T) {
	m := New(prometheus.NewRegistry())
	for code := range maxCachedChildren + 10 {
		m.RequestsChild("default", "bulk", string(rune('a'+code%26))+string(rune('a'+code/26%26))+string(rune('a'+code/676)), "forwarded").Inc()
	}
	if n := len(*m.children.requests.m.Load()); n != maxCachedChildren {
		t.Errorf("cache holds %d children, want %d", n, maxCachedChildren)
	}
	if got := testutil.ToFloat64(m.Requests.WithLabelValues("default", "bulk", "aaa", "forwarded")); got != 1 {
		t.Errorf("first series = %v, want 1", got)
	}
}

// A bucket gets the first traced observation's exemplar, keeps it for
// ExemplarInterval, then takes the next one; each bucket on its own.
func TestObserveRequestDurationExemplarPerBucketInterval(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	t0 := time.Unix(1_700_000_000, 0)
	obs := func(d time.Duration, trace string, at time.Duration) {
		m.ObserveRequestDuration("notify", "forwarded", d, trace, t0.Add(at))
	}
	exemplars := func() map[float64]string {
		got := map[float64]string{}
		families, _ := reg.Gather()
		for _, f := range families {
			if f.GetName() != "opscore_sidecar_request_duration_seconds" {
				continue
			}
			for _, mt := range f.GetMetric() {
				for _, b := range mt.GetHistogram().GetBucket() {
					if ex := b.GetExemplar(); ex != nil {
						got[b.GetUpperBound()] = ex.GetLabel()[0].GetValue()
					}
				}
			}
		}
		return got
	}
	obs(30*time.Millisecond, "a", 0)
	obs(40*time.Millisecond, "b", ExemplarInterval/2) // same bucket (le=0.05), too soon
	obs(3*time.Millisecond, "c", ExemplarInterval/2)  // another bucket (le=0.005)
	obs(20*time.Second, "d", 0)                       // +Inf
	if got := exemplars(); got[0.05] != "a" || got[0.005] != "c" || got[math.Inf(1)] != "d" || len(got) != 3 {
		t.Errorf("exemplars = %v, want a in le=0.05, c in le=0.005 and d in le=+Inf", got)
	}
	obs(45*time.Millisecond, "e", ExemplarInterval)
	obs(45*time.Millisecond, "", 2*ExemplarInterval) // untraced: never an exemplar
	if got := exemplars(); got[0.05] != "e" {
		t.Errorf("le=0.05 exemplar = %q after the interval, want e", got[0.05])
	}
	if n := testutil.CollectAndCount(m.RequestDuration); n != len(Routes)*len(Outcomes) {
		t.Errorf("%d series, want %d", n, len(Routes)*len(Outcomes))
	}
}
