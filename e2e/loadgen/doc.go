// Package loadgen is the load generator behind cmd/loadtest: the seed's
// Locust scenarios 0-4 (docs/loadtest.md, "The seed's load tests")
// replayed against Ops-Core or the sidecar, in a closed model (virtual
// users with think time, comparable with the Locust runs) or an open model
// (a constant arrival rate whose latency is measured from the scheduled
// send time, so coordinated omission cannot hide a stall).
//
// Outcomes are classified the way Locust classifies them and failures are
// keyed by the same strings as the seed's recorded runs
// ("CatchResponseError('Failed to register agent: 0')",
// "ConnectionResetError(104, 'Connection reset by peer')",
// "RemoteDisconnected('Remote end closed connection without response')",
// "HTTPError('500 Server Error: ...')"), so a run can be read next to
// them. The Result is printed as a Locust-style table, saved as JSON and
// rendered as a self-contained HTML report.
package loadgen
