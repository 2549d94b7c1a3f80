package proxy

import (
	"context"
	"testing"

	"opscore-sidecar/proxy/config"
	"opscore-sidecar/proxy/proxytest"
)

// TestRetryAttemptsCountTransportReplays pins the keep-alive race
// (docs/loadtest.md, "The keep-alive race"): the upstream closes a pooled connection as the second request is
// written on it. net/http replays a body-less GET by itself; the sidecar
// does not stack its own retries on that replay, and the attempts it
// reports include it. A POST with a body is never replayed by net/http,
// only by the retry layer, and only on an idempotent route.
func TestRetryAttemptsCountTransportReplays(t *testing.T) {
	tests := []struct {
		name         string
		method, path string
		wantCode     int
		wantAttempts string
		wantUpstream int // requests the upstream read, both sidecar requests included
		wantRetries  float64
	}{
		{"state_get: net/http replays, counted once", "GET", pathState, 200, "2", 3, 1},
		{"notify: the retry layer replays the body", "POST", pathNotify, 200, "2", 3, 1},
		{"workflow: nobody replays", "POST", pathWorkflow, 502, "1", 2, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := proxytest.New(t, proxytest.OK(), proxytest.Close(), proxytest.OK())
			rig := newRetryRig(t, up.URL, fastRetries)
			body := ""
			if tt.method == "POST" {
				body = "{}"
			}
			if rec := rig.do(t, context.Background(), tt.method, tt.path, body); rec.Code != 200 {
				t.Fatalf("first request: status %d, want 200", rec.Code)
			}
			rec := rig.do(t, context.Background(), tt.method, tt.path, body)
			if rec.Code != tt.wantCode {
				t.Errorf("status %d, want %d", rec.Code, tt.wantCode)
			}
			if got := rec.Header().Get(HeaderAttempts); got != tt.wantAttempts {
				t.Errorf("%s %q, want %q", HeaderAttempts, got, tt.wantAttempts)
			}
			if got := len(up.Requests()); got != tt.wantUpstream {
				t.Errorf("upstream read %d requests, want %d", got, tt.wantUpstream)
			}
			name := map[string]string{pathState: config.RouteStateGet, pathNotify: config.RouteNotify, pathWorkflow: config.RouteWorkflow}[tt.path]
			if got := counter(t, rig.metrics.Retries.WithLabelValues(name, "closed")); got != tt.wantRetries {
				t.Errorf("retries_total{reason=closed} = %v, want %v", got, tt.wantRetries)
			}
		})
	}
}
