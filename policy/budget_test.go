package policy

import (
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

// budgetStep is one line of a budget script: at offset at, record requests
// and then ask for tries retries, expecting granted of them.
type budgetStep struct {
	at       time.Duration
	requests int
	tries    int
	granted  int
}

func runBudget(t *testing.T, b *RetryBudget, steps []budgetStep) {
	t.Helper()
	for i, s := range steps {
		now := t0.Add(s.at)
		for range s.requests {
			b.RecordRequest(now)
		}
		got := 0
		for range s.tries {
			if b.TryRetry(now) {
				got++
			}
		}
		if got != s.granted {
			t.Fatalf("step %d (at %s): granted %d of %d retries, want %d", i, s.at, got, s.tries, s.granted)
		}
	}
}

func TestRetryBudget(t *testing.T) {
	tests := []struct {
		name                string
		ratio, minPerSecond float64
		window              time.Duration
		steps               []budgetStep
	}{
		{"floor only", 0, 1, 10 * time.Second, []budgetStep{
			{0, 0, 15, 10},
			{5 * time.Second, 0, 5, 0},
		}},
		{"ratio of requests plus floor", 0.2, 1, 10 * time.Second, []budgetStep{
			{0, 100, 40, 30}, // 0.2*100 + 1*10
		}},
		{"old buckets leave the window", 0.2, 0, 10 * time.Second, []budgetStep{
			{0, 100, 20, 20},
			{9 * time.Second, 0, 1, 0},
			// at 10s the first bucket is out: no requests, no retries counted
			{10 * time.Second, 10, 3, 2},
		}},
		{"retries free up as they age", 0, 0.5, 10 * time.Second, []budgetStep{
			{0, 0, 5, 5},
			{3 * time.Second, 0, 1, 0},
			{10*time.Second + time.Millisecond, 0, 6, 5},
		}},
		{"zero budget never retries", 0, 0, 10 * time.Second, []budgetStep{
			{0, 1000, 1, 0},
		}},
		{"short window, fine buckets", 1, 0, time.Second, []budgetStep{
			{0, 2, 3, 2},
			{900 * time.Millisecond, 1, 1, 1},
			{time.Second, 0, 1, 0}, // first 100ms bucket left: 1 request, 1 retry
			{1950 * time.Millisecond, 0, 1, 0},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runBudget(t, NewRetryBudget(tt.ratio, tt.minPerSecond, tt.window), tt.steps)
		})
	}
}

func TestRetryBudgetCounts(t *testing.T) {
	b := NewRetryBudget(0.5, 0, 10*time.Second)
	b.RecordRequest(t0)
	b.RecordRequest(t0.Add(time.Second))
	b.TryRetry(t0.Add(time.Second))
	b.RecordRetry(t0.Add(2 * time.Second))
	if req, ret := b.Counts(t0.Add(2 * time.Second)); req != 2 || ret != 2 {
		t.Errorf("Counts = %d requests, %d retries; want 2, 2", req, ret)
	}
	if req, ret := b.Counts(t0.Add(10*time.Second + time.Millisecond)); req != 1 || ret != 2 {
		t.Errorf("Counts after the first bucket left = %d, %d; want 1, 2", req, ret)
	}
}

// TestRetryBudgetCapsRetriesOfAlwaysFailingUpstream sends a steady stream
// of requests that all fail and all want every retry: the retries granted
// stay within ratio × requests plus the floor over any window.
func TestRetryBudgetCapsRetriesOfAlwaysFailingUpstream(t *testing.T) {
	const ratio, floor = 0.2, 10.0
	b := NewRetryBudget(ratio, floor, 10*time.Second)
	requests, retries := 0, 0
	for ms := 0; ms < 30_000; ms += 10 { // 100 req/s for 30 s
		now := t0.Add(time.Duration(ms) * time.Millisecond)
		b.RecordRequest(now)
		requests++
		for range 3 { // attempts 4: up to three retries each
			if !b.TryRetry(now) {
				break
			}
			retries++
		}
	}
	limit := ratio*float64(requests) + floor*30
	if float64(retries) > limit {
		t.Errorf("granted %d retries for %d requests, want <= %.0f", retries, requests, limit)
	}
	if retries < requests/10 {
		t.Errorf("granted %d retries for %d requests, want the budget used (>= %d)", retries, requests, requests/10)
	}
}

func TestRetryBudgetInheritKeepsCountsForSameWindow(t *testing.T) {
	prev := NewRetryBudget(0, 1, 10*time.Second)
	for range 10 {
		prev.TryRetry(t0)
	}
	same := NewRetryBudget(0, 1, 10*time.Second)
	same.inherit(prev)
	if same.TryRetry(t0) {
		t.Error("budget with inherited counts granted a retry, want it spent")
	}
	other := NewRetryBudget(0, 1, 20*time.Second)
	other.inherit(prev)
	if !other.TryRetry(t0) {
		t.Error("budget with a new window refused a retry, want fresh counts")
	}
}
