package loadgen

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"
)

// Exit codes of cmd/loadtest.
const (
	ExitOK      = 0 // the run passed
	ExitFailed  = 1 // failures above --max-failure-ratio, or a failing verdict
	ExitUsage   = 2 // bad flags or values, unreachable target
	ExitRuntime = 3 // the run could not be carried out (environment, I/O)
)

const usage = `loadtest: Ops-Core load scenarios, fault injection and the registration-debugging plan

usage:
  loadtest run --scenario N [--target URL] [--users N] [--spawn-rate R] [--duration D]
               [--rate R] [--report DIR] [--webhook-secret S] [--max-failure-ratio X] ...
  loadtest debug-registration [--duration 15s] [--out DIR] ...
  loadtest selftest [--rate 20000] [--duration 10s]

Run "loadtest <command> -h" for the flags of a command.
`

// Main runs cmd/loadtest with args (without the program name) and returns
// the exit status. ctx is cancelled on Ctrl-C; an interrupted run still
// writes its report.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return ExitUsage
	}
	switch args[0] {
	case "run":
		return cmdRun(ctx, args[1:], stdout, stderr)
	case "debug-registration":
		return cmdDebug(ctx, args[1:], stdout, stderr)
	case "selftest":
		return cmdSelftest(ctx, args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return ExitOK
	}
	fmt.Fprintf(stderr, "loadtest: unknown command %q\n\n%s", args[0], usage)
	return ExitUsage
}

// envOr returns the environment variable key, or def when it is unset.
func envOr(key, def string) string {
	if v, ok := os.LookupEnv(key); ok {
		return v
	}
	return def
}

// runFlags are the flags of `loadtest run`.
type runFlags struct {
	scenario        int
	target          string
	users           int
	spawnRate       float64
	duration        time.Duration
	thinkMin        time.Duration
	thinkMax        time.Duration
	rate            float64
	connections     int
	report          string
	webhookSecret   string
	apiKey          string
	uniqueIDs       bool
	maxFailureRatio float64
	requestTimeout  time.Duration
	stopRule        bool
	quiet           bool
	set             map[string]bool // flags given on the command line
}

func (f *runFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&f.scenario, "scenario", 1, "scenario number, 0-4 (docs/loadtest.md, 'Scenarios')")
	fs.StringVar(&f.target, "target", envOr("LOCUST_HOST", "http://127.0.0.1:8000"), "base URL of Ops-Core or the sidecar (env LOCUST_HOST)")
	fs.IntVar(&f.users, "users", 0, "virtual users (scenario 4: the first step); 0 keeps the scenario's")
	fs.Float64Var(&f.spawnRate, "spawn-rate", 0, "users started per second; 0 keeps the scenario's")
	fs.DurationVar(&f.duration, "duration", 0, "run length, ramp included; 0 keeps the scenario's")
	fs.DurationVar(&f.thinkMin, "think-min", 0, "shortest think time between tasks (default: the scenario's)")
	fs.DurationVar(&f.thinkMax, "think-max", 0, "longest think time between tasks (default: the scenario's)")
	fs.Float64Var(&f.rate, "rate", 0, "open model: requests per second (0 = closed model with think time)")
	fs.IntVar(&f.connections, "connections", 32, "open model: concurrent senders and keep-alive connections")
	fs.StringVar(&f.report, "report", "", "directory for result.json, report.txt and report.html (empty: none)")
	fs.StringVar(&f.webhookSecret, "webhook-secret", envOr("OPSCORE_WEBHOOK_SECRET", ""), "sign registrations like AgentKit with this secret (env OPSCORE_WEBHOOK_SECRET)")
	fs.StringVar(&f.apiKey, "api-key", envOr("OPSCORE_API_KEY", "test-api-key"), "Bearer API key (env OPSCORE_API_KEY)")
	fs.BoolVar(&f.uniqueIDs, "unique-ids", false, "use run-unique agent ids instead of the locustfiles' colliding random digits")
	fs.Float64Var(&f.maxFailureRatio, "max-failure-ratio", 0, "exit 1 when failures/requests is above this (0..1)")
	fs.DurationVar(&f.requestTimeout, "request-timeout", 60*time.Second, "timeout of each request")
	fs.BoolVar(&f.stopRule, "stop-rule", false, "apply the scenario 4 stop rule to any scenario")
	fs.BoolVar(&f.quiet, "quiet", false, "no progress lines on stderr")
}

// config turns the flags into a Config, applying overrides.
func (f *runFlags) config(progress io.Writer) (Config, error) {
	s, err := ScenarioByID(f.scenario)
	if err != nil {
		return Config{}, fmt.Errorf("--scenario: %w", err)
	}
	var errs []error
	if f.users < 0 {
		errs = append(errs, fmt.Errorf("--users: must be >= 1, got %d", f.users))
	} else if f.users > 0 {
		s.Users = f.users
		s.InitialUsers = min(s.InitialUsers, f.users)
	}
	if f.spawnRate < 0 {
		errs = append(errs, fmt.Errorf("--spawn-rate: must be > 0, got %v", f.spawnRate))
	} else if f.spawnRate > 0 {
		s.SpawnRate = f.spawnRate
	}
	if f.duration < 0 {
		errs = append(errs, fmt.Errorf("--duration: must be > 0, got %v", f.duration))
	} else if f.duration > 0 {
		s.Duration = f.duration
	}
	if f.set["think-min"] {
		s.ThinkMin = f.thinkMin
	}
	if f.set["think-max"] {
		s.ThinkMax = f.thinkMax
	}
	if f.maxFailureRatio < 0 || f.maxFailureRatio > 1 {
		errs = append(errs, fmt.Errorf("--max-failure-ratio: must be between 0 and 1, got %v", f.maxFailureRatio))
	}
	cfg := Config{
		Scenario: s, Target: f.target, APIKey: f.apiKey, WebhookSecret: f.webhookSecret,
		UniqueIDs: f.uniqueIDs, Rate: f.rate, Connections: f.connections,
		RequestTimeout: f.requestTimeout, StopRule: f.stopRule,
	}
	if !f.quiet {
		cfg.Progress = progress
	}
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	return cfg, errors.Join(errs...)
}

// parse parses args into fs and reports usage errors uniformly.
func parse(fs *flag.FlagSet, args []string, stderr io.Writer) bool {
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "loadtest %s: unexpected arguments %q\n", fs.Name(), fs.Args())
		return false
	}
	return true
}

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var f runFlags
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	f.register(fs)
	if !parse(fs, args, stderr) {
		return ExitUsage
	}
	f.set = map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })
	cfg, err := f.config(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "loadtest run: %v\n", err)
		return ExitUsage
	}
	if err := CheckTarget(ctx, cfg.Target); err != nil {
		fmt.Fprintf(stderr, "loadtest run: %v\n", err)
		return ExitUsage
	}
	res, err := Run(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "loadtest run: %v\n", err)
		return ExitRuntime
	}
	return finish(res, f.report, f.maxFailureRatio, stdout, stderr)
}

// finish prints and saves a result and turns it into an exit status.
func finish(res *Result, dir string, maxRatio float64, stdout, stderr io.Writer) int {
	res.WriteText(stdout)
	if dir != "" {
		paths, err := res.WriteFiles(dir)
		if err != nil {
			fmt.Fprintf(stderr, "loadtest: %v\n", err)
			return ExitRuntime
		}
		for _, p := range paths {
			fmt.Fprintf(stderr, "wrote %s\n", p)
		}
	}
	if r := res.FailureRatio(); r > maxRatio {
		fmt.Fprintf(stderr, "loadtest: failure ratio %.4f%% is above --max-failure-ratio %.4f%%\n", 100*r, 100*maxRatio)
		return ExitFailed
	}
	return ExitOK
}
