// Command loadtest replays the seed's Locust scenarios 0-4 against Ops-Core
// or the sidecar, injects faults and runs the registration-debugging plan
// as one command. See docs/loadtest.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"opscore-sidecar/e2e/loadgen"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := loadgen.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
