package policy

import (
	"slices"
	"testing"
	"time"

	"opscore-sidecar/metrics"
)

func mustRetryPolicy(t *testing.T, cfg RetryConfig) *RetryPolicy {
	t.Helper()
	p, err := NewRetryPolicy(cfg, nil, func(n int64) int64 { return n - 1 })
	if err != nil {
		t.Fatalf("NewRetryPolicy: %v", err)
	}
	return p
}

func resp(status int) Outcome { return Outcome{Kind: AttemptResponse, Status: status} }

func respAfter(status int, d time.Duration) Outcome {
	return Outcome{Kind: AttemptResponse, Status: status, RetryAfter: d, HasRetryAfter: true}
}

// TestRetryDecisionRows is the retry table of docs/resilience.md ("What
// is retried"), row by row, for an idempotent route (notify, state) and
// for the workflow route.
func TestRetryDecisionRows(t *testing.T) {
	kind := func(k AttemptKind) Outcome { return Outcome{Kind: k} }
	tests := []struct {
		name       string
		idempotent bool
		key        bool
		outcome    Outcome
		wantRetry  bool
		wantReason string
		wantStop   RetryStop
	}{
		{"idempotent: not reached", true, false, kind(AttemptNotReached), true, metrics.ResultRefused, ""},
		{"workflow: not reached", false, false, kind(AttemptNotReached), true, metrics.ResultRefused, ""},
		{"idempotent: reset", true, false, kind(AttemptReset), true, metrics.ResultReset, ""},
		{"workflow: reset", false, false, kind(AttemptReset), false, metrics.ResultReset, RetryStopUnsafe},
		{"workflow+key: reset", false, true, kind(AttemptReset), true, metrics.ResultReset, ""},
		{"idempotent: closed (keep-alive race)", true, false, kind(AttemptClosed), true, metrics.ResultClosed, ""},
		{"workflow: closed", false, false, kind(AttemptClosed), false, metrics.ResultClosed, RetryStopUnsafe},
		{"idempotent: timeout", true, false, kind(AttemptTimeout), true, metrics.ResultTimeout, ""},
		{"workflow: timeout", false, false, kind(AttemptTimeout), false, metrics.ResultTimeout, RetryStopUnsafe},
		{"workflow+key: timeout", false, true, kind(AttemptTimeout), true, metrics.ResultTimeout, ""},
		{"idempotent: 502", true, false, resp(502), true, metrics.ResultHTTP5xx, ""},
		{"idempotent: 503", true, false, resp(503), true, metrics.ResultHTTP5xx, ""},
		{"idempotent: 504", true, false, resp(504), true, metrics.ResultHTTP5xx, ""},
		{"workflow: 503", false, false, resp(503), false, metrics.ResultHTTP5xx, RetryStopUnsafe},
		{"workflow+key: 502", false, true, resp(502), true, metrics.ResultHTTP5xx, ""},
		{"idempotent: 500 is final", true, false, resp(500), false, "", RetryStopFinal},
		{"idempotent: 200 is final", true, false, resp(200), false, "", RetryStopFinal},
		{"idempotent: 404 is final", true, false, resp(404), false, "", RetryStopFinal},
		{"idempotent: 429 without Retry-After", true, false, resp(429), false, "", RetryStopFinal},
		{"idempotent: 429 with Retry-After", true, false, respAfter(429, time.Second), true, metrics.RetryHTTP429, ""},
		{"workflow: 429 with Retry-After", false, false, respAfter(429, time.Second), true, metrics.RetryHTTP429, ""},
		{"idempotent: client cancelled", true, false, kind(AttemptCancelled), false, "", RetryStopCancelled},
		{"workflow+key: client cancelled", false, true, kind(AttemptCancelled), false, "", RetryStopCancelled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustRetryPolicy(t, DefaultRetry(tt.idempotent))
			d := p.Decide(t0, RetryAttempt{
				Outcome: tt.outcome, Attempts: 1, IdempotencyKey: tt.key,
				Replayable: true, Remaining: 9 * time.Second,
			})
			if d.Retry != tt.wantRetry || d.Reason != tt.wantReason || d.Stop != tt.wantStop {
				t.Errorf("Decide = retry %v reason %q stop %q; want retry %v reason %q stop %q",
					d.Retry, d.Reason, d.Stop, tt.wantRetry, tt.wantReason, tt.wantStop)
			}
		})
	}
}

func TestRetryDecisionLimits(t *testing.T) {
	cfg := DefaultRetry(true) // 4 attempts, 2s per try, 10s deadline, 25ms..1s backoff
	tests := []struct {
		name      string
		outcome   Outcome
		attempts  int
		replay    bool
		remaining time.Duration
		wantRetry bool
		wantStop  RetryStop
		wantDelay time.Duration
	}{
		{"first retry waits up to the base", resp(503), 1, true, 9 * time.Second, true, "", 25 * time.Millisecond},
		{"third retry waits up to 4x base", resp(503), 3, true, 9 * time.Second, true, "", 100 * time.Millisecond},
		{"attempts used up", resp(503), 4, true, 9 * time.Second, false, RetryStopAttempts, 0},
		{"streamed body is not replayed", resp(503), 1, false, 9 * time.Second, false, RetryStopBody, 0},
		{"streamed body not replayed even if never sent", Outcome{Kind: AttemptNotReached}, 1, false, 9 * time.Second, false, RetryStopBody, 0},
		{"remaining deadline shorter than a try", resp(503), 1, true, 2 * time.Second, false, RetryStopDeadline, 25 * time.Millisecond},
		{"remaining deadline just fits", resp(503), 1, true, 2*time.Second + 25*time.Millisecond, true, "", 25 * time.Millisecond},
		{"Retry-After honoured", respAfter(503, 3*time.Second), 1, true, 9 * time.Second, true, "", 3 * time.Second},
		{"Retry-After shorter than backoff keeps backoff", respAfter(503, 0), 3, true, 9 * time.Second, true, "", 100 * time.Millisecond},
		{"Retry-After beyond the deadline", respAfter(503, 8*time.Second), 1, true, 9 * time.Second, false, RetryStopDeadline, 8 * time.Second},
		{"429 Retry-After beyond the deadline", respAfter(429, 30*time.Second), 1, true, 9 * time.Second, false, RetryStopDeadline, 30 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustRetryPolicy(t, cfg)
			d := p.Decide(t0, RetryAttempt{Outcome: tt.outcome, Attempts: tt.attempts, Replayable: tt.replay, Remaining: tt.remaining})
			if d.Retry != tt.wantRetry || d.Stop != tt.wantStop || d.Delay != tt.wantDelay {
				t.Errorf("Decide = retry %v stop %q delay %s; want retry %v stop %q delay %s",
					d.Retry, d.Stop, d.Delay, tt.wantRetry, tt.wantStop, tt.wantDelay)
			}
		})
	}
}

func TestRetryDecisionBudget(t *testing.T) {
	cfg := DefaultRetry(true)
	cfg.BudgetRatio, cfg.BudgetMinPerSecond = 0.5, 0
	p := mustRetryPolicy(t, cfg)
	for range 4 {
		p.RecordRequest(t0)
	}
	a := RetryAttempt{Outcome: resp(502), Attempts: 1, Replayable: true, Remaining: 9 * time.Second}
	for i := range 2 {
		if d := p.Decide(t0, a); !d.Retry {
			t.Fatalf("retry %d: got stop %q, want a retry within the budget", i+1, d.Stop)
		}
	}
	d := p.Decide(t0, a)
	if d.Retry || d.Stop != RetryStopBudget || d.Reason != metrics.ResultHTTP5xx {
		t.Errorf("third retry: got retry %v stop %q reason %q, want stop %q reason %q",
			d.Retry, d.Stop, d.Reason, RetryStopBudget, metrics.ResultHTTP5xx)
	}
	// A final answer never touches the budget.
	if _, ret := p.Budget().Counts(t0); ret != 2 {
		t.Errorf("budget counted %d retries, want 2", ret)
	}
}

func TestRetryPolicyReloadKeepsBudget(t *testing.T) {
	cfg := DefaultRetry(true)
	cfg.BudgetRatio, cfg.BudgetMinPerSecond = 0, 0.1 // one retry per 10 s window
	prev := mustRetryPolicy(t, cfg)
	a := RetryAttempt{Outcome: resp(503), Attempts: 1, Replayable: true, Remaining: 9 * time.Second}
	if !prev.Decide(t0, a).Retry {
		t.Fatal("first retry refused, want it granted by the floor")
	}
	cfg.Attempts = 3
	next, err := NewRetryPolicy(cfg, prev, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d := next.Decide(t0, a); d.Stop != RetryStopBudget {
		t.Errorf("after reload: got retry %v stop %q, want the spent budget kept (stop %q)", d.Retry, d.Stop, RetryStopBudget)
	}
}

func TestNewRetryPolicyRejectsInvalidConfig(t *testing.T) {
	cfg := DefaultRetry(true)
	cfg.Attempts = 0
	if _, err := NewRetryPolicy(cfg, nil, nil); err == nil {
		t.Error("NewRetryPolicy accepted attempts 0, want an error")
	}
}

// TestRetryReasonsArePrecreatedLabels keeps every reason Decide gives in
// the reason labels package metrics pre-creates.
func TestRetryReasonsArePrecreatedLabels(t *testing.T) {
	p := mustRetryPolicy(t, DefaultRetry(true))
	outcomes := []Outcome{resp(502), resp(503), resp(504), respAfter(429, time.Millisecond)}
	for k := AttemptNotReached; k <= AttemptTimeout; k++ {
		outcomes = append(outcomes, Outcome{Kind: k})
	}
	for _, o := range outcomes {
		d := p.Decide(time.Now(), RetryAttempt{Outcome: o, Attempts: 1, Replayable: true, Remaining: time.Hour})
		if !d.Retry || !slices.Contains(metrics.RetryReasons, d.Reason) {
			t.Errorf("Decide(%+v) = %+v, want a retry with a reason in metrics.RetryReasons %v", o, d, metrics.RetryReasons)
		}
	}
}
