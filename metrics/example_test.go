package metrics_test

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"opscore-sidecar/metrics"
)

// Collectors go on the caller's registry, never the global one.
func ExampleNew() {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	m.Requests.WithLabelValues("notify", "critical", "200", "forwarded").Inc()
	metrics.ObserveDuration(m.RequestDuration.WithLabelValues("notify", "forwarded"), 40*time.Millisecond, "4bf92f3577b34da6a3ce929d0e0e4736")
	families, _ := reg.Gather()
	fmt.Println(len(families))
	// Output: 31
}
