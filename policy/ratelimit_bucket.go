package policy

import (
	"math"
	"strconv"
	"time"

	"golang.org/x/time/rate"
)

// TokenBucket is one token bucket on golang.org/x/time/rate, read and
// written at an explicit instant so that tests are step tables on a fake
// clock. Its limits change in place (SetRate) without refilling or
// emptying it. A TokenBucket is safe for concurrent use.
type TokenBucket struct {
	lim *rate.Limiter
}

// EffectiveBurst returns the bucket size a config means: burst, or
// max(1, ceil(rps)) when burst is 0.
func EffectiveBurst(rps float64, burst int) int {
	if burst > 0 {
		return burst
	}
	return max(1, int(math.Ceil(rps)))
}

// NewTokenBucket returns a full bucket of burst tokens refilled at rps
// tokens per second (burst 0 means max(1, ceil(rps))).
func NewTokenBucket(rps float64, burst int) *TokenBucket {
	return &TokenBucket{lim: rate.NewLimiter(rate.Limit(rps), EffectiveBurst(rps, burst))}
}

// SetRate changes the rate and size at now, keeping the tokens the bucket
// holds (capped at the new size on the next read).
func (b *TokenBucket) SetRate(now time.Time, rps float64, burst int) {
	burst = EffectiveBurst(rps, burst)
	if b.lim.Limit() != rate.Limit(rps) {
		b.lim.SetLimitAt(now, rate.Limit(rps))
	}
	if b.lim.Burst() != burst {
		b.lim.SetBurstAt(now, burst)
	}
}

// refill sets the rate and size and makes the bucket full, as a new one
// is, without allocating: with its last update at the zero time, the next
// read sees centuries of refill, capped at the size.
func (b *TokenBucket) refill(rps float64, burst int) {
	b.lim.SetLimitAt(time.Time{}, rate.Limit(rps))
	b.lim.SetBurstAt(time.Time{}, EffectiveBurst(rps, burst))
}

// Tokens returns the tokens available at now, without taking any.
func (b *TokenBucket) Tokens(now time.Time) float64 { return b.lim.TokensAt(now) }

// Take takes one token at now and reports whether there was one.
func (b *TokenBucket) Take(now time.Time) bool { return b.lim.AllowN(now, 1) }

// RPS returns the refill rate in tokens per second.
func (b *TokenBucket) RPS() float64 { return float64(b.lim.Limit()) }

// Burst returns the bucket size.
func (b *TokenBucket) Burst() int { return b.lim.Burst() }

// state describes the bucket holding tokens as the RateLimit header
// fields see it.
func (b *TokenBucket) state(tokens float64) RateState {
	rps, burst := b.RPS(), b.Burst()
	s := RateState{
		Quota:  burst,
		Window: max(1, ceilSeconds(float64(burst)/rps)),
		Reset:  ceilSeconds((float64(burst) - tokens) / rps),
	}
	if tokens >= 1 {
		s.Remaining = int(math.Floor(tokens))
	} else {
		s.RetryAfter = max(1, ceilSeconds((1-tokens)/rps))
	}
	return s
}

// ceilSeconds rounds a duration in seconds up to whole seconds, saturating
// instead of overflowing.
func ceilSeconds(sec float64) int {
	switch {
	case math.IsNaN(sec) || sec <= 0:
		return 0
	case sec >= math.MaxInt32:
		return math.MaxInt32
	}
	return int(math.Ceil(sec - 1e-9))
}

// RateState is a bucket seen through the IETF draft's RateLimit fields
// (draft-ietf-httpapi-ratelimit-headers-10): the policy
// `"default";q=<Quota>;w=<Window>` and the current state
// `"default";r=<Remaining>;t=<Reset>`, plus the Retry-After of a refusal.
type RateState struct {
	// Quota is the bucket size (q), in requests.
	Quota int
	// Window is the time to refill an empty bucket (w), in whole seconds, at least 1.
	Window int
	// Remaining is the whole tokens left after this request (r).
	Remaining int
	// Reset is the time until the bucket is full again (t), in whole seconds, rounded up.
	Reset int
	// RetryAfter is the time until one token is available, in whole
	// seconds, rounded up and at least 1; 0 when a token was available.
	RetryAfter int
}

// PolicyField returns the RateLimit-Policy field value, `"default";q=<burst>;w=<seconds>`.
func (s RateState) PolicyField() string {
	return `"default";q=` + strconv.Itoa(s.Quota) + ";w=" + strconv.Itoa(s.Window)
}

// Field returns the RateLimit field value, `"default";r=<remaining>;t=<seconds>`.
func (s RateState) Field() string {
	return `"default";r=` + strconv.Itoa(s.Remaining) + ";t=" + strconv.Itoa(s.Reset)
}
