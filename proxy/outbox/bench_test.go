package outbox

import (
	"context"
	"path/filepath"
	"testing"

	"opscore-sidecar/e2e/harness"
)

// benchEnqueue enqueues b.N messages of about 1 KiB, one at a time as the
// proxy does (each Enqueue is durable before it returns).
func benchEnqueue(b *testing.B, s Store) {
	m := msg("agent1", "req")
	m.Body = make([]byte, 1024)
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(m.Size())
	b.ResetTimer()
	for range b.N {
		c := *m
		if err := s.Enqueue(ctx, &c); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEnqueueBolt includes an fsync per message: expect the disk's
// sync latency (ms on a real disk, less on tmpfs).
func BenchmarkEnqueueBolt(b *testing.B) {
	s, err := OpenBolt(filepath.Join(b.TempDir(), "outbox.db"), Limits{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	benchEnqueue(b, s)
}

// BenchmarkEnqueueRedis is one script round trip to a local redis-server
// without persistence.
func BenchmarkEnqueueRedis(b *testing.B) {
	r := harness.StartRedis(b)
	s, err := OpenRedis(context.Background(), RedisOptions{URL: "redis://" + r.Addr})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	benchEnqueue(b, s)
}
