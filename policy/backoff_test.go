package policy

import (
	"testing"
	"time"
)

func TestBackoffCapDoublesUpToMax(t *testing.T) {
	b := NewBackoff(25*time.Millisecond, time.Second, nil)
	tests := []struct {
		n    int
		want time.Duration
	}{
		{0, 25 * time.Millisecond}, {1, 25 * time.Millisecond}, {2, 50 * time.Millisecond},
		{3, 100 * time.Millisecond}, {6, 800 * time.Millisecond}, {7, time.Second}, {60, time.Second},
	}
	for _, tt := range tests {
		if got := b.Cap(tt.n); got != tt.want {
			t.Errorf("Cap(%d) = %s, want %s", tt.n, got, tt.want)
		}
	}
}

func TestBackoffDelayIsFullJitter(t *testing.T) {
	var asked []int64
	top := func(n int64) int64 { asked = append(asked, n); return n - 1 }
	low := func(int64) int64 { return 0 }
	tests := []struct {
		name  string
		randN func(int64) int64
		n     int
		want  time.Duration
	}{
		{"top of first range", top, 1, 25 * time.Millisecond},
		{"top of third range", top, 3, 100 * time.Millisecond},
		{"bottom is zero", low, 5, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := NewBackoff(25*time.Millisecond, time.Second, tt.randN)
			if got := b.Delay(tt.n); got != tt.want {
				t.Errorf("Delay(%d) = %s, want %s", tt.n, got, tt.want)
			}
		})
	}
	if len(asked) != 2 || asked[0] != int64(25*time.Millisecond)+1 {
		t.Errorf("randN asked for %v, want [%d ...] (inclusive range)", asked, int64(25*time.Millisecond)+1)
	}
}

func TestBackoffZeroBaseNeverWaits(t *testing.T) {
	b := NewBackoff(0, 0, func(int64) int64 { t.Fatal("randN called for a zero cap"); return 0 })
	if got := b.Delay(3); got != 0 {
		t.Errorf("Delay(3) = %s, want 0", got)
	}
}

func TestBackoffDefaultRandomStaysInRange(t *testing.T) {
	b := NewBackoff(10*time.Millisecond, 40*time.Millisecond, nil)
	for n := 1; n <= 5; n++ {
		for range 200 {
			if d := b.Delay(n); d < 0 || d > b.Cap(n) {
				t.Fatalf("Delay(%d) = %s, want within [0, %s]", n, d, b.Cap(n))
			}
		}
	}
}
