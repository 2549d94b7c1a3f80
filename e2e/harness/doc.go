// Package harness holds helpers shared by the end-to-end and integration
// tests of the repository and by cmd/loadtest: a free-port finder, a
// redis-server process that tests start on their own port, pause, stop,
// kill and restart to inject storage faults, the build of the repository's
// binaries (Bins, BuildBinaries), the Ops-Core core and the sidecar as
// child processes (StartCore, StartSidecar: a Proc with Kill, Stop and
// Restart on the same port), and an in-process toxiproxy (Toxi) that
// injects connection resets, latency, timeouts and bandwidth caps between
// two processes.
//
// Each helper has an error-returning form for tools and a testing.TB form
// that fails the test clearly and registers a Cleanup. Every process is a
// child of the caller, listens on 127.0.0.1 and is stopped by its PID; the
// machine's Redis on port 6379 is never touched.
package harness
