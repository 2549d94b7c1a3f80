package loadgen

import (
	"math"
	"math/bits"
)

// Histogram is a log-linear (HDR-style) histogram of non-negative integer
// values, here latencies in microseconds. Values below 2^(subBits+1) are
// counted exactly; above that each power of two is split into 2^subBits
// buckets, so a reported percentile is within a relative error of
// 2^-subBits of the true value (0.8 % for subBits 7). Counts are allocated
// lazily up to the largest bucket used. The zero value is not usable; a
// Histogram is not safe for concurrent use.
type Histogram struct {
	sub    uint
	counts []uint64
	n      uint64
	sum    float64
	min    uint64
	max    uint64
}

// NewHistogram returns an empty histogram with 2^subBits buckets per power
// of two; subBits is clamped to [1, 12].
func NewHistogram(subBits uint) *Histogram {
	subBits = max(1, min(subBits, 12))
	return &Histogram{sub: subBits, min: math.MaxUint64}
}

// index maps a value to its bucket.
func (h *Histogram) index(v uint64) int {
	s := uint64(1) << h.sub
	if v < 2*s {
		return int(v)
	}
	e := uint(bits.Len64(v)) - h.sub - 1
	m := v >> e
	return int(2*s + uint64(e-1)*s + (m - s))
}

// bounds returns the smallest and largest value of bucket i.
func (h *Histogram) bounds(i int) (lo, hi uint64) {
	s := uint64(1) << h.sub
	idx := uint64(i)
	if idx < 2*s {
		return idx, idx
	}
	e := (idx-2*s)/s + 1
	m := (idx-2*s)%s + s
	lo = m << e
	return lo, lo + (uint64(1) << e) - 1
}

// Record adds one value.
func (h *Histogram) Record(v uint64) {
	i := h.index(v)
	if i >= len(h.counts) {
		n := max(i+1, 2*len(h.counts))
		grown := make([]uint64, n)
		copy(grown, h.counts)
		h.counts = grown
	}
	h.counts[i]++
	h.n++
	h.sum += float64(v)
	h.min = min(h.min, v)
	h.max = max(h.max, v)
}

// Merge adds every value of o (which must have the same subBits) to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	if len(o.counts) > len(h.counts) {
		grown := make([]uint64, len(o.counts))
		copy(grown, h.counts)
		h.counts = grown
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.min = min(h.min, o.min)
	h.max = max(h.max, o.max)
}

// Count returns the number of recorded values.
func (h *Histogram) Count() uint64 { return h.n }

// Min returns the smallest recorded value, or 0 when empty.
func (h *Histogram) Min() uint64 {
	if h.n == 0 {
		return 0
	}
	return h.min
}

// Max returns the largest recorded value, or 0 when empty.
func (h *Histogram) Max() uint64 { return h.max }

// Mean returns the exact mean of the recorded values, or 0 when empty.
func (h *Histogram) Mean() float64 {
	if h.n == 0 {
		return 0
	}
	return h.sum / float64(h.n)
}

// Percentile returns the nearest-rank q-th percentile (q in [0, 100]): the
// value below or at which ceil(q/100 * count) of the recorded values lie,
// reported as the upper bound of its bucket, clamped to the recorded
// minimum and maximum. It returns 0 when the histogram is empty.
func (h *Histogram) Percentile(q float64) uint64 {
	if h.n == 0 {
		return 0
	}
	q = max(0, min(q, 100))
	rank := uint64(math.Ceil(q / 100 * float64(h.n)))
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			_, hi := h.bounds(i)
			return max(h.min, min(hi, h.max))
		}
	}
	return h.max
}
