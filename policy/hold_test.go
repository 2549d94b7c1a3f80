package policy

import (
	"context"
	"errors"
	"testing"
)

func mustHold(t *testing.T, cfg HoldConfig) *Hold {
	t.Helper()
	h, err := NewHold(cfg, nil)
	if err != nil {
		t.Fatalf("NewHold: %v", err)
	}
	return h
}

// released reports whether tk has been released, without blocking.
func released(tk *HoldTicket) bool {
	select {
	case <-tk.ch:
		return true
	default:
		return false
	}
}

func TestHoldReleasesInArrivalOrderWithinReleaseConcurrency(t *testing.T) {
	cfg := DefaultHold(true)
	cfg.ReleaseConcurrency = 2
	h := mustHold(t, cfg)
	var tks []*HoldTicket
	for range 5 {
		tk, err := h.Enter(10)
		if err != nil {
			t.Fatal(err)
		}
		tks = append(tks, tk)
	}
	for i, tk := range tks {
		if released(tk) {
			t.Fatalf("ticket %d released before Open", i)
		}
	}
	h.Open()
	want := []bool{true, true, false, false, false}
	for i, tk := range tks {
		if got := released(tk); got != want[i] {
			t.Fatalf("after Open: ticket %d released=%v, want %v", i, got, want[i])
		}
	}
	tks[1].Done() // the second one's attempt ended: the third goes
	if !released(tks[2]) || released(tks[3]) {
		t.Fatalf("after one Done: released 3rd=%v 4th=%v, want true false", released(tks[2]), released(tks[3]))
	}
	if n, b := h.Len(); n != 4 || b != 40 {
		t.Errorf("Len = %d, %d bytes; want 4, 40", n, b)
	}
}

func TestHoldAgainKeepsThePlaceAndClosesTheHold(t *testing.T) {
	cfg := DefaultHold(true)
	cfg.ReleaseConcurrency = 1
	h := mustHold(t, cfg)
	a, _ := h.Enter(1)
	b, _ := h.Enter(1)
	h.Open()
	if !released(a) || released(b) {
		t.Fatal("want only the first released")
	}
	if !a.Again() { // the upstream is down again
		t.Fatal("Again of a released ticket: got false")
	}
	if released(a) || released(b) {
		t.Fatal("after Again: nothing may be released until the next Open")
	}
	h.Open()
	if !released(a) || released(b) {
		t.Fatalf("after the next Open: first released=%v second=%v, want the first (its place kept) only", released(a), released(b))
	}
	if a.Again() && b.Again() {
		t.Fatal("Again of a waiting ticket: got true")
	}
}

func TestHoldFullRefuses(t *testing.T) {
	cfg := DefaultHold(true)
	cfg.MaxRequests, cfg.MaxBytes = 2, 100
	h := mustHold(t, cfg)
	if _, err := h.Enter(60); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Enter(50); !errors.Is(err, ErrHoldFull) {
		t.Fatalf("over max_bytes: got %v, want ErrHoldFull", err)
	}
	tk, err := h.Enter(40)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Enter(0); !errors.Is(err, ErrHoldFull) {
		t.Fatalf("over max_requests: got %v, want ErrHoldFull", err)
	}
	tk.Done()
	tk.Done() // twice is harmless
	if _, err := h.Enter(40); err != nil {
		t.Fatalf("after Done: %v", err)
	}
}

func TestHoldWaitGivesUpWithItsContext(t *testing.T) {
	h := mustHold(t, DefaultHold(true))
	tk, _ := h.Enter(5)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := tk.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait: got %v, want context.Canceled", err)
	}
	if n, b := h.Len(); n != 0 || b != 0 {
		t.Errorf("after giving up: Len = %d, %d; want 0, 0", n, b)
	}
	next, _ := h.Enter(1)
	h.Open()
	if err := next.Wait(context.Background()); err != nil {
		t.Fatalf("Wait after Open: %v", err)
	}
}

func TestHoldKeepsItsQueueAcrossAReload(t *testing.T) {
	h := mustHold(t, DefaultHold(true))
	tk, _ := h.Enter(1)
	cfg := DefaultHold(true)
	cfg.MaxRequests = 7
	h2, err := NewHold(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	if h2 != h || h2.Config().MaxRequests != 7 {
		t.Fatalf("reload: got a new hold or old settings (max_requests %d)", h2.Config().MaxRequests)
	}
	h2.Open()
	if !released(tk) {
		t.Fatal("a request held before the reload was not released after it")
	}
	if _, err := NewHold(HoldConfig{}, nil); err == nil {
		t.Fatal("NewHold with a zero config: got nil error")
	}
}
