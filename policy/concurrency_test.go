package policy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

func gateConfig(limit int, reserved float64, queue int, timeout time.Duration, mode Mode) ConcurrencyConfig {
	return ConcurrencyConfig{Limit: limit, CriticalReserved: reserved, QueueSize: queue, QueueTimeout: timeout, Mode: mode}
}

func mustGate(t *testing.T, cfg ConcurrencyConfig) *ConcurrencyGate {
	t.Helper()
	g, err := NewConcurrencyGate(cfg)
	if err != nil {
		t.Fatalf("NewConcurrencyGate: %v", err)
	}
	return g
}

// mustAcquire takes a slot that must be free at once.
func mustAcquire(t *testing.T, g *ConcurrencyGate, c Class) GateSlot {
	t.Helper()
	s, reason, err := g.Acquire(context.Background(), c)
	if err != nil || reason != ReasonNone {
		t.Fatalf("Acquire(%s): got reason %q err %v, want a slot", c, reason, err)
	}
	return s
}

// gateResult is what a background Acquire ended with.
type gateResult struct {
	name   string
	slot   GateSlot
	reason AdmissionReason
	err    error
	waited time.Duration
}

// acquireAsync starts an Acquire in a goroutine and waits (synctest) until
// it is either done or durably blocked in the queue, so calls queue in order.
func acquireAsync(ctx context.Context, g *ConcurrencyGate, name string, c Class, out chan<- gateResult) {
	go func() {
		start := time.Now()
		s, r, err := g.Acquire(ctx, c)
		out <- gateResult{name: name, slot: s, reason: r, err: err, waited: time.Since(start)}
	}()
	synctest.Wait()
}

func TestGateReservesSlotsForCritical(t *testing.T) {
	g := mustGate(t, gateConfig(4, 0.5, 0, 0, ModeEnforce))
	b1, b2 := mustAcquire(t, g, ClassBulk), mustAcquire(t, g, ClassBulk)
	_, reason, err := g.Acquire(context.Background(), ClassBulk)
	if !errors.Is(err, ErrShed) || reason != ReasonShed {
		t.Fatalf("third bulk: got reason %q err %v, want shed (2 of 4 slots reserved)", reason, err)
	}
	c1, c2 := mustAcquire(t, g, ClassCritical), mustAcquire(t, g, ClassCritical)
	if _, reason, err := g.Acquire(context.Background(), ClassCritical); !errors.Is(err, ErrShed) || reason != ReasonShed {
		t.Fatalf("fifth request: got reason %q err %v, want shed (limit 4)", reason, err)
	}
	st := g.Stats()
	if st.InFlightOf(ClassBulk) != 2 || st.InFlightOf(ClassCritical) != 2 || st.Reserved != 2 || st.ClassLimit(ClassBulk) != 2 {
		t.Errorf("Stats: got %+v, want 2 bulk, 2 critical in flight, 2 reserved", st)
	}
	// Critical may also use the unreserved slots.
	b1.Release()
	b2.Release()
	c3, c4 := mustAcquire(t, g, ClassCritical), mustAcquire(t, g, ClassCritical)
	for _, s := range []GateSlot{c1, c2, c3, c4} {
		s.Release()
	}
	if st := g.Stats(); st.InFlight != [2]int{} {
		t.Errorf("after releasing all: got in flight %v, want none", st.InFlight)
	}
}

// TestGateServesWaitingCriticalBeforeBulk queues bulk, critical, bulk
// behind one held slot: the critical waiter is served first, then the
// bulk ones in arrival order.
func TestGateServesWaitingCriticalBeforeBulk(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := mustGate(t, gateConfig(1, 0, 10, time.Second, ModeEnforce))
		held := mustAcquire(t, g, ClassBulk)
		out := make(chan gateResult, 3)
		acquireAsync(t.Context(), g, "bulk-1", ClassBulk, out)
		acquireAsync(t.Context(), g, "critical-1", ClassCritical, out)
		acquireAsync(t.Context(), g, "bulk-2", ClassBulk, out)
		if st := g.Stats(); st.QueuedOf(ClassBulk) != 2 || st.QueuedOf(ClassCritical) != 1 {
			t.Fatalf("queued: got %v, want 1 critical and 2 bulk", st.Queued)
		}
		held.Release()
		for _, want := range []string{"critical-1", "bulk-1", "bulk-2"} {
			synctest.Wait()
			r := <-out
			if r.name != want || r.err != nil {
				t.Fatalf("served: got %s (err %v), want %s", r.name, r.err, want)
			}
			r.slot.Release()
		}
	})
}

func TestGateQueueTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := mustGate(t, gateConfig(1, 0, 10, 500*time.Millisecond, ModeEnforce))
		held := mustAcquire(t, g, ClassCritical)
		defer held.Release()
		out := make(chan gateResult, 1)
		acquireAsync(t.Context(), g, "bulk", ClassBulk, out)
		r := <-out
		if !errors.Is(r.err, ErrQueueTimeout) || r.reason != ReasonQueueTimeout {
			t.Fatalf("got reason %q err %v, want queue timeout", r.reason, r.err)
		}
		if r.waited != 500*time.Millisecond {
			t.Errorf("waited: got %s, want exactly the queue timeout 500ms (fake clock)", r.waited)
		}
		if st := g.Stats(); st.Queued != [2]int{} {
			t.Errorf("queue after timeout: got %v, want empty", st.Queued)
		}
	})
}

func TestGateQueueFullEvictsBulkForCritical(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := mustGate(t, gateConfig(1, 0, 2, time.Second, ModeEnforce))
		held := mustAcquire(t, g, ClassBulk)
		out := make(chan gateResult, 4)
		acquireAsync(t.Context(), g, "bulk-1", ClassBulk, out)
		acquireAsync(t.Context(), g, "bulk-2", ClassBulk, out)
		acquireAsync(t.Context(), g, "bulk-3", ClassBulk, out)
		if r := <-out; r.name != "bulk-3" || !errors.Is(r.err, ErrQueueFull) || r.reason != ReasonQueueFull {
			t.Fatalf("got %s reason %q err %v, want bulk-3 refused queue_full", r.name, r.reason, r.err)
		}
		acquireAsync(t.Context(), g, "critical-1", ClassCritical, out)
		if r := <-out; r.name != "bulk-2" || !errors.Is(r.err, ErrShed) || r.reason != ReasonShed {
			t.Fatalf("got %s reason %q err %v, want bulk-2 (newest bulk waiter) shed", r.name, r.reason, r.err)
		}
		acquireAsync(t.Context(), g, "critical-2", ClassCritical, out)
		if r := <-out; r.name != "bulk-1" || r.reason != ReasonShed {
			t.Fatalf("got %s reason %q, want bulk-1 shed", r.name, r.reason)
		}
		acquireAsync(t.Context(), g, "critical-3", ClassCritical, out)
		if r := <-out; r.name != "critical-3" || r.reason != ReasonQueueFull {
			t.Fatalf("got %s reason %q, want critical-3 refused queue_full (no bulk left to evict)", r.name, r.reason)
		}
		held.Release()
		for _, want := range []string{"critical-1", "critical-2"} {
			synctest.Wait()
			r := <-out
			if r.name != want || r.err != nil {
				t.Fatalf("served: got %s err %v, want %s", r.name, r.err, want)
			}
			r.slot.Release()
		}
	})
}

// TestGateResizeKeepsWaiters grows and shrinks the gate while requests
// wait: none is dropped, a raised limit admits them at once.
func TestGateResizeKeepsWaiters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := mustGate(t, gateConfig(1, 0, 3, time.Minute, ModeEnforce))
		held := mustAcquire(t, g, ClassBulk)
		out := make(chan gateResult, 4)
		for i := range 3 {
			acquireAsync(t.Context(), g, fmt.Sprintf("bulk-%d", i), ClassBulk, out)
		}
		if err := g.Update(gateConfig(1, 0, 1, time.Minute, ModeEnforce)); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if st := g.Stats(); st.QueuedOf(ClassBulk) != 3 {
			t.Fatalf("after shrinking the queue to 1: got %d waiting, want the 3 kept", st.QueuedOf(ClassBulk))
		}
		acquireAsync(t.Context(), g, "late", ClassBulk, out)
		if r := <-out; r.name != "late" || r.reason != ReasonQueueFull {
			t.Fatalf("got %s %q, want the late arrival refused queue_full", r.name, r.reason)
		}
		if err := g.Update(gateConfig(3, 0, 1, time.Minute, ModeEnforce)); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		got := map[string]bool{}
		for range 2 {
			r := <-out
			if r.err != nil {
				t.Fatalf("after raising the limit to 3: got %s err %v, want admitted", r.name, r.err)
			}
			got[r.name] = true
		}
		if !got["bulk-0"] || !got["bulk-1"] {
			t.Fatalf("after raising the limit to 3: got %v admitted, want the first two in line, bulk-0 and bulk-1", got)
		}
		if st := g.Stats(); st.InFlightOf(ClassBulk) != 3 || st.QueuedOf(ClassBulk) != 1 {
			t.Fatalf("got %+v, want 3 in flight and 1 waiting", st)
		}
		held.Release()
		synctest.Wait()
		if r := <-out; r.name != "bulk-2" || r.err != nil {
			t.Fatalf("got %s err %v, want bulk-2 admitted", r.name, r.err)
		}
	})
}

func TestGateCanceledWaiterLeavesQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := mustGate(t, gateConfig(1, 0, 3, time.Minute, ModeEnforce))
		held := mustAcquire(t, g, ClassBulk)
		ctx, cancel := context.WithCancel(t.Context())
		out := make(chan gateResult, 1)
		acquireAsync(ctx, g, "bulk", ClassBulk, out)
		cancel()
		r := <-out
		if r.reason != ReasonCanceled || !errors.Is(r.err, context.Canceled) {
			t.Fatalf("got reason %q err %v, want canceled", r.reason, r.err)
		}
		held.Release()
		if st := g.Stats(); st.Queued != [2]int{} || st.InFlight != [2]int{} {
			t.Errorf("got %+v, want nothing queued or in flight", st)
		}
	})
}

func TestGateShadowAdmitsButReports(t *testing.T) {
	g := mustGate(t, gateConfig(1, 0, 0, 0, ModeShadow))
	s1 := mustAcquire(t, g, ClassBulk)
	s2, reason, err := g.Acquire(context.Background(), ClassBulk)
	if err != nil || reason != ReasonShed {
		t.Fatalf("second in shadow: got reason %q err %v, want admitted with shadow reason shed", reason, err)
	}
	if st := g.Stats(); st.InFlightOf(ClassBulk) != 2 {
		t.Errorf("in flight: got %d, want 2 (shadow lets the excess through)", st.InFlightOf(ClassBulk))
	}
	s1.Release()
	s2.Release()
}

func TestGateUnlimited(t *testing.T) {
	g := mustGate(t, gateConfig(0, 0.25, 0, 0, ModeEnforce))
	var slots []GateSlot
	for range 1000 {
		slots = append(slots, mustAcquire(t, g, ClassBulk))
	}
	for _, s := range slots {
		s.Release()
	}
	GateSlot{}.Release() // the zero slot releases nothing
	if st := g.Stats(); st.InFlight != [2]int{} {
		t.Errorf("got in flight %v, want none", st.InFlight)
	}
}

// TestGateNeverExceedsLimits runs many goroutines of both classes through
// a small gate and records the most slots ever held per class: never more
// than the limit, and bulk never more than limit minus the reservation.
func TestGateNeverExceedsLimits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const limit = 4
		g := mustGate(t, gateConfig(limit, 0.5, 8, 50*time.Millisecond, ModeEnforce))
		var mu sync.Mutex
		var cur, peak [2]int
		var admitted, refused int
		var wg sync.WaitGroup
		for i := range 200 {
			c := ClassBulk
			if i%3 == 0 {
				c = ClassCritical
			}
			wg.Go(func() {
				time.Sleep(time.Duration(i%17) * time.Millisecond)
				s, _, err := g.Acquire(t.Context(), c)
				mu.Lock()
				if err != nil {
					refused++
					mu.Unlock()
					return
				}
				admitted++
				ci := classIndex(c)
				cur[ci]++
				peak[ci] = max(peak[ci], cur[ci])
				if cur[0]+cur[1] > limit {
					t.Errorf("%d slots held, want at most %d", cur[0]+cur[1], limit)
				}
				mu.Unlock()
				time.Sleep(10 * time.Millisecond)
				mu.Lock()
				cur[ci]--
				mu.Unlock()
				s.Release()
			})
		}
		wg.Wait()
		if peak[bulkIdx] > 2 {
			t.Errorf("bulk peak: got %d, want at most 2 (limit 4, 2 reserved)", peak[bulkIdx])
		}
		if admitted+refused != 200 || admitted == 0 || refused == 0 {
			t.Errorf("got %d admitted and %d refused, want both > 0 and 200 in all", admitted, refused)
		}
	})
}

func TestGateRejectsInvalidConfig(t *testing.T) {
	_, err := NewConcurrencyGate(gateConfig(-1, 1, 5, 0, "x"))
	if err == nil {
		t.Fatal("got nil error, want invalid limit, share, timeout and mode reported")
	}
	for _, key := range []string{"limit", "critical_reserved", "queue_timeout", "mode"} {
		if !strings.Contains(err.Error(), "admission.concurrency."+key+":") {
			t.Errorf("error %q: want it to name admission.concurrency.%s", err, key)
		}
	}
}

func TestGateAcquireNowNeverWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := mustGate(t, gateConfig(1, 0, 10, time.Minute, ModeEnforce))
		s, reason, err := g.AcquireNow(ClassCritical)
		if err != nil || reason != ReasonNone {
			t.Fatalf("free slot: got %q %v, want admitted", reason, err)
		}
		start := time.Now()
		if _, reason, err := g.AcquireNow(ClassCritical); !errors.Is(err, ErrShed) || reason != ReasonShed {
			t.Fatalf("no free slot: got %q %v, want shed", reason, err)
		}
		if waited := time.Since(start); waited != 0 {
			t.Errorf("waited %s, want no wait at all", waited)
		}
		if st := g.Stats(); st.Queued != [2]int{} {
			t.Errorf("queued: got %v, want nothing", st.Queued)
		}
		s.Release()
	})
}

// TestGateObserverSeesEveryChange records the states the observer is
// given: queue depth and in-flight counts as requests queue and leave.
func TestGateObserverSeesEveryChange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := mustGate(t, gateConfig(1, 0, 2, time.Second, ModeEnforce))
		var mu sync.Mutex
		var seen []GateStats
		g.Observe(func(st GateStats) {
			mu.Lock()
			seen = append(seen, st)
			mu.Unlock()
		})
		held := mustAcquire(t, g, ClassCritical)
		out := make(chan gateResult, 1)
		acquireAsync(t.Context(), g, "bulk", ClassBulk, out)
		held.Release()
		synctest.Wait()
		(<-out).slot.Release()
		mu.Lock()
		defer mu.Unlock()
		want := []struct{ inflight, queued [2]int }{
			{[2]int{0, 0}, [2]int{0, 0}}, // Observe reports the state at once
			{[2]int{1, 0}, [2]int{0, 0}}, // critical takes the slot
			{[2]int{1, 0}, [2]int{0, 1}}, // bulk queues
			{[2]int{0, 1}, [2]int{0, 0}}, // release hands the slot to bulk
			{[2]int{0, 0}, [2]int{0, 0}}, // bulk releases
		}
		if len(seen) != len(want) {
			t.Fatalf("got %d observations %+v, want %d", len(seen), seen, len(want))
		}
		for i, w := range want {
			if seen[i].InFlight != w.inflight || seen[i].Queued != w.queued {
				t.Errorf("observation %d: got in flight %v queued %v, want %v %v", i, seen[i].InFlight, seen[i].Queued, w.inflight, w.queued)
			}
		}
	})
}
