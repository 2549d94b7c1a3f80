package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"opscore-sidecar/e2e/harness"
)

// admReloadConfig is the reload run's config: limit concurrency slots,
// half reserved for critical, and a state-route bucket of burst. The run
// starts with (2, 3), which lets one state update in flight and gives the
// state route a bucket of 3, and reloads (6, 50): 3 bulk slots and a
// bucket of 50. The refill rate is so low that the bucket gains no whole
// token during the test.
func admReloadConfig(limit, burst int) string {
	return fmt.Sprintf(`
admission:
  concurrency: {limit: %d, critical_reserved: 0.5, queue_size: 8, queue_timeout: 60s}
upstream: {response_header_timeout: 60s}
reload: {debounce: 50ms}
routes:
  state_update:
    rate_limit: {rps: 0.001, burst: %d}
    retry: {attempts: 1, per_try_timeout: 60s, deadline: 60s}
  state_get:
    rate_limit: {rps: 0.001, burst: 1, mode: shadow}
    retry: {attempts: 1}
log: {access: true}
`, limit, burst)
}

// admReloadWait bounds every wait of the reload run.
const admReloadWait = 20 * time.Second

// admEventually polls cond (an observation of another process) until it
// holds or admReloadWait passes.
func admEventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(admReloadWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not seen within %s", what, admReloadWait)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestReloadKeepsBucketsAndQueuedRequests changes the admission limits
// through the config file of a running sidecar, with state updates waiting
// in the queue and the state route's bucket empty: the reload admits the
// waiters to the raised slots at once (none is dropped or refused), the
// bucket stays empty although it grew, and shadow mode on another route
// forwards what it would refuse while counting and logging it.
func TestReloadKeepsBucketsAndQueuedRequests(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan string, 16)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if strings.HasPrefix(r.URL.Path, "/v1/opscore/agent/q") {
			arrived <- r.URL.Path
			<-release
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	openUpstream := sync.OnceFunc(func() { close(release) })
	t.Cleanup(func() { openUpstream(); upstream.Close() })

	sidecar, cfgPath := startSidecarWithConfigFile(t, harness.SidecarOptions{UpstreamURL: upstream.URL}, admReloadConfig(2, 3))
	client := &http.Client{Timeout: admReloadWait}
	defer client.CloseIdleConnections()
	state := func(agent string) *http.Request {
		req, _ := http.NewRequest(http.MethodPost, sidecar.URL+"/v1/opscore/agent/"+agent+"/state", strings.NewReader(`{"state":"idle"}`))
		req.Header.Set("Content-Type", "application/json")
		return req
	}

	// Shadow mode: both reads are forwarded; the second is counted and logged.
	for i := range 2 {
		resp, err := client.Get(sidecar.URL + "/v1/opscore/agent/a1/state")
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("state read %d under a shadow bucket: got %d, want the upstream's 202", i, resp.StatusCode)
		}
	}
	if got := sidecarMetric(t, sidecar, "opscore_sidecar_admission_rejections_total", `route="state_get"`, `reason="route_rate"`, `mode="shadow"`); got != 1 {
		t.Errorf("shadow rejections of state_get: got %v, want 1", got)
	}
	admEventually(t, "access log line listing the shadow refusal", func() bool {
		b, _ := os.ReadFile(sidecar.LogPath)
		return strings.Contains(string(b), `"shadow":["admission:route_rate"]`)
	})

	// One state update holds the only bulk slot, two wait in the queue
	// (the upstream holds the requests of agents q*).
	codes := make(chan int, 3)
	for i := range 3 {
		go func() {
			resp, err := client.Do(state("q" + strconv.Itoa(i)))
			if err != nil {
				codes <- 0
				return
			}
			_ = resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	<-arrived
	admEventually(t, "two bulk requests queued", func() bool {
		return sidecarMetric(t, sidecar, "opscore_sidecar_queue_depth", `class="bulk"`) == 2
	})

	// The bucket of 3 is empty now: a fourth update is refused.
	resp, err := client.Do(state("r1"))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("fourth update: got %d Retry-After %q, want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}

	// Reload: the editor's way, a new file renamed over the old one. The
	// start-up load already counts as one success.
	loads := sidecarMetric(t, sidecar, "opscore_sidecar_config_reloads_total", `result="success"`)
	tmp := cfgPath + ".tmp"
	if err := os.WriteFile(tmp, []byte(admReloadConfig(6, 50)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, cfgPath); err != nil {
		t.Fatal(err)
	}
	admEventually(t, "config_reloads_total{result=success}", func() bool {
		return sidecarMetric(t, sidecar, "opscore_sidecar_config_reloads_total", `result="success"`) == loads+1
	})
	if got := sidecarMetric(t, sidecar, "opscore_sidecar_concurrency_limit", `class="bulk"`); got != 3 {
		t.Errorf("concurrency_limit{bulk} after reload: got %v, want 3", got)
	}

	// The raised limit admits both waiters at once, while the first still holds its slot.
	for i := range 2 {
		select {
		case <-arrived:
		case <-time.After(admReloadWait):
			t.Fatalf("queued update %d: not forwarded within %s of the reload", i, admReloadWait)
		}
	}
	if got := sidecarMetric(t, sidecar, "opscore_sidecar_queue_depth", `class="bulk"`); got != 0 {
		t.Errorf("queue_depth{bulk} after reload: got %v, want 0", got)
	}

	// The bucket grew from 3 to 50 but was not refilled.
	resp, err = client.Do(state("r2"))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("update after the reload: got %d, want 429 (the reload must not refill the bucket)", resp.StatusCode)
	}
	if got := resp.Header.Get("RateLimit-Policy"); got != `"default";q=50;w=50000` {
		t.Errorf("RateLimit-Policy after the reload: got %q, want the new size 50", got)
	}

	openUpstream()
	for range 3 {
		if code := <-codes; code != http.StatusAccepted {
			t.Errorf("held or queued update: got %d, want 202 (no request dropped by the reload)", code)
		}
	}
	if got := sidecarMetric(t, sidecar, "opscore_sidecar_admission_rejections_total", `route="state_update"`, `mode="enforce"`); got != 2 {
		t.Errorf("enforced rejections of state_update: got %v, want 2 (the two 429s)", got)
	}
}
