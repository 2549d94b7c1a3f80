// Package configs holds the deployment configuration of the stack as files:
// the Prometheus scrape config and alert rules (prometheus/), the Grafana
// provisioning and dashboard (grafana/), and the sidecar config mounted by
// docker-compose.real-agentkit.yml (compose/). Its Go code reads the
// dashboard and the rules back, so tests here and in e2e can check every
// PromQL expression against the metrics the programs really export, and
// hands the load generator sample_workflow.json.
package configs
