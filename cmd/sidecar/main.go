// Command sidecar is the Ops-Core resilience reverse proxy. It only wires:
// flags → load config → validate → build → serve → wait for a signal →
// drain. Everything else lives in package proxy.
//
// Usage:
//
//	sidecar [--config FILE] [--listen ADDR] [--admin-listen ADDR] [--upstream-url URL]
//	        [--log-level LEVEL] [--check-config] [--embedded-core]
//	sidecar healthcheck [--url http://127.0.0.1:9901/healthz]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"

	"opscore-sidecar/proxy"
	"opscore-sidecar/proxy/config"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// flagKeys maps each flag that overrides a config key to that key.
var flagKeys = map[string]string{
	"listen":       "listen",
	"admin-listen": "admin.listen",
	"upstream-url": "upstream.url",
	"log-level":    "log.level",
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "healthcheck" {
		return healthcheck(args[1:], stderr)
	}
	fs := flag.NewFlagSet("sidecar", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", os.Getenv("SIDECAR_CONFIG"), "YAML config file (env SIDECAR_CONFIG); empty: built-in defaults")
	checkConfig := fs.Bool("check-config", false, "validate the configuration, print every error, and exit (0 valid, 1 invalid)")
	embedded := fs.Bool("embedded-core", false, "also run the Ops-Core core in-process (memory store) on the upstream URL's host:port")
	fs.String("listen", "", "proxy listen address (key listen, default :8080)")
	fs.String("admin-listen", "", "admin listen address (key admin.listen, default 127.0.0.1:9901)")
	fs.String("upstream-url", "", "upstream base URL (key upstream.url, default http://127.0.0.1:8000)")
	fs.String("log-level", "", "log level: debug, info, warn, error (key log.level, default info)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	overrides := map[string]any{}
	fs.Visit(func(f *flag.Flag) {
		if key, ok := flagKeys[f.Name]; ok {
			overrides[key] = f.Value.String()
		}
	})

	load := config.LoadOptions{Path: *configPath, Overrides: overrides}
	cfg, err := config.Load(load)
	if err == nil && *checkConfig {
		err = proxy.Check(cfg)
	}
	if err != nil {
		fmt.Fprintln(stderr, "sidecar: invalid configuration:")
		for _, e := range config.SplitErrors(err) {
			fmt.Fprintln(stderr, "  "+e.Error())
		}
		return 1
	}
	if *checkConfig {
		fmt.Fprintln(stdout, "sidecar: configuration OK")
		return 0
	}

	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Log.Level))
	logger := slog.New(slog.NewJSONHandler(stdout, &slog.HandlerOptions{Level: level}))
	access := slog.New(slog.NewJSONHandler(stdout, nil)).With("log", "access")
	defer startGCFloor(cfg.Server.GCHeapFloor, logger)()

	// The sidecar holds its own propagator; the global one is set too for
	// libraries that read it.
	otel.SetTextMapPropagator(propagation.TraceContext{})
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// The first signal starts the drain; once it has, the signals get their
	// default action back, so a second SIGTERM or Ctrl-C ends the process at
	// once for an operator who will not wait for slow requests.
	go func() {
		<-ctx.Done()
		stop()
	}()
	if *embedded {
		core, err := startEmbeddedCore(cfg.Upstream.URL, logger.With("component", "core"))
		if err != nil {
			logger.Error("embedded core failed to start", "error", err)
			return 1
		}
		defer core.stop()
	}
	if err := proxy.Run(ctx, proxy.RunOptions{Config: cfg, Load: load, Logger: logger, AccessLog: access}); err != nil {
		logger.Error("sidecar stopped with an error", "error", err)
		return 1
	}
	return 0
}
