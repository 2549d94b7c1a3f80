package policy

import (
	"math/rand/v2"
	"time"
)

// Backoff computes exponential backoff with full jitter: the wait before
// retry n is drawn uniformly from [0, min(Max, Base·2^(n-1))], which
// spreads retries of many clients over time instead of synchronising them.
type Backoff struct {
	base, max time.Duration
	// randN returns a uniform value in [0, n); it must be safe for
	// concurrent use.
	randN func(n int64) int64
}

// NewBackoff returns a Backoff with the given first cap and overall cap.
// randN returns a uniform value in [0, n) and must be safe for concurrent
// use; nil means math/rand/v2.Int64N. Tests inject a fixed function.
func NewBackoff(base, max time.Duration, randN func(n int64) int64) *Backoff {
	if randN == nil {
		randN = rand.Int64N
	}
	if max < base {
		max = base
	}
	return &Backoff{base: base, max: max, randN: randN}
}

// Cap returns the upper bound of the wait before retry n (n >= 1).
func (b *Backoff) Cap(n int) time.Duration {
	if n < 1 {
		n = 1
	}
	c := b.base
	for i := 1; i < n; i++ {
		if c >= b.max/2 {
			return b.max
		}
		c *= 2
	}
	return min(c, b.max)
}

// Delay returns a random wait before retry n (n >= 1), between zero and
// Cap(n) inclusive.
func (b *Backoff) Delay(n int) time.Duration {
	c := b.Cap(n)
	if c <= 0 {
		return 0
	}
	return time.Duration(b.randN(int64(c) + 1))
}
