package policy

import (
	"errors"
	"fmt"
	"time"

	"opscore-sidecar/metrics"
)

// RetryStop says why no further attempt is made.
type RetryStop string

// The reasons to stop retrying.
const (
	// RetryStopFinal: the outcome is an answer to pass on (2xx-4xx, 500, ...).
	RetryStopFinal RetryStop = "final"
	// RetryStopUnsafe: the request may have reached the upstream and the
	// route is not idempotent and the request has no Idempotency-Key.
	RetryStopUnsafe RetryStop = "unsafe"
	// RetryStopBody: the body was streamed (over the buffer limit) and
	// cannot be replayed.
	RetryStopBody RetryStop = "body_not_replayable"
	// RetryStopAttempts: the route's attempts are used up.
	RetryStopAttempts RetryStop = "attempts"
	// RetryStopDeadline: the wait plus one per-try timeout no longer fits
	// the overall deadline, or the upstream asked to wait longer than that.
	RetryStopDeadline RetryStop = "deadline"
	// RetryStopBudget: the route's retry budget is spent.
	RetryStopBudget RetryStop = "budget"
	// RetryStopCancelled: the client went away.
	RetryStopCancelled RetryStop = "cancelled"
)

// RetryAttempt is what the policy needs to know about the attempt that
// just ended.
type RetryAttempt struct {
	// Outcome is the attempt's outcome as the attempt layer classified it.
	Outcome Outcome
	// Attempts is the number of attempts made so far, this one included.
	Attempts int
	// IdempotencyKey says the request carries an Idempotency-Key header,
	// which makes it safe to replay on any route.
	IdempotencyKey bool
	// Replayable says the body was buffered (or there is none) and can be
	// sent again.
	Replayable bool
	// Remaining is what is left of the overall deadline.
	Remaining time.Duration
}

// RetryDecision is the policy's verdict after an attempt.
type RetryDecision struct {
	// Retry says to make another attempt after Delay.
	Retry bool
	// Reason is what the retry answers, the reason label of
	// opscore_sidecar_retries_total (one of metrics.RetryReasons); it is
	// also set when a retry was wanted but refused by the deadline or the
	// budget.
	Reason string
	// Stop says why not, when Retry is false.
	Stop RetryStop
	// Delay is the wait before the next attempt.
	Delay time.Duration
}

// RetryPolicy decides, for one route, whether and when an attempt is
// retried. It is safe for concurrent use.
type RetryPolicy struct {
	cfg     RetryConfig
	backoff *Backoff
	budget  *RetryBudget
}

// NewRetryPolicy returns the retry policy of a route. prev is the policy
// the route had before a reload, or nil; its budget counts are kept when
// the budget window is unchanged. randN is the backoff's randomness (nil
// for math/rand/v2).
func NewRetryPolicy(cfg RetryConfig, prev *RetryPolicy, randN func(n int64) int64) (*RetryPolicy, error) {
	if errs := cfg.Validate("retry"); len(errs) > 0 {
		return nil, fmt.Errorf("policy: invalid retry config: %w", errors.Join(errs...))
	}
	p := &RetryPolicy{
		cfg:     cfg,
		backoff: NewBackoff(cfg.BackoffBase, cfg.BackoffMax, randN),
		budget:  NewRetryBudget(cfg.BudgetRatio, cfg.BudgetMinPerSecond, cfg.BudgetWindow),
	}
	if prev != nil {
		p.budget.inherit(prev.budget)
	}
	return p, nil
}

// Config returns the policy's configuration.
func (p *RetryPolicy) Config() RetryConfig { return p.cfg }

// Budget returns the route's retry budget.
func (p *RetryPolicy) Budget() *RetryBudget { return p.budget }

// RecordRequest counts a new request (not a retry) in the budget.
func (p *RetryPolicy) RecordRequest(now time.Time) { p.budget.RecordRequest(now) }

// Decide says whether the attempt a, which ended at now, is retried. A yes
// is counted in the retry budget, so the caller must make the retry.
func (p *RetryPolicy) Decide(now time.Time, a RetryAttempt) RetryDecision {
	o := a.Outcome
	if o.Kind == AttemptCancelled {
		return RetryDecision{Stop: RetryStopCancelled}
	}
	reason, ok := retryReason(o)
	if !ok {
		return RetryDecision{Stop: RetryStopFinal}
	}
	d := RetryDecision{Reason: reason}
	safe := o.Kind == AttemptNotReached || a.IdempotencyKey || p.cfg.Idempotent ||
		(o.Kind == AttemptResponse && o.Status == 429)
	switch {
	case !safe:
		d.Stop = RetryStopUnsafe
		return d
	case !a.Replayable:
		d.Stop = RetryStopBody
		return d
	case a.Attempts >= p.cfg.Attempts:
		d.Stop = RetryStopAttempts
		return d
	}
	d.Delay = p.backoff.Delay(a.Attempts)
	if o.HasRetryAfter {
		// The upstream's wish replaces our backoff; if it does not fit
		// the deadline the answer goes back to the client as it is.
		d.Delay = max(d.Delay, o.RetryAfter)
	}
	if a.Remaining-d.Delay < p.cfg.PerTryTimeout {
		d.Stop = RetryStopDeadline
		return d
	}
	if !p.budget.TryRetry(now) {
		d.Stop = RetryStopBudget
		return d
	}
	d.Retry = true
	return d
}

// retryReason returns the reason a retry would answer for o, and false when
// o is final whatever the route. The reason is the failed attempt's result
// label by kind (a request that never reached the upstream is refused,
// however the dial failed), http_5xx for 502, 503 and 504, and http_429 for
// a 429 with Retry-After.
func retryReason(o Outcome) (string, bool) {
	switch o.Kind {
	case AttemptNotReached:
		return metrics.ResultRefused, true
	case AttemptReset:
		return metrics.ResultReset, true
	case AttemptClosed:
		return metrics.ResultClosed, true
	case AttemptTimeout:
		return metrics.ResultTimeout, true
	case AttemptResponse:
		switch o.Status {
		case 429:
			// Only an upstream that says when to come back is retried.
			return metrics.RetryHTTP429, o.HasRetryAfter
		case 502, 503, 504:
			return metrics.ResultHTTP5xx, true
		}
	}
	return "", false
}
