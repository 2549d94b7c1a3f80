package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"opscore-sidecar/e2e/harness"
	"opscore-sidecar/e2e/loadgen"
)

// Zero lost registrations through a core restart or a long outage, with
// the sidecar's DEFAULT configuration (no config file): notify holds a
// request while the core is unreachable (proxy/hold.go), the active health
// check lets traffic through as soon as the core answers again
// (proxy/health.go), and past the hold the registration is accepted into
// the durable outbox with 202 and delivered later in per-agent order
// (proxy/queue.go, proxy/outbox_run.go, proxy/outbox/).

// outageAPIKey is the core's API key in these tests (the load generator's
// default key).
const outageAPIKey = "test-api-key"

// exchanges collects what the clients saw, request by request.
type exchanges struct {
	mu   sync.Mutex
	list []loadgen.Exchange
}

func (e *exchanges) add(x loadgen.Exchange) {
	e.mu.Lock()
	e.list = append(e.list, x)
	e.mu.Unlock()
}

func (e *exchanges) all() []loadgen.Exchange {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]loadgen.Exchange(nil), e.list...)
}

// coreLine is one "request" line of the core's JSON log.
type coreLine struct {
	Time   time.Time `json:"time"`
	Msg    string    `json:"msg"`
	Method string    `json:"method"`
	Path   string    `json:"path"`
	Status int       `json:"status"`
}

// coreRequests reads the request lines of the core's log (all its runs:
// the log is appended to across restarts).
func coreRequests(t *testing.T, core *harness.Proc) []coreLine {
	t.Helper()
	f, err := os.Open(core.LogPath)
	if err != nil {
		t.Fatalf("core log: %v", err)
	}
	defer f.Close()
	var out []coreLine
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var l coreLine
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "request" {
			out = append(out, l)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("core log: %v", err)
	}
	return out
}

// outagePort returns a free port below the kernel's ephemeral range for a
// process that is down for a while in the test. A port chosen like
// harness.FreePort does lies in the ephemeral range, where, on a machine
// shared with other test runs, another process may bind it while ours is
// down (it happened: a restarted core found its port answered by someone
// else's server). Ports below the range are never handed out by the
// kernel for ":0" binds or outgoing connections.
func outagePort(t *testing.T) int {
	t.Helper()
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 12000 {
				low = n
			}
		}
	}
	for range 50 {
		port := low - 10000 + rand.IntN(10000)
		if l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
			l.Close()
			return port
		}
	}
	t.Fatalf("no free port below %d", low)
	return 0
}

// checkCoreRestarted fails the test unless the core process of the
// harness is running and logged that it listens after since: a readiness
// answer on its port alone could come from another process.
func checkCoreRestarted(t *testing.T, core *harness.Proc, since time.Time) {
	t.Helper()
	if pid := core.PID(); pid == 0 || syscall.Kill(pid, 0) != nil {
		t.Fatalf("the restarted core (pid %d) is not running; its port answered anyway: another process took it", pid)
	}
	b, err := os.ReadFile(core.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		var l struct {
			Time time.Time `json:"time"`
			Msg  string    `json:"msg"`
		}
		if json.Unmarshal(line, &l) == nil && l.Msg == "opscore listening" && l.Time.After(since) {
			return
		}
	}
	t.Fatalf("the restarted core did not log \"opscore listening\" after %v; log tail:\n%s", since, b[max(0, len(b)-2000):])
}

// breakerChange is a change of a route's breaker state seen by
// watchBreakers, at the first poll that saw it.
type breakerChange struct {
	at       time.Time
	route    string
	from, to string
}

// watchBreakers polls the sidecar's /admin/breakers every 10 ms until
// stop is closed and returns the state changes it saw: when the sidecar
// let traffic through again, to within a poll.
func watchBreakers(sc *harness.Proc, stop <-chan struct{}) func() []breakerChange {
	var changes []breakerChange
	done := make(chan struct{})
	go func() {
		defer close(done)
		c := &http.Client{Timeout: time.Second}
		last := map[string]string{}
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			resp, err := c.Get(sc.AdminURL + "/admin/breakers")
			if err != nil {
				continue
			}
			now := time.Now()
			var list struct {
				Breakers []struct{ Route, State string } `json:"breakers"`
			}
			err = json.NewDecoder(resp.Body).Decode(&list)
			resp.Body.Close()
			if err != nil {
				continue
			}
			for _, b := range list.Breakers {
				if prev, ok := last[b.Route]; ok && prev != b.State {
					changes = append(changes, breakerChange{at: now, route: b.Route, from: prev, to: b.State})
				}
				last[b.Route] = b.State
			}
		}
	}()
	return func() []breakerChange {
		<-done
		return changes
	}
}

// agentOfBody returns agent_details.agentId of a registration body.
func agentOfBody(body []byte) string {
	var v struct {
		Details struct {
			AgentID string `json:"agentId"`
		} `json:"agent_details"`
	}
	_ = json.Unmarshal(body, &v)
	return v.Details.AgentID
}

// agentOfPath returns the agent of /v1/opscore/agent/{id}/state, or "".
func agentOfPath(p string) string {
	rest, ok := strings.CutPrefix(p, "/v1/opscore/agent/")
	if !ok {
		return ""
	}
	id, _, _ := strings.Cut(rest, "/")
	return id
}

// outboxStats is the head of the sidecar's GET /admin/outbox.
type outboxStats struct {
	Depth       int `json:"depth"`
	DeadLetters int `json:"dead_letters"`
	Dead        []struct {
		ID, Route, Path, DeadReason string
	} `json:"dead"`
}

func readOutbox(t *testing.T, sc *harness.Proc) outboxStats {
	t.Helper()
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(sc.AdminURL + "/admin/outbox")
	if err != nil {
		t.Fatalf("/admin/outbox: %v", err)
	}
	defer resp.Body.Close()
	var s outboxStats
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("/admin/outbox: status %d: %s", resp.StatusCode, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatalf("/admin/outbox: %v", err)
	}
	return s
}

// waitOutboxEmpty polls /admin/outbox until the queue is empty; it fails
// the test after limit.
func waitOutboxEmpty(t *testing.T, sc *harness.Proc, limit time.Duration) outboxStats {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		s := readOutbox(t, sc)
		if s.Depth == 0 {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("outbox still holds %d messages %v after the core came back", s.Depth, limit)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// agentState is GET /v1/opscore/agent/{id}/state straight at the core:
// the status and the state field of the answer.
func agentState(c *http.Client, coreURL, id string) (int, string, error) {
	req, err := http.NewRequest(http.MethodGet, coreURL+"/v1/opscore/agent/"+id+"/state", nil)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Authorization", "Bearer "+outageAPIKey)
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	var v struct {
		State string `json:"state"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&v)
	return resp.StatusCode, v.State, nil
}

// checkQueuedAnswer checks a 202 of the sidecar: the queued id in the
// header and in the problem body, with the queued problem type.
func checkQueuedAnswer(x loadgen.Exchange, body []byte) string {
	id := x.Header.Get("X-Sidecar-Queued-Id")
	if id == "" {
		return "202 without X-Sidecar-Queued-Id"
	}
	if body == nil {
		return ""
	}
	var p struct {
		Type     string `json:"type"`
		QueuedID string `json:"queued_id"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		return fmt.Sprintf("202 body is not JSON: %v", err)
	}
	if p.Type != "urn:opscore-sidecar:problem:queued" || p.QueuedID != id {
		return fmt.Sprintf("202 body type %q queued_id %q, want urn:opscore-sidecar:problem:queued and %q", p.Type, p.QueuedID, id)
	}
	return ""
}

// TestRegistrationsSurviveCoreRestartWithDefaults runs scenario 1 (400
// users spawned at 20/s with unique agent ids: 20 registrations a second)
// through a sidecar with its default config, in front of a core on Redis
// that is killed with SIGKILL at 5 s and started again 1.5 s (and, in the
// second case, 5 s) later. No registration fails (each is answered 200,
// or 202 when it was queued), no state read sent after the core's first
// good health answer gets a 503, and every registered agent is in the
// core at the end. The time from the core's first good /health answer to
// the first request the sidecar forwards is logged (the goal is 0.3 s at
// most, see docs/resilience.md, "Active health checking"; no timing
// assertion on a shared machine).
func TestRegistrationsSurviveCoreRestartWithDefaults(t *testing.T) {
	for _, down := range []time.Duration{1500 * time.Millisecond, 5 * time.Second} {
		t.Run("down "+down.String(), func(t *testing.T) { runDefaultRestart(t, down) })
	}
}

func runDefaultRestart(t *testing.T, down time.Duration) {
	redis := harness.StartRedis(t)
	core := harness.StartCore(t, harness.CoreOptions{Storage: "redis", RedisURL: "redis://" + redis.Addr, Port: outagePort(t)})
	sc := harness.StartSidecar(t, harness.SidecarOptions{UpstreamURL: core.URL})

	s, err := loadgen.ScenarioByID(1)
	if err != nil {
		t.Fatal(err)
	}
	s.Users, s.InitialUsers, s.SpawnRate, s.Duration = 400, 0, 20, 20*time.Second
	var ex exchanges
	cfg := loadgen.Config{Scenario: s, Target: sc.URL, UniqueIDs: true, APIKey: outageAPIKey, Observe: ex.add}
	plan := loadgen.FaultPlan{Core: core, RestartAt: 5 * time.Second, RestartDown: down}
	stopWatch := make(chan struct{})
	breakers := watchBreakers(sc, stopWatch)
	res, err := loadgen.RunWithFaults(context.Background(), cfg, plan)
	close(stopWatch)
	if err != nil {
		t.Fatal(err)
	}
	// The kill's event is noted once the process is gone: every core log
	// line after it is from the restarted core.
	var killed time.Time
	for _, e := range res.Events {
		t.Logf("event at %.3fs: %s", e.At, e.What)
		if strings.Contains(e.What, "killed with SIGKILL") {
			killed = res.Started.Add(time.Duration(e.At * float64(time.Second)))
		}
		if strings.Contains(e.What, "FAILED") {
			t.Fatalf("fault plan: %s", e.What)
		}
	}
	if killed.IsZero() {
		t.Fatal("the core was never killed")
	}
	checkCoreRestarted(t, core, killed)

	// The core's first good health answer after the restart (the harness
	// polls /health every 20 ms until it answers, so this is within a few
	// ms of the core being able to serve) and the first request the
	// sidecar forwarded after it.
	var healthy, forwarded time.Time
	for _, l := range coreRequests(t, core) {
		switch {
		case !l.Time.After(killed):
		case healthy.IsZero():
			if l.Path == "/health" && l.Status == http.StatusOK {
				healthy = l.Time
			}
		case l.Path != "/health":
			forwarded = l.Time
		}
		if !forwarded.IsZero() {
			break
		}
	}
	if healthy.IsZero() || forwarded.IsZero() {
		t.Fatalf("core log: first good /health after the restart %v, first forwarded request after it %v; want both", healthy, forwarded)
	}
	t.Logf("core back: first good /health answer %.3fs after the kill; first forwarded request %.3fs after that answer (the aim: <= 0.3s)",
		healthy.Sub(killed).Seconds(), forwarded.Sub(healthy).Seconds())
	for _, c := range breakers() {
		t.Logf("sidecar breaker %s: %s -> %s, seen %+.3fs from the core's first good health answer", c.route, c.from, c.to, c.at.Sub(healthy).Seconds())
	}

	regs := map[int]int{}
	var during, bad int
	registered := map[string]bool{}
	stateCodes := map[int]int{}
	var late503 []string
	for _, x := range ex.all() {
		switch {
		case x.Registration:
			regs[x.Status]++
			if x.Sent.After(killed) && x.Sent.Before(healthy) {
				during++
			}
			switch {
			case x.Err != nil:
				t.Errorf("registration %s sent at %.3fs: transport error %v", agentOfBody(x.Body), x.Sent.Sub(res.Started).Seconds(), x.Err)
			case x.Status == http.StatusOK:
				registered[agentOfBody(x.Body)] = true
			case x.Status == http.StatusAccepted:
				registered[agentOfBody(x.Body)] = true
				if msg := checkQueuedAnswer(x, nil); msg != "" {
					t.Errorf("registration %s: %s", agentOfBody(x.Body), msg)
				}
			default:
				bad++
				if bad <= 10 {
					t.Errorf("registration %s sent at %.3fs: status %d, want 200 or 202", agentOfBody(x.Body), x.Sent.Sub(res.Started).Seconds(), x.Status)
				}
			}
		case x.Method == http.MethodGet && x.Name == loadgen.NameState:
			if !x.Sent.After(healthy) {
				continue
			}
			stateCodes[x.Status]++
			if x.Status == http.StatusServiceUnavailable {
				late503 = append(late503, fmt.Sprintf("%s sent %.3fs after the core's first good health answer (Retry-After %q)",
					x.Path, x.Sent.Sub(healthy).Seconds(), x.Header.Get("Retry-After")))
			}
		}
	}
	logResult(t, "through the sidecar (a 202 registration, queued in the outbox, counts as registered)", res)
	t.Logf("registrations by status: %v (%d sent while the core was down); state reads sent after the core's first good health answer by status: %v",
		regs, during, stateCodes)
	t.Logf("sidecar: holds %v released / %v queued, outbox enqueued %v, delivered %v, health probes ok %v fail %v",
		sidecarMetric(t, sc, "opscore_sidecar_hold_total", `result="released"`), sidecarMetric(t, sc, "opscore_sidecar_hold_total", `result="queued"`),
		sidecarMetric(t, sc, "opscore_sidecar_outbox_enqueued_total"), sidecarMetric(t, sc, "opscore_sidecar_outbox_delivered_total"),
		sidecarMetric(t, sc, "opscore_sidecar_health_probes_total", `result="ok"`), sidecarMetric(t, sc, "opscore_sidecar_health_probes_total", `result="fail"`))
	if bad > 0 {
		t.Errorf("%d registrations answered neither 200 nor 202", bad)
	}
	if during == 0 {
		t.Error("no registration was sent while the core was down: the test proves nothing")
	}
	if len(late503) > 0 {
		t.Errorf("%d state reads sent after the core's first good health answer got 503; the first ones:", len(late503))
		for _, l := range late503[:min(len(late503), 10)] {
			t.Errorf("  %s", l)
		}
	}

	// Every agent that was answered 200 or 202 is in the core once the
	// outbox has delivered.
	st := waitOutboxEmpty(t, sc, 60*time.Second)
	if st.DeadLetters != 0 {
		t.Errorf("outbox: %d dead letters %+v, want 0", st.DeadLetters, st.Dead)
	}
	missing := missingAgents(t, core.URL, registered)
	if len(missing) > 0 {
		t.Errorf("%d of %d registered agents are not in the core: %v", len(missing), len(registered), missing[:min(len(missing), 10)])
	}
}

// missingAgents returns the agents of ids that the core does not know
// (GET state not 200), asking a few at a time.
func missingAgents(t *testing.T, coreURL string, ids map[string]bool) []string {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	var mu sync.Mutex
	var missing []string
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for id := range ids {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			status, _, err := agentState(c, coreURL, id)
			if err != nil || status != http.StatusOK {
				mu.Lock()
				missing = append(missing, fmt.Sprintf("%s (status %d err %v)", id, status, err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	sort.Strings(missing)
	return missing
}

// agentRun is what one simulated agent saw: its registration, then one
// state update sent once the registration was answered 200 or 202.
type agentRun struct {
	id          string
	reg, state  loadgen.Exchange
	stateSent   bool
	stateValue  string
	regQueued   bool
	stateQueued bool
}

// outageClient sends one request like the AgentKit webhook and an agent
// do: once, no retry, a 20 s timeout (above the sidecar's 8 s notify
// deadline, so the sidecar always answers first).
var outageClient = &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

func outageSend(method, name, target, path string, body []byte, registration bool) (loadgen.Exchange, []byte) {
	x := loadgen.Exchange{Method: method, Name: name, Path: path, Registration: registration, Body: body, Sent: time.Now()}
	req, err := http.NewRequest(method, target+path, bytes.NewReader(body))
	if err != nil {
		x.Err, x.End = err, time.Now()
		return x, nil
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+outageAPIKey)
	resp, err := outageClient.Do(req)
	if err != nil {
		x.Err, x.End = err, time.Now()
		return x, nil
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	x.Status, x.Header, x.Err, x.End = resp.StatusCode, resp.Header, err, time.Now()
	return x, b
}

// runAgent registers agent id through regTarget and, when that is
// answered 200 or 202, sends one state update through stateTarget. It
// returns what happened and the problems with the answers.
func runAgent(id, regTarget, stateTarget string) (agentRun, []string) {
	a := agentRun{id: id}
	var problems []string
	var body []byte
	a.reg, body = outageSend(http.MethodPost, loadgen.NameNotify, regTarget, loadgen.NameNotify, registrationBody(id), true)
	if a.reg.Err != nil || (a.reg.Status != http.StatusOK && a.reg.Status != http.StatusAccepted) {
		return a, problems
	}
	if a.reg.Status == http.StatusAccepted {
		a.regQueued = true
		if msg := checkQueuedAnswer(a.reg, body); msg != "" {
			problems = append(problems, "registration "+id+": "+msg)
		}
	}
	a.stateValue = "busy-" + id[len(id)-4:]
	sb := fmt.Appendf(nil, `{"agentId":%q,"timestamp":"2026-01-01T00:00:00Z","state":%q,"details":null}`, id, a.stateValue)
	a.stateSent = true
	a.state, body = outageSend(http.MethodPost, loadgen.NameState, stateTarget, "/v1/opscore/agent/"+id+"/state", sb, false)
	if a.state.Status == http.StatusAccepted && a.state.Header.Get("X-Sidecar-Queued-Id") != "" {
		a.stateQueued = true
		if msg := checkQueuedAnswer(a.state, body); msg != "" {
			problems = append(problems, "state update "+id+": "+msg)
		}
	}
	return a, problems
}

// openLoop starts one agent every 1/rate until stop is closed and
// returns what each agent saw once all have finished. target picks the
// registration and state update targets of agent n.
func openLoop(prefix string, rate int, stop <-chan struct{}, target func(n int) (string, string)) func() ([]agentRun, []string) {
	var mu sync.Mutex
	var runs []agentRun
	var problems []string
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			reg, state := target(n)
			wg.Go(func() {
				a, p := runAgent(fmt.Sprintf("%s-%05d", prefix, n), reg, state)
				mu.Lock()
				runs = append(runs, a)
				problems = append(problems, p...)
				mu.Unlock()
			})
		}
	})
	return func() ([]agentRun, []string) {
		wg.Wait()
		return runs, problems
	}
}

// TestRegistrationsSurviveLongCoreOutage: the core (Redis store) is down
// for 60 s while agents register at 20/s through a sidecar with its
// default config, each sending one state update once its registration is
// answered. Every registration is answered 200 or 202; once the core is
// back and the outbox is empty every answered agent is in the core, and
// an agent whose registration and state update were both queued has that
// state (a state update delivered before its registration would have got
// 404 and been dead-lettered). The second case kills the sidecar with
// SIGKILL in the middle of the outage and starts it again on the same
// port and outbox directory: nothing it answered 202 is lost; only the
// requests in flight at the crash or sent while it was down see a
// transport error.
func TestRegistrationsSurviveLongCoreOutage(t *testing.T) {
	for _, crash := range []bool{false, true} {
		name := "core down 60s"
		if crash {
			name += ", sidecar killed and restarted"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			runLongOutage(t, crash)
		})
	}
}

func runLongOutage(t *testing.T, crashSidecar bool) {
	const rate, outage = 20, 60 * time.Second
	redis := harness.StartRedis(t)
	core := harness.StartCore(t, harness.CoreOptions{Storage: "redis", RedisURL: "redis://" + redis.Addr, Port: outagePort(t)})
	outboxDir := filepath.Join(t.TempDir(), "outbox")
	sc := harness.StartSidecar(t, harness.SidecarOptions{UpstreamURL: core.URL, Env: []string{"SIDECAR_OUTBOX_DIR=" + outboxDir}})

	stop := make(chan struct{})
	prefix := "outage-" + strconv.FormatBool(crashSidecar) + "-" + strconv.FormatInt(time.Now().UnixNano()%1e6, 36)
	wait := openLoop(prefix, rate, stop, func(int) (string, string) { return sc.URL, sc.URL })
	start := time.Now()
	time.Sleep(2 * time.Second)
	if err := core.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	var crashAt, crashReady time.Time
	if crashSidecar {
		time.Sleep(outage / 2)
		crashAt = time.Now()
		if err := sc.Restart(); err != nil { // SIGKILL, then the same binary, port and outbox dir
			t.Fatalf("restart sidecar: %v", err)
		}
		crashReady = time.Now()
		t.Logf("sidecar killed %.1fs into the outage, ready again %.3fs later", crashAt.Sub(killed).Seconds(), crashReady.Sub(crashAt).Seconds())
	}
	time.Sleep(outage - time.Since(killed))
	if err := core.Start(); err != nil {
		t.Fatalf("restart core: %v", err)
	}
	back := time.Now()
	checkCoreRestarted(t, core, killed)
	t.Logf("core down %.1fs", back.Sub(killed).Seconds())
	time.Sleep(3 * time.Second)
	close(stop)
	runs, problems := wait()
	for _, p := range problems {
		t.Error(p)
	}

	// The clients' side: every registration answered 200 or 202, except
	// (with the crash) those in flight at the SIGKILL or sent before the
	// sidecar listened again.
	regs := map[int]int{}
	var lostToCrash, regQueued, bothQueued, statesSent int
	registered := map[string]bool{}
	for _, a := range runs {
		regs[a.reg.Status]++
		switch {
		case a.reg.Err == nil && (a.reg.Status == http.StatusOK || a.reg.Status == http.StatusAccepted):
			registered[a.id] = true
		case crashSidecar && a.reg.Err != nil && a.reg.Sent.Before(crashReady) && !a.reg.End.Before(crashAt):
			lostToCrash++
		default:
			t.Errorf("registration %s sent %.3fs into the run: status %d err %v, want 200 or 202",
				a.id, a.reg.Sent.Sub(start).Seconds(), a.reg.Status, a.reg.Err)
		}
		if a.regQueued {
			regQueued++
		}
		if a.regQueued && a.stateQueued {
			bothQueued++
		}
		if a.stateSent {
			statesSent++
		}
	}
	t.Logf("%d agents: registrations by status %v (0 = transport error: %d in flight at the sidecar's crash or sent while it was down); %d registrations and %d registration+state pairs queued; %d state updates sent",
		len(runs), regs, lostToCrash, regQueued, bothQueued, statesSent)
	if regQueued == 0 || bothQueued == 0 {
		t.Errorf("%d registrations and %d registration+state pairs were queued, want both > 0 (the outage did not reach the outbox)", regQueued, bothQueued)
	}

	// The core's side, once the outbox is empty.
	st := waitOutboxEmpty(t, sc, 90*time.Second)
	t.Logf("outbox empty %.1fs after the core came back; sidecar (since its last start): outbox delivered %v, dead letters %d, delivery attempts by result ok %v error %v",
		time.Since(back).Seconds(), sidecarMetric(t, sc, "opscore_sidecar_outbox_delivered_total"), st.DeadLetters,
		sidecarMetric(t, sc, "opscore_sidecar_outbox_delivery_attempts_total", `result="ok"`),
		sidecarMetric(t, sc, "opscore_sidecar_outbox_delivery_attempts_total", `result="error"`))
	if st.DeadLetters != 0 {
		t.Errorf("outbox: %d dead letters %+v, want 0", st.DeadLetters, st.Dead)
	}
	c := &http.Client{Timeout: 5 * time.Second}
	var absent, wrongState []string
	for _, a := range runs {
		if !registered[a.id] {
			continue
		}
		status, state, err := agentState(c, core.URL, a.id)
		switch {
		case err != nil || status != http.StatusOK:
			absent = append(absent, fmt.Sprintf("%s (status %d err %v)", a.id, status, err))
		case a.stateSent && a.state.Err == nil && a.state.Status == http.StatusAccepted && state != a.stateValue:
			wrongState = append(wrongState, fmt.Sprintf("%s: state %q, want %q (registration queued %v, state queued %v)", a.id, state, a.stateValue, a.regQueued, a.stateQueued))
		}
	}
	if len(absent) > 0 {
		t.Errorf("%d of %d agents answered 200/202 are not in the core: %v", len(absent), len(registered), absent[:min(len(absent), 10)])
	}
	if len(wrongState) > 0 {
		t.Errorf("%d agents whose state update was accepted do not have that state (order lost?): %v", len(wrongState), wrongState[:min(len(wrongState), 10)])
	}
	// A state update sent ahead of its agent's registration earns a 404.
	var notFound []string
	for _, l := range coreRequests(t, core) {
		if l.Method == http.MethodPost && l.Status == http.StatusNotFound && registered[agentOfPath(l.Path)] {
			notFound = append(notFound, l.Path)
		}
	}
	if len(notFound) > 0 {
		t.Errorf("the core answered 404 to %d state updates of registered agents (sent before their registration): %v", len(notFound), notFound[:min(len(notFound), 10)])
	}
}

// upstreamRequest is one request a countingUpstream passed to the core.
type upstreamRequest struct {
	seq             int // arrival order at the counting upstream
	method, path    string
	agent, outboxID string
	status          int
}

// countingUpstream is a reverse proxy between the sidecars and the core
// that records every request it passes (with the sidecar's
// X-Sidecar-Outbox-Id and the agent it is about). It listens on one port
// that down closes and up opens again, so that with the core it looks
// exactly like a core that is down (connection refused) or up.
type countingUpstream struct {
	URL   string
	addr  string
	proxy *httputil.ReverseProxy

	mu   sync.Mutex
	srv  *http.Server
	seen []upstreamRequest // in completion order
	next int               // the seq of the next request to arrive
}

func startCountingUpstream(t *testing.T, coreURL string) *countingUpstream {
	t.Helper()
	port := outagePort(t)
	u, err := url.Parse(coreURL)
	if err != nil {
		t.Fatal(err)
	}
	c := &countingUpstream{addr: "127.0.0.1:" + strconv.Itoa(port), proxy: httputil.NewSingleHostReverseProxy(u)}
	c.URL = "http://" + c.addr
	c.up(t)
	t.Cleanup(c.down)
	return c
}

// ServeHTTP numbers each request on arrival (seq, taken before the core
// answers), so sorting by seq gives the order the requests reached the
// core, not the order they completed in.
func (c *countingUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	seq := c.next
	c.next++
	c.mu.Unlock()
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	agent := agentOfPath(r.URL.Path)
	if agent == "" {
		agent = agentOfBody(body)
	}
	rw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	c.proxy.ServeHTTP(rw, r)
	c.mu.Lock()
	c.seen = append(c.seen, upstreamRequest{seq: seq, method: r.Method, path: r.URL.Path, agent: agent,
		outboxID: r.Header.Get("X-Sidecar-Outbox-Id"), status: rw.status})
	c.mu.Unlock()
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (c *countingUpstream) up(t *testing.T) {
	t.Helper()
	var ln net.Listener
	var err error
	for range 50 { // the port was ours a moment ago; a closing socket may hold it briefly
		if ln, err = net.Listen("tcp", c.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("counting upstream: %v", err)
	}
	srv := &http.Server{Handler: c}
	c.mu.Lock()
	c.srv = srv
	c.mu.Unlock()
	go srv.Serve(ln)
}

func (c *countingUpstream) down() {
	c.mu.Lock()
	srv := c.srv
	c.srv = nil
	c.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

func (c *countingUpstream) requests() []upstreamRequest {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]upstreamRequest(nil), c.seen...)
}

// TestOutboxSharedByTwoSidecarsOnRedisStreams: two sidecars with the
// default config but the Redis Streams outbox (one stream and consumer
// group on a redis-server of the test's own) stand in front of one core
// that is down. Agents register through one sidecar and send their state
// update through the other; both are answered 202. Once the core is back,
// each queued message reaches the core exactly once (counted by a proxy
// in front of it, by X-Sidecar-Outbox-Id) and each agent's registration
// arrives before its state update.
func TestOutboxSharedByTwoSidecarsOnRedisStreams(t *testing.T) {
	coreRedis := harness.StartRedis(t)
	outboxRedis := harness.StartRedis(t)
	core := harness.StartCore(t, harness.CoreOptions{Storage: "redis", RedisURL: "redis://" + coreRedis.Addr, Port: outagePort(t)})
	up := startCountingUpstream(t, core.URL)
	env := []string{"SIDECAR_OUTBOX_BACKEND=redis", "SIDECAR_OUTBOX_REDIS_URL=redis://" + outboxRedis.Addr + "/0"}
	scs := []*harness.Proc{
		harness.StartSidecar(t, harness.SidecarOptions{UpstreamURL: up.URL, Env: env}),
		harness.StartSidecar(t, harness.SidecarOptions{UpstreamURL: up.URL, Env: env}),
	}
	up.down()
	if err := core.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()

	stop := make(chan struct{})
	wait := openLoop("shared-"+strconv.FormatInt(time.Now().UnixNano()%1e6, 36), 20, stop, func(n int) (string, string) {
		return scs[n%2].URL, scs[(n+1)%2].URL
	})
	time.Sleep(5 * time.Second)
	close(stop)
	runs, problems := wait()
	for _, p := range problems {
		t.Error(p)
	}
	queued := map[string]string{} // queued id -> agent
	var notQueued []string
	for _, a := range runs {
		if !a.regQueued || !a.stateQueued {
			notQueued = append(notQueued, fmt.Sprintf("%s: registration %d %v, state update %d %v", a.id, a.reg.Status, a.reg.Err, a.state.Status, a.state.Err))
			continue
		}
		queued[a.reg.Header.Get("X-Sidecar-Queued-Id")] = a.id
		queued[a.state.Header.Get("X-Sidecar-Queued-Id")] = a.id
	}
	if len(notQueued) > 0 {
		t.Errorf("%d of %d agents were not answered 202 for both requests with the core down: %v", len(notQueued), len(runs), notQueued[:min(len(notQueued), 10)])
	}
	if len(queued) != 2*(len(runs)-len(notQueued)) || len(runs) == 0 {
		t.Fatalf("%d distinct queued ids for %d agents, want two each", len(queued), len(runs)-len(notQueued))
	}

	if err := core.Start(); err != nil {
		t.Fatalf("restart core: %v", err)
	}
	checkCoreRestarted(t, core, killed)
	up.up(t)
	for _, sc := range scs {
		waitOutboxEmpty(t, sc, 60*time.Second)
	}
	for i, sc := range scs {
		t.Logf("sidecar %d: outbox enqueued %v, delivered %v", i, sidecarMetric(t, sc, "opscore_sidecar_outbox_enqueued_total"),
			sidecarMetric(t, sc, "opscore_sidecar_outbox_delivered_total"))
		if st := readOutbox(t, sc); st.DeadLetters != 0 {
			t.Errorf("sidecar %d outbox: %d dead letters %+v, want 0", i, st.DeadLetters, st.Dead)
		}
	}

	delivered := map[string][]upstreamRequest{}
	for _, r := range up.requests() {
		if r.outboxID != "" {
			delivered[r.outboxID] = append(delivered[r.outboxID], r)
		}
	}
	for id, agent := range queued {
		if n := len(delivered[id]); n != 1 {
			t.Errorf("queued message %s (agent %s) reached the core %d times, want exactly once", id, agent, n)
		}
	}
	for id, rs := range delivered {
		if _, ok := queued[id]; !ok {
			t.Errorf("the core got outbox message %s (%s %s), which no client was answered 202 for", id, rs[0].method, rs[0].path)
		}
	}
	// Per-agent order: the registration reached the core before the state
	// update, and both succeeded.
	order := map[string][]upstreamRequest{}
	for _, rs := range delivered {
		for _, r := range rs {
			order[r.agent] = append(order[r.agent], r)
		}
	}
	var outOfOrder []string
	for agent, rs := range order {
		sort.Slice(rs, func(i, j int) bool { return rs[i].seq < rs[j].seq })
		if len(rs) != 2 || rs[0].path != loadgen.NameNotify || rs[0].status != http.StatusOK || rs[1].status != http.StatusAccepted {
			var got []string
			for _, r := range rs {
				got = append(got, fmt.Sprintf("%s %s -> %d", r.method, r.path, r.status))
			}
			outOfOrder = append(outOfOrder, agent+": "+strings.Join(got, ", "))
		}
	}
	sort.Strings(outOfOrder)
	if len(outOfOrder) > 0 {
		t.Errorf("%d agents' messages did not reach the core as registration (200) then state update (202): %v", len(outOfOrder), outOfOrder[:min(len(outOfOrder), 10)])
	}
	t.Logf("%d agents, %d queued messages, %d delivered through the shared stream", len(runs), len(queued), len(delivered))
}
