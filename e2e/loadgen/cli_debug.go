package loadgen

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"
)

// cmdDebug is `loadtest debug-registration`.
func cmdDebug(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var o DebugOptions
	fs := flag.NewFlagSet("debug-registration", flag.ContinueOnError)
	fs.DurationVar(&o.Duration, "duration", 15*time.Second, "length of each of the two runs")
	fs.StringVar(&o.Out, "out", "loadtest-debug", "directory for the runs' output, logs and verdict.txt")
	fs.StringVar(&o.BinDir, "bin-dir", "", "directory with the opscore and sidecar binaries (default: next to loadtest, else go build)")
	fs.IntVar(&o.Users, "users", 20, "scenario 1 users")
	fs.Float64Var(&o.SpawnRate, "spawn-rate", 10, "users started per second")
	fs.DurationVar(&o.ThinkMin, "think-min", 990*time.Millisecond, "shortest think time (keep-alive race profile: about the core's idle timeout)")
	fs.DurationVar(&o.ThinkMax, "think-max", 1010*time.Millisecond, "longest think time")
	fs.DurationVar(&o.CoreIdleTimeout, "core-idle-timeout", time.Second, "the core's keep-alive idle timeout (uvicorn: 5s)")
	fs.Float64Var(&o.ResetProbability, "reset", 0.2, "share of new connections to the core reset by toxiproxy (0..1)")
	fs.DurationVar(&o.RestartAt, "restart-at", 0, "when to kill -9 the core in each run (default: a third of --duration; negative: never)")
	fs.DurationVar(&o.RestartDown, "restart-down", time.Second, "how long the core stays down")
	fs.DurationVar(&o.Latency, "latency", 0, "toxiproxy latency added to the core's responses (0: none)")
	fs.DurationVar(&o.Jitter, "jitter", 0, "± jitter of --latency")
	fs.DurationVar(&o.RedisPauseAt, "redis-pause-at", 0, "when to freeze Redis with SIGSTOP in each run (0: never)")
	fs.DurationVar(&o.RedisPauseFor, "redis-pause-for", 2*time.Second, "how long Redis stays frozen")
	fs.DurationVar(&o.RedisStopAt, "redis-stop-at", 0, "when to stop Redis (SIGTERM) in each run (0: never)")
	fs.DurationVar(&o.RedisStopFor, "redis-stop-for", 2*time.Second, "how long Redis stays stopped before it starts again, empty, on the same port")
	if !parse(fs, args, stderr) {
		return ExitUsage
	}
	var problems []string
	if o.Duration < 2*time.Second || o.Duration > time.Hour {
		problems = append(problems, fmt.Sprintf("--duration: must be between 2s and 1h, got %v", o.Duration))
	}
	if o.Users < 1 || o.Users > 5000 {
		problems = append(problems, fmt.Sprintf("--users: must be between 1 and 5000, got %d", o.Users))
	}
	if o.SpawnRate <= 0 {
		problems = append(problems, fmt.Sprintf("--spawn-rate: must be > 0, got %v", o.SpawnRate))
	}
	if o.ThinkMin < 0 || o.ThinkMax < o.ThinkMin {
		problems = append(problems, fmt.Sprintf("--think-min/--think-max: need 0 <= min <= max, got %v..%v", o.ThinkMin, o.ThinkMax))
	}
	if o.ResetProbability < 0 || o.ResetProbability > 1 {
		problems = append(problems, fmt.Sprintf("--reset: must be between 0 and 1, got %v", o.ResetProbability))
	}
	if o.CoreIdleTimeout <= 0 {
		problems = append(problems, fmt.Sprintf("--core-idle-timeout: must be > 0, got %v", o.CoreIdleTimeout))
	}
	if o.RestartDown < 0 || o.RestartDown > time.Minute {
		problems = append(problems, fmt.Sprintf("--restart-down: must be between 0 and 1m, got %v", o.RestartDown))
	}
	if o.Latency < 0 || o.Jitter < 0 || o.Jitter > o.Latency {
		problems = append(problems, fmt.Sprintf("--latency/--jitter: need 0 <= jitter <= latency, got %v ± %v", o.Latency, o.Jitter))
	}
	if o.RedisPauseAt < 0 || o.RedisPauseFor < 0 || o.RedisPauseFor > time.Minute {
		problems = append(problems, fmt.Sprintf("--redis-pause-at/--redis-pause-for: need >= 0 and a pause of at most 1m, got %v/%v", o.RedisPauseAt, o.RedisPauseFor))
	}
	if o.RedisStopAt < 0 || o.RedisStopFor < 0 || o.RedisStopFor > time.Minute {
		problems = append(problems, fmt.Sprintf("--redis-stop-at/--redis-stop-for: need >= 0 and a stop of at most 1m, got %v/%v", o.RedisStopAt, o.RedisStopFor))
	}
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintf(stderr, "loadtest debug-registration: %s\n", p)
		}
		return ExitUsage
	}
	switch {
	case o.RestartAt == 0:
		o.RestartAt = o.Duration / 3
	case o.RestartAt < 0:
		o.RestartAt = 0
	}
	o.Log = stderr
	rep, err := DebugRegistration(ctx, o)
	if err != nil && rep == nil {
		fmt.Fprintf(stderr, "loadtest debug-registration: %v\n", err)
		return ExitRuntime
	}
	for _, l := range rep.Verdict {
		fmt.Fprintln(stdout, l)
	}
	fmt.Fprintf(stderr, "output in %s (locust_scenario_1_direct_run.txt, locust_scenario_1_sidecar_run.txt, direct/, sidecar/, logs, verdict.txt)\n", o.Out)
	if errors.Is(err, context.Canceled) {
		fmt.Fprintln(stderr, "loadtest debug-registration: interrupted; the runs so far and their verdict are written")
		return ExitRuntime
	}
	if err != nil {
		fmt.Fprintf(stderr, "loadtest debug-registration: %v\n", err)
		return ExitRuntime
	}
	if rep.Failed {
		return ExitFailed
	}
	return ExitOK
}
