package proxy

import (
	"testing"

	"opscore-sidecar/policy"
	"opscore-sidecar/proxy/config"
)

// TestBuildSnapshotLeavesPrevUnchanged: building the next snapshot changes
// nothing the running one uses; the carried objects (the same hold queue,
// gate, limiters) take their new settings only at commit. Before carry, a
// build that was then thrown away (a failed reload, Check) had already
// applied its limits to the running policies.
func TestBuildSnapshotLeavesPrevUnchanged(t *testing.T) {
	prev, err := buildSnapshot(config.Defaults(), nil, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if err := prev.commit(); err != nil {
		t.Fatal(err)
	}
	holdBefore := prev.Runtime[config.RouteNotify].Hold.Queue.Config()
	limitBefore := prev.GlobalAdmission.Gate.Stats().ClassLimit(policy.ClassCritical)

	cfg := config.Defaults()
	notify := cfg.Routes[config.RouteNotify]
	notify.Hold.MaxRequests = holdBefore.MaxRequests + 7
	notify.Breaker.ConsecutiveFailures++
	cfg.Routes[config.RouteNotify] = notify
	cfg.Admission.Concurrency.Limit += 10
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	next, err := buildSnapshot(cfg, prev, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if got := prev.Runtime[config.RouteNotify].Hold.Queue.Config(); got != holdBefore {
		t.Errorf("building the next snapshot changed the running hold: max_requests %d, want %d", got.MaxRequests, holdBefore.MaxRequests)
	}
	if got := prev.GlobalAdmission.Gate.Stats().ClassLimit(policy.ClassCritical); got != limitBefore {
		t.Errorf("building the next snapshot changed the running gate: critical limit %d, want %d", got, limitBefore)
	}
	if next.Runtime[config.RouteNotify].Hold.Queue != prev.Runtime[config.RouteNotify].Hold.Queue || next.GlobalAdmission.Gate != prev.GlobalAdmission.Gate {
		t.Fatal("the hold queue and the gate must be carried (the same objects)")
	}
	if next.Runtime[config.RouteNotify].Breaker == prev.Runtime[config.RouteNotify].Breaker {
		t.Error("a changed breaker config must give a new breaker")
	}
	if err := next.commit(); err != nil {
		t.Fatal(err)
	}
	if got := next.Runtime[config.RouteNotify].Hold.Queue.Config().MaxRequests; got != notify.Hold.MaxRequests {
		t.Errorf("after commit: hold max_requests %d, want %d", got, notify.Hold.MaxRequests)
	}
	if got := next.GlobalAdmission.Gate.Stats().ClassLimit(policy.ClassCritical); got == limitBefore {
		t.Errorf("after commit: the gate's critical limit is still %d", got)
	}
}
