//go:build !race

// The race detector makes sync.Pool drop items at random, so allocation
// counts mean nothing under -race; this file runs without it
// (go test ./proxy -run CopyBuffers).

package proxy

import "testing"

// TestCopyBuffersDoNotAllocate: the ReverseProxy's BufferPool reuses its
// 32 KiB buffers, and its boxes, without an allocation per Get/Put pair.
func TestCopyBuffersDoNotAllocate(t *testing.T) {
	var p bufferPool
	p.Put(p.Get()) // warm up
	if n := testing.AllocsPerRun(1000, func() { p.Put(p.Get()) }); n != 0 {
		t.Errorf("Get+Put: %.1f allocations, want 0", n)
	}
}
