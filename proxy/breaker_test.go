package proxy

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"opscore-sidecar/policy"
	"opscore-sidecar/proxy/config"
)

// switchUpstream answers every request with the status it holds and
// counts the requests.
type switchUpstream struct {
	status atomic.Int32
	calls  atomic.Int64
}

func (u *switchUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.calls.Add(1)
	w.WriteHeader(int(u.status.Load()))
}

// switchRig is a retry rig (fast retries) whose upstream, on the in-memory
// network of testing/synctest, answers status until told otherwise. Call
// stop before the bubble ends.
func switchRig(t *testing.T, status int32) (rig *retryRig, up *switchUpstream, stop func()) {
	t.Helper()
	rig = newRetryRig(t, "http://upstream.test", fastRetries)
	up = &switchUpstream{}
	up.status.Store(status)
	return rig, up, pipeUpstream(rig, up)
}

func breakerTransitions(t *testing.T, rig *retryRig, from, to policy.BreakerState) float64 {
	t.Helper()
	return counter(t, rig.metrics.BreakerTransitions.WithLabelValues(config.RouteNotify, from.String(), to.String()))
}

// TestBreakerTripsHalfOpensAndCloses drives the notify route's breaker
// through its whole cycle in fake time: five failed attempts open it; while
// open, requests get 503 breaker_open with Retry-After and the upstream
// sees nothing; after open_timeout three good probes close it.
func TestBreakerTripsHalfOpensAndCloses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rig, up, stop := switchRig(t, 503)
		defer stop()
		br := rig.s.Snapshot().Runtime[config.RouteNotify].Breaker

		// Request 1: 4 attempts (all 503). Request 2: the 5th attempt
		// fails and trips the breaker, which ends the retries.
		if rec := rig.do(t, context.Background(), "POST", pathNotify, "{}"); rec.Code != 503 || rec.Header().Get(HeaderAttempts) != "4" {
			t.Fatalf("request 1: %d after %s attempts, want the upstream's 503 after 4", rec.Code, rec.Header().Get(HeaderAttempts))
		}
		rec := rig.do(t, context.Background(), "POST", pathNotify, "{}")
		if rec.Code != 503 || rec.Header().Get(HeaderAttempts) != "1" {
			t.Fatalf("request 2: %d after %s attempts, want 503 after 1", rec.Code, rec.Header().Get(HeaderAttempts))
		}
		if got := up.calls.Load(); got != 5 {
			t.Fatalf("upstream calls %d, want 5", got)
		}
		if s := br.State(); s != policy.BreakerOpen {
			t.Fatalf("breaker %s, want open", s)
		}

		time.Sleep(1500 * time.Millisecond)
		for i := range 20 {
			rec := rig.do(t, context.Background(), "POST", pathNotify, "{}")
			if rec.Code != 503 || rec.Header().Get("Retry-After") != "4" || rec.Header().Get("Content-Type") != "application/problem+json" {
				t.Fatalf("open request %d: %d Retry-After %q type %q, want 503 problem+json with Retry-After 4",
					i, rec.Code, rec.Header().Get("Retry-After"), rec.Header().Get("Content-Type"))
			}
			var p struct {
				Type string `json:"type"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.Type != ProblemTypeBase+string(OutcomeBreakerOpen) {
				t.Fatalf("open request %d: problem type %q (%v), want %s", i, p.Type, err, OutcomeBreakerOpen)
			}
		}
		if got := up.calls.Load(); got != 5 {
			t.Errorf("upstream calls while open %d, want none (still 5)", got-5)
		}
		if got := counter(t, rig.metrics.BreakerState.WithLabelValues(config.RouteNotify)); got != float64(policy.BreakerOpen) {
			t.Errorf("breaker_state gauge %v, want %d", got, policy.BreakerOpen)
		}

		// Half-open: the upstream has recovered; three probes close it.
		up.status.Store(200)
		time.Sleep(4 * time.Second)
		for i := range 3 {
			if rec := rig.do(t, context.Background(), "POST", pathNotify, "{}"); rec.Code != 200 {
				t.Fatalf("probe %d: %d, want 200", i+1, rec.Code)
			}
		}
		if s := br.State(); s != policy.BreakerClosed {
			t.Fatalf("after 3 good probes: %s, want closed", s)
		}
		for _, tr := range [][2]policy.BreakerState{
			{policy.BreakerClosed, policy.BreakerOpen},
			{policy.BreakerOpen, policy.BreakerHalfOpen},
			{policy.BreakerHalfOpen, policy.BreakerClosed},
		} {
			if got := breakerTransitions(t, rig, tr[0], tr[1]); got != 1 {
				t.Errorf("transitions %s->%s = %v, want 1", tr[0], tr[1], got)
			}
		}
		if got := counter(t, rig.metrics.BreakerState.WithLabelValues(config.RouteNotify)); got != float64(policy.BreakerClosed) {
			t.Errorf("breaker_state gauge %v, want %d", got, policy.BreakerClosed)
		}
	})
}

// TestBreakerOpenUnderLoadKeepsTheUpstreamQuiet offers 1,000 requests a
// second for 20 s (fake time) to a route whose upstream always fails. Once
// the breaker is open, the upstream only sees the half-open probes: at most
// half_open_requests per open_timeout.
func TestBreakerOpenUnderLoadKeepsTheUpstreamQuiet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rig, up, stop := switchRig(t, 503)
		defer stop()
		cfg := rig.s.Snapshot().Config.Routes[config.RouteNotify].Breaker

		const rate, seconds = 1000, 20
		tick := time.NewTicker(time.Second / rate)
		defer tick.Stop()
		var opened time.Time
		var callsAtOpen int64
		codes := map[int]int{}
		for range rate * seconds {
			<-tick.C
			rec := rig.do(t, context.Background(), "POST", pathNotify, "{}")
			codes[rec.Code]++
			if rec.Code != 503 {
				t.Fatalf("status %d, want 503 (upstream's or breaker_open)", rec.Code)
			}
			if opened.IsZero() && rig.s.Snapshot().Runtime[config.RouteNotify].Breaker.State() == policy.BreakerOpen {
				opened, callsAtOpen = time.Now(), up.calls.Load()
			}
		}
		if opened.IsZero() {
			t.Fatal("breaker never opened")
		}
		open := time.Since(opened)
		probes := up.calls.Load() - callsAtOpen
		limit := int64(open/cfg.OpenTimeout+1) * int64(cfg.HalfOpenRequests)
		t.Logf("offered %d req/s for %ds: upstream saw %d calls before the breaker opened and %d in the %s after (%.2f req/s); responses %v",
			rate, seconds, callsAtOpen, probes, open, float64(probes)/open.Seconds(), codes)
		if probes > limit {
			t.Errorf("upstream saw %d calls while the breaker was open for %s, want <= %d (half-open probes only)", probes, open, limit)
		}
	})
}

func TestAdminBreakersListsEveryRoute(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rig, _, stop := switchRig(t, 502)
		defer stop()
		for range 2 {
			rig.do(t, context.Background(), "POST", pathNotify, "{}")
		}
		time.Sleep(time.Second)
		admin := NewAdminServer(rig.s, nil, nil)
		rec := httptest.NewRecorder()
		admin.ServeHTTP(rec, httptest.NewRequest("GET", "/admin/breakers", nil))
		if rec.Code != 200 {
			t.Fatalf("status %d, want 200", rec.Code)
		}
		var got struct {
			Breakers []breakerView `json:"breakers"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
			t.Fatal(err)
		}
		if len(got.Breakers) != len(config.RouteNames) {
			t.Fatalf("%d breakers listed, want %d", len(got.Breakers), len(config.RouteNames))
		}
		for _, b := range got.Breakers {
			want := "closed"
			if b.Route == config.RouteNotify {
				want = "open"
				// Opened after a few milliseconds of backoff, then 1 s passed.
				if b.OpenRemainingSeconds <= 3.9 || b.OpenRemainingSeconds > 4 {
					t.Errorf("notify open_remaining_seconds %v, want just under 4", b.OpenRemainingSeconds)
				}
				if b.Counts.Requests != 0 {
					t.Errorf("notify counts %+v, want cleared on opening", b.Counts)
				}
			}
			if b.State != want {
				t.Errorf("route %s state %q, want %q", b.Route, b.State, want)
			}
			cfg := rig.s.Snapshot().Config.Routes[b.Route].Breaker
			if b.Settings.OpenTimeout != cfg.OpenTimeout.String() || b.Settings.Window != cfg.Window.String() ||
				b.Settings.ConsecutiveFailures != cfg.ConsecutiveFailures {
				t.Errorf("route %s settings %+v, want open_timeout %s, window %s, consecutive_failures %d as in the config",
					b.Route, b.Settings, cfg.OpenTimeout, cfg.Window, cfg.ConsecutiveFailures)
			}
		}
	})
}
