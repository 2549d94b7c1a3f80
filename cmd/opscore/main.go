// Command opscore runs the Ops-Core core service (see package opscore and
// docs/opscore.md).
//
//	opscore [flags]                               serve the API
//	opscore healthcheck [--url URL] [--timeout D] exit 0 when URL answers 200
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"opscore-sidecar/opscore"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	// After the first signal starts the drain, a second one kills the
	// process at once (the default action) instead of being swallowed.
	go func() { <-ctx.Done(); stop() }()
	os.Exit(realMain(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// realMain is main without the process: it returns the exit code.
func realMain(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "healthcheck" {
		return healthcheck(ctx, args[1:], stderr)
	}
	if err := run(ctx, args, getenv, stdout, nil); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}

// healthcheck is "opscore healthcheck": exit 0 when the URL answers 200.
func healthcheck(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "http://127.0.0.1:8000/health", "URL that must answer 200")
	timeout := fs.Duration("timeout", 3*time.Second, "overall timeout")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if err := opscore.CheckHealth(ctx, *url); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}

// run serves until ctx is done, then drains in-flight requests and closes
// the store. ready, when not nil, receives the listen address once the
// listener is open.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer, ready chan<- string) error {
	cfg, err := opscore.LoadConfig(args, getenv)
	if err != nil {
		return err
	}
	log := opscore.NewLogger(stdout, cfg.LogLevel)
	redis.SetLogger(opscore.RedisLogger{Logger: log})
	store, err := cfg.OpenStore()
	if err != nil {
		return err
	}
	svc, err := opscore.New(opscore.Options{
		Store: store, APIKey: cfg.APIKey, Logger: log, WorkflowFile: cfg.WorkflowFile,
	})
	if err != nil {
		_ = store.Close()
		return err
	}
	srv := opscore.NewHTTPServer(cfg, svc.Handler())
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		_ = svc.Close()
		return fmt.Errorf("opscore: listen: %w", err)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("opscore listening", slog.String("listen", ln.Addr().String()), slog.String("storage", cfg.StorageType))
	if ready != nil {
		ready <- ln.Addr().String()
	}

	select {
	case err := <-errc:
		_ = svc.Close()
		return fmt.Errorf("opscore: serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down", slog.Duration("grace", cfg.ShutdownTimeout))
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	shutErr := srv.Shutdown(sctx)
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("serve", slog.String("error", err.Error()))
	}
	closeErr := svc.Close()
	log.Info("stopped")
	return errors.Join(shutErr, closeErr)
}
