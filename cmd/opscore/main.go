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
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"opscore-sidecar/opscore"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "healthcheck" {
		os.Exit(healthcheck(os.Args[2:]))
	}
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func healthcheck(args []string) int {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	url := fs.String("url", "http://127.0.0.1:8000/health", "URL that must answer 200")
	timeout := fs.Duration("timeout", 3*time.Second, "overall timeout")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if err := opscore.CheckHealth(ctx, *url); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func run(args []string) error {
	cfg, err := opscore.LoadConfig(args, os.Getenv)
	if err != nil {
		return err
	}
	log := opscore.NewLogger(os.Stdout, cfg.LogLevel)
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

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Info("opscore listening", slog.String("listen", cfg.Listen), slog.String("storage", cfg.StorageType))

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
