package policy_test

import (
	"errors"
	"fmt"

	"opscore-sidecar/policy"
)

// Each attempt asks the breaker first and reports its result; five
// failures in a row open the breaker, and the next attempt is refused
// without reaching the upstream. (min_failing_time is set to 0 here so
// the count rule alone decides; by default failures must also have lasted
// a second.)
func ExampleBreaker_Allow() {
	cfg := policy.DefaultBreaker()
	cfg.MinFailingTime = 0
	b, err := policy.NewBreaker("notify", cfg, nil, func(route string, from, to policy.BreakerState) {
		fmt.Printf("%s: %s -> %s\n", route, from, to)
	})
	if err != nil {
		panic(err)
	}
	for range 5 {
		ticket, err := b.Allow()
		if err != nil {
			panic(err)
		}
		ticket.Done(policy.Outcome{Kind: policy.AttemptNotReached}.BreakerResult())
	}
	_, err = b.Allow()
	fmt.Println(errors.Is(err, policy.ErrBreakerOpen))
	// Output:
	// notify: closed -> open
	// true
}
