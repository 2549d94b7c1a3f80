package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"opscore-sidecar/e2e/harness"
)

// Retries, holds and circuit breaking end to end, with the real binaries
// and the default config: connection resets between the sidecar and the
// core are hidden from clients, registrations ride out a restart of the
// core, and an open breaker keeps a failing core quiet under load.

const resAPIKey = "resilience-api-key"

// resReply is what a client saw.
type resReply struct {
	status     int
	attempts   int
	retryAfter string
	queuedID   string
	problem    bool
	err        error
}

func resSend(c *http.Client, method, url string, body []byte) resReply {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return resReply{err: err}
	}
	req.Header.Set("Authorization", "Bearer "+resAPIKey)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		return resReply{err: err}
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	n, _ := strconv.Atoi(resp.Header.Get("X-Sidecar-Attempts"))
	return resReply{
		status: resp.StatusCode, attempts: n, retryAfter: resp.Header.Get("Retry-After"), queuedID: resp.Header.Get("X-Sidecar-Queued-Id"),
		problem: resp.Header.Get("Content-Type") == "application/problem+json",
	}
}

// TestRequestsSurviveConnectionResets: toxiproxy resets 30 % of the
// connections between the sidecar and the core (each as soon as the first
// request is written on it). Every notify and state request sent through
// the sidecar succeeds, with the default retry and breaker settings. The
// sidecar keeps at most two idle upstream connections, so eight concurrent
// clients make it open new connections all along and the resets keep
// coming instead of stopping once a healthy pool is warm.
func TestRequestsSurviveConnectionResets(t *testing.T) {
	core := harness.StartCore(t, harness.CoreOptions{Env: []string{"OPSCORE_API_KEY=" + resAPIKey}})
	toxi := harness.StartToxi(t, strings.TrimPrefix(core.URL, "http://"))
	sc := harness.StartSidecar(t, harness.SidecarOptions{UpstreamURL: toxi.URL, ConfigYAML: "upstream: {max_idle_conns: 2}\n"})
	if _, err := toxi.ResetPeer(0.3); err != nil {
		t.Fatal(err)
	}

	const workers, rounds = 8, 15
	client := &http.Client{Timeout: 20 * time.Second}
	var mu sync.Mutex
	var failures []string
	var requests, retried int
	retriedBy := map[string]int{}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			id := fmt.Sprintf("res-reset-%d-%d", w, time.Now().UnixNano())
			statePath := sc.URL + "/v1/opscore/agent/" + id + "/state"
			steps := []struct {
				name, method, url string
				body              []byte
				want              int
			}{
				{"notify", "POST", sc.URL + "/v1/opscore/internal/agent/notify", registrationBody(id), 200},
				{"state update", "POST", statePath, stateBody(id), 202},
				{"state get", "GET", statePath, nil, 200},
			}
			for range rounds {
				for _, s := range steps {
					// Registration is re-sent every round (it is
					// idempotent), so notify meets the resets as often
					// as the state routes do.
					r := resSend(client, s.method, s.url, s.body)
					mu.Lock()
					requests++
					if r.attempts > 1 {
						retried++
						retriedBy[s.name]++
					}
					if r.err != nil || r.status != s.want {
						failures = append(failures, fmt.Sprintf("%s %s: status %d err %v after %d attempts", s.name, id, r.status, r.err, r.attempts))
					}
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	t.Logf("%d requests through the sidecar, %d needed more than one attempt (%v); sidecar retries by reason: reset %v, closed %v",
		requests, retried, retriedBy, sidecarMetric(t, sc, "opscore_sidecar_retries_total", `reason="reset"`), sidecarMetric(t, sc, "opscore_sidecar_retries_total", `reason="closed"`))
	for _, f := range failures {
		t.Errorf("request failed: %s", f)
	}
	if retried == 0 {
		t.Error("no request needed a retry: the resets did not happen, the test proves nothing")
	}
}

// restartRun is what registering clients saw while the core was killed
// and started again: status counts per phase (before the crash, core down,
// core back) and every answer that was not a success.
type restartRun struct {
	codes [3]map[int]int
	bad   []string
}

var restartPhases = [3]string{"before the crash", "core down", "core back"}

// runCoreRestart starts a core and a sidecar with the default config,
// registers rate new agents a second through the sidecar, kills the core
// (SIGKILL) after 500 ms, starts it again after down, and keeps the
// clients going for after more. Success is 200, or 202 from the outbox
// with its queued id; a transport error or any other status is recorded as
// bad. A last registration after recovery must succeed with 200.
func runCoreRestart(t *testing.T, rate int, down, after time.Duration) restartRun {
	t.Helper()
	core := harness.StartCore(t, harness.CoreOptions{Env: []string{"OPSCORE_API_KEY=" + resAPIKey}})
	sc := harness.StartSidecar(t, harness.SidecarOptions{UpstreamURL: core.URL})

	var phase atomic.Int32 // index into restartPhases
	var mu sync.Mutex
	run := restartRun{codes: [3]map[int]int{{}, {}, {}}}
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 20 * time.Second}
	send := func(id string) {
		p := phase.Load()
		r := resSend(client, "POST", sc.URL+"/v1/opscore/internal/agent/notify", registrationBody(id))
		mu.Lock()
		defer mu.Unlock()
		run.codes[p][r.status]++
		switch {
		case r.err != nil:
			run.bad = append(run.bad, fmt.Sprintf("%s: transport error %v", id, r.err))
		case r.status == 200:
		case r.status == 202 && r.queuedID != "" && r.problem:
		default:
			run.bad = append(run.bad, fmt.Sprintf("%s (sent %s): status %d (queued id %q), want 200 or 202 with a queued id", id, restartPhases[p], r.status, r.queuedID))
		}
	}
	// Open loop, as AgentKit sends webhooks: each registration on its own,
	// whether or not the earlier ones have been answered.
	done := make(chan struct{})
	wg.Go(func() {
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			wg.Go(func() { send(fmt.Sprintf("res-restart-%d", i)) })
		}
	})
	time.Sleep(500 * time.Millisecond) // traffic flows before the crash
	if err := core.Kill(); err != nil {
		t.Fatal(err)
	}
	phase.Store(1)
	killed := time.Now()
	time.Sleep(down)
	if err := core.Start(); err != nil {
		t.Fatalf("restart core: %v", err)
	}
	phase.Store(2)
	t.Logf("core down for %s", time.Since(killed).Round(time.Millisecond))
	time.Sleep(after)
	close(done)
	wg.Wait()
	for i, c := range run.codes {
		t.Logf("registrations sent %s: %v", restartPhases[i], c)
	}
	t.Logf("hold: %.0f released, %.0f queued; breaker transitions closed->open: %.0f",
		sidecarMetric(t, sc, "opscore_sidecar_hold_total", `route="notify"`, `result="released"`),
		sidecarMetric(t, sc, "opscore_sidecar_hold_total", `route="notify"`, `result="queued"`),
		sidecarMetric(t, sc, "opscore_sidecar_breaker_transitions_total", `route="notify"`, `to="open"`))
	if r := resSend(client, "POST", sc.URL+"/v1/opscore/internal/agent/notify", registrationBody("res-restart-after")); r.status != 200 {
		t.Errorf("registration after recovery: status %d err %v, want 200", r.status, r.err)
	}
	return run
}

// TestRegistrationSurvivesCoreRestart: with the default config, the core
// is killed while clients register agents through the sidecar at 400 a
// second (twenty times AgentKit's rate in the seed's runs), and started
// again 1.5 s later. Every registration succeeds: those sent while the
// core is down are held and forwarded once the health check sees it back.
// No client ever sees a reset, another transport error or a 503.
func TestRegistrationSurvivesCoreRestart(t *testing.T) {
	run := runCoreRestart(t, 400, 1500*time.Millisecond, 3*time.Second)
	for _, b := range run.bad {
		t.Error(b)
	}
	if run.codes[0][200] == 0 || run.codes[1][200]+run.codes[1][202] == 0 {
		t.Errorf("statuses %v: want registrations before the crash and while the core was down", run.codes)
	}
}

// TestOpenBreakerSparesTheCore offers 1,000 state reads a second for 6 s
// to a sidecar whose core is down (state reads fail fast; registrations are
// held instead, see TestRegistrationSurvivesCoreRestart). Once the breaker
// is open (after a second of failures, breaker.min_failing_time), reads are
// answered 503 at once and the core's port gets no attempts beyond the
// breaker's half-open probes (at most half_open_requests per open_timeout):
// the breaker stays open while the health check's probes fail.
func TestOpenBreakerSparesTheCore(t *testing.T) {
	core := harness.StartCore(t, harness.CoreOptions{Env: []string{"OPSCORE_API_KEY=" + resAPIKey}})
	sc := harness.StartSidecar(t, harness.SidecarOptions{UpstreamURL: core.URL})
	if err := core.Kill(); err != nil {
		t.Fatal(err)
	}
	const rate, total = 1000, 6 * time.Second
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 128}}
	attempts := func() float64 {
		return sidecarMetric(t, sc, "opscore_sidecar_upstream_attempts_total", `route="state_get"`)
	}
	before := attempts()
	var sent, transportErrs atomic.Int64
	codes := sync.Map{}
	// Every 10 ms a batch of rate/100 requests, at most 128 in flight: the
	// offered load is paced, not unbounded.
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	sem := make(chan struct{}, 128)
	var wg sync.WaitGroup
	start := time.Now()
	var openedAt time.Time
	var atOpen float64
	for time.Since(start) < total {
		<-tick.C
		if openedAt.IsZero() && time.Since(start) > 1500*time.Millisecond {
			openedAt, atOpen = time.Now(), attempts()
		}
		for range rate / 100 {
			select {
			case sem <- struct{}{}:
			default:
				continue // the client is saturated; this request is not offered
			}
			n := sent.Add(1)
			wg.Go(func() {
				defer func() { <-sem }()
				r := resSend(client, "GET", sc.URL+fmt.Sprintf("/v1/opscore/agent/res-open-%d/state", n), nil)
				if r.err != nil {
					transportErrs.Add(1)
					return
				}
				v, _ := codes.LoadOrStore(r.status, new(atomic.Int64))
				v.(*atomic.Int64).Add(1)
			})
		}
	}
	wg.Wait()
	end := time.Now()
	after := attempts()
	open := end.Sub(openedAt)
	rateOpen := (after - atOpen) / open.Seconds()
	got := map[int]int64{}
	codes.Range(func(k, v any) bool { got[k.(int)] = v.(*atomic.Int64).Load(); return true })
	t.Logf("offered %d requests in %s (%.0f/s); statuses %v; upstream attempts: %.0f in the first 1.5 s, %.0f in the %s after (%.2f/s)",
		sent.Load(), end.Sub(start).Round(time.Millisecond), float64(sent.Load())/end.Sub(start).Seconds(), got,
		atOpen-before, after-atOpen, open.Round(time.Millisecond), rateOpen)
	if n := transportErrs.Load(); n > 0 {
		t.Errorf("%d transport errors, want 0", n)
	}
	// open_timeout 5s, half_open_requests 3: at most one round of probes
	// per 5 s once the breaker is open (the health check's probes are not
	// attempts and are counted apart).
	if probes := after - atOpen; probes > 3*(float64(open/(5*time.Second))+1) {
		t.Errorf("upstream saw %.0f attempts while the breaker was open for %s, want only half-open probes", probes, open)
	}
	t.Logf("health probes while the core was down: %.0f failed",
		sidecarMetric(t, sc, "opscore_sidecar_health_probes_total", `result="fail"`))
	if got[503] == 0 {
		t.Errorf("no 503 among %v", got)
	}

	// The admin server lists the breaker as open.
	resp, err := http.Get(sc.AdminURL + "/admin/breakers")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list struct {
		Breakers []struct {
			Route, State string
		} `json:"breakers"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatalf("/admin/breakers: %v", err)
	}
	states := map[string]string{}
	for _, b := range list.Breakers {
		states[b.Route] = b.State
	}
	if states["state_get"] != "open" && states["state_get"] != "half_open" {
		t.Errorf("/admin/breakers: state_get %q, want open or half_open (all: %v)", states["state_get"], states)
	}
}
