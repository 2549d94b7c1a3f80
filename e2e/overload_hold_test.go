package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"opscore-sidecar/e2e/harness"
	"opscore-sidecar/e2e/loadgen"
)

// The overload check of docs/resilience.md: with the core healthy but at
// capacity, the notify hold must not raise the load the core sees. The
// core (Redis store) is made slow at capacity: one Redis connection
// (OPSCORE_REDIS_POOL_SIZE=1) behind a toxiproxy that adds 50 ms to every
// Redis answer caps it near 20 registrations a second, and a registration
// that waits more than OPSCORE_REDIS_TIMEOUT for that connection gets 503.
// Its GET /health never touches Redis, so the sidecar's active health
// check keeps seeing it healthy: the worst case for a hold, whose held
// requests could otherwise be released into the overload. The same offered
// registration load (overloadRate a second for overloadLoad) goes through
// a sidecar with its default config (notify holds) and through one with
// SIDECAR_ROUTES_NOTIFY_HOLD_ENABLED=false; the attempts the core counts
// (opscore_http_requests_total{route="notify"}, every status) over the
// same fixed window are compared.
const (
	overloadRate   = 60              // registrations offered per second
	overloadLoad   = 8 * time.Second // how long they are offered
	overloadWindow = 20 * time.Second
	// overloadMaxRatio is how much more the core may see with the hold on
	// than off before the test fails: a hold that released its requests
	// into the overload would multiply the attempts, not add a few.
	overloadMaxRatio = 1.5
)

// overloadRun is what one pass of the offered load saw.
type overloadRun struct {
	label string
	// coreAttempts and coreLoadAttempts are the core's notify requests
	// (every status) over the whole window and during the offered load;
	// core503 its 503 answers over the window.
	coreAttempts, coreLoadAttempts, core503 float64
	// byStatus counts the clients' answers (0: no answer).
	byStatus map[int]int
	// held counts the requests that entered the notify hold (holdResults:
	// how they left it), enqueued those accepted into the outbox with 202,
	// delivered the outbox deliveries within the window.
	held, enqueued, delivered float64
	holdResults               string
	// outcomes counts the sidecar's access-log outcomes of the pass.
	outcomes map[string]int
}

// TestOverloadHoldDoesNotRaiseCoreLoad shows the attempts per second the
// core sees with the notify hold on (the default) and off, for the same
// offered load, and fails when the hold raises them by more than
// overloadMaxRatio, or when either pass sends the core more attempts per
// second than registrations are offered. It also checks that the core
// really was at capacity (it answered 503s) in both passes.
func TestOverloadHoldDoesNotRaiseCoreLoad(t *testing.T) {
	redis := harness.StartRedis(t)
	redisToxi := harness.StartToxi(t, redis.Addr)
	if _, err := redisToxi.Latency(50*time.Millisecond, 0); err != nil {
		t.Fatal(err)
	}
	core := harness.StartCore(t, harness.CoreOptions{
		Storage: "redis", RedisURL: "redis://" + redisToxi.Addr,
		Env: []string{"OPSCORE_REDIS_POOL_SIZE=1", "OPSCORE_REDIS_TIMEOUT=250ms"},
	})

	off := overloadPass(t, core, "hold off", []string{"SIDECAR_ROUTES_NOTIFY_HOLD_ENABLED=false"})
	on := overloadPass(t, core, "hold on (default config)", nil)

	secs := overloadWindow.Seconds()
	for _, r := range []overloadRun{off, on} {
		t.Logf("%s: core saw %.0f notify attempts in %v = %.1f/s (%.1f/s during the %v of offered load, %.0f answered 503); "+
			"clients got %v; sidecar held %.0f (%s), queued %.0f into the outbox, delivered %.0f within the window; access-log outcomes %v",
			r.label, r.coreAttempts, overloadWindow, r.coreAttempts/secs, r.coreLoadAttempts/overloadLoad.Seconds(), overloadLoad, r.core503,
			r.byStatus, r.held, r.holdResults, r.enqueued, r.delivered, r.outcomes)
	}
	// No registration may be lost to the overload: AgentKit sends it once.
	// (A held request gives its concurrency slot back while it waits; when
	// it kept it, 60/s held for 7.5 s filled the gate and later ones got
	// 503 queue_timeout.)
	// (No answer at all, code 0, is reported by overloadPass.)
	for _, r := range []overloadRun{off, on} {
		for code, n := range r.byStatus {
			if code != 0 && code != http.StatusOK && code != http.StatusAccepted && n > 0 {
				t.Errorf("%s: %d registrations answered %d, want every one 200 or 202", r.label, n, code)
			}
		}
	}
	if off.core503 == 0 || on.core503 == 0 {
		t.Errorf("core 503s: got %.0f (hold off) and %.0f (hold on), want > 0 in both: the core was not at capacity", off.core503, on.core503)
	}
	// The sidecar must not multiply the load on a core at capacity: while
	// the registrations are offered, the core sees at most one attempt per
	// offered registration (the breaker opens on its 503s, and a passing
	// health check does not close a breaker opened by answers).
	for _, r := range []overloadRun{off, on} {
		if rate := r.coreLoadAttempts / overloadLoad.Seconds(); rate > overloadRate {
			t.Errorf("%s: the core saw %.1f notify attempts/s during the offered load, more than the %d/s offered", r.label, rate, overloadRate)
		}
	}
	if off.coreAttempts == 0 {
		t.Fatalf("hold off: the core saw no notify attempt")
	}
	ratio := on.coreAttempts / off.coreAttempts
	t.Logf("attempts/s the core sees, hold on / hold off: %.1f / %.1f = %.2f", on.coreAttempts/secs, off.coreAttempts/secs, ratio)
	if ratio > overloadMaxRatio {
		t.Errorf("hold on: the core saw %.0f notify attempts, %.2f times the %.0f with the hold off; want at most %.1f times", on.coreAttempts, ratio, off.coreAttempts, overloadMaxRatio)
	}
}

// overloadPass starts a sidecar (default config plus env) in front of
// core, offers the registration load through it, and returns what the
// core, the clients and the sidecar saw over overloadWindow. The sidecar
// is stopped before it returns, so its outbox adds nothing to the next
// pass.
func overloadPass(t *testing.T, core *harness.Proc, label string, env []string) overloadRun {
	t.Helper()
	side := harness.StartSidecar(t, harness.SidecarOptions{UpstreamURL: core.URL, Env: env})
	defer side.Close()
	notify := func() float64 {
		return scrapeSum(t, core.URL+"/metrics", "opscore_http_requests_total", `route="notify"`)
	}
	notify503 := func() float64 {
		return scrapeSum(t, core.URL+"/metrics", "opscore_http_requests_total", `route="notify"`, `code="503"`)
	}
	admin := side.AdminURL + "/metrics"
	before, before503 := notify(), notify503()
	start := time.Now()

	var mu sync.Mutex
	run := overloadRun{label: label, byStatus: map[int]int{}}
	var wg sync.WaitGroup
	// AgentKit's client: one attempt, 10 s timeout.
	client := &http.Client{Timeout: 10 * time.Second}
	total := int(overloadRate * overloadLoad.Seconds())
	tag := strconv.FormatInt(time.Now().UnixNano(), 36)
	for i := range total {
		due := start.Add(time.Duration(i) * time.Second / overloadRate)
		time.Sleep(time.Until(due))
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := registrationBody(fmt.Sprintf("overload-%s-%d", tag, i))
			status := 0
			resp, err := client.Post(side.URL+"/v1/opscore/internal/agent/notify", "application/json", bytes.NewReader(body))
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				status = resp.StatusCode
			}
			mu.Lock()
			run.byStatus[status]++
			mu.Unlock()
		}()
	}
	run.coreLoadAttempts = notify() - before
	wg.Wait()
	if rest := time.Until(start.Add(overloadWindow)); rest > 0 {
		time.Sleep(rest)
	} else {
		t.Logf("%s: the clients took %v, longer than the %v window", label, time.Since(start), overloadWindow)
	}
	run.coreAttempts = notify() - before
	run.core503 = notify503() - before503
	run.held = scrapeSum(t, admin, "opscore_sidecar_hold_total", `route="notify"`)
	var results []string
	for _, r := range []string{"released", "queued", "timeout", "full", "client_closed"} {
		if n := scrapeSum(t, admin, "opscore_sidecar_hold_total", `route="notify"`, `result="`+r+`"`); n > 0 {
			results = append(results, fmt.Sprintf("%s=%.0f", r, n))
		}
	}
	run.holdResults = strings.Join(results, " ")
	run.enqueued = scrapeSum(t, admin, "opscore_sidecar_outbox_enqueued_total", `route="notify"`)
	run.delivered = scrapeSum(t, admin, "opscore_sidecar_outbox_delivered_total", `route="notify"`)
	if acc, err := loadgen.SummarizeAccessLog(side.LogPath, 0); err == nil {
		run.outcomes = acc.ByOutcome
	} else {
		t.Logf("%s: access log: %v", label, err)
	}
	if got := run.byStatus[0]; got > 0 {
		t.Errorf("%s: %d registrations got no answer from the sidecar within 10 s, want 0", label, got)
	}
	return run
}
