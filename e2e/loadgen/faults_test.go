package loadgen

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

func TestScheduleBreaksAtThenHealsAfterDown(t *testing.T) {
	tests := []struct {
		name       string
		cancel     bool
		breakErr   error
		wantEvents []string
		wantHeal   bool
	}{
		{"break then heal", false, nil, []string{"broke", "healed"}, true},
		{"break fails: no heal", false, errors.New("boom"), []string{"x FAILED: boom"}, false},
		{"run over before at: nothing", true, nil, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				var mu sync.Mutex
				var events []string
				event := func(format string, args ...any) {
					mu.Lock()
					events = append(events, fmt.Sprintf(format, args...))
					mu.Unlock()
				}
				start := time.Now()
				var brokeAt, healedAt time.Duration
				healed := false
				var wg sync.WaitGroup
				schedule(ctx, &wg, fault{what: "x", at: 3 * time.Second, down: time.Second,
					breakIt: func() (string, error) { brokeAt = time.Since(start); return "broke", tt.breakErr },
					healIt:  func() (string, error) { healedAt, healed = time.Since(start), true; return "healed", nil },
				}, event)
				if tt.cancel {
					time.Sleep(time.Second)
					cancel()
				}
				wg.Wait()
				if !reflect.DeepEqual(events, tt.wantEvents) {
					t.Errorf("events: got %q, want %q", events, tt.wantEvents)
				}
				if healed != tt.wantHeal {
					t.Errorf("healed: got %v, want %v", healed, tt.wantHeal)
				}
				if tt.wantHeal && (brokeAt != 3*time.Second || healedAt != 4*time.Second) {
					t.Errorf("broke at %v, healed at %v; want 3s and 4s", brokeAt, healedAt)
				}
			})
		})
	}
}
