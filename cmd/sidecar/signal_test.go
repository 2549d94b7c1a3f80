package main

import (
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// helperEnv makes the test binary run the sidecar's main instead of the
// tests (see TestMain), so a test can signal a real sidecar process.
const helperEnv = "OPSCORE_SIDECAR_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		os.Exit(run(strings.Fields(os.Getenv("OPSCORE_SIDECAR_TEST_ARGS")), os.Stdout, os.Stderr))
	}
	// The sidecars these tests start keep their outbox in a temporary
	// directory, not in data/ under the package (the helper processes
	// inherit it; the tests run one sidecar at a time).
	dir, err := os.MkdirTemp("", "sidecar-test-outbox-")
	if err != nil {
		panic(err)
	}
	os.Setenv("SIDECAR_OUTBOX_DIR", dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// TestSecondSignalEndsTheDrain: the first SIGTERM starts the drain, which
// waits for a request the upstream never answers (with drain_timeout 10m);
// a second SIGTERM ends the process at once instead of after the timeout.
func TestSecondSignalEndsTheDrain(t *testing.T) {
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	up := http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	upAddr := ln.Addr().String()
	go up.Serve(ln)
	defer up.Close()
	defer close(release)

	proxyAddr, adminAddr := freeAddr(t), freeAddr(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=1",
		"OPSCORE_SIDECAR_TEST_ARGS=--listen "+proxyAddr+" --admin-listen "+adminAddr+" --upstream-url http://"+upAddr,
		"SIDECAR_SERVER_DRAIN_DELAY=0s", "SIDECAR_SERVER_DRAIN_TIMEOUT=10m",
		"SIDECAR_ROUTES_DEFAULT_RETRY_PER_TRY_TIMEOUT=10m", "SIDECAR_ROUTES_DEFAULT_RETRY_DEADLINE=10m",
		"SIDECAR_UPSTREAM_RESPONSE_HEADER_TIMEOUT=0s")
	var out syncWriter
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer cmd.Process.Kill()
	waitStatus(t, "http://"+adminAddr+"/readyz", http.StatusOK, nil)

	go func() {
		if resp, err := http.Get("http://" + proxyAddr + "/v1/opscore/hang"); err == nil {
			resp.Body.Close()
		}
	}()
	select { // the request is in flight at the upstream
	case <-arrived:
	case <-time.After(60 * time.Second):
		t.Fatalf("the request never reached the upstream; output:\n%s", out.String())
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, "http://"+adminAddr+"/readyz", http.StatusServiceUnavailable, nil) // draining
	// Signal again until the process ends: the default action comes back
	// a moment after the drain starts, and a signal sent in between is
	// absorbed. Without the default action it never ends (drain 10m).
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	giveUp := time.After(60 * time.Second)
	for {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM {
				t.Errorf("process ended with %v, want killed by a second SIGTERM; output:\n%s", err, out.String())
			}
			return
		case <-giveUp:
			t.Fatalf("further SIGTERMs did not end the drain; output:\n%s", out.String())
		case <-tick.C:
		}
	}
}
