package proxy

import (
	"net/http"
	"time"

	"opscore-sidecar/policy"
)

// breakerView is one route's entry in /admin/breakers.
type breakerView struct {
	Route string `json:"route"`
	// State is closed, half_open or open.
	State string `json:"state"`
	// OpenRemainingSeconds is how long an open breaker stays open.
	OpenRemainingSeconds float64              `json:"open_remaining_seconds"`
	Counts               policy.BreakerCounts `json:"counts"`
	Settings             policy.BreakerConfig `json:"settings"`
}

// breakers serves /admin/breakers: every route's breaker with its state,
// the time it stays open, its counts in the current window (closed) or
// probe round (half-open), and its settings.
func (a *AdminServer) breakers(w http.ResponseWriter, r *http.Request) {
	snap := a.sidecar.Snapshot()
	now := time.Now()
	out := make([]breakerView, 0, len(RouteNames))
	for _, name := range RouteNames {
		rt := snap.Runtime[name]
		if rt == nil || rt.Breaker.Breaker == nil {
			continue
		}
		b := rt.Breaker.Breaker
		out = append(out, breakerView{
			Route: name, State: b.State().String(),
			OpenRemainingSeconds: b.OpenRemaining(now).Seconds(),
			Counts:               b.Counts(), Settings: b.Config(),
		})
	}
	writeJSON(w, http.StatusOK, map[string]any{"breakers": out})
}
