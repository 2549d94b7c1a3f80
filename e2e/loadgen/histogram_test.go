package loadgen

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func TestHistogramPercentileExactForSmallValues(t *testing.T) {
	h := NewHistogram(7)
	for v := uint64(1); v <= 100; v++ {
		h.Record(v)
	}
	tests := []struct {
		q    float64
		want uint64
	}{
		{0, 1}, {1, 1}, {50, 50}, {90, 90}, {99, 99}, {99.5, 100}, {100, 100},
	}
	for _, tt := range tests {
		if got := h.Percentile(tt.q); got != tt.want {
			t.Errorf("Percentile(%v): got %d, want %d", tt.q, got, tt.want)
		}
	}
	if got, want := h.Mean(), 50.5; got != want {
		t.Errorf("Mean: got %v, want %v", got, want)
	}
	if got, want := h.Count(), uint64(100); got != want {
		t.Errorf("Count: got %d, want %d", got, want)
	}
}

// nearestRank is the reference percentile over a sorted sample.
func nearestRank(sorted []uint64, q float64) uint64 {
	rank := int(float64(len(sorted))*q/100 + 0.999999999)
	rank = max(rank, 1)
	return sorted[rank-1]
}

func TestHistogramPercentileWithinRelativeError(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, sub := range []uint{4, 7} {
		h := NewHistogram(sub)
		var vals []uint64
		for range 20000 {
			// Log-uniform over 1 µs .. ~17 min, as latencies spread.
			v := uint64(1) << r.UintN(30)
			v += r.Uint64N(v)
			vals = append(vals, v)
			h.Record(v)
		}
		slices.Sort(vals)
		tol := 1.0 / float64(uint64(1)<<sub)
		for _, q := range []float64{1, 10, 50, 90, 95, 99, 99.9, 100} {
			want := nearestRank(vals, q)
			got := h.Percentile(q)
			if got < want || float64(got-want) > tol*float64(want) {
				t.Errorf("subBits %d, p%v: got %d, want %d within +%.2f%%", sub, q, got, want, 100*tol)
			}
		}
		if got, want := h.Max(), vals[len(vals)-1]; got != want {
			t.Errorf("subBits %d, Max: got %d, want %d", sub, got, want)
		}
		if got, want := h.Min(), vals[0]; got != want {
			t.Errorf("subBits %d, Min: got %d, want %d", sub, got, want)
		}
	}
}

func TestHistogramBucketsAreContiguous(t *testing.T) {
	h := NewHistogram(3)
	prevHi := uint64(0)
	for i := 1; i < 200; i++ {
		lo, hi := h.bounds(i)
		if lo != prevHi+1 {
			t.Fatalf("bucket %d: got lo %d, want %d", i, lo, prevHi+1)
		}
		for _, v := range []uint64{lo, hi} {
			if got := h.index(v); got != i {
				t.Fatalf("index(%d): got %d, want %d", v, got, i)
			}
		}
		prevHi = hi
	}
}

func TestHistogramMergeAndEmpty(t *testing.T) {
	a, b := NewHistogram(7), NewHistogram(7)
	if got := a.Percentile(50); got != 0 {
		t.Errorf("empty Percentile: got %d, want 0", got)
	}
	for v := uint64(1); v <= 50; v++ {
		a.Record(v)
	}
	for v := uint64(51); v <= 100; v++ {
		b.Record(v)
	}
	a.Merge(b)
	if got, want := a.Percentile(90), uint64(90); got != want {
		t.Errorf("merged p90: got %d, want %d", got, want)
	}
	if got, want := a.Max(), uint64(100); got != want {
		t.Errorf("merged Max: got %d, want %d", got, want)
	}
}
