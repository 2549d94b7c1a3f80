package proxy

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"opscore-sidecar/proxy/proxytest"
)

// TestDrainFinishesInFlightRequest: on drain, /readyz turns 503 at once,
// the listener stops accepting, and a slow request already in flight still
// completes with the upstream's answer.
func TestDrainFinishesInFlightRequest(t *testing.T) {
	release, arrived := make(chan struct{}), make(chan struct{})
	up := proxytest.New(t, proxytest.Respond(http.StatusAccepted, "done").After(release).Signal(arrived))
	env := startSidecar(t, testConfig(up.URL))

	type result struct {
		status int
		body   string
		err    error
	}
	inflight := make(chan result, 1)
	go func() {
		resp, err := http.Post(env.url+"/v1/opscore/agent/a1/state", "application/json", strings.NewReader("{}"))
		if err != nil {
			inflight <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		inflight <- result{resp.StatusCode, string(b), err}
	}()
	<-arrived // the request is at the upstream

	drained := make(chan error, 1)
	go func() { drained <- env.srv.Drain() }()

	// readyz reports the drain while the request is still in flight.
	waitReadyz(t, env.admin, http.StatusServiceUnavailable)

	close(release)
	r := <-inflight
	if r.err != nil || r.status != http.StatusAccepted || r.body != "done" {
		t.Errorf("in-flight request: got %d %q %v, want 202 done", r.status, r.body, r.err)
	}
	if err := <-drained; err != nil {
		t.Errorf("Drain: %v", err)
	}
	if _, err := http.Get(env.url + "/health"); err == nil {
		t.Error("the proxy still accepts connections after the drain")
	}
}

// waitReadyz polls /readyz until it answers want (the drain flips a flag
// in another goroutine; polling observes it without sleeping a fixed time).
func waitReadyz(t *testing.T, admin string, want int) {
	t.Helper()
	for i := 0; i < 10000; i++ {
		resp, err := http.Get(admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == want {
				return
			}
		}
	}
	t.Fatalf("/readyz never answered %d", want)
}

// TestStartFailsOnBusyAddress: a listen address in use is an error naming
// the key, and the admin address is not taken either.
func TestStartFailsOnBusyAddress(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, tt := range []struct{ key, want string }{{"listen", "listen: "}, {"admin.listen", "admin.listen: "}} {
		cfg := testConfig("http://127.0.0.1:1")
		free, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := free.Addr().String()
		free.Close()
		if tt.key == "listen" {
			cfg.Listen, cfg.Admin.Listen = busy.Addr().String(), addr
		} else {
			cfg.Listen, cfg.Admin.Listen = addr, busy.Addr().String()
		}
		srv, err := Start(context.Background(), RunOptions{Config: cfg})
		if err == nil {
			_ = srv.Drain()
			t.Fatalf("%s busy: Start succeeded, want an error", tt.key)
		}
		if !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("%s busy: got %q, want it to start with %q", tt.key, err, tt.want)
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Errorf("%s busy: the other address %s stayed taken: %v", tt.key, addr, err)
		} else {
			ln.Close()
		}
	}
}
