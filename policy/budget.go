package policy

import (
	"sync"
	"time"
)

// retryBudgetBuckets is the number of buckets of the budget's sliding window.
const retryBudgetBuckets = 10

// RetryBudget caps a route's retries at a share of its recent requests plus
// a small floor, over a sliding window, so that retries cannot multiply an
// overload (Linkerd and Finagle bound retries the same way). The window is a
// ring of buckets; counts older than the window fall out bucket by bucket.
// Every method takes the current time, so tests drive it with a fake clock.
type RetryBudget struct {
	ratio   float64
	floor   float64 // min_per_second × window seconds
	width   time.Duration
	mu      sync.Mutex
	buckets [retryBudgetBuckets]budgetBucket
}

type budgetBucket struct {
	epoch    int64 // now / width of the instant the counts belong to
	requests int64
	retries  int64
}

// NewRetryBudget returns a budget allowing retries while
// retries ≤ ratio × requests + minPerSecond × window seconds, counted over
// the last window.
func NewRetryBudget(ratio, minPerSecond float64, window time.Duration) *RetryBudget {
	if window < retryBudgetBuckets {
		window = retryBudgetBuckets
	}
	return &RetryBudget{
		ratio: ratio,
		floor: minPerSecond * window.Seconds(),
		width: window / retryBudgetBuckets,
	}
}

// bucket returns the bucket for now, cleared if it last held an older
// instant. The caller holds b.mu.
func (b *RetryBudget) bucket(now time.Time) *budgetBucket {
	epoch := now.UnixNano() / int64(b.width)
	bk := &b.buckets[epoch%retryBudgetBuckets]
	if bk.epoch != epoch {
		*bk = budgetBucket{epoch: epoch}
	}
	return bk
}

// counts sums the buckets inside the window ending at now. The caller holds b.mu.
func (b *RetryBudget) counts(now time.Time) (requests, retries int64) {
	epoch := now.UnixNano() / int64(b.width)
	for i := range b.buckets {
		bk := &b.buckets[i]
		if bk.epoch > epoch-retryBudgetBuckets && bk.epoch <= epoch {
			requests += bk.requests
			retries += bk.retries
		}
	}
	return requests, retries
}

// RecordRequest counts one request (not its retries) at now.
func (b *RetryBudget) RecordRequest(now time.Time) {
	b.mu.Lock()
	b.bucket(now).requests++
	b.mu.Unlock()
}

// TryRetry reports whether one more retry fits the budget at now and, if
// it does, counts it.
func (b *RetryBudget) TryRetry(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	requests, retries := b.counts(now)
	if float64(retries+1) > b.ratio*float64(requests)+b.floor {
		return false
	}
	b.bucket(now).retries++
	return true
}

// RecordRetry counts a retry that happened without asking, such as
// net/http's own replay of a request on a reused connection.
func (b *RetryBudget) RecordRetry(now time.Time) {
	b.mu.Lock()
	b.bucket(now).retries++
	b.mu.Unlock()
}

// Counts returns the requests and retries counted in the window ending at now.
func (b *RetryBudget) Counts(now time.Time) (requests, retries int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.counts(now)
}

// inherit copies prev's counts into b when both use the same window, so a
// reload that changes only the ratio or the floor does not forget the recent
// traffic. Counts recorded on prev after the copy are lost, which a reload
// can afford.
func (b *RetryBudget) inherit(prev *RetryBudget) {
	if prev == nil || prev.width != b.width {
		return
	}
	prev.mu.Lock()
	b.buckets = prev.buckets
	prev.mu.Unlock()
}
