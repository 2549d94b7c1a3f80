package main

import (
	"bytes"
	"io"
	"log/slog"
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"testing"
	"time"
)

func TestGCFloorPercent(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		name              string
		floor, live, scan float64
		want              int
	}{
		{"goal at the floor", 8 * mib, 2 * mib, 3 * mib, 200},
		{"a whole percent, rounded down", 8 * mib, 2 * mib, 3.5 * mib, 171},
		{"live heap half the floor: Go's default", 8 * mib, 4 * mib, 5 * mib, 100},
		{"live heap over the floor: Go's default", 8 * mib, 20 * mib, 22 * mib, 100},
		{"never under 100", 8 * mib, 3.9 * mib, 8 * mib, 100},
		{"tiny heap: the minimum heap goal stays under the floor", 8 * mib, 0.1 * mib, 0.2 * mib, 200},
		{"tiny heap, large floor: the minimum heap goal is the floor", 256 * mib, 0.1 * mib, 0.2 * mib, 6400},
		{"floor at Go's own minimum", 4 * mib, 0.5 * mib, 1 * mib, 100},
		{"no collection yet", 8 * mib, 0, 0.3 * mib, 100},
	} {
		if got := gcFloorPercent(c.floor, c.live, c.scan); got != c.want {
			t.Errorf("%s: gcFloorPercent(%v, %v, %v) = %d, want %d", c.name, c.floor, c.live, c.scan, got, c.want)
		}
	}
}

// readGC returns the collector's heap goal and GOGC.
func readGC() (goal uint64, gogc uint64) {
	s := []metrics.Sample{{Name: "/gc/heap/goal:bytes"}, {Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return s[0].Value.Uint64(), s[1].Value.Uint64()
}

// With a floor far above this test binary's live heap, GOGC is raised
// after the collections so that the heap goal is the floor; stop puts
// Go's default back. An empty GOGC in the environment is no GOGC.
func TestGCFloorRaisesTheHeapGoal(t *testing.T) {
	t.Setenv("GOGC", "") // empty, as templated env files leave it: Go's default, so the floor applies
	// A GOMEMLIMIT the test binary was started with would cap the goal
	// below the floor (as it should): lift it for the test.
	t.Cleanup(func(limit int64) func() { return func() { debug.SetMemoryLimit(limit) } }(debug.SetMemoryLimit(math.MaxInt64)))
	// A live heap of some MiB keeps the GOGC needed under its cap.
	live := make([]byte, 4<<20)
	defer runtime.KeepAlive(live)
	const floor = 24 << 20
	stop := startGCFloor(floor, slog.New(slog.NewTextHandler(io.Discard, nil)))
	var goal, gogc uint64
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		runtime.GC() // the cleanup runs after a collection
		if goal, gogc = readGC(); gogc > 100 && goal >= floor*9/10 && goal <= floor*11/10 {
			break
		}
	}
	if gogc <= 100 || goal < floor*9/10 || goal > floor*11/10 {
		t.Errorf("with a %d-byte floor: GOGC %d, heap goal %d; want GOGC over 100 and the goal within 10%% of the floor", floor, gogc, goal)
	}
	stop()
	runtime.GC()
	if goal, gogc = readGC(); gogc != 100 || goal >= floor/2 {
		t.Errorf("after stop: GOGC %d, heap goal %d; want 100 and a goal well under the floor", gogc, goal)
	}
}

// A GOGC in the environment is the operator's: the floor is not applied,
// and the log says so.
func TestGCFloorLeavesAnOperatorsGOGC(t *testing.T) {
	t.Setenv("GOGC", "100")
	if _, gogc := readGC(); gogc != 100 {
		t.Fatalf("GOGC %d before the test, want 100", gogc)
	}
	var log bytes.Buffer
	stop := startGCFloor(64<<20, slog.New(slog.NewTextHandler(&log, nil)))
	defer stop()
	for range 3 {
		runtime.GC()
	}
	time.Sleep(50 * time.Millisecond)
	if _, gogc := readGC(); gogc != 100 {
		t.Errorf("GOGC %d with GOGC=100 in the environment, want 100", gogc)
	}
	if !strings.Contains(log.String(), "server.gc_heap_floor is not applied") {
		t.Errorf("log %q does not say the floor is not applied", log.String())
	}
}
