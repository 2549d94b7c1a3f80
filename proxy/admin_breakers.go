package proxy

import (
	"net/http"
	"time"

	"opscore-sidecar/policy"
	"opscore-sidecar/proxy/config"
)

// breakerView is one route's entry in /admin/breakers.
type breakerView struct {
	Route string `json:"route"`
	// State is closed, half_open or open.
	State string `json:"state"`
	// OpenRemainingSeconds is how long an open breaker stays open.
	OpenRemainingSeconds float64              `json:"open_remaining_seconds"`
	Counts               policy.BreakerCounts `json:"counts"`
	Settings             breakerSettingsView  `json:"settings"`
}

// breakerSettingsView is a breaker's settings as /admin/config shows them:
// the config keys, durations written as Go durations ("10s"), not as
// nanoseconds.
type breakerSettingsView struct {
	Enabled             bool    `json:"enabled"`
	ConsecutiveFailures uint32  `json:"consecutive_failures"`
	FailureRatio        float64 `json:"failure_ratio"`
	MinRequests         uint32  `json:"min_requests"`
	Window              string  `json:"window"`
	OpenTimeout         string  `json:"open_timeout"`
	HalfOpenRequests    uint32  `json:"half_open_requests"`
}

func settingsView(c policy.BreakerConfig) breakerSettingsView {
	return breakerSettingsView{
		Enabled: c.Enabled, ConsecutiveFailures: c.ConsecutiveFailures, FailureRatio: c.FailureRatio,
		MinRequests: c.MinRequests, Window: c.Window.String(), OpenTimeout: c.OpenTimeout.String(),
		HalfOpenRequests: c.HalfOpenRequests,
	}
}

// breakers serves /admin/breakers: every route's breaker with its state,
// the time it stays open, its counts in the current window (closed) or
// probe round (half-open), and its settings.
func (a *AdminServer) breakers(w http.ResponseWriter, r *http.Request) {
	snap := a.sidecar.Snapshot()
	now := time.Now()
	out := make([]breakerView, 0, len(config.RouteNames))
	for _, name := range config.RouteNames {
		rt := snap.Runtime[name]
		if rt == nil || rt.Breaker == nil {
			continue
		}
		b := rt.Breaker
		out = append(out, breakerView{
			Route: name, State: b.State().String(),
			OpenRemainingSeconds: b.OpenRemaining(now).Seconds(),
			Counts:               b.Counts(), Settings: settingsView(b.Config()),
		})
	}
	writeJSON(w, http.StatusOK, map[string]any{"breakers": out})
}
