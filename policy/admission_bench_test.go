package policy

import (
	"context"
	"strconv"
	"testing"
	"time"
)

// BenchmarkAdmissionPassPath measures the admission decision for a request
// that passes the global, route and per-key buckets and takes and returns
// a concurrency slot: the cost every admitted request pays.
func BenchmarkAdmissionPassPath(b *testing.B) {
	route := DefaultRouteRateLimit()
	route.RPS, route.Burst, route.Key, route.PerKeyRPS, route.PerKeyBurst = 1e9, 1e6, "agent_id", 1e9, 1e6
	l, err := NewRateLimiter(RateLimitConfig{RPS: 1e9, Burst: 1e6, Mode: ModeEnforce}, map[string]RouteRateLimitConfig{"state_update": route})
	if err != nil {
		b.Fatal(err)
	}
	r, err := l.Route("state_update")
	if err != nil {
		b.Fatal(err)
	}
	g, err := NewConcurrencyGate(DefaultAdmission().Concurrency)
	if err != nil {
		b.Fatal(err)
	}
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = "agent-" + strconv.Itoa(i)
	}
	ctx := context.Background()
	now := rlT0
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(time.Microsecond)
		if d := l.Allow(r, keys[i%len(keys)], now); !d.Allowed {
			b.Fatalf("refused: %+v", d)
		}
		slot, _, err := g.Acquire(ctx, ClassBulk)
		if err != nil {
			b.Fatal(err)
		}
		slot.Release()
		i++
	}
}

// BenchmarkAdmissionPassPathParallel is the pass path from every P at once,
// to show lock contention on the shared buckets and gate.
func BenchmarkAdmissionPassPathParallel(b *testing.B) {
	route := DefaultRouteRateLimit()
	route.RPS, route.Burst, route.Key, route.PerKeyRPS, route.PerKeyBurst = 1e9, 1e6, "agent_id", 1e9, 1e6
	l, _ := NewRateLimiter(RateLimitConfig{RPS: 1e9, Burst: 1e6, Mode: ModeEnforce}, map[string]RouteRateLimitConfig{"state_update": route})
	r, _ := l.Route("state_update")
	g, _ := NewConcurrencyGate(DefaultAdmission().Concurrency)
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = "agent-" + strconv.Itoa(i)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if d := l.Allow(r, keys[i%len(keys)], time.Now()); !d.Allowed {
				b.Errorf("refused: %+v", d)
				return
			}
			slot, _, err := g.Acquire(context.Background(), ClassBulk)
			if err != nil {
				b.Error(err)
				return
			}
			slot.Release()
			i++
		}
	})
}

// BenchmarkWebhookVerify measures a signature check of a registration
// body, replay cache included.
func BenchmarkWebhookVerify(b *testing.B) {
	v := mustVerifier(b, AuthRequired, 5*time.Minute, 1)
	body := []byte(specBody)
	now := time.Unix(1745287627, 0)
	// Distinct deliveries, so that the cache of one never sees a replay.
	type delivery struct{ ts, sig string }
	ds := make([]delivery, 256)
	for i := range ds {
		ts := strconv.FormatInt(now.Unix()-int64(i), 10)
		ds[i] = delivery{ts, SignWebhook([]byte(specSecret), ts, body)}
	}
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		d := ds[i%len(ds)]
		if got := v.Verify(d.ts, d.sig, body, now); !got.Allowed {
			b.Fatalf("got %+v", got)
		}
		i++
	}
}
