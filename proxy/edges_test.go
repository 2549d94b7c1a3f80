package proxy

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"opscore-sidecar/proxy/config"
	"opscore-sidecar/proxy/proxytest"
)

func TestBodyOverRouteLimitIs413BeforeForwarding(t *testing.T) {
	tests := []struct {
		name    string
		chunked bool
	}{
		{"declared content-length", false},
		{"chunked", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := proxytest.New(t, proxytest.OK())
			cfg := testConfig(up.URL)
			rc := cfg.Routes[config.RouteNotify]
			rc.BodyLimit = 1024
			cfg.Routes[config.RouteNotify] = rc
			env := startSidecar(t, cfg)
			var body io.Reader = strings.NewReader(strings.Repeat("x", 4096))
			if tt.chunked {
				body = io.MultiReader(body) // unknown length: sent chunked
			}
			resp, b := do(t, newRequest(t, "POST", env.url+"/v1/opscore/internal/agent/notify", body))
			if resp.StatusCode != http.StatusRequestEntityTooLarge {
				t.Fatalf("status: got %d, want 413 (body %s)", resp.StatusCode, b)
			}
			if p := decodeProblem(t, resp, b); p.Type != ProblemTypeBase+"too_large" || !strings.Contains(p.Detail, "1024") {
				t.Errorf("problem: got %+v, want type too_large naming the 1024-byte limit", p)
			}
			if !tt.chunked && len(up.Requests()) != 0 {
				t.Errorf("upstream saw %d requests, want 0", len(up.Requests()))
			}
			// A body within the limit on another route still passes.
			resp, _ = do(t, newRequest(t, "POST", env.url+"/v1/opscore/agent/a/state", strings.NewReader(strings.Repeat("x", 4096))))
			if resp.StatusCode != http.StatusOK {
				t.Errorf("state_update with 4 KiB: got %d, want 200 (its limit is 1 MiB)", resp.StatusCode)
			}
		})
	}
}

func TestOversizedHeadersAre431(t *testing.T) {
	up := proxytest.New(t, proxytest.OK())
	cfg := testConfig(up.URL)
	cfg.Server.MaxHeaderBytes = 4096
	env := startSidecar(t, cfg)
	req := newRequest(t, "GET", env.url+"/health", nil)
	req.Header.Set("X-Big", strings.Repeat("a", 16<<10))
	resp, _ := do(t, req)
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("status: got %d, want 431", resp.StatusCode)
	}
	if len(up.Requests()) != 0 {
		t.Errorf("upstream saw %d requests, want 0", len(up.Requests()))
	}
}

// TestSlowlorisConnectionIsClosed: a client that sends its headers byte by
// byte and never finishes is disconnected after read_header_timeout.
func TestSlowlorisConnectionIsClosed(t *testing.T) {
	up := proxytest.New(t, proxytest.OK())
	cfg := testConfig(up.URL)
	cfg.Server.ReadHeaderTimeout = 300 * time.Millisecond
	env := startSidecar(t, cfg)
	conn := dialRaw(t, env.srv.ProxyAddr())
	start := time.Now()
	closed := false
	for _, b := range []byte("GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ") {
		if _, err := conn.Write([]byte{b}); err != nil {
			closed = true
			break
		}
		time.Sleep(20 * time.Millisecond) // the client's pace, not a wait for the server
	}
	if !closed {
		// The server answers 408 or just closes; either way the read ends.
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err := io.ReadAll(conn)
		if err != nil {
			t.Fatalf("connection still open %s after the headers started: %v", time.Since(start), err)
		}
	}
	if len(up.Requests()) != 0 {
		t.Errorf("upstream saw %d requests, want 0", len(up.Requests()))
	}
}

// TestRequestTargetNeverChosenByClient: an absolute-form request URI and
// a Host header naming another host still go to the configured upstream,
// with the upstream's Host (never an open proxy).
func TestRequestTargetNeverChosenByClient(t *testing.T) {
	up := proxytest.New(t, proxytest.OK())
	env := startSidecar(t, testConfig(up.URL))
	upHost := strings.TrimPrefix(up.URL, "http://")
	tests := []struct{ name, raw string }{
		{"absolute-form URI", "GET http://evil.example:9999/health HTTP/1.1\r\nHost: evil.example:9999\r\nConnection: close\r\n\r\n"},
		{"foreign Host header", "GET /health HTTP/1.1\r\nHost: 169.254.169.254\r\nConnection: close\r\n\r\n"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := rawRequest(t, env.srv.ProxyAddr(), tt.raw)
			if !strings.HasPrefix(out, "HTTP/1.1 200") {
				t.Fatalf("response: got %q, want 200", out)
			}
			reqs := up.Requests()
			if len(reqs) != i+1 {
				t.Fatalf("upstream saw %d requests, want %d", len(reqs), i+1)
			}
			got := reqs[i]
			if got.Host != upHost || got.URL.Path != "/health" {
				t.Errorf("upstream got Host %q path %q, want Host %q path /health", got.Host, got.URL.Path, upHost)
			}
			if xfh := got.Header.Get("X-Forwarded-Host"); xfh == "" {
				t.Errorf("X-Forwarded-Host missing; want the client's Host")
			}
		})
	}
}

func TestHopByHopStrippedAndForwardedHeadersSet(t *testing.T) {
	up := proxytest.New(t, proxytest.OK())
	env := startSidecar(t, testConfig(up.URL))
	req := newRequest(t, "GET", env.url+"/health", nil)
	req.Header.Set("Connection", "X-Secret-Hop")
	req.Header.Set("X-Secret-Hop", "1")
	req.Header.Set("Proxy-Authorization", "Basic Zm9vOmJhcg==")
	req.Header.Set("X-Forwarded-For", "203.0.113.9")
	req.Header.Set("X-Request-ID", "caller-id-1")
	resp, _ := do(t, req)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200", resp.StatusCode)
	}
	if got := resp.Header.Get("X-Request-ID"); got != "caller-id-1" {
		t.Errorf("response X-Request-ID: got %q, want the caller's caller-id-1", got)
	}
	h := up.Requests()[0].Header
	checks := []struct{ header, want string }{
		{"X-Secret-Hop", ""},
		{"Proxy-Authorization", ""},
		{"X-Forwarded-For", "127.0.0.1"}, // Rewrite does not trust the client's chain
		{"X-Forwarded-Proto", "http"},
		{"X-Request-Id", "caller-id-1"},
	}
	for _, c := range checks {
		if got := h.Get(c.header); got != c.want {
			t.Errorf("upstream header %s: got %q, want %q", c.header, got, c.want)
		}
	}
}

func TestRequestIDMintedWhenMissing(t *testing.T) {
	up := proxytest.New(t, proxytest.OK())
	env := startSidecar(t, testConfig(up.URL))
	resp, _ := do(t, newRequest(t, "GET", env.url+"/health", nil))
	id := resp.Header.Get("X-Request-ID")
	if id == "" {
		t.Fatal("no X-Request-ID in the response")
	}
	if got := up.Requests()[0].Header.Get("X-Request-ID"); got != id {
		t.Errorf("upstream X-Request-ID: got %q, want the minted %q", got, id)
	}
}
