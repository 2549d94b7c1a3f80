package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"opscore-sidecar/e2e/harness"
)

// startRun runs the service in the background with env and returns its
// base URL and a stop function that cancels it and returns run's error.
func startRun(t *testing.T, env map[string]string) (string, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	errc := make(chan error, 1)
	go func() {
		errc <- run(ctx, []string{"--listen", "127.0.0.1:0"}, func(k string) string { return env[k] }, io.Discard, ready)
	}()
	select {
	case addr := <-ready:
		return "http://" + addr, func() error { cancel(); return <-errc }
	case err := <-errc:
		cancel()
		t.Fatalf("run: %v", err)
	}
	return "", nil
}

// mustGet GETs url and fails t unless the answer has status want.
func mustGet(t *testing.T, url string, want int) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	resp.Body.Close()
	if resp.StatusCode != want {
		t.Fatalf("GET %s: got %d, want %d", url, resp.StatusCode, want)
	}
}

func TestRunServesWithoutConfigAndShutsDown(t *testing.T) {
	base, stop := startRun(t, nil)
	mustGet(t, base+"/health", 200)
	if code := realMain(context.Background(), []string{"healthcheck", "--url", base + "/health"}, nil, io.Discard, io.Discard); code != 0 {
		t.Fatalf("healthcheck against a live server: got exit %d, want 0", code)
	}
	if err := stop(); err != nil {
		t.Fatalf("run after cancel: got %v, want nil", err)
	}
	var stderr bytes.Buffer
	if code := realMain(context.Background(), []string{"healthcheck", "--url", base + "/health", "--timeout", "500ms"}, nil, io.Discard, &stderr); code != 1 ||
		!strings.HasPrefix(stderr.String(), "healthcheck: ") {
		t.Fatalf("healthcheck against a stopped server: got exit %d and %q, want 1 and the reason", code, stderr.String())
	}
}

func TestRunUsesRedisWhenConfigured(t *testing.T) {
	r := harness.StartRedis(t)
	base, stop := startRun(t, map[string]string{"OPSCORE_STORAGE_TYPE": "redis", "REDIS_URL": "redis://" + r.Addr, "OPSCORE_API_KEY": "secret"})
	defer func() {
		if err := stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
	}()
	body := `{"event_type":"REGISTER","agent_details":{"agentId":"a1","agentName":"n","version":"1","contactEndpoint":"http://a"}}`
	resp, err := http.Post(base+"/v1/opscore/internal/agent/notify", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("notify: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("notify: got %d, want 200", resp.StatusCode)
	}
	mustGet(t, base+"/readyz", 200)
	// The key is in this Redis, so the store really is Redis.
	raw := redis.NewClient(&redis.Options{Addr: r.Addr})
	n, err := raw.Exists(context.Background(), "agent:a1:registration").Result()
	_ = raw.Close()
	if err != nil || n != 1 {
		t.Fatalf("EXISTS agent:a1:registration: got %d, %v; want 1", n, err)
	}
	if err := r.Stop(); err != nil {
		t.Fatalf("stop redis: %v", err)
	}
	mustGet(t, base+"/readyz", 503)
}

func TestRunRejectsBadConfig(t *testing.T) {
	var stderr bytes.Buffer
	code := realMain(context.Background(), []string{"--storage", "etcd"}, func(string) string { return "" }, io.Discard, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "OPSCORE_STORAGE_TYPE") {
		t.Fatalf("got exit %d and %q, want 1 and a message naming OPSCORE_STORAGE_TYPE", code, stderr.String())
	}
}

// TestShutdownFinishesInFlightRequest is SIGTERM during a request: run's
// context is cancelled while a registration body is still arriving. The
// listener must close (new connections refused), the in-flight request
// must still get its 200, and run must return nil.
func TestShutdownFinishesInFlightRequest(t *testing.T) {
	base, stop := startRun(t, nil)

	// Expect: 100-continue makes the server say when the handler starts
	// reading the body, so the request is known to be in flight.
	pr, pw := io.Pipe()
	inHandler := make(chan struct{})
	reqCtx := httptrace.WithClientTrace(context.Background(),
		&httptrace.ClientTrace{Got100Continue: func() { close(inHandler) }})
	req, err := http.NewRequestWithContext(reqCtx, http.MethodPost, base+"/v1/opscore/internal/agent/notify", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Expect", "100-continue")
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{ExpectContinueTimeout: 10 * time.Second}}
	type result struct {
		status int
		body   string
		err    error
	}
	resc := make(chan result, 1)
	go func() {
		resp, err := client.Do(req)
		if err != nil {
			resc <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		resc <- result{resp.StatusCode, string(b), err}
	}()
	select {
	case <-inHandler:
	case r := <-resc:
		t.Fatalf("request ended before its body was sent: %+v", r)
	}

	stopped := make(chan error, 1)
	go func() { stopped <- stop() }() // what SIGTERM does through signal.NotifyContext
	waitRefused(t, strings.TrimPrefix(base, "http://"), 5*time.Second)

	body := `{"event_type":"REGISTER","agent_details":{"agentId":"a1","agentName":"n","version":"1","contactEndpoint":"http://a"}}`
	if _, err := io.WriteString(pw, body); err != nil {
		t.Fatalf("write body: %v", err)
	}
	_ = pw.Close()
	r := <-resc
	if r.err != nil || r.status != 200 || !strings.Contains(r.body, "registered successfully") {
		t.Fatalf("in-flight request: got %d %q %v, want 200 and the success body", r.status, r.body, r.err)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("run after shutdown: got %v, want nil", err)
	}
}

// waitRefused dials addr until the connection is refused, which shows the
// listener was closed; it fails t after limit.
func waitRefused(t *testing.T, addr string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return
		}
		_ = c.Close()
		if time.Now().After(deadline) {
			t.Fatalf("dial %s: still accepted %v after shutdown began, want refused", addr, limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
