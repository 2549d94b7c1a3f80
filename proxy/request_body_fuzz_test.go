package proxy

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"opscore-sidecar/proxy/config"
	"opscore-sidecar/proxy/proxytest"
)

// FuzzChunkedBodyIsTheClientsFault sends arbitrary bytes as a chunked
// request body (then half-closes): whatever the framing, the sidecar
// answers 200 (the upstream got a valid body), 400 (bad framing), 413 or
// nothing (the body ended early: the client went away), never a 5xx that
// blames the upstream and never a "499" status line; and the breaker
// counts no failure (docs/sidecar.md, "Security", bad framing).
func FuzzChunkedBodyIsTheClientsFault(f *testing.F) {
	for _, seed := range []string{
		"2\r\n{}\r\n0\r\n\r\n",
		"zz\r\n{}\r\n0\r\n\r\n",
		"2\r\n{}",
		"2;ext=1\r\n{}\r\n0\r\n\r\n",
		"ffffffffffffffffff\r\n",
		"2\r\n{}XX0\r\n\r\n",
		"0\r\nTrailer: x\r\n\r\n",
		"-1\r\n\r\n",
		"",
	} {
		f.Add(seed)
	}
	up := proxytest.New(f, proxytest.OK())
	cfg := testConfig(up.URL)
	rc := cfg.Routes[config.RouteNotify]
	rc.Breaker.Enabled, rc.Breaker.ConsecutiveFailures = true, 1
	rc.BodyLimit = 4096
	cfg.Routes[config.RouteNotify] = rc
	cfg.Server.BodyReadTimeout = 2 * time.Second
	env := startWith(f, RunOptions{Config: cfg})
	f.Fuzz(func(t *testing.T, body string) {
		c, err := net.Dial("tcp", env.srv.ProxyAddr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		_, _ = io.WriteString(c, "POST /v1/opscore/internal/agent/notify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"+body)
		_ = c.(*net.TCPConn).CloseWrite()
		b, _ := io.ReadAll(c)
		got := string(b)
		status := ""
		if len(got) >= 12 && strings.HasPrefix(got, "HTTP/1.1 ") {
			status = got[9:12]
		}
		switch {
		case got == "":
		case status == "200" || status == "400" || status == "413" || status == "408":
		default:
			t.Fatalf("body %q: got %q, want 200, 400, 408, 413 or no response", body, got)
		}
		if n := env.srv.Sidecar.Snapshot().Runtime[config.RouteNotify].Breaker.Counts().Failures; n != 0 {
			t.Fatalf("body %q: the breaker counted %d failures, want 0", body, n)
		}
	})
}
