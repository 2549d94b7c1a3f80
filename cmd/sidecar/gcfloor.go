package main

import (
	"log/slog"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// gcFloor keeps the Go heap goal at server.gc_heap_floor bytes or more.
//
// With Go's default GOGC=100 the heap goal is about twice the live heap.
// The sidecar's live heap under load is small (2-3 MiB at 64 busy
// connections), so the goal is only 5-7 MiB and the collector runs about
// every 300 requests; each cycle costs a few milliseconds of CPU, whatever
// the heap's size, so at saturation the collector took about a tenth of
// the sidecar's CPU (docs/performance.md). gcFloor raises GOGC while the
// live heap is small, so that the goal is the floor instead: the same few
// MiB of memory that the collector's goal would reach anyway, with fewer
// cycles. Once the live heap is half the floor or more, GOGC is Go's
// default again and the goal grows with the heap as usual; unlike a
// GOMEMLIMIT without GOGC, a large live heap (requests held through an
// outage, say) never makes the collector run back to back.
//
// After every collection it reads the live heap and the collector's scan
// work (runtime/metrics) and sets GOGC so that
// goal = live + (live + stacks + globals) × GOGC/100 is the floor. An
// operator who sets GOGC in the environment keeps it: gcFloor then does
// nothing. A GOMEMLIMIT still caps the heap as usual.
type gcFloor struct {
	floor float64

	mu      sync.Mutex // adjust runs on the cleanup goroutine, stop on another
	percent int        // the GOGC set last
	samples []metrics.Sample
	stopped bool
}

// startGCFloor starts keeping the heap goal at floor bytes or more, unless
// floor is 0 or GOGC is set in the environment. stop ends it and puts
// GOGC back to what it was.
func startGCFloor(floor int64, logger *slog.Logger) (stop func()) {
	if floor <= 0 {
		return func() {}
	}
	if v := os.Getenv("GOGC"); v != "" { // Go reads an empty GOGC as unset too
		logger.Info("GOGC is set in the environment; server.gc_heap_floor is not applied", "GOGC", v)
		return func() {}
	}
	g := &gcFloor{floor: float64(floor), percent: 100, samples: []metrics.Sample{
		{Name: "/gc/heap/live:bytes"},
		{Name: "/gc/scan/stack:bytes"},
		{Name: "/gc/scan/globals:bytes"},
	}}
	before := debug.SetGCPercent(100)
	g.adjust()
	g.arm()
	return func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		g.stopped = true
		debug.SetGCPercent(before)
	}
}

// arm asks to be called after the next collection: a cleanup runs once the
// collector has found its object unreachable.
func (g *gcFloor) arm() {
	// Pointer-holding and 16 bytes or more, so it is not packed into a
	// tiny-allocation block that may outlive it.
	type sentinel struct {
		_ *byte
		_ [2]uintptr
	}
	runtime.AddCleanup(&sentinel{}, func(g *gcFloor) {
		if g.adjust() {
			g.arm()
		}
	}, g)
}

// adjust sets GOGC for the live heap of the last collection. It reports
// false once stop has run.
func (g *gcFloor) adjust() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stopped {
		return false
	}
	metrics.Read(g.samples)
	live := float64(g.samples[0].Value.Uint64())
	scan := live + float64(g.samples[1].Value.Uint64()) + float64(g.samples[2].Value.Uint64())
	p := gcFloorPercent(g.floor, live, scan)
	if p != g.percent {
		debug.SetGCPercent(p)
		g.percent = p
	}
	return true
}

// gcFloorPercent is the GOGC that makes the heap goal floor for a live
// heap of live bytes and scan bytes of collector work (live heap, stacks
// and globals): never under Go's default 100, and never so high that the
// collector's minimum heap goal (4 MiB × GOGC/100) passes the floor, so
// the goal is the floor however small the live heap is. Before the first
// collection (live 0) it is 100.
func gcFloorPercent(floor, live, scan float64) int {
	if live <= 0 || scan <= 0 {
		return 100
	}
	p := math.Floor((floor - live) / scan * 100)
	limit := math.Floor(floor / gcMinHeap * 100)
	return int(max(min(p, limit, math.MaxInt32), 100))
}

// gcMinHeap is the Go collector's minimum heap goal at GOGC=100.
const gcMinHeap = 4 << 20
