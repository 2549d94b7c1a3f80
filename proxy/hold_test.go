package proxy

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"opscore-sidecar/metrics"
	"opscore-sidecar/policy"
	"opscore-sidecar/proxy/config"
	"opscore-sidecar/proxy/proxytest"
)

// flakyCore is an upstream at a fixed loopback address that can be taken
// down (connections refused) and brought back, recording what it got.
type flakyCore struct {
	t    *testing.T
	addr string

	mu   sync.Mutex
	srv  *http.Server
	seen chan string // "METHOD path body" of each non-health request

	// work is how long a non-health request takes; inflight and maxInflight
	// count the ones being served at once.
	work                  time.Duration
	inflight, maxInflight atomic.Int32
}

func newFlakyCore(t *testing.T) *flakyCore {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &flakyCore{t: t, addr: ln.Addr().String(), seen: make(chan string, 1024)}
	ln.Close() // down until up()
	t.Cleanup(c.down)
	return c
}

func (c *flakyCore) url() string { return "http://" + c.addr }

// up starts serving on the core's address: /health answers 200, every
// other request 200 with its body echoed.
func (c *flakyCore) up() {
	c.t.Helper()
	var ln net.Listener
	var err error
	for range 50 { // the port was ours a moment ago; retry briefly if the OS holds it
		if ln, err = net.Listen("tcp", c.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		c.t.Fatalf("core up: %v", err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			w.WriteHeader(http.StatusOK)
			return
		}
		n := c.inflight.Add(1)
		defer c.inflight.Add(-1)
		for m := c.maxInflight.Load(); n > m && !c.maxInflight.CompareAndSwap(m, n); m = c.maxInflight.Load() {
		}
		time.Sleep(c.work)
		b, _ := io.ReadAll(r.Body)
		rec := r.Method + " " + r.URL.Path + " " + string(b)
		c.seen <- rec
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	})}
	c.mu.Lock()
	c.srv = srv
	c.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

// down closes the listener and every connection: from now on refused.
func (c *flakyCore) down() {
	c.mu.Lock()
	srv := c.srv
	c.srv = nil
	c.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

// next waits for the next non-health request the core gets.
func (c *flakyCore) next(t *testing.T) string {
	t.Helper()
	select {
	case r := <-c.seen:
		return r
	case <-time.After(20 * time.Second):
		t.Fatal("the core got no request within 20s")
		return ""
	}
}

const registration = `{"event_type":"REGISTER","agent_details":{"agentId":"%s","agentName":"a","version":"1","capabilities":[],"contactEndpoint":"http://127.0.0.1:9","metadata":{}}}`

func register(id string) string { return strings.Replace(registration, "%s", id, 1) }

// holdConfig is the default config in front of core, with the deadline of
// notify shortened so a test of the outbox path ends quickly.
func holdConfig(core string, notifyDeadline time.Duration) *config.Config {
	cfg := config.Defaults()
	cfg.Upstream.URL = core
	cfg.Listen, cfg.Admin.Listen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Server.DrainDelay = 0
	route(cfg, config.RouteNotify, func(rc *config.RouteConfig) {
		rc.Retry.Deadline = notifyDeadline
		rc.Retry.PerTryTimeout = min(rc.Retry.PerTryTimeout, notifyDeadline)
	})
	return cfg
}

// TestRegistrationSurvivesCoreRestart: with the default config, a
// registration sent while the core is down is held, and forwarded as soon
// as the health check sees the core back: the caller gets the core's 200.
func TestRegistrationSurvivesCoreRestart(t *testing.T) {
	core := newFlakyCore(t)
	env := startSidecar(t, holdConfig(core.url(), config.NotifyDeadline))
	done := make(chan *http.Response, 1)
	go func() {
		resp, _ := do(t, newRequest(t, "POST", env.url+pathNotify, strings.NewReader(register("held-1"))))
		done <- resp
	}()
	waitGauge(t, env, `opscore_sidecar_held_requests{route="notify"} 1`)
	core.up()
	resp := <-done
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("held registration: got %d, want the core's 200", resp.StatusCode)
	}
	if got := core.next(t); !strings.Contains(got, "held-1") {
		t.Fatalf("core got %q, want the registration", got)
	}
	if got := counter(t, env.srv.Metrics.Holds.WithLabelValues(config.RouteNotify, metrics.HoldReleased)); got != 1 {
		t.Errorf("hold_total{released} = %v, want 1", got)
	}
}

// TestRegistrationQueuedWhenCoreStaysDown: past the hold the registration
// is accepted into the outbox (202 naming the queued id); a state update of
// the same agent is queued behind it instead of overtaking it; both are
// delivered, in order, when the core is back.
func TestRegistrationQueuedWhenCoreStaysDown(t *testing.T) {
	core := newFlakyCore(t)
	env := startSidecar(t, holdConfig(core.url(), 1500*time.Millisecond))

	resp, body := do(t, newRequest(t, "POST", env.url+pathNotify, strings.NewReader(register("q-1"))))
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("registration with the core down: got %d %s, want 202", resp.StatusCode, body)
	}
	var p struct {
		Type     string `json:"type"`
		QueuedID string `json:"queued_id"`
	}
	if err := json.Unmarshal([]byte(body), &p); err != nil || p.QueuedID == "" || resp.Header.Get(HeaderQueuedID) != p.QueuedID {
		t.Fatalf("202 body %s header %q: want a queued_id in both", body, resp.Header.Get(HeaderQueuedID))
	}
	if p.Type != ProblemTypeBase+"queued" {
		t.Errorf("type %q, want %q", p.Type, ProblemTypeBase+"queued")
	}

	// The state update would 404 if it reached the core first.
	resp, body = do(t, newRequest(t, "POST", env.url+"/v1/opscore/agent/q-1/state", strings.NewReader(`{"state":"idle"}`)))
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("state update behind a queued registration: got %d %s, want 202", resp.StatusCode, body)
	}
	// Another agent's read fails fast: bulk routes do not hold.
	resp, _ = do(t, newRequest(t, "GET", env.url+"/v1/opscore/agent/other/state", nil))
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("state read with the core down: got %d, want 503", resp.StatusCode)
	}

	core.up()
	first, second := core.next(t), core.next(t)
	if !strings.HasPrefix(first, "POST /v1/opscore/internal/agent/notify") || !strings.Contains(first, "q-1") {
		t.Errorf("first delivery %q, want the registration", first)
	}
	if !strings.HasPrefix(second, "POST /v1/opscore/agent/q-1/state") {
		t.Errorf("second delivery %q, want the state update", second)
	}
	waitGauge(t, env, `opscore_sidecar_outbox_delivered_total{route="state_update"} 1`)
	if got := counter(t, env.srv.Metrics.OutboxEnqueued.WithLabelValues(config.RouteNotify)); got != 1 {
		t.Errorf("outbox_enqueued_total{notify} = %v, want 1", got)
	}
	// Nothing queued any more: the next state update goes straight through.
	resp, _ = do(t, newRequest(t, "POST", env.url+"/v1/opscore/agent/q-1/state", strings.NewReader(`{"state":"busy"}`)))
	if resp.StatusCode != http.StatusOK {
		t.Errorf("state update after delivery: got %d, want 200", resp.StatusCode)
	}
}

// TestBreakerClosedByHealthCheckNotOpenTimeout: a bulk route's breaker,
// opened by the core being down, closes as soon as the health check
// passes, although its open_timeout is an hour.
func TestBreakerClosedByHealthCheckNotOpenTimeout(t *testing.T) {
	core := newFlakyCore(t)
	cfg := holdConfig(core.url(), config.NotifyDeadline)
	readsTripAtOnce(cfg)
	env := startSidecar(t, cfg)
	br := openStateGetBreaker(t, env)
	core.up()
	waitGauge(t, env, `opscore_sidecar_upstream_healthy 1`)
	if br.State().String() != "closed" {
		t.Fatalf("after a passing health check: breaker %s, want closed (probes ok %v fail %v)", br.State(),
			counter(t, env.srv.Metrics.HealthProbes.WithLabelValues("ok")), counter(t, env.srv.Metrics.HealthProbes.WithLabelValues("fail")))
	}
	resp, _ := do(t, newRequest(t, "GET", env.url+"/v1/opscore/agent/a/state", nil))
	if resp.StatusCode != http.StatusOK {
		t.Errorf("read after recovery: got %d, want 200", resp.StatusCode)
	}
}

// waitGauge polls the admin /metrics until it shows line (a whole sample
// line as the text exposition writes it), for up to 20s.
func waitGauge(t *testing.T, env *testEnv, line string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(env.admin + "/metrics")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains("\n"+string(b), "\n"+line+"\n") {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("metrics never showed %q", line)
}

// TestAdminOutboxListsAndRetriesDeadLetters: a queued registration that
// the core refuses with a 4xx becomes a dead letter, /admin/outbox shows
// it, and POST .../retry queues it again for delivery.
func TestAdminOutboxListsAndRetriesDeadLetters(t *testing.T) {
	got := make(chan string, 16)
	core := newFlakyCore(t)
	env := startSidecar(t, holdConfig(core.url(), 1500*time.Millisecond))
	resp, body := do(t, newRequest(t, "POST", env.url+pathNotify, strings.NewReader(register("dead-1"))))
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("registration with the core down: got %d %s, want 202", resp.StatusCode, body)
	}
	id := resp.Header.Get(HeaderQueuedID)

	// The core comes back but refuses the registration.
	ln, err := net.Listen("tcp", core.addr)
	if err != nil {
		t.Fatal(err)
	}
	refusing := true
	var mu sync.Mutex
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			return
		}
		got <- r.Header.Get(HeaderOutboxID)
		mu.Lock()
		defer mu.Unlock()
		if refusing {
			http.Error(w, `{"detail":"bad"}`, http.StatusUnprocessableEntity)
		}
	})}
	go srv.Serve(ln)
	defer srv.Close()
	if h := <-got; h != id {
		t.Fatalf("delivery carried %s %q, want the queued id %q", HeaderOutboxID, h, id)
	}
	waitGauge(t, env, `opscore_sidecar_outbox_dead_letters_total{route="notify"} 1`)

	var view struct {
		Depth int `json:"depth"`
		Dead  []struct {
			ID         string `json:"id"`
			DeadReason string `json:"dead_reason"`
			AgentID    string `json:"agent_id"`
		} `json:"dead"`
	}
	r, b := do(t, newRequest(t, "GET", env.admin+"/admin/outbox", nil))
	if err := json.Unmarshal([]byte(b), &view); err != nil || r.StatusCode != 200 || view.Depth != 0 || len(view.Dead) != 1 || view.Dead[0].AgentID != "dead-1" {
		t.Fatalf("/admin/outbox: %d %s, want depth 0 and the one dead letter of dead-1", r.StatusCode, b)
	}
	if strings.Contains(b, "agentName") {
		t.Errorf("/admin/outbox shows a body: %s", b)
	}
	mu.Lock()
	refusing = false
	mu.Unlock()
	r, b = do(t, newRequest(t, "POST", env.admin+"/admin/outbox/dead/"+view.Dead[0].ID+"/retry", nil))
	if r.StatusCode != http.StatusOK {
		t.Fatalf("retry: %d %s, want 200", r.StatusCode, b)
	}
	<-got // delivered again, now accepted
	waitGauge(t, env, `opscore_sidecar_outbox_delivered_total{route="notify"} 1`)
	r, _ = do(t, newRequest(t, "POST", env.admin+"/admin/outbox/dead/nope/retry", nil))
	if r.StatusCode != http.StatusNotFound {
		t.Errorf("retry of an unknown id: got %d, want 404", r.StatusCode)
	}
}

func TestAgentOf(t *testing.T) {
	tests := []struct {
		route, pathAgent, body, want string
	}{
		{config.RouteStateUpdate, "a1", `{"state":"x"}`, "a1"},
		{config.RouteNotify, "", register("n1"), "n1"},
		{config.RouteNotify, "", `{"event_type":"DEREGISTER","agent_details":{"agentId":"n2"}}`, "n2"},
		{config.RouteNotify, "", `not json`, ""},
		{config.RouteNotify, "", ``, ""},
	}
	for _, tt := range tests {
		info := &RequestInfo{Route: tt.route, AgentID: tt.pathAgent}
		if got := agentOf(info, []byte(tt.body)); got != tt.want {
			t.Errorf("agentOf(%s, %q) = %q, want %q", tt.route, tt.body, got, tt.want)
		}
	}
}

// TestHeldRequestsDoNotKeepGateSlots: with a gate of 2 slots, 6
// registrations sent while the core is down are all held (a held request
// gives its slot back), and all get the core's 200 once it is back; the
// core never has more than 2 of them in flight (each takes 20 ms there, so
// released requests that skipped the gate would overlap).
func TestHeldRequestsDoNotKeepGateSlots(t *testing.T) {
	core := newFlakyCore(t)
	core.work = 20 * time.Millisecond
	cfg := holdConfig(core.url(), config.NotifyDeadline)
	cfg.Admission.Concurrency.Limit = 2
	cfg.Admission.Concurrency.CriticalReserved = 0
	env := startSidecar(t, cfg)
	codes := make(chan int, 6)
	for i := range 6 {
		go func() {
			resp, _ := do(t, newRequest(t, "POST", env.url+pathNotify, strings.NewReader(register("gate-"+string(rune('a'+i))))))
			codes <- resp.StatusCode
		}()
	}
	waitGauge(t, env, `opscore_sidecar_held_requests{route="notify"} 6`)
	core.up()
	for range 6 {
		if c := <-codes; c != http.StatusOK {
			t.Errorf("held registration: got %d, want 200", c)
		}
	}
	if m := core.maxInflight.Load(); m > 2 {
		t.Errorf("the core had %d registrations in flight at once, want at most the gate's 2", m)
	}
}

// TestDisabledHealthCheckClosesNoBreaker: with health_check.enabled false
// nothing probes the core, so nothing may claim it is back: a breaker the
// outage opened stays open (its open_timeout is an hour here) while the
// core is still down, through the blind retries of the holds.
func TestDisabledHealthCheckClosesNoBreaker(t *testing.T) {
	core := newFlakyCore(t)
	cfg := holdConfig(core.url(), config.NotifyDeadline)
	cfg.HealthCheck.Enabled = false
	readsTripAtOnce(cfg)
	env := startSidecar(t, cfg)
	br := openStateGetBreaker(t, env)
	for range 3 {
		time.Sleep(cfg.HealthCheck.Interval) // blind retries come and go
		if resp, _ := do(t, newRequest(t, "GET", env.url+"/v1/opscore/agent/a/state", nil)); resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("read with the core down: got %d, want 503", resp.StatusCode)
		}
	}
	if br.State() != policy.BreakerOpen {
		t.Errorf("breaker %s with the core still down and no health check, want open", br.State())
	}
	if got := counter(t, env.srv.Metrics.HealthProbes.WithLabelValues("ok")) + counter(t, env.srv.Metrics.HealthProbes.WithLabelValues("fail")); got != 0 {
		t.Errorf("health probes sent with health_check.enabled false: %v, want 0", got)
	}
}

// TestOneClosedConnectionDoesNotHoldRegistrations: a single connection the
// core closes (the keep-alive race) starts the health check but is not an
// outage: a registration right after it is sent at once, not held until a
// probe passes.
func TestOneClosedConnectionDoesNotHoldRegistrations(t *testing.T) {
	up := proxytest.New(t, proxytest.Close(), proxytest.OK())
	cfg := holdConfig(up.URL, config.NotifyDeadline)
	cfg.HealthCheck.Interval = time.Minute // no scheduled probe during the test
	env := startSidecar(t, cfg)
	if resp, _ := do(t, newRequest(t, "GET", env.url+"/v1/opscore/agent/a/state", nil)); resp.StatusCode != http.StatusOK {
		t.Fatalf("state read after a closed connection: got %d, want 200 (retried)", resp.StatusCode)
	}
	resp, _ := do(t, newRequest(t, "POST", env.url+pathNotify, strings.NewReader(register("blip-1"))))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("registration: got %d, want 200", resp.StatusCode)
	}
	if got := counter(t, env.srv.Metrics.Holds.WithLabelValues(config.RouteNotify, metrics.HoldReleased)); got != 0 {
		t.Errorf("hold_total{released} = %v after one closed connection, want 0 (not held)", got)
	}
}

// TestFirstReadAfterRecoveryIsForwarded: a state read that finds its
// breaker open (the core was unreachable) right after the core came back
// is forwarded, not refused: it asks for a fresh probe instead of waiting
// for the next scheduled one (a minute away here).
func TestFirstReadAfterRecoveryIsForwarded(t *testing.T) {
	core := newFlakyCore(t)
	cfg := holdConfig(core.url(), config.NotifyDeadline)
	cfg.HealthCheck.Interval = time.Minute
	readsTripAtOnce(cfg)
	env := startSidecar(t, cfg)
	br := openStateGetBreaker(t, env)
	resp, _ := do(t, newRequest(t, "GET", env.url+"/v1/opscore/agent/a/state", nil))
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("read with the core still down: got %d, want 503", resp.StatusCode)
	}
	core.up()
	resp, _ = do(t, newRequest(t, "GET", env.url+"/v1/opscore/agent/a/state", nil))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("first read after the core came back: got %d, want 200", resp.StatusCode)
	}
	if br.State().String() != "closed" {
		t.Errorf("breaker %s after the read's probe passed, want closed", br.State())
	}
}

// readsTripAtOnce makes state_get's breaker open at its fifth refused read
// (no retries, no time rule) and stay open an hour unless something closes it.
func readsTripAtOnce(cfg *config.Config) {
	route(cfg, config.RouteStateGet, func(rc *config.RouteConfig) {
		rc.Breaker.OpenTimeout = time.Hour
		rc.Breaker.MinFailingTime = 0
		rc.Retry.Attempts = 1
	})
}

// openStateGetBreaker sends state reads to env's down core until the
// state_get breaker opens, and returns it.
func openStateGetBreaker(t *testing.T, env *testEnv) *policy.Breaker {
	t.Helper()
	br := env.srv.Sidecar.Snapshot().Runtime[config.RouteStateGet].Breaker
	for i := 0; br.State() != policy.BreakerOpen; i++ {
		if i == 20 {
			t.Fatalf("breaker %s after 20 refused reads, want open", br.State())
		}
		do(t, newRequest(t, "GET", env.url+"/v1/opscore/agent/a/state", nil))
	}
	return br
}
