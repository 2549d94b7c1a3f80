package outbox

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// fakeSender answers from a script per RequestID: the n-th attempt of a
// request gets script[req][n] (the last entry repeats; none means 200).
type fakeSender struct {
	mu       sync.Mutex
	script   map[string][]result
	attempts map[string]int
	sent     []string    // RequestID of every attempt, in order
	times    []time.Time // when each attempt was made
}

type result struct {
	status int
	err    error
}

func newFakeSender(script map[string][]result) *fakeSender {
	return &fakeSender{script: script, attempts: map[string]int{}}
}

func (f *fakeSender) send(_ context.Context, m *Message) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := f.attempts[m.RequestID]
	f.attempts[m.RequestID]++
	f.sent = append(f.sent, m.RequestID)
	f.times = append(f.times, time.Now())
	rs := f.script[m.RequestID]
	if len(rs) == 0 {
		return 200, nil
	}
	r := rs[min(n, len(rs)-1)]
	return r.status, r.err
}

func (f *fakeSender) log() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.sent...)
}

// run starts d in the bubble and returns a stop that cancels it and
// waits for Run to return.
func run(d *Deliverer) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.Run(ctx)
	}()
	return func() {
		cancel()
		<-done
	}
}

func enqueueAll(t *testing.T, s Store, reqs ...string) {
	t.Helper()
	for i, r := range reqs {
		mustEnqueue(t, s, msg(fmt.Sprintf("agent%d", i%2), r))
	}
}

func TestDelivererDeliversInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newMemStore(Limits{})
		enqueueAll(t, s, "r1", "r2", "r3", "r4")
		f := newFakeSender(nil)
		var delivered []string
		var latencies []time.Duration
		d := NewDeliverer(s, f.send, DelivererOptions{Observer: Observer{
			Delivered: func(m *Message, lat time.Duration) {
				delivered = append(delivered, m.RequestID)
				latencies = append(latencies, lat)
			},
		}})
		time.Sleep(3 * time.Second) // the messages wait 3s before the deliverer starts
		stop := run(d)
		synctest.Wait()
		stop()
		want := []string{"r1", "r2", "r3", "r4"}
		if got := f.log(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("sent %v, want %v", got, want)
		}
		if fmt.Sprint(delivered) != fmt.Sprint(want) {
			t.Fatalf("Delivered observed %v, want %v", delivered, want)
		}
		for _, l := range latencies {
			if l != 3*time.Second {
				t.Fatalf("latency %v, want 3s (now - Enqueued)", l)
			}
		}
		if st := stats(t, s); st.Depth != 0 || st.Dead != 0 {
			t.Fatalf("Stats = %+v, want empty", st)
		}
	})
}

func TestDelivererDeadLettersClientErrors(t *testing.T) {
	for _, code := range []int{400, 401, 403, 404, 409, 413, 422, 499} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := newMemStore(Limits{})
				enqueueAll(t, s, "r1", "r2")
				f := newFakeSender(map[string][]result{"r1": {{status: code}}})
				var deadReasons []string
				d := NewDeliverer(s, f.send, DelivererOptions{Observer: Observer{
					Dead: func(m *Message, reason string) { deadReasons = append(deadReasons, m.RequestID+": "+reason) },
				}})
				stop := run(d)
				synctest.Wait()
				stop()
				if got := f.log(); fmt.Sprint(got) != "[r1 r2]" {
					t.Fatalf("sent %v, want r1 once then r2", got)
				}
				want := fmt.Sprintf("r1: upstream answered %d", code)
				if len(deadReasons) != 1 || deadReasons[0] != want {
					t.Fatalf("Dead observed %v, want [%s]", deadReasons, want)
				}
				dead, _ := s.Dead(context.Background(), 0)
				if len(dead) != 1 || dead[0].RequestID != "r1" || dead[0].DeadReason != fmt.Sprintf("upstream answered %d", code) {
					t.Fatalf("dead letters %+v", dead)
				}
			})
		})
	}
}

func TestDelivererRetriesWithBackoffThenDelivers(t *testing.T) {
	transport := errors.New("dial tcp 127.0.0.1:1: connection refused")
	cases := map[string][]result{
		"5xx":       {{status: 503}, {status: 500}, {status: 502}, {status: 504}, {status: 200}},
		"408":       {{status: 408}, {status: 204}},
		"425":       {{status: 425}, {status: 200}},
		"429":       {{status: 429}, {status: 429}, {status: 301}},
		"transport": {{err: transport}, {err: transport}, {status: 200}},
		"1xx":       {{status: 100}, {status: 200}},
	}
	for name, script := range cases {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := newMemStore(Limits{})
				enqueueAll(t, s, "r1", "r2")
				f := newFakeSender(map[string][]result{"r1": script})
				const base, max = 100 * time.Millisecond, 250 * time.Millisecond
				var seenAttempts []int
				var lastErrs []string
				d := NewDeliverer(s, f.send, DelivererOptions{
					BackoffBase: base, BackoffMax: max, Poll: time.Hour,
					Observer: Observer{Attempt: func(m *Message, status int, err error) {
						if m.RequestID == "r1" {
							seenAttempts = append(seenAttempts, m.Attempts)
							lastErrs = append(lastErrs, m.LastError)
						}
					}},
				})
				stop := run(d)
				synctest.Wait()
				// Each backoff is a timer: advance until everything is out.
				for i := 0; i < 100 && stats(t, s).Depth > 0; i++ {
					time.Sleep(10 * time.Millisecond)
					synctest.Wait()
				}
				stop()
				n := len(script)
				want := make([]string, 0, n+1)
				for range n {
					want = append(want, "r1")
				}
				want = append(want, "r2")
				if got := f.log(); fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("sent %v, want %v (the head blocks until delivered)", got, want)
				}
				// Attempt k (0-based) sees the k failures recorded before it.
				for k, a := range seenAttempts {
					if a != k {
						t.Fatalf("attempt %d saw Attempts=%d, want %d", k, a, k)
					}
				}
				if name == "transport" && lastErrs[1] != transport.Error() {
					t.Fatalf("LastError after a transport error = %q", lastErrs[1])
				}
				if name == "5xx" && lastErrs[1] != "upstream answered 503" {
					t.Fatalf("LastError after 503 = %q", lastErrs[1])
				}
				// The waits between attempts of r1 are within [base, min(max, base*2^(k))].
				f.mu.Lock()
				defer f.mu.Unlock()
				for k := 1; k < n; k++ {
					gap := f.times[k].Sub(f.times[k-1])
					hi := min(max, base<<(k-1))
					if gap < base || gap > hi {
						t.Fatalf("wait before attempt %d = %v, want in [%v, %v]", k+1, gap, base, hi)
					}
				}
				if st := stats(t, s); st.Depth != 0 || st.Dead != 0 {
					t.Fatalf("Stats = %+v, want empty", st)
				}
			})
		})
	}
}

func TestDelivererWaitsWhileNotReady(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newMemStore(Limits{})
		enqueueAll(t, s, "r1")
		f := newFakeSender(nil)
		var ready atomic.Bool
		d := NewDeliverer(s, f.send, DelivererOptions{Poll: time.Minute, Ready: ready.Load})
		stop := run(d)
		defer stop()
		time.Sleep(10 * time.Minute) // ten polls
		synctest.Wait()
		if got := f.log(); len(got) != 0 {
			t.Fatalf("sent %v while not ready", got)
		}
		s.mu.Lock()
		claims := s.claims
		s.mu.Unlock()
		if claims != 0 {
			t.Fatalf("%d claims while not ready", claims)
		}
		ready.Store(true)
		t0 := time.Now()
		d.Kick()
		synctest.Wait()
		if got := f.log(); fmt.Sprint(got) != "[r1]" {
			t.Fatalf("sent %v after ready+Kick, want [r1]", got)
		}
		if waited := time.Since(t0); waited != 0 {
			t.Fatalf("delivery after Kick waited %v, want none", waited)
		}

		// Not ready again: a new message waits; ready without Kick is seen at the next poll.
		ready.Store(false)
		enqueueAll(t, s, "r2")
		d.Kick()
		synctest.Wait()
		if got := f.log(); len(got) != 1 {
			t.Fatalf("sent %v while not ready", got)
		}
		ready.Store(true)
		time.Sleep(time.Minute)
		synctest.Wait()
		if got := f.log(); fmt.Sprint(got) != "[r1 r2]" {
			t.Fatalf("sent %v after a poll, want [r1 r2]", got)
		}
	})
}

func TestDelivererKickWakesIdle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newMemStore(Limits{})
		f := newFakeSender(nil)
		d := NewDeliverer(s, f.send, DelivererOptions{Poll: time.Hour})
		stop := run(d)
		defer stop()
		synctest.Wait() // idle, waiting for Kick or the hourly poll
		t0 := time.Now()
		enqueueAll(t, s, "r1")
		synctest.Wait()
		if got := f.log(); len(got) != 0 {
			t.Fatalf("sent %v before Kick or poll", got)
		}
		d.Kick()
		synctest.Wait()
		if got := f.log(); fmt.Sprint(got) != "[r1]" {
			t.Fatalf("sent %v after Kick, want [r1]", got)
		}
		if waited := time.Since(t0); waited != 0 {
			t.Fatalf("Kick took %v of (fake) time, want none", waited)
		}
	})
}

func TestKickNeverBlocks(t *testing.T) {
	d := NewDeliverer(newMemStore(Limits{}), nil, DelivererOptions{})
	for range 100 {
		d.Kick() // nobody runs d: must not block
	}
}

func TestDelivererStopDuringSendLeavesMessage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newMemStore(Limits{})
		enqueueAll(t, s, "r1", "r2")
		started := make(chan struct{})
		send := func(ctx context.Context, m *Message) (int, error) {
			close(started)
			<-ctx.Done()
			return 0, ctx.Err()
		}
		var attempts int
		d := NewDeliverer(s, send, DelivererOptions{Observer: Observer{Attempt: func(*Message, int, error) { attempts++ }}})
		stop := run(d)
		<-started
		stop()
		ms, _ := s.List(context.Background(), 0)
		if len(ms) != 2 || ms[0].RequestID != "r1" || ms[0].Attempts != 0 {
			t.Fatalf("queue after stop = %+v, want r1 untouched at the head", ms)
		}
		if attempts != 0 {
			t.Fatalf("an interrupted send was reported as %d attempts", attempts)
		}
	})
}

func TestDelivererBacksOffOnStoreErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		s := &failingStore{Store: newMemStore(Limits{}), cancel: cancel}
		d := NewDeliverer(s, nil, DelivererOptions{BackoffBase: time.Second, BackoffMax: time.Second})
		done := make(chan struct{})
		go func() {
			defer close(done)
			d.Run(ctx)
		}()
		time.Sleep(10*time.Second - time.Millisecond)
		synctest.Wait()
		cancel()
		<-done
		// One claim at t=0, then one per second of backoff: no busy loop.
		if n := s.claims.Load(); n != 10 {
			t.Fatalf("%d claims in 10s with a 1s backoff, want 10", n)
		}
	})
}

// failingStore fails every Claim; past 50 claims it stops the deliverer,
// so that a busy loop fails the test instead of hanging it.
type failingStore struct {
	Store
	claims atomic.Int64
	cancel context.CancelFunc
}

func (f *failingStore) Claim(context.Context) (*Message, error) {
	if f.claims.Add(1) > 50 {
		f.cancel()
	}
	return nil, errors.New("store down")
}

func TestClassify(t *testing.T) {
	for _, c := range []struct {
		status int
		err    error
		want   outcome
	}{
		{200, nil, outcomeAck}, {201, nil, outcomeAck}, {204, nil, outcomeAck}, {302, nil, outcomeAck}, {399, nil, outcomeAck},
		{400, nil, outcomeDead}, {404, nil, outcomeDead}, {422, nil, outcomeDead}, {499, nil, outcomeDead},
		{408, nil, outcomeRetry}, {425, nil, outcomeRetry}, {429, nil, outcomeRetry},
		{500, nil, outcomeRetry}, {503, nil, outcomeRetry}, {599, nil, outcomeRetry}, {0, nil, outcomeRetry}, {100, nil, outcomeRetry},
		{200, errors.New("x"), outcomeRetry}, {0, errors.New("x"), outcomeRetry}, {400, errors.New("x"), outcomeRetry},
	} {
		if got := classify(c.status, c.err); got != c.want {
			t.Errorf("classify(%d, %v) = %v, want %v", c.status, c.err, got, c.want)
		}
	}
}

func TestBackoffBounds(t *testing.T) {
	d := NewDeliverer(nil, nil, DelivererOptions{BackoffBase: 100 * time.Millisecond, BackoffMax: time.Second})
	for n := 1; n <= 70; n++ {
		hi := time.Second
		if n <= 4 {
			hi = 100 * time.Millisecond << (n - 1) // 100, 200, 400, 800ms
		}
		seenAbove := false
		for range 200 {
			b := d.backoff(n)
			if b < 100*time.Millisecond || b > hi {
				t.Fatalf("backoff(%d) = %v, want in [100ms, %v]", n, b, hi)
			}
			seenAbove = seenAbove || b > hi/2
		}
		if n > 1 && !seenAbove {
			t.Fatalf("backoff(%d) never drew above %v in 200 tries: not jittered up to the bound", n, hi/2)
		}
	}
}
