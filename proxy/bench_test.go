package proxy

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"opscore-sidecar/proxy/config"
)

// BenchmarkProxyPath compares, in one run on loopback, a direct call to a
// trivial upstream, a bare httputil.ReverseProxy with a sync.Pool buffer
// pool and the sidecar's upstream transport (newTransport: proxy/h1 since
// the fourth round of docs/performance.md, so its figures before and after
// that round do not compare), and the sidecar with tracing (sampled, no exporter), metrics,
// access log (slog JSON to io.Discard) and every policy layer on. Client,
// proxy and upstream share the process, so cpu-ns/op is the CPU of the
// whole request path; the difference between two rows is the cost of
// what the row adds. Run: go test ./proxy -run XXX -bench ProxyPath -benchtime 1s
func BenchmarkProxyPath(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"success","message":"State update accepted"}`)
	}))
	defer up.Close()
	target, _ := url.Parse(up.URL)

	bare := httptest.NewServer(&httputil.ReverseProxy{
		Rewrite:    func(pr *httputil.ProxyRequest) { pr.SetURL(target); pr.SetXForwarded() },
		Transport:  newTransport(config.Defaults().Upstream),
		BufferPool: bufferPool{},
	})
	defer bare.Close()

	cfg := config.Defaults()
	cfg.Upstream.URL = up.URL
	cfg.Outbox.Dir = b.TempDir()
	tr, err := NewTracing(context.Background(), cfg.Tracing, nil)
	if err != nil {
		b.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	srv, err := Start(context.Background(), RunOptions{
		Config: withListen(cfg), Registry: reg, Tracing: tr,
		AccessLog: slog.New(slog.NewJSONHandler(io.Discard, nil)),
	})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Drain()

	// The frame alone: tracing, metrics and access log on, but one attempt
	// (testConfig), no breaker and no concurrency gate, to split the
	// frame's cost from the policy layers'.
	frameCfg := testConfig(up.URL)
	frameCfg.Outbox.Dir = b.TempDir()
	frameCfg.Admission.Concurrency.Limit, frameCfg.Admission.Concurrency.QueueSize = 0, 0
	frame, err := Start(context.Background(), RunOptions{
		Config: frameCfg, Registry: prometheus.NewRegistry(), Tracing: tr,
		AccessLog: slog.New(slog.NewJSONHandler(io.Discard, nil)),
	})
	if err != nil {
		b.Fatal(err)
	}
	defer frame.Drain()

	const path = "/v1/opscore/agent/agent-1/state"
	for _, c := range []struct{ name, base string }{
		{"direct", up.URL},
		{"bare_reverseproxy_pooled", bare.URL},
		{"sidecar_frame_only", "http://" + frame.ProxyAddr()},
		{"sidecar_all_on", "http://" + srv.ProxyAddr()},
	} {
		b.Run(c.name, func(b *testing.B) { benchPost(b, c.base+path) })
	}
}

func withListen(c *config.Config) *config.Config {
	c.Listen, c.Admin.Listen = "127.0.0.1:0", "127.0.0.1:0"
	c.Server.DrainDelay = 0
	return c
}

func benchPost(b *testing.B, target string) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxIdleConns: 256}}
	defer client.CloseIdleConnections()
	body := []byte(`{"state":"idle","details":{"cpu":0.1},"timestamp":"2026-01-01T00:00:00Z"}`)
	var mu sync.Mutex
	var lat []time.Duration
	b.SetParallelism(8) // 16 concurrent clients on 2 cores
	b.ReportAllocs()
	cpu0 := cpuTime()
	start := time.Now()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		local := make([]time.Duration, 0, 1024)
		for pb.Next() {
			t0 := time.Now()
			req, _ := http.NewRequest("POST", target, bytes.NewReader(body)) // Content-Length known, as agents send it
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
			local = append(local, time.Since(t0))
		}
		mu.Lock()
		lat = append(lat, local...)
		mu.Unlock()
	})
	b.StopTimer()
	elapsed := time.Since(start)
	cpu := cpuTime() - cpu0
	if n := len(lat); n > 0 {
		slices.Sort(lat)
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(n), "cpu-ns/op")
		b.ReportMetric(float64(n)/elapsed.Seconds(), "req/s")
		b.ReportMetric(float64(lat[n/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(lat[n*99/100].Microseconds()), "p99-µs")
	}
}

// cpuTime is the process's user + system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
