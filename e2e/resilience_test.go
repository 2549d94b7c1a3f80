package e2e

import (
	"bufio"
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

// This file is the end-to-end proof of issue 5 (retries and circuit
// breaking) with the real binaries: connection resets between the sidecar
// and the core are hidden from clients, a restart of the core gives clients
// a success or a clean 503 with Retry-After (never a reset), and an open
// breaker keeps a failing core quiet under load.

const resAPIKey = "resilience-api-key"

// resRegistration is a REGISTER webhook body for agent id.
func resRegistration(id string) []byte {
	return fmt.Appendf(nil, `{"event_type":"REGISTER","agent_details":{"agentId":%q,"agentName":"res","version":"1.0","capabilities":[],"contactEndpoint":"http://127.0.0.1:9/","metadata":{}}}`, id)
}

// resStateBody is a state update body for agent id.
func resStateBody(id string) []byte {
	return fmt.Appendf(nil, `{"agentId":%q,"timestamp":"2026-01-01T00:00:00Z","state":"idle","details":null}`, id)
}

// resReply is what a client saw.
type resReply struct {
	status     int
	attempts   int
	retryAfter string
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
		status: resp.StatusCode, attempts: n, retryAfter: resp.Header.Get("Retry-After"),
		problem: resp.Header.Get("Content-Type") == "application/problem+json",
	}
}

// resMetric sums the samples of a metric on the sidecar's admin /metrics
// whose labels contain every one of the given label pairs (`route="notify"`).
func resMetric(t *testing.T, sidecar *harness.Proc, name string, labels ...string) float64 {
	t.Helper()
	resp, err := http.Get(sidecar.AdminURL + "/metrics")
	if err != nil {
		t.Fatalf("scrape sidecar: %v", err)
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(line, l)
		}
		fields := strings.Fields(line)
		if !ok || len(fields) < 2 {
			continue
		}
		v, err := strconv.ParseFloat(fields[1], 64)
		if err == nil {
			sum += v
		}
	}
	return sum
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
				{"notify", "POST", sc.URL + "/v1/opscore/internal/agent/notify", resRegistration(id), 200},
				{"state update", "POST", statePath, resStateBody(id), 202},
				{"state get", "GET", statePath, nil, 200},
			}
			for round := range rounds {
				for _, s := range steps {
					if round > 0 && s.name == "notify" {
						continue
					}
					r := resSend(client, s.method, s.url, s.body)
					mu.Lock()
					requests++
					if r.attempts > 1 {
						retried++
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
	t.Logf("%d requests through the sidecar, %d needed more than one attempt; sidecar retries by reason: reset %v, closed %v",
		requests, retried, resMetric(t, sc, "opscore_sidecar_retries_total", `reason="reset"`), resMetric(t, sc, "opscore_sidecar_retries_total", `reason="closed"`))
	for _, f := range failures {
		t.Errorf("request failed: %s", f)
	}
	if retried == 0 {
		t.Error("no request needed a retry: the resets did not happen, the test proves nothing")
	}
}

// TestRegistrationSurvivesCoreRestart: the core is killed (SIGKILL) while
// clients register agents through the sidecar, and started again 1.5 s
// later. Every registration either succeeds or gets a clean 503
// problem+json with Retry-After; no client ever sees a reset or another
// transport error. Once the core is back the breaker half-opens and closes
// by itself and registrations succeed again.
func TestRegistrationSurvivesCoreRestart(t *testing.T) {
	core := harness.StartCore(t, harness.CoreOptions{Env: []string{"OPSCORE_API_KEY=" + resAPIKey}})
	sc := harness.StartSidecar(t, harness.SidecarOptions{UpstreamURL: core.URL})

	// Eight clients, each registering a new agent every 20 ms (400/s in
	// all), until told to stop.
	const workers, every = 8, 20 * time.Millisecond
	var phase atomic.Int32 // 0 before the crash, 1 core down, 2 core back
	phases := []string{"before the crash", "core down", "core back"}
	var stop atomic.Bool
	var mu sync.Mutex
	codes := [3]map[int]int{{}, {}, {}}
	var bad []string
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 20 * time.Second}
	for w := range workers {
		wg.Go(func() {
			tick := time.NewTicker(every)
			defer tick.Stop()
			for i := 0; !stop.Load(); i++ {
				<-tick.C
				id := fmt.Sprintf("res-restart-%d-%d", w, i)
				p := phase.Load()
				r := resSend(client, "POST", sc.URL+"/v1/opscore/internal/agent/notify", resRegistration(id))
				mu.Lock()
				codes[p][r.status]++
				switch {
				case r.err != nil:
					bad = append(bad, fmt.Sprintf("%s: transport error %v", id, r.err))
				case r.status == 200:
				case r.status == 503:
					if s, err := strconv.Atoi(r.retryAfter); err != nil || s < 1 || !r.problem {
						bad = append(bad, fmt.Sprintf("%s: 503 with Retry-After %q problem+json %v, want whole seconds >= 1 and problem+json", id, r.retryAfter, r.problem))
					}
				default:
					bad = append(bad, fmt.Sprintf("%s: status %d, want 200 or 503", id, r.status))
				}
				mu.Unlock()
			}
		})
	}
	time.Sleep(500 * time.Millisecond) // traffic flows before the crash
	if err := core.Kill(); err != nil {
		t.Fatal(err)
	}
	phase.Store(1)
	killed := time.Now()
	time.Sleep(1500 * time.Millisecond) // the core is down
	if err := core.Start(); err != nil {
		t.Fatalf("restart core: %v", err)
	}
	phase.Store(2)
	t.Logf("core down for %s", time.Since(killed).Round(time.Millisecond))
	time.Sleep(7 * time.Second) // longer than the breaker's open_timeout (5 s)
	stop.Store(true)
	wg.Wait()

	for i, c := range codes {
		t.Logf("registrations sent %s: %v", phases[i], c)
	}
	for _, b := range bad {
		t.Error(b)
	}
	if codes[0][200] == 0 {
		t.Error("no registration succeeded before the crash")
	}
	// Recovery: the breaker half-opened and closed by itself.
	if r := resSend(client, "POST", sc.URL+"/v1/opscore/internal/agent/notify", resRegistration("res-restart-after")); r.status != 200 {
		t.Errorf("registration after recovery: status %d err %v, want 200", r.status, r.err)
	}
}

// TestOpenBreakerSparesTheCore offers 1,000 registrations a second for 6 s
// to a sidecar whose core is down. Once the breaker is open, requests are
// answered 503 at once and the upstream sees only the half-open probes.
func TestOpenBreakerSparesTheCore(t *testing.T) {
	core := harness.StartCore(t, harness.CoreOptions{Env: []string{"OPSCORE_API_KEY=" + resAPIKey}})
	sc := harness.StartSidecar(t, harness.SidecarOptions{UpstreamURL: core.URL})
	if err := core.Kill(); err != nil {
		t.Fatal(err)
	}
	const rate, total = 1000, 6 * time.Second
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 128}}
	attempts := func() float64 {
		return resMetric(t, sc, "opscore_sidecar_upstream_attempts_total", `route="notify"`)
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
		if openedAt.IsZero() && time.Since(start) > 500*time.Millisecond {
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
				r := resSend(client, "POST", sc.URL+"/v1/opscore/internal/agent/notify", resRegistration(fmt.Sprintf("res-open-%d", n)))
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
	t.Logf("offered %d requests in %s (%.0f/s); statuses %v; upstream attempts: %.0f in the first 500 ms, %.0f in the %s after (%.2f/s)",
		sent.Load(), end.Sub(start).Round(time.Millisecond), float64(sent.Load())/end.Sub(start).Seconds(), got,
		atOpen-before, after-atOpen, open.Round(time.Millisecond), rateOpen)
	if n := transportErrs.Load(); n > 0 {
		t.Errorf("%d transport errors, want 0", n)
	}
	// open_timeout 5s, half_open_requests 3: at most one round of probes
	// per 5 s once the breaker is open.
	if probes := after - atOpen; probes > 3*(float64(open/(5*time.Second))+1) {
		t.Errorf("upstream saw %.0f attempts while the breaker was open for %s, want only half-open probes", probes, open)
	}
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
	if states["notify"] != "open" && states["notify"] != "half_open" {
		t.Errorf("/admin/breakers: notify %q, want open or half_open (all: %v)", states["notify"], states)
	}
}
