package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// SidecarOptions configures a cmd/sidecar child process.
type SidecarOptions struct {
	// Bin is the path of the sidecar binary; StartSidecar fills it from Bins.
	Bin string
	// UpstreamURL is SIDECAR_UPSTREAM_URL, the Ops-Core base URL.
	UpstreamURL string
	// ConfigYAML is written to a file passed with --config; empty means no
	// file (the sidecar's defaults).
	ConfigYAML string
	// Port and AdminPort are the listen ports on 127.0.0.1; 0 picks free ones.
	Port, AdminPort int
	// Env holds extra KEY=value entries (SIDECAR_<PATH> overrides, secrets).
	Env []string
	// Dir receives the config and log files and, unless Env sets
	// SIDECAR_OUTBOX_DIR, the outbox (outbox-<port>/); empty means a new
	// temporary directory.
	Dir string
}

// StartSidecarProcess starts cmd/sidecar outside of a test and waits until
// the admin GET /readyz answers 200. The access log (JSON lines on stdout
// or stderr) is captured in the returned Proc's LogPath. The caller must
// call Close.
func StartSidecarProcess(opts SidecarOptions) (*Proc, error) {
	if opts.Bin == "" {
		return nil, fmt.Errorf("harness: SidecarOptions.Bin is empty")
	}
	if err := freePorts(&opts.Port, &opts.AdminPort); err != nil {
		return nil, err
	}
	if err := defaultDir(&opts.Dir, "harness-sidecar-"); err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(opts.Port)
	admin := "127.0.0.1:" + strconv.Itoa(opts.AdminPort)
	var args []string
	if opts.ConfigYAML != "" {
		cfg := filepath.Join(opts.Dir, "sidecar-"+strconv.Itoa(opts.Port)+".yaml")
		if err := os.WriteFile(cfg, []byte(opts.ConfigYAML), 0o644); err != nil {
			return nil, fmt.Errorf("harness: write sidecar config: %w", err)
		}
		args = append(args, "--config", cfg)
	}
	env := []string{
		"SIDECAR_LISTEN=" + addr,
		"SIDECAR_ADMIN_LISTEN=" + admin,
		// Each sidecar its own outbox file (opts.Env may point two at one
		// directory to restart a sidecar on its predecessor's outbox).
		"SIDECAR_OUTBOX_DIR=" + filepath.Join(opts.Dir, "outbox-"+strconv.Itoa(opts.Port)),
	}
	if opts.UpstreamURL != "" {
		env = append(env, "SIDECAR_UPSTREAM_URL="+opts.UpstreamURL)
	}
	env = append(env, opts.Env...)
	p := &Proc{
		Name:     "sidecar",
		URL:      "http://" + addr,
		Port:     opts.Port,
		AdminURL: "http://" + admin,
		LogPath:  filepath.Join(opts.Dir, "sidecar-"+strconv.Itoa(opts.Port)+".log"),
		bin:      opts.Bin,
		args:     args,
		env:      env,
		readyURL: "http://" + admin + "/readyz",
	}
	return launch(p)
}

// StartSidecar builds the binaries if needed, starts cmd/sidecar for the
// test and stops it (by PID) in tb.Cleanup. It fails tb when the sidecar
// does not become ready.
func StartSidecar(tb testing.TB, opts SidecarOptions) *Proc {
	tb.Helper()
	return forTest(tb, "sidecar", &opts.Bin, func(b Binaries) string { return b.Sidecar }, &opts.Dir,
		func() (*Proc, error) { return StartSidecarProcess(opts) })
}
