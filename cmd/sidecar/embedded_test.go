package main

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestEmbeddedCoreIsAWorkingStack runs the README's first command (with
// free ports): the sidecar and the in-process core answer notify and state
// through the proxy port, and SIGTERM drains and exits 0.
func TestEmbeddedCoreIsAWorkingStack(t *testing.T) {
	t.Setenv("SIDECAR_SERVER_DRAIN_DELAY", "0s")
	t.Setenv("OPSCORE_API_KEY", "k-test")
	proxyAddr, adminAddr, coreAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	var out syncWriter
	done := make(chan int, 1)
	go func() {
		done <- run([]string{"--embedded-core", "--listen", proxyAddr, "--admin-listen", adminAddr, "--upstream-url", "http://" + coreAddr}, &out, &out)
	}()
	waitStatus(t, "http://"+adminAddr+"/readyz", http.StatusOK, done)

	notify := `{"event_type":"REGISTER","agent_details":{"agentId":"a1","agentName":"demo","version":"1.0","capabilities":[],"contactEndpoint":"http://127.0.0.1:9","metadata":{}}}`
	resp, err := http.Post("http://"+proxyAddr+"/v1/opscore/internal/agent/notify", "application/json", strings.NewReader(notify))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("notify: got %d %s, want 200", resp.StatusCode, b)
	}
	req, _ := http.NewRequest("GET", "http://"+proxyAddr+"/v1/opscore/agent/a1/state", nil)
	req.Header.Set("Authorization", "Bearer k-test")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"agentId":"a1"`) {
		t.Fatalf("state: got %d %s, want 200 with agentId a1", resp.StatusCode, b)
	}

	// Each program's /metrics shows its own families only, as with two
	// processes: the core's must not repeat the sidecar's (a Prometheus
	// scraping both would count them twice), and the reverse.
	for _, c := range []struct{ name, url, want, notWant string }{
		{"core", "http://" + coreAddr + "/metrics", "opscore_http_requests_total", "opscore_sidecar_"},
		{"admin", "http://" + adminAddr + "/metrics", "opscore_sidecar_requests_total", "opscore_http_requests_total"},
	} {
		body := getBody(t, c.url)
		if !strings.Contains(body, c.want) {
			t.Errorf("%s /metrics: lacks %s", c.name, c.want)
		}
		if strings.Contains(body, c.notWant) {
			t.Errorf("%s /metrics: got %s families, want none", c.name, c.notWant)
		}
	}

	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit code after SIGTERM: got %d, want 0; output:\n%s", code, out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("sidecar did not exit within 30s of SIGTERM")
	}
	if !strings.Contains(out.String(), `"msg":"drained"`) {
		t.Errorf("log lacks the drained line:\n%s", out.String())
	}
}

// getBody returns the body of a GET that must answer 200.
func getBody(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: got %d %v, want 200", url, resp.StatusCode, err)
	}
	return string(b)
}

// waitStatus polls url until it answers want, failing after 20s or, when
// done is not nil, as soon as run returns on it.
func waitStatus(t *testing.T, url string, want int, done <-chan int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case code := <-done:
			t.Fatalf("sidecar exited with %d before %s answered %d", code, url, want)
		default:
		}
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == want {
				return
			}
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
	t.Fatalf("%s did not answer %d within 20s", url, want)
}

type syncWriter struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}
