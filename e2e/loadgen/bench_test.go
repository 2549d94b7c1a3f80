package loadgen

import (
	"context"
	"math/rand/v2"
	"net/http"
	"testing"
	"time"
)

// BenchmarkRequestPathLoopback measures the generator's cost per request
// (payload, send, classify, record) against a trivial in-process server;
// req/s is the closed-loop ceiling of this machine for both together.
func BenchmarkRequestPathLoopback(b *testing.B) {
	url, stop, err := StartTrivialServer()
	if err != nil {
		b.Fatal(err)
	}
	defer stop()
	s, _ := ScenarioByID(1)
	cfg := &Config{Scenario: s, Target: url, APIKey: "k"}
	rec := NewRecorder(time.Now())
	tr := newTransport(64)
	defer tr.CloseIdleConnections()
	cl := &caller{client: &http.Client{Transport: tr}, target: url, apiKey: "k", rec: rec}
	b.SetParallelism(4)
	b.ReportAllocs()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		r := rand.New(rand.NewPCG(rand.Uint64(), 1))
		for pb.Next() {
			cl.do(context.Background(), taskCall(cfg, TaskPostState, "loadtest-agent-12345", r), time.Time{})
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
}
