package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"opscore-sidecar/opscore"
)

// healthcheck implements "sidecar healthcheck [--url URL]" for Docker's
// exec-form HEALTHCHECK (distroless images have no curl): exit 0 when the
// URL answers 200, 1 otherwise. The probe is the core's (opscore.CheckHealth).
func healthcheck(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	target := fs.String("url", "http://127.0.0.1:9901/healthz", "health URL to probe")
	timeout := fs.Duration("timeout", 2*time.Second, "request timeout")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if err := opscore.CheckHealth(ctx, *target); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}
