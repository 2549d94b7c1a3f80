package metrics

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkRequestPathMetrics compares the request path's five metric
// updates through WithLabelValues and through the cached children.
func BenchmarkRequestPathMetrics(b *testing.B) {
	m := New(prometheus.NewRegistry())
	b.Run("WithLabelValues", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				m.Requests.WithLabelValues("state_update", "bulk", "200", "forwarded").Inc()
				m.RequestDuration.WithLabelValues("state_update", "forwarded").Observe(0.001)
				m.UpstreamAttempts.WithLabelValues("state_update", ResultOK).Inc()
				m.UpstreamAttemptDuration.WithLabelValues("state_update").Observe(0.001)
				m.Inflight.WithLabelValues("state_update").Inc()
			}
		})
	})
	b.Run("children", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				m.RequestsChild("state_update", "bulk", "200", "forwarded").Inc()
				m.RequestDurationChild("state_update", "forwarded").Observe(0.001)
				m.UpstreamAttemptsChild("state_update", ResultOK).Inc()
				m.UpstreamAttemptDurationChild("state_update").Observe(0.001)
				m.InflightChild("state_update").Inc()
			}
		})
	})
}
