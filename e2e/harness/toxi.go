package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Toxi is an in-process toxiproxy TCP proxy on a free 127.0.0.1 port in
// front of one upstream address. Toxics (faults) are added and removed at
// run time; no toxiproxy server binary is involved.
type Toxi struct {
	// Addr is the proxy's listen address, "127.0.0.1:port".
	Addr string
	// URL is "http://" + Addr, for HTTP clients.
	URL string
	// Upstream is the address the proxy forwards to.
	Upstream string

	proxy *toxiproxy.Proxy
	mu    sync.Mutex
	seq   int
}

// NewToxiProxy starts a proxy to upstreamAddr ("127.0.0.1:8000"). The
// caller must call Close.
func NewToxiProxy(upstreamAddr string) (*Toxi, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	listen := fmt.Sprintf("127.0.0.1:%d", port)
	p := toxiproxy.NewProxy(srv, "harness", listen, upstreamAddr)
	if err := p.Start(); err != nil {
		return nil, fmt.Errorf("harness: toxiproxy listen %s: %w", listen, err)
	}
	return &Toxi{Addr: p.Listen, URL: "http://" + p.Listen, Upstream: upstreamAddr, proxy: p}, nil
}

// StartToxi starts a proxy for the test and closes it in tb.Cleanup.
func StartToxi(tb testing.TB, upstreamAddr string) *Toxi {
	tb.Helper()
	t, err := NewToxiProxy(upstreamAddr)
	if err != nil {
		tb.Fatalf("harness: %v", err)
	}
	tb.Cleanup(t.Close)
	return t
}

// add adds one toxic; stream is "upstream" (client to server) or
// "downstream"; toxicity is the probability, per connection, that the
// toxic applies to it.
func (t *Toxi) add(typ, stream string, toxicity float64, attrs map[string]any) (string, error) {
	if toxicity < 0 || toxicity > 1 {
		return "", fmt.Errorf("harness: toxicity must be in [0, 1], got %v", toxicity)
	}
	t.mu.Lock()
	t.seq++
	name := fmt.Sprintf("%s_%s_%d", typ, stream, t.seq)
	t.mu.Unlock()
	body, err := json.Marshal(map[string]any{
		"name": name, "type": typ, "stream": stream, "toxicity": toxicity, "attributes": attrs,
	})
	if err != nil {
		return "", err
	}
	if _, err := t.proxy.Toxics.AddToxicJson(bytes.NewReader(body)); err != nil {
		return "", fmt.Errorf("harness: add toxic %s: %w", typ, err)
	}
	return name, nil
}

// ResetPeer makes a share (probability) of new connections end with a TCP
// RST as soon as the client sends its first bytes, so the client sees
// "connection reset by peer" without a response. It returns the toxic's
// name for Remove.
func (t *Toxi) ResetPeer(probability float64) (string, error) {
	return t.add("reset_peer", "upstream", probability, map[string]any{"timeout": 0})
}

// Latency delays data from the upstream by latency ± jitter on every
// connection.
func (t *Toxi) Latency(latency, jitter time.Duration) (string, error) {
	return t.add("latency", "downstream", 1, map[string]any{
		"latency": latency.Milliseconds(), "jitter": jitter.Milliseconds(),
	})
}

// Timeout stops all data on a share (probability) of connections and
// closes them after d (0 keeps them open forever), as a hung upstream does.
func (t *Toxi) Timeout(d time.Duration, probability float64) (string, error) {
	return t.add("timeout", "upstream", probability, map[string]any{"timeout": d.Milliseconds()})
}

// Bandwidth caps data from the upstream to kbPerSecond kilobytes per
// second.
func (t *Toxi) Bandwidth(kbPerSecond int64) (string, error) {
	return t.add("bandwidth", "downstream", 1, map[string]any{"rate": kbPerSecond})
}

// Remove removes one toxic by the name an adding method returned.
func (t *Toxi) Remove(name string) error {
	if err := t.proxy.Toxics.RemoveToxic(context.Background(), name); err != nil {
		return fmt.Errorf("harness: remove toxic %s: %w", name, err)
	}
	return nil
}

// RemoveAll removes every toxic; open connections stay open.
func (t *Toxi) RemoveAll() {
	t.proxy.Toxics.ResetToxics(context.Background())
}

// Close stops the proxy and closes every connection through it.
func (t *Toxi) Close() {
	t.proxy.Stop()
}
