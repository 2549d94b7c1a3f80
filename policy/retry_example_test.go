package policy_test

import (
	"fmt"
	"time"

	"opscore-sidecar/policy"
)

// A state update hit the keep-alive race: the upstream closed a reused
// connection before answering. The route is idempotent, so the policy
// retries after a jittered backoff.
func ExampleRetryPolicy_Decide() {
	p, err := policy.NewRetryPolicy(policy.DefaultRetry(true), nil, func(n int64) int64 { return n - 1 })
	if err != nil {
		panic(err)
	}
	now := time.Now()
	p.RecordRequest(now)
	d := p.Decide(now, policy.RetryAttempt{
		Outcome:    policy.Outcome{Kind: policy.AttemptClosed},
		Attempts:   1,
		Replayable: true,
		Remaining:  9 * time.Second,
	})
	fmt.Println(d.Retry, d.Reason, d.Delay)
	// Output: true closed 25ms
}

// A workflow trigger that may have reached the upstream is not replayed
// unless it carries an Idempotency-Key.
func ExampleRetryPolicy_Decide_workflow() {
	p, _ := policy.NewRetryPolicy(policy.DefaultRetry(false), nil, nil)
	d := p.Decide(time.Now(), policy.RetryAttempt{
		Outcome:    policy.Outcome{Kind: policy.AttemptResponse, Status: 503},
		Attempts:   1,
		Replayable: true,
		Remaining:  9 * time.Second,
	})
	fmt.Println(d.Retry, d.Stop)
	// Output: false unsafe
}
