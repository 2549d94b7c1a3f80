package proxy

import (
	"os"
	"testing"

	"opscore-sidecar/proxy/config"
)

// FuzzLoadBytes: whatever LoadBytes accepts, Validate accepts and the
// request pipeline builds a snapshot from.
func FuzzLoadBytes(f *testing.F) {
	ref, _ := os.ReadFile("../configs/sidecar.yaml")
	f.Add(ref)
	f.Add([]byte("routes:\n  notify:\n    retry: 5\n"))
	f.Add([]byte("admission: [1, 2]\n"))
	f.Add([]byte("routes:\n  x: {match: {path: '/{a}/{a}'}}\n"))
	f.Add([]byte("listen: 127.0.0.1:1\nserver: {drain_timeout: 1s, idle_timeout: 2m}\n"))
	f.Add([]byte("routes:\n  workflow:\n    match: {method: PUT, path: /v2/{agent_id}/run}\n"))
	f.Add([]byte("admission:\n  trusted_proxies: [10.0.0.0/8]\n  concurrency: {limit: 1, queue_size: 0}\n"))
	// Issue 11: durations without a unit, empty documents, forward_paths.
	f.Add([]byte("routes:\n  notify:\n    retry: {per_try_timeout: 2, deadline: 1.5}\n"))
	f.Add([]byte("server: {drain_delay: 0, write_timeout: '0'}\n"))
	f.Add([]byte(""))
	f.Add([]byte("# only a comment\n---\n"))
	f.Add([]byte("{}\n"))
	f.Add([]byte("routes:\n  default:\n    forward_paths: [/v1/opscore/, /health, /a/../b]\n"))
	f.Add([]byte("routes:\n  notify:\n    forward_paths: [/]\n"))
	f.Add([]byte("routes:\n  default: {forward_paths: []}\n  notify: {webhook_auth: {mode: required, tolerance: 30, replay_cache_size: 1}}\n"))
	f.Fuzz(func(t *testing.T, doc []byte) {
		cfg, err := config.LoadBytes(doc, nil)
		if err == nil {
			if verr := cfg.Validate(); verr != nil {
				t.Fatalf("LoadBytes accepted a config that Validate rejects: %v", verr)
			}
			if _, err := buildSnapshot(cfg, nil, Deps{}); err != nil {
				t.Fatalf("valid config does not build: %v", err)
			}
		}
	})
}
