package outbox

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"opscore-sidecar/e2e/harness"
)

// opener opens the store of one test: every call opens the same storage
// again (after the previous store was closed), to test reopening.
type opener func(t *testing.T, lim Limits) Store

type backend struct {
	name string
	// env returns the opener of a fresh, empty storage.
	env func(t *testing.T) opener
}

func boltBackend() backend {
	return backend{"bolt", func(t *testing.T) opener {
		path := filepath.Join(t.TempDir(), "sub", "outbox.db")
		return func(t *testing.T, lim Limits) Store {
			t.Helper()
			s, err := OpenBolt(path, lim)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
	}}
}

func redisBackend(t *testing.T) backend {
	r := harness.StartRedis(t)
	n := 0
	return backend{"redis", func(t *testing.T) opener {
		n++
		stream := fmt.Sprintf("test%d:outbox", n)
		return func(t *testing.T, lim Limits) Store {
			t.Helper()
			s, err := OpenRedis(context.Background(), RedisOptions{
				URL: "redis://" + r.Addr, Stream: stream, Consumer: "c1", Lease: time.Second, Limits: lim,
			})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
	}}
}

func TestContract(t *testing.T) {
	for _, b := range []backend{boltBackend(), redisBackend(t), memBackend()} {
		t.Run(b.name, func(t *testing.T) { runContract(t, b) })
	}
}

func msg(agent, req string) *Message {
	return &Message{
		Route: "notify", Method: http.MethodPost, Path: "/v1/agents/" + agent + "/notify?x=1",
		Header:  http.Header{"Content-Type": {"application/json"}, "X-Request-Id": {req}},
		Body:    []byte(`{"agent":"` + agent + `","bin":"` + "\x00\xff" + `"}`),
		AgentID: agent, RequestID: req,
	}
}

func mustEnqueue(t *testing.T, s Store, ms ...*Message) {
	t.Helper()
	for _, m := range ms {
		if err := s.Enqueue(context.Background(), m); err != nil {
			t.Fatalf("enqueue %s: %v", m.RequestID, err)
		}
		if m.ID == "" || m.Enqueued.IsZero() {
			t.Fatalf("enqueue %s: ID %q, Enqueued %v not assigned", m.RequestID, m.ID, m.Enqueued)
		}
	}
}

func mustClaim(t *testing.T, s Store) *Message {
	t.Helper()
	m, err := s.Claim(context.Background())
	if err != nil {
		t.Fatalf("claim: %v", err)
	}
	return m
}

func reqIDs(ms []Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.RequestID
	}
	return out
}

func mustList(t *testing.T, s Store) []string {
	t.Helper()
	ms, err := s.List(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	return reqIDs(ms)
}

func pending(t *testing.T, s Store, agent string) bool {
	t.Helper()
	ok, err := s.Pending(context.Background(), agent)
	if err != nil {
		t.Fatal(err)
	}
	if li, local := s.(LocalIndex); local {
		if l := li.PendingLocal(agent); l != ok {
			t.Fatalf("PendingLocal(%s) = %v, Pending = %v", agent, l, ok)
		}
	}
	return ok
}

func stats(t *testing.T, s Store) Stats {
	t.Helper()
	st, err := s.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func runContract(t *testing.T, b backend) {
	ctx := context.Background()

	t.Run("FIFOAndAck", func(t *testing.T) {
		s := b.env(t)(t, Limits{})
		defer s.Close()
		if m := mustClaim(t, s); m != nil {
			t.Fatalf("claim on empty store = %+v, want nil", m)
		}
		in := []*Message{msg("a", "r1"), msg("b", "r2"), msg("a", "r3"), msg("c", "r4")}
		mustEnqueue(t, s, in...)
		if got, want := mustList(t, s), []string{"r1", "r2", "r3", "r4"}; !slices.Equal(got, want) {
			t.Fatalf("List = %v, want %v", got, want)
		}
		if ms, _ := s.List(ctx, 2); !slices.Equal(reqIDs(ms), []string{"r1", "r2"}) {
			t.Fatalf("List(2) = %v", reqIDs(ms))
		}
		for i, want := range in {
			m := mustClaim(t, s)
			if m == nil || m.ID != want.ID {
				t.Fatalf("claim %d = %+v, want id %s", i, m, want.ID)
			}
			if m.Route != want.Route || m.Method != want.Method || m.Path != want.Path || string(m.Body) != string(want.Body) ||
				m.Header.Get("X-Request-Id") != want.RequestID || m.AgentID != want.AgentID || !m.Enqueued.Equal(want.Enqueued) {
				t.Fatalf("claim %d = %+v, want %+v", i, m, want)
			}
			if err := s.Ack(ctx, m); err != nil {
				t.Fatalf("ack %d: %v", i, err)
			}
		}
		if m := mustClaim(t, s); m != nil {
			t.Fatalf("claim after all acked = %+v", m)
		}
		if err := s.Ack(ctx, in[0]); !errors.Is(err, ErrNotFound) {
			t.Fatalf("second ack = %v, want ErrNotFound", err)
		}
		if err := s.Release(ctx, in[0], "x"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("release of acked = %v, want ErrNotFound", err)
		}
	})

	t.Run("ReleaseKeepsHead", func(t *testing.T) {
		s := b.env(t)(t, Limits{})
		defer s.Close()
		mustEnqueue(t, s, msg("a", "r1"), msg("a", "r2"))
		m := mustClaim(t, s)
		for i := 1; i <= 2; i++ {
			if err := s.Release(ctx, m, fmt.Sprintf("upstream answered 50%d", i)); err != nil {
				t.Fatal(err)
			}
			if m.Attempts != i {
				t.Fatalf("after release %d: m.Attempts = %d", i, m.Attempts)
			}
			again := mustClaim(t, s)
			if again == nil || again.RequestID != "r1" || again.Attempts != i || again.LastError != fmt.Sprintf("upstream answered 50%d", i) {
				t.Fatalf("claim after release %d = %+v, want r1 with %d attempts", i, again, i)
			}
			m = again
		}
		ms, _ := s.List(ctx, 0)
		if ms[0].Attempts != 2 || ms[1].Attempts != 0 {
			t.Fatalf("List attempts = %d, %d; want 2, 0", ms[0].Attempts, ms[1].Attempts)
		}
	})

	t.Run("DeadLetters", func(t *testing.T) {
		s := b.env(t)(t, Limits{})
		defer s.Close()
		mustEnqueue(t, s, msg("a", "r1"), msg("b", "r2"))
		m := mustClaim(t, s)
		if err := s.Release(ctx, m, "boom"); err != nil {
			t.Fatal(err)
		}
		if err := s.DeadLetter(ctx, m, "upstream answered 400"); err != nil {
			t.Fatal(err)
		}
		dead, err := s.Dead(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(dead) != 1 || dead[0].RequestID != "r1" || dead[0].DeadReason != "upstream answered 400" ||
			dead[0].Attempts != 1 || dead[0].LastError != "boom" || string(dead[0].Body) != string(m.Body) {
			t.Fatalf("Dead = %+v", dead)
		}
		if st := stats(t, s); st.Depth != 1 || st.Dead != 1 {
			t.Fatalf("Stats = %+v, want depth 1 dead 1", st)
		}
		if n := mustClaim(t, s); n == nil || n.RequestID != "r2" {
			t.Fatalf("claim after dead letter = %+v, want r2", n)
		}
		if err := s.DeadLetter(ctx, m, "again"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("dead-letter twice = %v, want ErrNotFound", err)
		}
		if err := s.RetryDead(ctx, dead[0].ID); err != nil {
			t.Fatal(err)
		}
		if err := s.RetryDead(ctx, dead[0].ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("retry twice = %v, want ErrNotFound", err)
		}
		for _, bad := range []string{"nope", "", "00000000000000000099", "99-0"} {
			if err := s.RetryDead(ctx, bad); !errors.Is(err, ErrNotFound) {
				t.Fatalf("RetryDead(%q) = %v, want ErrNotFound", bad, err)
			}
		}
		ms, _ := s.List(ctx, 0)
		if got := reqIDs(ms); !slices.Equal(got, []string{"r2", "r1"}) {
			t.Fatalf("List after RetryDead = %v, want [r2 r1] (retried goes to the tail)", got)
		}
		if ms[1].ID == m.ID || ms[1].DeadReason != "" {
			t.Fatalf("retried message = %+v, want a new ID and no DeadReason", ms[1])
		}
		if st := stats(t, s); st.Depth != 2 || st.Dead != 0 {
			t.Fatalf("Stats = %+v, want depth 2 dead 0", st)
		}
	})

	t.Run("PendingIndex", func(t *testing.T) {
		open := b.env(t)
		s := open(t, Limits{})
		a1, a2, b1, anon := msg("a", "r1"), msg("a", "r2"), msg("b", "r3"), msg("", "r4")
		mustEnqueue(t, s, a1, b1, a2, anon)
		if !pending(t, s, "a") || !pending(t, s, "b") || pending(t, s, "c") || pending(t, s, "") {
			t.Fatal("Pending wrong after enqueue")
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s = open(t, Limits{})
		defer s.Close()
		if !pending(t, s, "a") || !pending(t, s, "b") || pending(t, s, "c") {
			t.Fatal("Pending wrong after reopen")
		}
		if got := mustList(t, s); !slices.Equal(got, []string{"r1", "r3", "r2", "r4"}) {
			t.Fatalf("List after reopen = %v", got)
		}
		if err := s.Ack(ctx, a1); err != nil {
			t.Fatal(err)
		}
		if !pending(t, s, "a") {
			t.Fatal("Pending(a) false with one a message left")
		}
		if err := s.DeadLetter(ctx, b1, "upstream answered 404"); err != nil {
			t.Fatal(err)
		}
		if pending(t, s, "b") {
			t.Fatal("Pending(b) true after its only message was dead-lettered")
		}
		if err := s.Ack(ctx, a2); err != nil {
			t.Fatal(err)
		}
		if pending(t, s, "a") {
			t.Fatal("Pending(a) true after all a messages were acked")
		}
		dead, _ := s.Dead(ctx, 1)
		if err := s.RetryDead(ctx, dead[0].ID); err != nil {
			t.Fatal(err)
		}
		if !pending(t, s, "b") {
			t.Fatal("Pending(b) false after RetryDead")
		}
	})

	t.Run("Stats", func(t *testing.T) {
		open := b.env(t)
		s := open(t, Limits{})
		if st := stats(t, s); st != (Stats{}) {
			t.Fatalf("empty Stats = %+v", st)
		}
		m1, m2 := msg("a", "r1"), msg("b", "r2")
		m1.Enqueued = time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
		mustEnqueue(t, s, m1, m2)
		st := stats(t, s)
		if st.Depth != 2 || st.Bytes != m1.Size()+m2.Size() || !st.Oldest.Equal(m1.Enqueued) || st.Dead != 0 {
			t.Fatalf("Stats = %+v, want depth 2, bytes %d, oldest %v", st, m1.Size()+m2.Size(), m1.Enqueued)
		}
		s.Close()
		s = open(t, Limits{})
		defer s.Close()
		if st2 := stats(t, s); st2.Depth != 2 || st2.Bytes != st.Bytes || !st2.Oldest.Equal(m1.Enqueued) {
			t.Fatalf("Stats after reopen = %+v, want %+v", st2, st)
		}
		if err := s.Ack(ctx, m1); err != nil {
			t.Fatal(err)
		}
		st = stats(t, s)
		if st.Depth != 1 || st.Bytes != m2.Size() || !st.Oldest.Equal(m2.Enqueued) {
			t.Fatalf("Stats after ack = %+v", st)
		}
	})

	t.Run("Limits", func(t *testing.T) {
		open := b.env(t)
		s := open(t, Limits{MaxMessages: 2})
		mustEnqueue(t, s, msg("a", "r1"), msg("a", "r2"))
		m3 := msg("a", "r3")
		if err := s.Enqueue(ctx, m3); !errors.Is(err, ErrFull) {
			t.Fatalf("third enqueue = %v, want ErrFull", err)
		}
		if m3.ID != "" {
			t.Fatalf("refused message got ID %q", m3.ID)
		}
		if got := mustList(t, s); !slices.Equal(got, []string{"r1", "r2"}) {
			t.Fatalf("List = %v", got)
		}
		h := mustClaim(t, s)
		if err := s.DeadLetter(ctx, h, "upstream answered 400"); err != nil {
			t.Fatal(err)
		}
		mustEnqueue(t, s, m3)
		dead, _ := s.Dead(ctx, 0)
		if err := s.RetryDead(ctx, dead[0].ID); !errors.Is(err, ErrFull) {
			t.Fatalf("RetryDead into a full queue = %v, want ErrFull", err)
		}
		if d, _ := s.Dead(ctx, 0); len(d) != 1 {
			t.Fatalf("refused RetryDead lost the dead letter: %+v", d)
		}
		s.Close()

		big := msg("b", "big")
		s = open(t, Limits{MaxBytes: 2*big.Size() + big.Size()/2})
		defer s.Close()
		// The store holds r2 and r3 from above.
		if err := s.Enqueue(ctx, big); !errors.Is(err, ErrFull) {
			st := stats(t, s)
			t.Fatalf("enqueue past MaxBytes (bytes %d + %d > %d) = %v, want ErrFull", st.Bytes, big.Size(), 2*big.Size()+big.Size()/2, err)
		}
		for _, m := range []string{"r2", "r3"} {
			h := mustClaim(t, s)
			if h == nil || h.RequestID != m {
				t.Fatalf("claim = %+v, want %s", h, m)
			}
			if err := s.Ack(ctx, h); err != nil {
				t.Fatal(err)
			}
		}
		mustEnqueue(t, s, big, msg("b", "big2"))
		if err := s.Enqueue(ctx, msg("b", "big3")); !errors.Is(err, ErrFull) {
			t.Fatalf("enqueue past MaxBytes = %v, want ErrFull", err)
		}
	})

	t.Run("Closed", func(t *testing.T) {
		s := b.env(t)(t, Limits{})
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("second Close = %v", err)
		}
		if err := s.Enqueue(ctx, msg("a", "r1")); !errors.Is(err, ErrClosed) {
			t.Fatalf("Enqueue after Close = %v, want ErrClosed", err)
		}
		if _, err := s.Claim(ctx); !errors.Is(err, ErrClosed) {
			t.Fatalf("Claim after Close = %v, want ErrClosed", err)
		}
	})
}
