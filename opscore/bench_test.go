package opscore

import (
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// benchClients is the number of concurrent HTTP clients of the benchmark.
const benchClients = 64

// BenchmarkRegisterStateGetRedis drives the core over loopback HTTP with
// 64 concurrent clients on the Redis store. Each client registers its own
// agent once, then every iteration is one state update followed by one
// state read. It reports requests/s, state updates/s and the p50/p99
// latency of single requests.
func BenchmarkRegisterStateGetRedis(b *testing.B) { benchmarkCore(b, true) }

// BenchmarkStateUpdateRedis is BenchmarkRegisterStateGetRedis without the
// reads: every iteration is one state update, the figure of the core's
// throughput goal, 10,000 state updates/s (docs/opscore.md, "Tests and
// benchmark").
func BenchmarkStateUpdateRedis(b *testing.B) { benchmarkCore(b, false) }

// benchmarkCore runs the benchmarks above; withGet adds a state read after
// each update.
func benchmarkCore(b *testing.B, withGet bool) {
	store, _, _ := newRedisStore(b, time.Second)
	svc, _ := newTestService(b, store)
	srv := httptest.NewServer(svc.Handler())
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{
		MaxIdleConns: benchClients * 2, MaxIdleConnsPerHost: benchClients * 2, IdleConnTimeout: time.Minute,
	}}
	defer client.CloseIdleConnections()

	send := func(method, path, body string) (int, time.Duration, error) {
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, err := http.NewRequest(method, srv.URL+path, rd)
		if err != nil {
			return 0, 0, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+testKey)
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return 0, 0, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, time.Since(start), nil
	}

	var (
		nextID  atomic.Int64
		mu      sync.Mutex
		lat     []time.Duration
		failure atomic.Value
	)
	procs := runtime.GOMAXPROCS(0)
	b.SetParallelism((benchClients + procs - 1) / procs) // RunParallel starts parallelism × GOMAXPROCS goroutines
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		id := "bench-" + strconv.FormatInt(nextID.Add(1), 10)
		path := "/v1/opscore/agent/" + id + "/state"
		body := `{"agentId":"` + id + `","timestamp":"2025-04-21T18:15:00Z","state":"active","details":{"n":1}}`
		local := make([]time.Duration, 0, 1024)
		if code, d, err := send("POST", pNotify, registerBody(id)); err != nil || code != 200 {
			failure.Store("register " + id + ": " + strconv.Itoa(code) + " " + errString(err))
			return
		} else {
			local = append(local, d)
		}
		for pb.Next() {
			code, d, err := send("POST", path, body)
			if err != nil || code != 202 {
				failure.Store("state update: " + strconv.Itoa(code) + " " + errString(err))
				return
			}
			local = append(local, d)
			if !withGet {
				continue
			}
			code, d, err = send("GET", path, "")
			if err != nil || code != 200 {
				failure.Store("state get: " + strconv.Itoa(code) + " " + errString(err))
				return
			}
			local = append(local, d)
		}
		mu.Lock()
		lat = append(lat, local...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	b.StopTimer()
	if f := failure.Load(); f != nil {
		b.Fatal(f)
	}
	slices.Sort(lat)
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[int(float64(len(lat)-1)*p)].Microseconds()) / 1000
	}
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "req/s")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "state_updates/s")
	b.ReportMetric(pct(0.50), "p50_ms")
	b.ReportMetric(pct(0.99), "p99_ms")
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
