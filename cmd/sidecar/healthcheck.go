package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"time"
)

// healthcheck implements "sidecar healthcheck [--url URL]" for Docker's
// exec-form HEALTHCHECK (distroless images have no curl): exit 0 when the
// URL answers 200, 1 otherwise.
func healthcheck(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	target := fs.String("url", "http://127.0.0.1:9901/healthz", "health URL to probe")
	timeout := fs.Duration("timeout", 2*time.Second, "request timeout")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	client := &http.Client{Timeout: *timeout}
	resp, err := client.Get(*target)
	if err != nil {
		fmt.Fprintln(stderr, "healthcheck:", err)
		return 1
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "healthcheck: %s answered %d\n", *target, resp.StatusCode)
		return 1
	}
	return 0
}
