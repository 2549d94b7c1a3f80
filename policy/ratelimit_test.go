package policy

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

// rlT0 is the fake clock's start for rate-limit tests.
var rlT0 = time.Date(2026, 4, 21, 12, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return rlT0.Add(d) }

func mustRateLimiter(t *testing.T, global RateLimitConfig, routes map[string]RouteRateLimitConfig) *RateLimiter {
	t.Helper()
	l, err := NewRateLimiter(global, routes)
	if err != nil {
		t.Fatalf("NewRateLimiter: %v", err)
	}
	return l
}

func mustRoute(t *testing.T, l *RateLimiter, name string) *RouteRateLimiter {
	t.Helper()
	r, err := l.Route(name)
	if err != nil {
		t.Fatalf("Route(%q): %v", name, err)
	}
	return r
}

func routeRate(rps float64, burst int, key string, perKeyRPS float64, perKeyBurst int, mode Mode) RouteRateLimitConfig {
	c := DefaultRouteRateLimit()
	c.RPS, c.Burst, c.Key, c.PerKeyRPS, c.PerKeyBurst, c.Mode = rps, burst, key, perKeyRPS, perKeyBurst, mode
	return c
}

// TestRouteBucketSteps walks one route bucket (2 rps, burst 4) through a
// step table on a fake clock: what is allowed, and the Retry-After and
// RateLimit fields of each refusal.
func TestRouteBucketSteps(t *testing.T) {
	l := mustRateLimiter(t, RateLimitConfig{Mode: ModeEnforce}, map[string]RouteRateLimitConfig{
		"state_update": routeRate(2, 4, "", 0, 0, ModeEnforce),
	})
	r := mustRoute(t, l, "state_update")
	steps := []struct {
		at         time.Duration
		allowed    bool
		retryAfter int
		remaining  int
		reset      int
	}{
		{0, true, 0, 0, 0},
		{0, true, 0, 0, 0},
		{0, true, 0, 0, 0},
		{0, true, 0, 0, 0},
		{0, false, 1, 0, 2},                                            // empty: 0.5 s to a token, 2 s to full
		{400 * time.Millisecond, false, 1, 0, 2},                       // 0.8 token: 0.1 s to go, rounded up to 1
		{500 * time.Millisecond, true, 0, 0, 0},                        // 1 token
		{500 * time.Millisecond, false, 1, 0, 2},                       // empty again
		{2500 * time.Millisecond, true, 0, 0, 0},                       // 4 tokens again
		{2500 * time.Millisecond, true, 0, 0, 0},                       //
		{2500 * time.Millisecond, true, 0, 0, 0},                       //
		{2500 * time.Millisecond, true, 0, 0, 0},                       //
		{2500*time.Millisecond + 100*time.Millisecond, false, 1, 0, 2}, // 0.2 token
	}
	for i, s := range steps {
		d := l.Allow(r, "", at(s.at))
		if d.Allowed != s.allowed {
			t.Fatalf("step %d at %s: got allowed %v, want %v (%+v)", i, s.at, d.Allowed, s.allowed, d)
		}
		if s.allowed {
			if d.Reason != ReasonNone {
				t.Errorf("step %d: got reason %q on an allowed request, want none", i, d.Reason)
			}
			continue
		}
		if d.Reason != ReasonRouteRate || d.Mode != ModeEnforce {
			t.Errorf("step %d: got reason %q mode %q, want %q enforce", i, d.Reason, d.Mode, ReasonRouteRate)
		}
		if d.State.RetryAfter != s.retryAfter || d.State.Remaining != s.remaining || d.State.Reset != s.reset {
			t.Errorf("step %d: got retry-after %d remaining %d reset %d, want %d %d %d",
				i, d.State.RetryAfter, d.State.Remaining, d.State.Reset, s.retryAfter, s.remaining, s.reset)
		}
		if d.State.Quota != 4 || d.State.Window != 2 {
			t.Errorf("step %d: got q=%d w=%d, want q=4 w=2", i, d.State.Quota, d.State.Window)
		}
	}
}

// TestRetryAfterRoundsUpToWholeSeconds checks Retry-After at slow rates,
// where the wait to the next token is many seconds and not whole.
func TestRetryAfterRoundsUpToWholeSeconds(t *testing.T) {
	tests := []struct {
		name    string
		rps     float64
		elapsed time.Duration // after emptying a bucket of 1
		want    int
	}{
		{"one per 10s, just emptied", 0.1, 0, 10},
		{"one per 10s, 2.5s later", 0.1, 2500 * time.Millisecond, 8},
		{"one per 10s, 9s later", 0.1, 9 * time.Second, 1},
		{"one per 10s, 9.999s later", 0.1, 9999 * time.Millisecond, 1},
		{"one per 3s, 1s later", 1.0 / 3, time.Second, 2},
		{"fast rate never says 0", 1000, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := mustRateLimiter(t, RateLimitConfig{RPS: tt.rps, Burst: 1, Mode: ModeEnforce}, map[string]RouteRateLimitConfig{"default": DefaultRouteRateLimit()})
			r := mustRoute(t, l, "default")
			if d := l.Allow(r, "", at(0)); !d.Allowed {
				t.Fatalf("first request: got refused %+v, want allowed", d)
			}
			d := l.Allow(r, "", at(tt.elapsed))
			if d.Allowed || d.Reason != ReasonGlobalRate {
				t.Fatalf("got %+v, want refused by %q", d, ReasonGlobalRate)
			}
			if d.State.RetryAfter != tt.want {
				t.Errorf("got Retry-After %d, want %d", d.State.RetryAfter, tt.want)
			}
		})
	}
}

func TestRateLimitFields(t *testing.T) {
	s := RateState{Quota: 100, Window: 10, Remaining: 0, Reset: 3, RetryAfter: 1}
	if got, want := s.PolicyField(), `"default";q=100;w=10`; got != want {
		t.Errorf("PolicyField: got %s, want %s", got, want)
	}
	if got, want := s.Field(), `"default";r=0;t=3`; got != want {
		t.Errorf("Field: got %s, want %s", got, want)
	}
}

// TestRefusedRequestDrainsNoBucket pins that a request refused by one
// level takes no token from the others, so a flood refused by its route
// does not starve other routes of the global bucket.
func TestRefusedRequestDrainsNoBucket(t *testing.T) {
	l := mustRateLimiter(t, RateLimitConfig{RPS: 1, Burst: 3, Mode: ModeEnforce}, map[string]RouteRateLimitConfig{
		"state_update": routeRate(1, 1, "", 0, 0, ModeEnforce),
		"notify":       DefaultRouteRateLimit(),
	})
	state, notify := mustRoute(t, l, "state_update"), mustRoute(t, l, "notify")
	if d := l.Allow(state, "", at(0)); !d.Allowed {
		t.Fatalf("first state update: got %+v, want allowed", d)
	}
	for i := range 10 {
		if d := l.Allow(state, "", at(0)); d.Allowed || d.Reason != ReasonRouteRate {
			t.Fatalf("state update %d: got %+v, want refused by the route", i, d)
		}
	}
	for i := range 2 {
		if d := l.Allow(notify, "", at(0)); !d.Allowed {
			t.Fatalf("notify %d: got %+v, want allowed (2 global tokens left)", i, d)
		}
	}
	if d := l.Allow(notify, "", at(0)); d.Allowed || d.Reason != ReasonGlobalRate {
		t.Fatalf("notify 3: got %+v, want refused by the global bucket", d)
	}
}

func TestPerKeyIsolation(t *testing.T) {
	l := mustRateLimiter(t, RateLimitConfig{Mode: ModeEnforce}, map[string]RouteRateLimitConfig{
		"state_update": routeRate(0, 0, "agent_id", 1, 2, ModeEnforce),
	})
	r := mustRoute(t, l, "state_update")
	for i := range 2 {
		if d := l.Allow(r, "agent-a", at(0)); !d.Allowed {
			t.Fatalf("agent-a request %d: got %+v, want allowed", i, d)
		}
	}
	if d := l.Allow(r, "agent-a", at(0)); d.Allowed || d.Reason != ReasonKeyRate {
		t.Fatalf("agent-a request 3: got %+v, want refused by %q", d, ReasonKeyRate)
	}
	for i := range 2 {
		if d := l.Allow(r, "agent-b", at(0)); !d.Allowed {
			t.Fatalf("agent-b request %d: got %+v, want allowed: keys must not share a bucket", i, d)
		}
	}
	if d := l.Allow(r, "", at(0)); !d.Allowed {
		t.Errorf("request without a key: got %+v, want allowed (no per-key level)", d)
	}
	if got := r.Keys(); got != 2 {
		t.Errorf("Keys: got %d, want 2", got)
	}
}

// TestKeyTableBoundUnder100kKeys sprays 100k distinct keys at a table
// bounded to 1000: it never holds more, and the bound is kept by evicting.
func TestKeyTableBoundUnder100kKeys(t *testing.T) {
	const maxKeys, spray = 1000, 100_000
	l := mustRateLimiter(t, RateLimitConfig{Mode: ModeEnforce}, map[string]RouteRateLimitConfig{
		"state_update": func() RouteRateLimitConfig {
			c := routeRate(0, 0, "agent_id", 1, 1, ModeEnforce)
			c.MaxKeys = maxKeys
			return c
		}(),
	})
	r := mustRoute(t, l, "state_update")
	for i := range spray {
		if d := l.Allow(r, "key-"+strconv.Itoa(i), at(0)); !d.Allowed {
			t.Fatalf("key %d: got %+v, want allowed (a new key starts full)", i, d)
		}
		if i%10_000 == 0 && r.Keys() > maxKeys {
			t.Fatalf("after %d keys: got %d keys held, want at most %d", i+1, r.Keys(), maxKeys)
		}
	}
	if got := r.Keys(); got != maxKeys {
		t.Errorf("Keys: got %d, want %d", got, maxKeys)
	}
	if got, want := r.keys.Evictions(), uint64(spray-maxKeys); got != want {
		t.Errorf("Evictions: got %d, want %d", got, want)
	}
}

// TestReloadKeepsBucketState pins that a config reload changes limits in
// place: an empty bucket stays empty when its size grows, instead of being
// refilled by the reload.
func TestReloadKeepsBucketState(t *testing.T) {
	global := RateLimitConfig{RPS: 1, Burst: 2, Mode: ModeEnforce}
	routes := map[string]RouteRateLimitConfig{"state_update": routeRate(1, 2, "agent_id", 1, 2, ModeEnforce)}
	l := mustRateLimiter(t, global, routes)
	r := mustRoute(t, l, "state_update")
	l.Allow(r, "a", at(0))
	l.Allow(r, "a", at(0))
	if d := l.Allow(r, "a", at(0)); d.Allowed {
		t.Fatalf("third request: got allowed, want refused")
	}
	tests := []struct {
		name   string
		global RateLimitConfig
		route  RouteRateLimitConfig
		refuse AdmissionReason
	}{
		{"global grows", RateLimitConfig{RPS: 1, Burst: 100, Mode: ModeEnforce}, routes["state_update"], ReasonGlobalRate},
		{"route grows", RateLimitConfig{Mode: ModeEnforce}, routeRate(1, 100, "agent_id", 1, 2, ModeEnforce), ReasonRouteRate},
		{"key grows", RateLimitConfig{Mode: ModeEnforce}, routeRate(0, 0, "agent_id", 1, 100, ModeEnforce), ReasonKeyRate},
	}
	for _, tt := range tests {
		if err := l.Update(at(0), tt.global, map[string]RouteRateLimitConfig{"state_update": tt.route}); err != nil {
			t.Fatalf("%s: Update: %v", tt.name, err)
		}
		if got := mustRoute(t, l, "state_update"); got != r {
			t.Fatalf("%s: Route returned a new limiter after Update", tt.name)
		}
		if d := l.Allow(r, "a", at(0)); d.Allowed || d.Reason != tt.refuse {
			t.Errorf("%s: got %+v, want still refused by %q (no refill on reload)", tt.name, d, tt.refuse)
		}
	}
	// The key's bucket refills at its rate from where it was.
	if d := l.Allow(r, "a", at(time.Second)); !d.Allowed {
		t.Errorf("one second later: got %+v, want allowed", d)
	}
}

func TestShadowModeAllowsButReports(t *testing.T) {
	l := mustRateLimiter(t, RateLimitConfig{RPS: 1, Burst: 1, Mode: ModeShadow}, map[string]RouteRateLimitConfig{
		"state_update": routeRate(1, 1, "", 0, 0, ModeShadow),
	})
	r := mustRoute(t, l, "state_update")
	if d := l.Allow(r, "", at(0)); !d.Allowed || d.Shadow() {
		t.Fatalf("first: got %+v, want allowed, not shadow-refused", d)
	}
	d := l.Allow(r, "", at(0))
	if !d.Allowed || !d.Shadow() || d.Reason != ReasonGlobalRate {
		t.Fatalf("second: got %+v, want allowed with shadow reason %q", d, ReasonGlobalRate)
	}
	if d.State.RetryAfter != 1 {
		t.Errorf("shadow Retry-After: got %d, want 1", d.State.RetryAfter)
	}
	// Enforcing the route while the global stays in shadow refuses by route.
	if err := l.Update(at(0), RateLimitConfig{RPS: 1, Burst: 1, Mode: ModeShadow},
		map[string]RouteRateLimitConfig{"state_update": routeRate(1, 1, "", 0, 0, ModeEnforce)}); err != nil {
		t.Fatal(err)
	}
	if d := l.Allow(r, "", at(0)); d.Allowed || d.Reason != ReasonRouteRate {
		t.Errorf("after enforcing the route: got %+v, want refused by %q", d, ReasonRouteRate)
	}
}

func TestLevelsTurnOnAndOff(t *testing.T) {
	l := mustRateLimiter(t, RateLimitConfig{Mode: ModeEnforce}, map[string]RouteRateLimitConfig{"default": DefaultRouteRateLimit()})
	r := mustRoute(t, l, "default")
	for i := range 100 {
		if d := l.Allow(r, "k", at(0)); !d.Allowed {
			t.Fatalf("request %d with every level off: got %+v, want allowed", i, d)
		}
	}
	if err := l.Update(at(0), RateLimitConfig{RPS: 1, Burst: 1, Mode: ModeEnforce},
		map[string]RouteRateLimitConfig{"default": routeRate(0, 0, "client_ip", 5, 5, ModeEnforce)}); err != nil {
		t.Fatal(err)
	}
	if d := l.Allow(r, "k", at(0)); !d.Allowed {
		t.Fatalf("first after turning on: got %+v, want allowed (a new bucket starts full)", d)
	}
	if d := l.Allow(r, "k", at(0)); d.Reason != ReasonGlobalRate {
		t.Fatalf("second: got %+v, want refused by the global bucket", d)
	}
	if err := l.Update(at(0), RateLimitConfig{Mode: ModeEnforce}, map[string]RouteRateLimitConfig{"default": DefaultRouteRateLimit()}); err != nil {
		t.Fatal(err)
	}
	if d := l.Allow(r, "k", at(0)); !d.Allowed {
		t.Errorf("after turning off: got %+v, want allowed", d)
	}
	if got := r.Keys(); got != 0 {
		t.Errorf("Keys after turning per-key off: got %d, want 0", got)
	}
}

// TestKeySourceChangeStartsANewTable switches a route's key from agent ids
// to client addresses: the agent-id buckets are dropped (they would never
// be used again), while a reload that keeps the key source keeps them.
func TestKeySourceChangeStartsANewTable(t *testing.T) {
	l := mustRateLimiter(t, RateLimitConfig{Mode: ModeEnforce}, map[string]RouteRateLimitConfig{"state_update": routeRate(0, 0, "agent_id", 0.001, 1, ModeEnforce)})
	r := mustRoute(t, l, "state_update")
	l.Allow(r, "agent-1", at(0))
	l.Allow(r, "agent-2", at(0))
	steps := []struct {
		name     string
		key      string
		wantKeys int
	}{
		{"same source, larger bucket", "agent_id", 2},
		{"new source", "client_ip", 0},
	}
	for _, s := range steps {
		if err := l.Update(at(0), RateLimitConfig{Mode: ModeEnforce}, map[string]RouteRateLimitConfig{"state_update": routeRate(0, 0, s.key, 0.001, 5, ModeEnforce)}); err != nil {
			t.Fatal(err)
		}
		if got := r.Keys(); got != s.wantKeys {
			t.Errorf("%s: got %d keys, want %d", s.name, got, s.wantKeys)
		}
	}
}

func TestRateLimiterRejectsInvalidConfig(t *testing.T) {
	_, err := NewRateLimiter(RateLimitConfig{RPS: -1, Mode: ModeEnforce}, map[string]RouteRateLimitConfig{"notify": routeRate(0, 0, "", 1, 0, "loud")})
	if err == nil {
		t.Fatal("got nil error, want the invalid keys named")
	}
	for _, key := range []string{"admission.global_rate_limit.rps", "routes.notify.rate_limit.key", "routes.notify.rate_limit.mode"} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("error %q: want it to name %s", err, key)
		}
	}
	l := mustRateLimiter(t, RateLimitConfig{Mode: ModeEnforce}, nil)
	if _, err := l.Route("nope"); !errors.Is(err, ErrUnknownRoute) {
		t.Errorf("Route(nope): got %v, want ErrUnknownRoute", err)
	}
}

func TestRouteRateLimiterStandalone(t *testing.T) {
	if _, err := NewRouteRateLimiter("notify", routeRate(-1, 0, "", 0, 0, ModeEnforce)); err == nil || !strings.Contains(err.Error(), "routes.notify.rate_limit.rps") {
		t.Fatalf("got %v, want an error naming routes.notify.rate_limit.rps", err)
	}
	r, err := NewRouteRateLimiter("notify", routeRate(1, 1, "", 0, 0, ModeEnforce))
	if err != nil {
		t.Fatal(err)
	}
	l := mustRateLimiter(t, RateLimitConfig{Mode: ModeEnforce}, nil)
	l.Allow(r, "", at(0))
	if err := r.Update(at(0), "notify", routeRate(1, 5, "", 0, 0, ModeEnforce)); err != nil {
		t.Fatal(err)
	}
	if d := l.Allow(r, "", at(0)); d.Reason != ReasonRouteRate {
		t.Errorf("after Update: got %+v, want refused by the route (state kept)", d)
	}
}
