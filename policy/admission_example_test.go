package policy_test

import (
	"context"
	"fmt"
	"time"

	"opscore-sidecar/policy"
)

// A route bucket of 2 requests per second with a burst of 4: the fifth
// request at the same instant is refused, with the fields of a 429.
func ExampleRateLimiter_Allow() {
	route := policy.DefaultRouteRateLimit()
	route.RPS, route.Burst = 2, 4
	l, _ := policy.NewRateLimiter(policy.RateLimitConfig{Mode: policy.ModeEnforce},
		map[string]policy.RouteRateLimitConfig{"state_update": route})
	r, _ := l.Route("state_update")
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for range 4 {
		l.Allow(r, "", now)
	}
	d := l.Allow(r, "", now)
	fmt.Println(d.Allowed, d.Reason)
	fmt.Println("Retry-After:", d.State.RetryAfter)
	fmt.Println("RateLimit-Policy:", d.State.PolicyField())
	fmt.Println("RateLimit:", d.State.Field())
	// Output:
	// false route_rate
	// Retry-After: 1
	// RateLimit-Policy: "default";q=4;w=2
	// RateLimit: "default";r=0;t=2
}

// Two slots, one reserved for critical requests: bulk traffic gets one,
// registration still gets the other.
func ExampleConcurrencyGate_Acquire() {
	g, _ := policy.NewConcurrencyGate(policy.ConcurrencyConfig{Limit: 2, CriticalReserved: 0.5, Mode: policy.ModeEnforce})
	bulk, _, _ := g.Acquire(context.Background(), policy.ClassBulk)
	_, reason, err := g.Acquire(context.Background(), policy.ClassBulk)
	fmt.Println("second bulk:", reason, err != nil)
	critical, reason, _ := g.Acquire(context.Background(), policy.ClassCritical)
	fmt.Printf("critical: admitted=%v\n", reason == policy.ReasonNone)
	critical.Release()
	bulk.Release()
	// Output:
	// second bulk: shed true
	// critical: admitted=true
}

// Verifying AgentKit's webhook signature (the test vector of
// docs/admission.md, "The AgentKit signing recipe").
func ExampleWebhookVerifier_Verify() {
	cfg := policy.DefaultWebhookAuth()
	cfg.Mode = policy.AuthRequired
	v, _ := policy.NewWebhookVerifier(cfg, func(string) string { return "super-secret-webhook-key-123" })
	body := []byte(`{"event_type":"REGISTER","agent_details":{"agentId":"3f2b8c1e-7d4a-4e8b-9c2d-1a2b3c4d5e6f","agentName":"PingAgent","version":"1.0.0","capabilities":["ping"],"contactEndpoint":"http://ping-agent:8080/","metadata":{}}}`)
	sig := "abb8011c81c37116f4b086d4fcbeffb46e17ec9c9bb238f69b43e73923656efe"
	now := time.Unix(1745287627, 0)
	fmt.Println(v.Verify("1745287627", sig, body, now).Allowed)
	fmt.Println(v.Verify("1745287627", sig, body, now).Reason)
	fmt.Println(v.Verify("1745287627", sig, body, now.Add(time.Hour)).Reason)
	// Output:
	// true
	// replay
	// stale_timestamp
}
