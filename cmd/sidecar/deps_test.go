package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestSidecarLinksNoGRPC guards the memory goal of docs/performance.md
// ("Results, third round"): the official OTLP exporter linked all of gRPC
// into the sidecar, 16 MB of binary and about 4 MiB of resident memory,
// tracing on or off. proxy/otlp replaced it; no package of the binary may
// bring gRPC back.
func TestSidecarLinksNoGRPC(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 50 || !strings.Contains(string(out), "opscore-sidecar/proxy/otlp") {
		t.Fatalf("go list -deps: %d packages without proxy/otlp; want the sidecar's dependencies", len(deps))
	}
	var grpc []string
	for _, p := range deps {
		if p == "google.golang.org/grpc" || strings.HasPrefix(p, "google.golang.org/grpc/") || strings.HasPrefix(p, "github.com/grpc-ecosystem/") {
			grpc = append(grpc, p)
		}
	}
	if len(grpc) > 0 {
		t.Errorf("the sidecar links %d gRPC packages (%s, ...); see docs/performance.md, third round", len(grpc), grpc[0])
	}
}
