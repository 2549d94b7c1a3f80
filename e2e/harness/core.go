package harness

import (
	"fmt"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// CoreOptions configures a cmd/opscore child process.
type CoreOptions struct {
	// Bin is the path of the opscore binary; StartCore fills it from Bins.
	Bin string
	// Port is the listen port on 127.0.0.1; 0 picks a free one.
	Port int
	// Storage is OPSCORE_STORAGE_TYPE: "memory" (the default) or "redis".
	Storage string
	// RedisURL is REDIS_URL, used when Storage is "redis".
	RedisURL string
	// IdleTimeout is OPSCORE_IDLE_TIMEOUT, the server's keep-alive idle
	// timeout; 0 leaves the core's default. 5s emulates uvicorn.
	IdleTimeout time.Duration
	// Env holds extra KEY=value entries for the process environment.
	Env []string
	// Dir receives the log file; empty means a new temporary directory.
	Dir string
}

// StartCoreProcess starts cmd/opscore outside of a test and waits until
// GET /health answers 200. The caller must call Close (or Stop/Kill).
func StartCoreProcess(opts CoreOptions) (*Proc, error) {
	if opts.Bin == "" {
		return nil, fmt.Errorf("harness: CoreOptions.Bin is empty")
	}
	if err := freePorts(&opts.Port); err != nil {
		return nil, err
	}
	if err := defaultDir(&opts.Dir, "harness-core-"); err != nil {
		return nil, err
	}
	storage := opts.Storage
	if storage == "" {
		storage = "memory"
	}
	if storage == "redis" && opts.RedisURL == "" {
		// Without REDIS_URL the core would fall back to localhost:6379,
		// the machine's Redis, which tests must never touch.
		return nil, fmt.Errorf("harness: CoreOptions.RedisURL is required with Storage \"redis\"")
	}
	addr := "127.0.0.1:" + strconv.Itoa(opts.Port)
	env := []string{
		"OPSCORE_LISTEN=" + addr,
		"OPSCORE_STORAGE_TYPE=" + storage,
	}
	if opts.RedisURL != "" {
		env = append(env, "REDIS_URL="+opts.RedisURL)
	}
	if opts.IdleTimeout > 0 {
		env = append(env, "OPSCORE_IDLE_TIMEOUT="+opts.IdleTimeout.String())
	}
	env = append(env, opts.Env...)
	p := &Proc{
		Name:     "opscore",
		URL:      "http://" + addr,
		Port:     opts.Port,
		LogPath:  filepath.Join(opts.Dir, "opscore-"+strconv.Itoa(opts.Port)+".log"),
		bin:      opts.Bin,
		env:      env,
		readyURL: "http://" + addr + "/health",
	}
	return launch(p)
}

// StartCore builds the binaries if needed, starts cmd/opscore for the test
// and stops it (by PID) in tb.Cleanup. It fails tb when the core does not
// become ready.
func StartCore(tb testing.TB, opts CoreOptions) *Proc {
	tb.Helper()
	return forTest(tb, "core", &opts.Bin, func(b Binaries) string { return b.Core }, &opts.Dir,
		func() (*Proc, error) { return StartCoreProcess(opts) })
}
