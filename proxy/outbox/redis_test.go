package outbox

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"opscore-sidecar/e2e/harness"
)

// deliveries records what the replicas delivered.
type deliveries struct {
	mu      sync.Mutex
	count   map[string]int    // RequestID -> successful sends
	by      map[string]string // RequestID -> consumer that delivered it
	order   []string          // RequestIDs in delivery order
	changed chan struct{}
}

func newDeliveries() *deliveries {
	return &deliveries{count: map[string]int{}, by: map[string]string{}, changed: make(chan struct{}, 1)}
}

func (d *deliveries) record(consumer string, m *Message) {
	d.mu.Lock()
	d.count[m.RequestID]++
	d.by[m.RequestID] = consumer
	d.order = append(d.order, m.RequestID)
	d.mu.Unlock()
	select {
	case d.changed <- struct{}{}:
	default:
	}
}

// waitFor waits until every id of want was delivered, failing after a
// generous bound (a hang, not a speed check).
func (d *deliveries) waitFor(t *testing.T, want []string) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		d.mu.Lock()
		missing := slices.IndexFunc(want, func(id string) bool { return d.count[id] == 0 })
		d.mu.Unlock()
		if missing < 0 {
			return
		}
		select {
		case <-d.changed:
		case <-deadline:
			t.Fatalf("message %s not delivered within 30s", want[missing])
		}
	}
}

// check verifies want was delivered exactly once each and in this order.
func (d *deliveries) check(t *testing.T, want []string) {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, id := range want {
		if d.count[id] != 1 {
			t.Fatalf("message %s delivered %d times, want once", id, d.count[id])
		}
	}
	var got []string
	for _, id := range d.order {
		if slices.Contains(want, id) {
			got = append(got, id)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("delivery order\n got %v\nwant %v", got, want)
	}
}

func openReplica(t *testing.T, addr, consumer string, lease time.Duration) *RedisStore {
	t.Helper()
	s, err := OpenRedis(context.Background(), RedisOptions{
		URL: "redis://" + addr, Stream: "{o}:outbox", Group: "g", Consumer: consumer, Lease: lease,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestRedisReplicasDeliverOnceInOrder runs two replicas (two consumers of
// one group) with a deliverer each. Every message must be delivered once,
// in enqueue order; then the replica stuck sending is killed (its Run
// cancelled, the claimed message not acked) and the other one takes over
// after the lease and delivers the rest, the stuck one first.
func TestRedisReplicasDeliverOnceInOrder(t *testing.T) {
	r := harness.StartRedis(t)
	const lease = time.Second
	names := []string{"a", "b"}
	stores := map[string]*RedisStore{}
	for _, n := range names {
		stores[n] = openReplica(t, r.Addr, n, lease)
	}
	rec := newDeliveries()
	var blockMu sync.Mutex
	blockOn, blocked := "", make(chan string, 1) // a send of blockOn hangs until its Run ends
	runs := map[string]context.CancelFunc{}
	done := map[string]chan struct{}{}
	delivs := map[string]*Deliverer{}
	for _, n := range names {
		send := func(ctx context.Context, m *Message) (int, error) {
			blockMu.Lock()
			hang := m.RequestID == blockOn
			if hang {
				blockOn = "" // only the first send of it hangs
			}
			blockMu.Unlock()
			if hang {
				blocked <- n
				<-ctx.Done()
				return 0, ctx.Err()
			}
			rec.record(n, m)
			return 200, nil
		}
		d := NewDeliverer(stores[n], send, DelivererOptions{Poll: 20 * time.Millisecond, BackoffBase: time.Millisecond, BackoffMax: 10 * time.Millisecond})
		ctx, cancel := context.WithCancel(context.Background())
		ch := make(chan struct{})
		runs[n], done[n], delivs[n] = cancel, ch, d
		go func() {
			defer close(ch)
			d.Run(ctx)
		}()
	}
	defer func() {
		for _, n := range names {
			runs[n]()
			<-done[n]
		}
	}()

	// Phase 1: both replicas enqueue and deliver concurrently.
	var phase1 []string
	for i := range 100 {
		n := names[i%2]
		m := msg(fmt.Sprintf("agent%d", i%5), fmt.Sprintf("p1-%03d", i))
		if err := stores[n].Enqueue(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		delivs[n].Kick()
		phase1 = append(phase1, m.RequestID)
	}
	rec.waitFor(t, phase1)
	rec.check(t, phase1)

	// Phase 2: the first message hangs in whichever replica sends it.
	blockMu.Lock()
	blockOn = "p2-000"
	blockMu.Unlock()
	var phase2 []string
	for i := range 50 {
		m := msg(fmt.Sprintf("agent%d", i%5), fmt.Sprintf("p2-%03d", i))
		if err := stores["a"].Enqueue(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		phase2 = append(phase2, m.RequestID)
	}
	delivs["a"].Kick()
	delivs["b"].Kick()
	stuck := <-blocked
	other := names[0]
	if stuck == other {
		other = names[1]
	}
	// While the stuck replica renews its lease, the other one must not
	// deliver anything: the head is out.
	time.Sleep(2 * lease)
	rec.mu.Lock()
	early := slices.ContainsFunc(rec.order, func(id string) bool { return strings.HasPrefix(id, "p2-") })
	rec.mu.Unlock()
	if early {
		t.Fatalf("replica %s delivered phase-2 messages while %s held the lease and the head: %v", other, stuck, rec.order[100:])
	}
	// Kill the stuck replica's deliverer; its claimed message stays pending.
	runs[stuck]()
	<-done[stuck]
	rec.waitFor(t, phase2)
	rec.check(t, phase2)
	rec.mu.Lock()
	for _, id := range phase2 {
		if rec.by[id] != other {
			rec.mu.Unlock()
			t.Fatalf("%s delivered by %s, want %s (the survivor)", id, rec.by[id], other)
		}
	}
	rec.mu.Unlock()

	// The last Ack follows the last send: wait for it (bounded).
	st := stats(t, stores[other])
	for deadline := time.Now().Add(10 * time.Second); st.Depth != 0 && time.Now().Before(deadline); st = stats(t, stores[other]) {
		time.Sleep(10 * time.Millisecond)
	}
	if st.Depth != 0 || st.Bytes != 0 || st.Dead != 0 {
		t.Fatalf("Stats after all delivered = %+v", st)
	}
	pend, err := stores[other].Client().XPending(context.Background(), "{o}:outbox", "g").Result()
	if err != nil {
		t.Fatal(err)
	}
	if pend.Count != 0 {
		t.Fatalf("%d entries still pending in the group", pend.Count)
	}
	for i := range 5 {
		if pending(t, stores[other], fmt.Sprintf("agent%d", i)) {
			t.Fatalf("Pending(agent%d) true after all delivered", i)
		}
	}
}

func TestRedisClaimMovesUnreadableEntry(t *testing.T) {
	r := harness.StartRedis(t)
	s := openReplica(t, r.Addr, "a", time.Second)
	ctx := context.Background()
	raw := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer raw.Close()
	if err := raw.XAdd(ctx, &redis.XAddArgs{Stream: "{o}:outbox", Values: []string{"m", "not json", "size", "8", "agent", "x"}}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := raw.IncrBy(ctx, "{o}:outbox:bytes", 8).Err(); err != nil {
		t.Fatal(err)
	}
	if err := raw.HIncrBy(ctx, "{o}:outbox:agents", "x", 1).Err(); err != nil {
		t.Fatal(err)
	}
	m := msg("a", "r1")
	mustEnqueue(t, s, m)
	if h := mustClaim(t, s); h == nil || h.ID != m.ID {
		t.Fatalf("Claim = %+v, want r1 past the unreadable entry", h)
	}
	dead, err := s.Dead(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) != 1 || string(dead[0].Body) != "not json" || !strings.Contains(dead[0].DeadReason, "unreadable message") {
		t.Fatalf("Dead = %+v, want the raw entry with a reason", dead)
	}
	if st := stats(t, s); st.Depth != 1 || st.Bytes != m.Size() || st.Dead != 1 {
		t.Fatalf("Stats = %+v", st)
	}
	if pending(t, s, "x") {
		t.Fatal("Pending(x) true after its unreadable entry was dead-lettered")
	}
}

func TestOpenRedisRejectsBadOptions(t *testing.T) {
	ctx := context.Background()
	if _, err := OpenRedis(ctx, RedisOptions{}); err == nil || !strings.Contains(err.Error(), "URL is empty") {
		t.Fatalf("OpenRedis without URL = %v", err)
	}
	if _, err := OpenRedis(ctx, RedisOptions{URL: "redis://127.0.0.1:1", Lease: time.Millisecond}); err == nil || !strings.Contains(err.Error(), "lease") {
		t.Fatalf("OpenRedis with a 1ms lease = %v", err)
	}
	if _, err := OpenRedis(ctx, RedisOptions{URL: "http://x"}); err == nil {
		t.Fatal("OpenRedis with an http URL succeeded")
	}
	port, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if _, err := OpenRedis(ctx, RedisOptions{URL: "redis://" + addr}); err == nil || !strings.Contains(err.Error(), addr) {
		t.Fatalf("OpenRedis to a closed port = %v, want an error naming %s", err, addr)
	}
}

// TestRedisLeaseHandover: only the lease holder claims; Close gives the
// lease up so another replica takes over at once, starting with the
// message the first one had claimed and not acked.
func TestRedisLeaseHandover(t *testing.T) {
	r := harness.StartRedis(t)
	a := openReplica(t, r.Addr, "a", 5*time.Second)
	b := openReplica(t, r.Addr, "b", 5*time.Second)
	m1, m2 := msg("x", "r1"), msg("x", "r2")
	mustEnqueue(t, a, m1, m2)
	if h := mustClaim(t, a); h == nil || h.ID != m1.ID {
		t.Fatalf("a claims %+v, want r1", h)
	}
	if h := mustClaim(t, b); h != nil {
		t.Fatalf("b claimed %+v while a holds the lease", h)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	h := mustClaim(t, b)
	if h == nil || h.ID != m1.ID {
		t.Fatalf("b claims %+v after a closed, want r1 (pending to a)", h)
	}
	if err := b.Ack(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	if h := mustClaim(t, b); h == nil || h.ID != m2.ID {
		t.Fatalf("b claims %+v, want r2", h)
	}
}

// TestRedisSurvivesServerRestart: a Redis restarted without persistence
// has lost the stream and the group; the store recreates the group
// instead of failing every Claim with NOGROUP.
func TestRedisSurvivesServerRestart(t *testing.T) {
	r := harness.StartRedis(t)
	s := openReplica(t, r.Addr, "a", time.Second)
	mustEnqueue(t, s, msg("x", "r1"))
	if err := r.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := r.Restart(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var err error
	for range 50 { // the client reconnects on its own; give it a few tries
		if _, err = s.Claim(ctx); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("Claim after a restart: %v", err)
	}
	m := msg("x", "r2")
	mustEnqueue(t, s, m)
	if h := mustClaim(t, s); h == nil || h.ID != m.ID {
		t.Fatalf("Claim = %+v, want r2", h)
	}
}
