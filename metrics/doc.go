// Package metrics declares every Prometheus collector the sidecar exports,
// in one place. Its names and labels are a contract with the Grafana
// dashboard, the alert rules and their tests (docs/architecture.md, "Metrics contract"):
// add collectors, never rename them.
//
// New registers the collectors on a caller-supplied Registerer, never on
// the global default registry, so two sidecars (or two tests) in one
// process do not interfere. Every family is visible after the first
// Gather: New pre-creates the children for the label values the sidecar
// knows in advance (its fixed route names, classes, outcomes and reasons).
package metrics
