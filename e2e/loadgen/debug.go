package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"opscore-sidecar/e2e/harness"
)

// DebugOptions configure `loadtest debug-registration`.
type DebugOptions struct {
	// Duration of each of the two runs.
	Duration time.Duration
	// Out is the directory for reports, logs and the verdict.
	Out string
	// BinDir holds the opscore and sidecar binaries; empty means next to
	// this executable, or built with `go build` from the module.
	BinDir string
	// Users and SpawnRate shape scenario 1.
	Users     int
	SpawnRate float64
	// ThinkMin and ThinkMax replace scenario 1's 5-10 s think time.
	ThinkMin, ThinkMax time.Duration
	// CoreIdleTimeout is the core's keep-alive idle timeout (uvicorn: 5s).
	CoreIdleTimeout time.Duration
	// ResetProbability is toxiproxy's reset_peer toxicity.
	ResetProbability float64
	// RestartAt and RestartDown schedule the core's kill -9 and restart.
	RestartAt, RestartDown time.Duration
	// Latency and Jitter add toxiproxy latency to the core's responses.
	Latency, Jitter time.Duration
	// RedisPauseAt and RedisPauseFor freeze Redis during each run (0: never).
	RedisPauseAt, RedisPauseFor time.Duration
	// RedisStopAt and RedisStopFor stop Redis during each run and start it
	// again, empty (0: never).
	RedisStopAt, RedisStopFor time.Duration
	// Log receives progress lines.
	Log io.Writer
}

// DebugReport is the outcome of debug-registration.
type DebugReport struct {
	Direct, Sidecar *Result
	Access          AccessSummary
	Deltas          []string
	Verdict         []string
	Failed          bool
}

// binaries finds or builds the opscore and sidecar binaries; cleanup
// removes what it built.
func binaries(dir string, log io.Writer) (b harness.Binaries, cleanup func(), err error) {
	cleanup = func() {}
	candidates := []string{dir}
	if dir == "" {
		if exe, err := os.Executable(); err == nil {
			candidates = []string{filepath.Dir(exe)}
		}
	}
	for _, d := range candidates {
		b = harness.Binaries{Dir: d, Core: filepath.Join(d, "opscore"), Sidecar: filepath.Join(d, "sidecar")}
		if isFile(b.Core) && isFile(b.Sidecar) {
			return b, cleanup, nil
		}
		if dir != "" {
			return b, cleanup, fmt.Errorf("--bin-dir %s: need both opscore and sidecar binaries there", dir)
		}
	}
	tmp, err := os.MkdirTemp("", "loadtest-bin-")
	if err != nil {
		return harness.Binaries{}, cleanup, err
	}
	cleanup = func() { os.RemoveAll(tmp) }
	fmt.Fprintf(log, "building opscore and sidecar into %s (removed afterwards) ...\n", tmp)
	b, err = harness.BuildBinaries(tmp)
	return b, cleanup, err
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// DebugRegistration is the seed's debugging plan as one command: a clean
// environment (a fresh redis-server, the core and the sidecar with its
// default config as child processes on free ports, toxiproxy in front of
// the core), scenario 1
// straight at the core and then through the sidecar under the same faults,
// each run's output in a file, and a verdict that names the cause of each
// failure class. Every process is stopped by PID before it returns.
func DebugRegistration(ctx context.Context, o DebugOptions) (*DebugReport, error) {
	if o.Log == nil {
		o.Log = io.Discard
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, err
	}
	bins, cleanup, err := binaries(o.BinDir, o.Log)
	defer cleanup()
	if err != nil {
		return nil, err
	}
	redis, err := harness.StartRedisProcess(0)
	if err != nil {
		return nil, err
	}
	defer redis.Stop()
	fmt.Fprintf(o.Log, "redis-server pid %d on %s\n", redis.PID(), redis.Addr)
	core, err := harness.StartCoreProcess(harness.CoreOptions{
		Bin: bins.Core, Storage: "redis", RedisURL: "redis://" + redis.Addr, IdleTimeout: o.CoreIdleTimeout, Dir: o.Out,
	})
	if err != nil {
		return nil, err
	}
	defer core.Close()
	fmt.Fprintf(o.Log, "opscore pid %d on %s (idle timeout %v, log %s)\n", core.PID(), core.URL, o.CoreIdleTimeout, core.LogPath)
	toxi, err := harness.NewToxiProxy(strings.TrimPrefix(core.URL, "http://"))
	if err != nil {
		return nil, err
	}
	defer toxi.Close()
	// The sidecar runs with its built-in defaults (no config file): only
	// its listen addresses, its upstream (the proxy) and its outbox
	// directory (under --out) are set, by the harness's environment.
	side, err := harness.StartSidecarProcess(harness.SidecarOptions{Bin: bins.Sidecar, UpstreamURL: toxi.URL, Dir: o.Out})
	if err != nil {
		return nil, err
	}
	defer side.Close()
	fmt.Fprintf(o.Log, "toxiproxy %s -> core; sidecar pid %d on %s with its default config (admin %s, log %s)\n", toxi.Addr, side.PID(), side.URL, side.AdminURL, side.LogPath)

	s, _ := ScenarioByID(1)
	s.Users, s.InitialUsers, s.SpawnRate, s.Duration = o.Users, min(s.InitialUsers, o.Users), o.SpawnRate, o.Duration
	s.ThinkMin, s.ThinkMax = o.ThinkMin, o.ThinkMax
	plan := FaultPlan{Toxi: toxi, ResetProbability: o.ResetProbability, Core: core, RestartAt: o.RestartAt, RestartDown: o.RestartDown,
		Latency: o.Latency, Jitter: o.Jitter, Redis: redis, RedisPauseAt: o.RedisPauseAt, RedisPauseFor: o.RedisPauseFor,
		RedisStopAt: o.RedisStopAt, RedisStopFor: o.RedisStopFor}
	rep := &DebugReport{}

	fmt.Fprintf(o.Log, "run 1/2: scenario 1 for %v straight at the core (through toxiproxy) ...\n", o.Duration)
	rep.Direct, err = RunWithFaults(ctx, Config{Scenario: s, Target: toxi.URL, UniqueIDs: true, Progress: o.Log}, plan)
	if err != nil {
		return nil, err
	}
	if err := saveRun(rep.Direct, o.Out, "direct"); err != nil {
		return nil, err
	}
	if ctx.Err() != nil {
		// Interrupted: explain what the direct run saw; no verdict on the
		// sidecar, which did not run.
		rep.Verdict, _ = Verdict(rep.Direct, nil, AccessSummary{}, nil, o, plan)
		return rep, errors.Join(ctx.Err(), writeVerdict(o.Out, rep.Verdict))
	}

	fmt.Fprintf(o.Log, "run 2/2: scenario 1 for %v through the sidecar, same faults ...\n", o.Duration)
	offset := fileSize(side.LogPath)
	before, err := ScrapeCounters(side.AdminURL + "/metrics")
	if err != nil {
		return nil, err
	}
	rep.Sidecar, err = RunWithFaults(ctx, Config{Scenario: s, Target: side.URL, UniqueIDs: true, Progress: o.Log}, plan)
	if err != nil {
		return nil, err
	}
	if err := saveRun(rep.Sidecar, o.Out, "sidecar"); err != nil {
		return nil, err
	}
	after, err := ScrapeCounters(side.AdminURL + "/metrics")
	if err != nil {
		return nil, err
	}
	rep.Deltas = CounterDeltas(before, after, "opscore_sidecar_")
	if rep.Access, err = SummarizeAccessLog(side.LogPath, offset); err != nil {
		return nil, err
	}
	rep.Verdict, rep.Failed = Verdict(rep.Direct, rep.Sidecar, rep.Access, rep.Deltas, o, plan)
	if err := writeVerdict(o.Out, rep.Verdict); err != nil {
		return nil, err
	}
	return rep, ctx.Err()
}

// writeVerdict saves the verdict lines as out/verdict.txt.
func writeVerdict(out string, lines []string) error {
	return os.WriteFile(filepath.Join(out, "verdict.txt"), []byte(strings.Join(lines, "\n")+"\n"), 0o644)
}

// saveRun writes a run's report files into out/name and its text output
// as out/locust_scenario_1_<name>_run.txt, like the seed's run files.
func saveRun(r *Result, out, name string) error {
	if _, err := r.WriteFiles(filepath.Join(out, name)); err != nil {
		return err
	}
	var b strings.Builder
	r.WriteText(&b)
	return os.WriteFile(filepath.Join(out, "locust_scenario_1_"+name+"_run.txt"), []byte(b.String()), 0o644)
}
