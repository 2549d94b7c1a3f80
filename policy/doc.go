// Package policy owns the sidecar's decisions: admission (token buckets,
// the concurrency gate with its priority queue), authentication (AgentKit
// webhook HMAC, bearer API key), retry (classification, backoff, budget)
// and circuit breaking. It knows nothing of HTTP servers: every decision
// takes small inputs (route, key, time, attempt outcome) and returns a
// verdict, so it is unit-tested with a fake clock.
package policy
