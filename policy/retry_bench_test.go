package policy

import (
	"testing"
	"time"
)

// BenchmarkRetryBreakerSuccessPath measures what the retry and breaker
// decisions add to a request whose first attempt succeeds: count the
// request in the budget, ask the breaker, report the success, ask the
// retry policy.
func BenchmarkRetryBreakerSuccessPath(b *testing.B) {
	p, err := NewRetryPolicy(DefaultRetry(true), nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	br, err := NewBreaker("notify", DefaultBreaker(), nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	ok := Outcome{Kind: AttemptResponse, Status: 200}
	b.ReportAllocs()
	for b.Loop() {
		p.RecordRequest(now)
		ticket, err := br.Allow()
		if err != nil {
			b.Fatal(err)
		}
		ticket.Done(Classify(200, nil, nil).BreakerResult())
		if d := p.Decide(now, RetryAttempt{Outcome: ok, Attempts: 1, Replayable: true, Remaining: 9 * time.Second}); d.Retry {
			b.Fatal("success retried")
		}
	}
}

// BenchmarkRetryBudgetParallel measures the budget's lock under
// concurrent requests.
func BenchmarkRetryBudgetParallel(b *testing.B) {
	budget := NewRetryBudget(0.2, 10, 10*time.Second)
	now := time.Now()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			budget.RecordRequest(now)
		}
	})
}
