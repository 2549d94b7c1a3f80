// Package opscore is the Ops-Core core service: the agent lifecycle HTTP API
// (registration webhook, agent state, workflow trigger, session read), the
// rules behind it, the Store interface with its Redis and in-memory
// implementations, and the core's Prometheus metrics.
//
// The API is wire-compatible with the Python Ops-Core (docs/opscore.md,
// "Wire contract"): same paths, payloads, status codes, error bodies and
// Redis keys. Where the original has a defect this package implements the
// intended behaviour; docs/opscore.md, "Deliberate differences from the
// Python original", lists every one.
//
// The zero-setup entry point is New with a MemoryStore:
//
//	svc, err := opscore.New(opscore.Options{Store: opscore.NewMemoryStore()})
//	http.ListenAndServe(":8000", svc.Handler())
package opscore
