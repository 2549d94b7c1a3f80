//go:build !race

// The race detector makes sync.Pool drop items at random, so allocation
// counts mean nothing under -race; this file runs without it.

package perf

import "testing"

// TestBarePoolDoesNotAllocate: the bare proxy's BufferPool reuses its
// buffers without an allocation per Get/Put pair, so the baseline the
// sidecar is measured against is not handicapped by its pool.
func TestBarePoolDoesNotAllocate(t *testing.T) {
	var p pool
	p.Put(p.Get()) // warm up
	if n := testing.AllocsPerRun(1000, func() { p.Put(p.Get()) }); n != 0 {
		t.Errorf("Get+Put: %.1f allocations, want 0", n)
	}
}
