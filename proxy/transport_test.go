package proxy

import (
	"net/http"
	"testing"

	"opscore-sidecar/proxy/config"
	"opscore-sidecar/proxy/h1"
)

// TestNewTransportChoosesH1 pins which transport sends to the upstream:
// proxy/h1's by default, in front of the tuned net/http Transport it falls
// back to; the net/http Transport alone when upstream.max_conns_per_host
// is set, because only it queues for a connection under that cap.
func TestNewTransportChoosesH1(t *testing.T) {
	cfg := config.Defaults().Upstream
	tr, ok := newTransport(cfg).(*h1.Transport)
	if !ok {
		t.Fatalf("default config: transport %T, want *h1.Transport", newTransport(cfg))
	}
	if tr.MaxIdleConns != cfg.MaxIdleConns || tr.IdleConnTimeout != cfg.IdleConnTimeout || tr.MaxResponseHeaderBytes != maxResponseHeaderBytes {
		t.Errorf("h1 pool: idle %d, timeout %v, header limit %d; want %d, %v, %d",
			tr.MaxIdleConns, tr.IdleConnTimeout, tr.MaxResponseHeaderBytes, cfg.MaxIdleConns, cfg.IdleConnTimeout, maxResponseHeaderBytes)
	}
	std, ok := tr.Fallback.(*http.Transport)
	if !ok {
		t.Fatalf("fallback %T, want *http.Transport", tr.Fallback)
	}
	if std.MaxIdleConnsPerHost != cfg.MaxIdleConns || std.Proxy != nil {
		t.Errorf("fallback: MaxIdleConnsPerHost %d, Proxy set %v; want %d and no proxy", std.MaxIdleConnsPerHost, std.Proxy != nil, cfg.MaxIdleConns)
	}

	cfg.MaxConnsPerHost = 8
	capped, ok := newTransport(cfg).(*http.Transport)
	if !ok {
		t.Fatalf("max_conns_per_host 8: transport %T, want *http.Transport", newTransport(cfg))
	}
	if capped.MaxConnsPerHost != 8 {
		t.Errorf("max_conns_per_host: got %d, want 8", capped.MaxConnsPerHost)
	}
}
