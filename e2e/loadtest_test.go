package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"opscore-sidecar/e2e/harness"
	"opscore-sidecar/e2e/loadgen"
)

// loadStack is redis-server, the core on Redis, a toxiproxy in front of the
// core and the sidecar whose upstream is that proxy, all child processes
// of the test on 127.0.0.1.
type loadStack struct {
	core, sidecar *harness.Proc
	toxi          *harness.Toxi
}

// startLoadStack starts the stack with the sidecar's default config; a
// sidecarIdle > 0 sets only upstream.idle_conn_timeout, which an operator
// keeps below the core's keep-alive idle timeout (docs/sidecar.md).
func startLoadStack(t *testing.T, coreIdle, sidecarIdle time.Duration) loadStack {
	t.Helper()
	redis := harness.StartRedis(t)
	core := harness.StartCore(t, harness.CoreOptions{Storage: "redis", RedisURL: "redis://" + redis.Addr, IdleTimeout: coreIdle})
	toxi := harness.StartToxi(t, strings.TrimPrefix(core.URL, "http://"))
	var yaml string
	if sidecarIdle > 0 {
		yaml = "upstream:\n  idle_conn_timeout: " + sidecarIdle.String() + "\n"
	}
	side := harness.StartSidecar(t, harness.SidecarOptions{UpstreamURL: toxi.URL, ConfigYAML: yaml})
	return loadStack{core: core, sidecar: side, toxi: toxi}
}

// shortScenario1 is scenario 1 (register, sleep 1 s, poll, POST state)
// scaled down to a few seconds.
func shortScenario1(t *testing.T, users int, d, thinkMin, thinkMax time.Duration) loadgen.Scenario {
	t.Helper()
	s, err := loadgen.ScenarioByID(1)
	if err != nil {
		t.Fatal(err)
	}
	s.Users, s.InitialUsers, s.SpawnRate, s.Duration = users, users/2, float64(users), d
	s.ThinkMin, s.ThinkMax = thinkMin, thinkMax
	return s
}

func logResult(t *testing.T, label string, r *loadgen.Result) {
	t.Helper()
	var b strings.Builder
	r.WriteText(&b)
	t.Logf("%s:\n%s", label, b.String())
}

// TestRegistrationSurvivesResetsAndCoreRestart pins the seed's "Failed to
// register agent: 0" and ConnectionResetError(104): with 20 % of the
// connections to the core reset and one kill -9 and restart of the core,
// clients of the sidecar (default config) see no failed registration and
// no transport error, while the same run straight at the core does see
// them.
func TestRegistrationSurvivesResetsAndCoreRestart(t *testing.T) {
	st := startLoadStack(t, 0, 0)
	s := shortScenario1(t, 20, 9*time.Second, 500*time.Millisecond, time.Second)
	plan := loadgen.FaultPlan{Toxi: st.toxi, ResetProbability: 0.2, Core: st.core, RestartAt: 3 * time.Second, RestartDown: time.Second}

	side, err := loadgen.RunWithFaults(context.Background(), loadgen.Config{Scenario: s, Target: st.sidecar.URL, UniqueIDs: true}, plan)
	if err != nil {
		t.Fatal(err)
	}
	logResult(t, "through the sidecar", side)
	if got := side.RegistrationFailures(); got != 0 {
		t.Errorf("through the sidecar: got %d failed registrations, want 0", got)
	}
	if got := side.TransportErrors(); got != 0 {
		t.Errorf("through the sidecar: got %d transport errors, want 0", got)
	}
	if got, min := side.Total.Requests, uint64(3*s.Users); got < min {
		t.Errorf("through the sidecar: got %d requests, want at least %d (the run did no work)", got, min)
	}

	direct, err := loadgen.RunWithFaults(context.Background(), loadgen.Config{Scenario: s, Target: st.toxi.URL, UniqueIDs: true}, plan)
	if err != nil {
		t.Fatal(err)
	}
	logResult(t, "straight at the core", direct)
	if got := direct.TransportErrors(); got == 0 {
		t.Errorf("straight at the core: got 0 transport errors, want > 0 (the faults were not seen)")
	}
}

// TestKeepAliveRaceRemoteDisconnected pins the seed's RemoteDisconnected on
// POST state: the core closes keep-alive connections idle for 1 s while
// users think 1 s ± 10 ms (the 5 s uvicorn timeout and 5-10 s think time,
// scaled down), so requests race the close straight at the core (the race
// window is narrow: 60 users, so that a run without a single race is
// unlikely); the
// sidecar drops its upstream connections after 500 ms and retries, so its
// clients see nothing.
func TestKeepAliveRaceRemoteDisconnected(t *testing.T) {
	st := startLoadStack(t, time.Second, 500*time.Millisecond)
	s := shortScenario1(t, 60, 8*time.Second, 990*time.Millisecond, 1010*time.Millisecond)

	direct, err := loadgen.Run(context.Background(), loadgen.Config{Scenario: s, Target: st.core.URL, UniqueIDs: true})
	if err != nil {
		t.Fatal(err)
	}
	logResult(t, "straight at the core", direct)
	race := direct.CountKinds(func(k loadgen.Kind) bool { return k == loadgen.KindClosed || k == loadgen.KindReset })
	if race == 0 {
		t.Errorf("straight at the core: got 0 closed/reset failures, want > 0 (the race did not happen)")
	}

	side, err := loadgen.Run(context.Background(), loadgen.Config{Scenario: s, Target: st.sidecar.URL, UniqueIDs: true})
	if err != nil {
		t.Fatal(err)
	}
	logResult(t, "through the sidecar", side)
	if got := side.Total.Failures; got != 0 {
		t.Errorf("through the sidecar: got %d failures %+v, want 0", got, side.Failures)
	}
}
