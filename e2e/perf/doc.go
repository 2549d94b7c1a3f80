// Package perf holds the process benchmark of the sidecar (see
// docs/performance.md): cmd/sidecar as a child process with its default
// config, next to a bare httputil.ReverseProxy with a BufferPool that this
// package's own test binary runs as a second child process, both in front
// of the same loopback upstream and driven by the same closed-loop client
// (or, with -perf.client=wrk, by wrk in the saturated case). With
// -perf.caddy=BIN a Caddy binary is measured next to them.
//
// Benchmarks never run in the normal test suite; run it with
//
//	go test -run '^$' -bench ProxyProcess -benchtime 1x ./e2e/perf/
package perf
