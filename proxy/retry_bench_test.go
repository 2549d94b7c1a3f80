package proxy

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"opscore-sidecar/metrics"
	"opscore-sidecar/proxy/config"
)

// stubUpstream answers every request with 200 and a small body, without
// any network, so the benchmarks measure only the layers above it.
type stubUpstream struct{}

func (stubUpstream) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		_, _ = io.Copy(io.Discard, req.Body)
	}
	return &http.Response{StatusCode: 200, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("ok")), Request: req}, nil
}

// BenchmarkRetryBreakerSuccessPath measures what the retry layer and the
// breaker layer add to a request whose first attempt succeeds: bare is the
// stub upstream alone, layers is retry → breaker → stub, for a body-less
// GET and a POST whose 60-byte body is buffered for replay.
func BenchmarkRetryBreakerSuccessPath(b *testing.B) {
	cfg := config.Defaults()
	rc := cfg.Routes[config.RouteNotify]
	rt := &RouteRuntime{Class: rc.Class}
	var err error
	if rt.Retry, err = buildRetry(rc, nil); err != nil {
		b.Fatal(err)
	}
	if rt.Breaker, err = buildBreaker(config.RouteNotify, rc, nil, nil, Deps{}, &carry{}); err != nil {
		b.Fatal(err)
	}
	m := metrics.New(prometheus.NewRegistry())
	layers := &retryTransport{next: breakerTransport{next: stubUpstream{}}, metrics: m, now: Deps{}.now}
	body := strings.Repeat("x", 60)
	for _, bc := range []struct {
		name string
		rt   http.RoundTripper
		post bool
	}{
		{"bare/GET", stubUpstream{}, false},
		{"layers/GET", layers, false},
		{"bare/POST", stubUpstream{}, true},
		{"layers/POST", layers, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				info := &RequestInfo{Route: config.RouteNotify, Runtime: rt}
				ctx := WithInfo(context.Background(), info)
				var req *http.Request
				if bc.post {
					req, _ = http.NewRequestWithContext(ctx, "POST", "http://upstream/v1/opscore/internal/agent/notify", strings.NewReader(body))
				} else {
					req, _ = http.NewRequestWithContext(ctx, "GET", "http://upstream/v1/opscore/agent/a1/state", nil)
				}
				resp, err := bc.rt.RoundTrip(req)
				if err != nil || resp.StatusCode != 200 {
					b.Fatalf("got %v %v, want 200", resp, err)
				}
				resp.Body.Close()
			}
		})
	}
}
