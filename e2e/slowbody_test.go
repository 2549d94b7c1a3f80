package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"opscore-sidecar/e2e/harness"
	"opscore-sidecar/e2e/loadgen"
)

// The slow-body flood (docs/sidecar.md, "Security", slow bodies): many connections each send a
// request body one byte at a time, on the state and the registration
// routes, for longer than the sidecar's concurrency slots could stand if a
// sender held one. Signed registrations sent meanwhile must all succeed.
const (
	slowConns       = 48 // slow senders at once, 3x the slots
	slowSlots       = 16 // admission.concurrency.limit
	slowByteEvery   = 200 * time.Millisecond
	slowRun         = 4 * time.Second
	slowRegs        = 20
	slowRegEvery    = 150 * time.Millisecond
	slowSecret      = "e2e-slow-secret"
	slowBodyTimeout = "1s" // server.body_read_timeout
)

var slowSidecarConfig = fmt.Sprintf(`
server:
  body_read_timeout: %s
admission:
  concurrency: {limit: %d, critical_reserved: 0.25, queue_size: 64, queue_timeout: 500ms}
routes:
  notify:
    webhook_auth: {mode: required}
`, slowBodyTimeout, slowSlots)

// slowSender keeps one slow request open on addr until stop closes: it
// sends the headers and then one body byte every slowByteEvery, and
// starts over on a new connection when the sidecar answers. It counts the
// answers by status code.
func slowSender(addr, path, header string, stop <-chan struct{}, codes *sync.Map) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			time.Sleep(slowByteEvery)
			continue
		}
		_ = c.SetDeadline(time.Now().Add(slowRun + 10*time.Second))
		fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: sidecar\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n%s\r\n{", path, header)
		answered := make(chan struct{})
		go func() {
			defer close(answered)
			line, err := bufio.NewReader(c).ReadString('\n')
			if err != nil {
				return
			}
			var code int
			if _, err := fmt.Sscanf(line, "HTTP/1.1 %d", &code); err == nil {
				n, _ := codes.LoadOrStore(code, new(atomic.Int64))
				n.(*atomic.Int64).Add(1)
			}
		}()
		tick := time.NewTicker(slowByteEvery)
	send:
		for {
			select {
			case <-stop:
				break send
			case <-answered:
				break send
			case <-tick.C:
				if _, err := c.Write([]byte(" ")); err != nil {
					break send
				}
			}
		}
		tick.Stop()
		c.Close()
		<-answered
	}
}

// TestSlowBodyFloodKeepsRegistrationsFlowing: while slow senders occupy
// three times as many connections as there are slots, every signed
// registration succeeds; the slow senders get 408.
func TestSlowBodyFloodKeepsRegistrationsFlowing(t *testing.T) {
	core := harness.StartCore(t, harness.CoreOptions{})
	sidecar := harness.StartSidecar(t, harness.SidecarOptions{UpstreamURL: core.URL, ConfigYAML: slowSidecarConfig,
		Env: []string{"OPSCORE_WEBHOOK_SECRET=" + slowSecret}})
	addr := strings.TrimPrefix(sidecar.URL, "http://")

	stop := make(chan struct{})
	var codes sync.Map
	var wg sync.WaitGroup
	for i := range slowConns {
		// A third each: the state route (bulk), the workflow route
		// (critical), and registrations with a well-formed signature, so
		// the auth layer must read the body to check it.
		var path, header string
		switch i % 3 {
		case 0:
			path = fmt.Sprintf("/v1/opscore/agent/slow-%d/state", i)
		case 1:
			path = fmt.Sprintf("/v1/opscore/agent/slow-%d/workflow", i)
		default:
			path = "/v1/opscore/internal/agent/notify"
			header = fmt.Sprintf("X-AgentKit-Timestamp: %d\r\nX-AgentKit-Signature: %s\r\n", time.Now().Unix(), strings.Repeat("ab", 32))
		}
		wg.Go(func() { slowSender(addr, path, header, stop, &codes) })
	}
	// Let the senders connect and start trickling before registering.
	time.Sleep(2 * slowByteEvery)

	client := &http.Client{Timeout: 10 * time.Second}
	regCodes := map[int]int{}
	start := time.Now()
	for i := range slowRegs {
		id := fmt.Sprintf("slow-reg-%d", i)
		body := registrationBody(id)
		req, _ := http.NewRequest(http.MethodPost, sidecar.URL+"/v1/opscore/internal/agent/notify", bytes.NewReader(body))
		ts, sig := loadgen.Sign(slowSecret, body, time.Now())
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-AgentKit-Timestamp", ts)
		req.Header.Set("X-AgentKit-Signature", sig)
		code := 0
		if resp, err := client.Do(req); err == nil {
			code = resp.StatusCode
			resp.Body.Close()
		}
		regCodes[code]++
		time.Sleep(slowRegEvery)
	}
	if rest := slowRun - time.Since(start); rest > 0 {
		time.Sleep(rest) // keep the flood up past the body deadline
	}
	close(stop)
	wg.Wait()

	if regCodes[http.StatusOK] != slowRegs {
		t.Errorf("signed registrations during the slow-body flood: got status counts %v, want all %d answered 200", regCodes, slowRegs)
	}
	slow := map[int]int64{}
	codes.Range(func(k, v any) bool { slow[k.(int)] = v.(*atomic.Int64).Load(); return true })
	for code := range slow {
		if code != http.StatusRequestTimeout {
			t.Errorf("slow senders: got status counts %v, want only 408", slow)
			break
		}
	}
	if slow[http.StatusRequestTimeout] == 0 {
		t.Errorf("slow senders: got status counts %v, want 408s for bodies past server.body_read_timeout", slow)
	}
	if got := sidecarMetric(t, sidecar, "opscore_sidecar_admission_rejections_total", `mode="enforce"`); got != 0 {
		t.Errorf("admission rejections during the flood: got %v, want 0 (slow bodies hold no slot)", got)
	}
	t.Logf("%d slow senders for %s: slow answers %v; registrations %v", slowConns, slowRun, slow, regCodes)
}
