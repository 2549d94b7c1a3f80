package policy

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"opscore-sidecar/metrics"
)

// transitions records a breaker's state changes.
type transitions struct {
	mu  sync.Mutex
	got []string
}

func (r *transitions) observe(route string, from, to BreakerState) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, fmt.Sprintf("%s:%s->%s", route, from, to))
}

func (r *transitions) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got...)
}

func mustBreaker(t *testing.T, cfg BreakerConfig, rec *transitions) *Breaker {
	t.Helper()
	var fn BreakerStateFunc
	if rec != nil {
		fn = rec.observe
	}
	b, err := NewBreaker("notify", cfg, nil, fn)
	if err != nil {
		t.Fatalf("NewBreaker: %v", err)
	}
	return b
}

// attempt runs one attempt through b and reports whether it was allowed.
func attempt(t *testing.T, b *Breaker, r BreakerResult) bool {
	t.Helper()
	ticket, err := b.Allow()
	if err != nil {
		if !errors.Is(err, ErrBreakerOpen) {
			t.Fatalf("Allow: got %v, want ErrBreakerOpen", err)
		}
		return false
	}
	ticket.Done(r)
	return true
}

func TestOutcomeBreakerResult(t *testing.T) {
	tests := []struct {
		o    Outcome
		want BreakerResult
	}{
		{resp(200), BreakerSuccess},
		{resp(404), BreakerSuccess},
		{resp(429), BreakerSuccess},
		{resp(500), BreakerFailure},
		{resp(503), BreakerFailure},
		{Outcome{Kind: AttemptNotReached}, BreakerUnreachable},
		{Outcome{Kind: AttemptReset}, BreakerUnreachable},
		{Outcome{Kind: AttemptClosed}, BreakerUnreachable},
		{Outcome{Kind: AttemptTimeout}, BreakerFailure},
		{Outcome{Kind: AttemptCancelled}, BreakerIgnored},
	}
	for _, tt := range tests {
		if got := tt.o.BreakerResult(); got != tt.want {
			t.Errorf("%+v.BreakerResult() = %d, want %d", tt.o, got, tt.want)
		}
	}
}

func TestBreakerTripsOnConsecutiveFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &transitions{}
		b := mustBreaker(t, countRules(), rec)
		for i := range 4 {
			attempt(t, b, BreakerFailure)
			if s := b.State(); s != BreakerClosed {
				t.Fatalf("after %d failures: state %s, want closed", i+1, s)
			}
		}
		attempt(t, b, BreakerFailure)
		if s := b.State(); s != BreakerOpen {
			t.Fatalf("after 5 failures: state %s, want open", s)
		}
		if attempt(t, b, BreakerSuccess) {
			t.Error("open breaker allowed an attempt")
		}
		if got := b.OpenRemaining(time.Now()); got != 5*time.Second {
			t.Errorf("OpenRemaining = %s, want 5s", got)
		}
		time.Sleep(2 * time.Second)
		if got := b.OpenRemaining(time.Now()); got != 3*time.Second {
			t.Errorf("OpenRemaining 2s later = %s, want 3s", got)
		}
		if got, want := rec.list(), []string{"notify:closed->open"}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("transitions = %v, want %v", got, want)
		}
	})
}

func TestBreakerClientErrorsAndCancellationsDoNotTrip(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := mustBreaker(t, countRules(), nil)
		for i := range 50 {
			r := BreakerSuccess // a 4xx answer
			if i%2 == 0 {
				r = BreakerIgnored
			}
			attempt(t, b, r)
			attempt(t, b, BreakerFailure)
		}
		// 50 failures, never 5 in a row, ratio 50/75 over 20 finished: trips on ratio.
		if s := b.State(); s != BreakerOpen {
			t.Fatalf("state %s, want open by failure ratio", s)
		}
		c := mustBreaker(t, countRules(), nil)
		for range 40 {
			attempt(t, c, BreakerIgnored)
		}
		if s := c.State(); s != BreakerClosed {
			t.Errorf("after 40 client cancellations: state %s, want closed", s)
		}
		if got := c.Counts(); got.Ignored != 40 || got.Failures != 0 {
			t.Errorf("counts %+v, want 40 ignored, 0 failures", got)
		}
	})
}

func TestBreakerFailureRatioNeedsMinRequests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := countRules()
		cfg.ConsecutiveFailures = 0 // ratio rule only
		b := mustBreaker(t, cfg, nil)
		for range 9 {
			attempt(t, b, BreakerFailure)
			attempt(t, b, BreakerSuccess)
		}
		attempt(t, b, BreakerFailure) // 10 failures of 19
		if s := b.State(); s != BreakerClosed {
			t.Fatalf("with 19 finished attempts: state %s, want closed (min_requests 20)", s)
		}
		attempt(t, b, BreakerFailure) // 11 of 20
		if s := b.State(); s != BreakerOpen {
			t.Fatalf("with 20 finished, 55%% failed: state %s, want open", s)
		}
	})
}

func TestBreakerWindowForgetsOldFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := countRules()
		cfg.ConsecutiveFailures = 0
		b := mustBreaker(t, cfg, nil)
		for range 15 {
			attempt(t, b, BreakerFailure)
		}
		time.Sleep(11 * time.Second) // the rolling window moves past them
		attempt(t, b, BreakerSuccess)
		for range 9 {
			attempt(t, b, BreakerSuccess)
			attempt(t, b, BreakerFailure)
		}
		attempt(t, b, BreakerSuccess)
		// 9 of 20 recent attempts failed (45%); with the old ones it would be 24 of 35.
		if s := b.State(); s != BreakerClosed {
			t.Errorf("state %s, want closed", s)
		}
		if got := b.Counts(); got.Failures != 9 || got.Successes != 11 {
			t.Errorf("counts in window = %+v, want 9 failures, 11 successes", got)
		}
	})
}

func TestBreakerHalfOpensAndCloses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &transitions{}
		b := mustBreaker(t, countRules(), rec)
		for range 5 {
			attempt(t, b, BreakerFailure)
		}
		time.Sleep(5*time.Second + time.Millisecond)
		if s := b.State(); s != BreakerHalfOpen {
			t.Fatalf("after open_timeout: state %s, want half_open", s)
		}
		// Three probes at once; a fourth is refused while they run.
		var tickets []BreakerTicket
		for i := range 3 {
			ticket, err := b.Allow()
			if err != nil {
				t.Fatalf("probe %d refused: %v", i+1, err)
			}
			tickets = append(tickets, ticket)
		}
		if _, err := b.Allow(); !errors.Is(err, ErrBreakerOpen) {
			t.Fatalf("fourth probe: got %v, want ErrBreakerOpen", err)
		}
		for _, ticket := range tickets {
			ticket.Done(BreakerSuccess)
		}
		if s := b.State(); s != BreakerClosed {
			t.Fatalf("after 3 good probes: state %s, want closed", s)
		}
		want := []string{"notify:closed->open", "notify:open->half_open", "notify:half_open->closed"}
		if got := rec.list(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("transitions = %v, want %v", got, want)
		}
	})
}

func TestBreakerHalfOpenFailureReopens(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := mustBreaker(t, countRules(), nil)
		for range 5 {
			attempt(t, b, BreakerFailure)
		}
		time.Sleep(6 * time.Second)
		attempt(t, b, BreakerSuccess)
		attempt(t, b, BreakerFailure)
		if s := b.State(); s != BreakerOpen {
			t.Fatalf("after a failed probe: state %s, want open", s)
		}
		if got := b.OpenRemaining(time.Now()); got != 5*time.Second {
			t.Errorf("OpenRemaining after reopening = %s, want a fresh 5s", got)
		}
	})
}

func TestBreakerCancelledProbeFreesItsSlot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := countRules()
		cfg.HalfOpenRequests = 1
		b := mustBreaker(t, cfg, nil)
		for range 5 {
			attempt(t, b, BreakerFailure)
		}
		time.Sleep(6 * time.Second)
		if !attempt(t, b, BreakerIgnored) {
			t.Fatal("first probe refused")
		}
		if s := b.State(); s != BreakerHalfOpen {
			t.Fatalf("after a cancelled probe: state %s, want half_open", s)
		}
		if !attempt(t, b, BreakerSuccess) {
			t.Fatal("probe after a cancelled one refused, want its slot freed")
		}
		if s := b.State(); s != BreakerClosed {
			t.Errorf("state %s, want closed", s)
		}
	})
}

func TestBreakerReload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := countRules()
		b := mustBreaker(t, cfg, nil)
		for range 5 {
			attempt(t, b, BreakerFailure)
		}
		same, err := NewBreaker("notify", cfg, b, nil)
		if err != nil {
			t.Fatal(err)
		}
		if same != b || same.State() != BreakerOpen {
			t.Errorf("reload with unchanged settings: got a new breaker in state %s, want the same open one", same.State())
		}
		cfg.OpenTimeout = time.Second
		changed, err := NewBreaker("notify", cfg, b, nil)
		if err != nil {
			t.Fatal(err)
		}
		if changed == b || changed.State() != BreakerClosed {
			t.Errorf("reload with changed settings: got state %s (same=%v), want a new closed breaker", changed.State(), changed == b)
		}
	})
}

func TestBreakerDisabledAllowsEverything(t *testing.T) {
	cfg := countRules()
	cfg.Enabled = false
	b := mustBreaker(t, cfg, nil)
	for range 100 {
		if !attempt(t, b, BreakerFailure) {
			t.Fatal("disabled breaker refused an attempt")
		}
	}
	if s := b.State(); s != BreakerClosed {
		t.Errorf("state %s, want closed", s)
	}
}

func TestNewBreakerRejectsInvalidConfig(t *testing.T) {
	cfg := countRules()
	cfg.OpenTimeout = 0
	if _, err := NewBreaker("notify", cfg, nil, nil); err == nil {
		t.Error("NewBreaker accepted open_timeout 0, want an error")
	}
}

// TestBreakerReportsHalfOpenWithoutTraffic pins a stuck alert: an open
// breaker on a route with no traffic must still report half-open once its
// timeout has passed, or the breaker-open gauge never clears.
func TestBreakerReportsHalfOpenWithoutTraffic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &transitions{}
		b := mustBreaker(t, countRules(), rec)
		for range 5 {
			attempt(t, b, BreakerFailure)
		}
		time.Sleep(5*time.Second + 10*time.Millisecond)
		synctest.Wait()
		want := []string{"notify:closed->open", "notify:open->half_open"}
		if got := rec.list(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("transitions without traffic = %v, want %v", got, want)
		}
	})
}

func TestReplacedBreakerStopsReporting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &transitions{}
		old := mustBreaker(t, countRules(), rec)
		cfg := countRules()
		cfg.ConsecutiveFailures = 2
		if _, err := NewBreaker("notify", cfg, old, rec.observe); err != nil {
			t.Fatal(err)
		}
		for range 5 { // a request of the old snapshot still in flight
			attempt(t, old, BreakerFailure)
		}
		if got := rec.list(); len(got) != 0 {
			t.Errorf("replaced breaker reported %v, want nothing", got)
		}
	})
}

// TestBreakerStateIsTheGaugeAndLabels pins what the proxy exports as it
// is: the state's number is the breaker_state gauge value (0 closed,
// 1 half-open, 2 open) and its name the from/to label value that package
// metrics pre-creates.
func TestBreakerStateIsTheGaugeAndLabels(t *testing.T) {
	tests := []struct {
		state BreakerState
		gauge int
		label string
	}{
		{BreakerClosed, 0, metrics.BreakerClosed},
		{BreakerHalfOpen, 1, metrics.BreakerHalfOpen},
		{BreakerOpen, 2, metrics.BreakerOpen},
	}
	for _, tt := range tests {
		if int(tt.state) != tt.gauge || tt.state.String() != tt.label {
			t.Errorf("state %d %q: want gauge value %d, label %q", int(tt.state), tt.state, tt.gauge, tt.label)
		}
	}
	if got := BreakerState(7).String(); got != "unknown" {
		t.Errorf("state 7: got label %q, want unknown", got)
	}
}

// countRules is the default breaker with the time-based rule off, so the
// count rules alone decide (the tests above step through counts).
func countRules() BreakerConfig {
	cfg := DefaultBreaker()
	cfg.MinFailingTime = 0
	return cfg
}

func TestBreakerBlipShorterThanMinFailingTimeDoesNotTrip(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := DefaultBreaker() // min_failing_time 1s
		cfg.FailureRatio = 0    // the consecutive-failures rule alone
		b := mustBreaker(t, cfg, nil)
		for range 50 {
			attempt(t, b, BreakerUnreachable)
			time.Sleep(10 * time.Millisecond)
		}
		if s := b.State(); s != BreakerClosed {
			t.Fatalf("after 50 failures within 0.5s: state %s, want closed", s)
		}
		attempt(t, b, BreakerSuccess) // the blip ends: the clock restarts
		time.Sleep(900 * time.Millisecond)
		for range 5 {
			attempt(t, b, BreakerFailure)
		}
		if s := b.State(); s != BreakerClosed {
			t.Fatalf("5 failures right after a success: state %s, want closed", s)
		}
		time.Sleep(time.Second)
		attempt(t, b, BreakerFailure)
		if s := b.State(); s != BreakerOpen {
			t.Fatalf("failures lasting 1s: state %s, want open", s)
		}
	})
}

func TestBreakerRatioRuleWaitsMinFailingTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := DefaultBreaker()
		cfg.ConsecutiveFailures = 0
		b := mustBreaker(t, cfg, nil)
		// 60 % failures, successes in between: the ratio holds from the
		// 20th attempt on, and trips once it has held for 1s.
		step := func() {
			for _, r := range []BreakerResult{BreakerFailure, BreakerSuccess, BreakerFailure, BreakerFailure, BreakerSuccess} {
				attempt(t, b, r)
			}
		}
		for range 4 {
			step()
		}
		attempt(t, b, BreakerFailure) // 13 of 21: the rule is seen holding
		if s := b.State(); s != BreakerClosed {
			t.Fatalf("ratio just reached: state %s, want closed", s)
		}
		time.Sleep(1100 * time.Millisecond)
		attempt(t, b, BreakerSuccess)
		attempt(t, b, BreakerFailure) // 14 of 23, still held 1.1s later
		if s := b.State(); s != BreakerOpen {
			t.Fatalf("ratio held for 1.1s: state %s, want open", s)
		}
	})
}

func TestBreakerRecoverClosesAnUnreachableTrip(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &transitions{}
		b := mustBreaker(t, countRules(), rec)
		for range 5 {
			attempt(t, b, BreakerUnreachable)
		}
		if s := b.State(); s != BreakerOpen {
			t.Fatalf("state %s, want open", s)
		}
		if !b.Recover() {
			t.Fatal("Recover of a breaker opened by an unreachable upstream: got false, want true")
		}
		if s := b.State(); s != BreakerClosed {
			t.Fatalf("after Recover: state %s, want closed", s)
		}
		if !attempt(t, b, BreakerSuccess) {
			t.Fatal("recovered breaker refused an attempt")
		}
		want := []string{"notify:closed->open", "notify:open->closed"}
		if got := rec.list(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("transitions = %v, want %v", got, want)
		}
		// The old breaker's timer fires later; it must not report.
		time.Sleep(6 * time.Second)
		if got := rec.list(); len(got) != 2 {
			t.Errorf("transitions after the old breaker's open_timeout = %v, want only %v", got, want)
		}
		if b.Recover() {
			t.Error("Recover of a closed breaker: got true, want false")
		}
	})
}

func TestBreakerRecoverLeavesAnOverloadTripAlone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := mustBreaker(t, countRules(), nil)
		for range 5 {
			attempt(t, b, BreakerFailure) // 5xx or timeouts: the upstream answers, badly
		}
		if b.Recover() {
			t.Fatal("Recover of a breaker opened by 5xx: got true, want false")
		}
		if s := b.State(); s != BreakerOpen {
			t.Fatalf("state %s, want open", s)
		}
	})
}
