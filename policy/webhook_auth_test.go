package policy

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The test vector of docs/admission.md, "The AgentKit signing recipe".
const (
	specSecret    = "super-secret-webhook-key-123"
	specTimestamp = "1745287627"
	specBody      = `{"event_type":"REGISTER","agent_details":{"agentId":"3f2b8c1e-7d4a-4e8b-9c2d-1a2b3c4d5e6f","agentName":"PingAgent","version":"1.0.0","capabilities":["ping"],"contactEndpoint":"http://ping-agent:8080/","metadata":{}}}`
	specSignature = "abb8011c81c37116f4b086d4fcbeffb46e17ec9c9bb238f69b43e73923656efe"
)

// agentKitBody builds a registration webhook body the way AgentKit does:
// json.dumps with separators=(",",":"), keys in the model's order.
func agentKitBody(t testing.TB, agentID string) []byte {
	t.Helper()
	type details struct {
		AgentID         string         `json:"agentId"`
		AgentName       string         `json:"agentName"`
		Version         string         `json:"version"`
		Capabilities    []string       `json:"capabilities"`
		ContactEndpoint string         `json:"contactEndpoint"`
		Metadata        map[string]any `json:"metadata"`
	}
	b, err := json.Marshal(struct {
		EventType    string  `json:"event_type"`
		AgentDetails details `json:"agent_details"`
	}{"REGISTER", details{agentID, "PingAgent", "1.0.0", []string{"ping"}, "http://ping-agent:8080/", map[string]any{}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustVerifier(t testing.TB, mode string, tolerance time.Duration, replaySize int) *WebhookVerifier {
	t.Helper()
	cfg := DefaultWebhookAuth()
	cfg.Mode, cfg.Tolerance, cfg.ReplayCacheSize = mode, tolerance, replaySize
	v, err := NewWebhookVerifier(cfg, func(name string) string {
		if name == "OPSCORE_WEBHOOK_SECRET" {
			return specSecret
		}
		return ""
	})
	if err != nil {
		t.Fatalf("NewWebhookVerifier: %v", err)
	}
	return v
}

// TestAgentKitSigningVector checks the signing recipe against the test
// vector of docs/admission.md, "The AgentKit signing recipe", with the body
// rebuilt the way AgentKit serialises it.
func TestAgentKitSigningVector(t *testing.T) {
	body := agentKitBody(t, "3f2b8c1e-7d4a-4e8b-9c2d-1a2b3c4d5e6f")
	if string(body) != specBody || len(body) != 216 {
		t.Fatalf("body: got %d bytes %s, want the vector's 216 bytes", len(body), body)
	}
	if got := SignWebhook([]byte(specSecret), specTimestamp, body); got != specSignature {
		t.Fatalf("SignWebhook: got %s, want %s", got, specSignature)
	}
	v := mustVerifier(t, AuthRequired, 5*time.Minute, 100)
	if got := v.Verify(specTimestamp, specSignature, body, time.Unix(1745287627, 0)); !got.Allowed || got.Reason != AuthReasonNone {
		t.Errorf("Verify of the vector: got %+v, want allowed", got)
	}
}

func TestWebhookVerifyCases(t *testing.T) {
	const tol = 5 * time.Minute
	ts := int64(1745287627)
	tsStr := strconv.FormatInt(ts, 10)
	body := agentKitBody(t, "agent-1")
	sig := SignWebhook([]byte(specSecret), tsStr, body)
	signAt := func(sec int64) (string, string) {
		s := strconv.FormatInt(sec, 10)
		return s, SignWebhook([]byte(specSecret), s, body)
	}
	pastTS, pastSig := signAt(ts - 301)
	edgeTS, edgeSig := signAt(ts - 300)
	futTS, futSig := signAt(ts + 301)
	futEdgeTS, futEdgeSig := signAt(ts + 300)
	rfcTS := time.Unix(ts, 0).UTC().Format(time.RFC3339)
	tampered := append([]byte(nil), body...)
	tampered[len(tampered)-3] = 'X'
	tests := []struct {
		name      string
		mode      string
		ts, sig   string
		body      []byte
		want      AuthReason
		wantAllow bool
	}{
		{"valid", AuthRequired, tsStr, sig, body, AuthReasonNone, true},
		{"valid, uppercase hex", AuthRequired, tsStr, strings.ToUpper(sig), body, AuthReasonNone, true},
		{"valid, RFC 3339 timestamp", AuthRequired, rfcTS, SignWebhook([]byte(specSecret), rfcTS, body), body, AuthReasonNone, true},
		{"timestamp missing", AuthRequired, "", sig, body, AuthReasonMissing, false},
		{"signature missing", AuthRequired, tsStr, "", body, AuthReasonMissing, false},
		{"both missing", AuthRequired, "", "", body, AuthReasonMissing, false},
		{"timestamp with a fraction", AuthRequired, tsStr + ".5", sig, body, AuthReasonBadTimestamp, false},
		{"negative timestamp", AuthRequired, "-" + tsStr, sig, body, AuthReasonBadTimestamp, false},
		{"timestamp with a sign", AuthRequired, "+" + tsStr, sig, body, AuthReasonBadTimestamp, false},
		{"timestamp not a number", AuthRequired, "yesterday", sig, body, AuthReasonBadTimestamp, false},
		{"signature one char short", AuthRequired, tsStr, sig[1:], body, AuthReasonBadSignature, false},
		{"signature not hex", AuthRequired, tsStr, "zz" + sig[2:], body, AuthReasonBadSignature, false},
		{"signature with a prefix", AuthRequired, tsStr, "sha256=" + sig, body, AuthReasonBadSignature, false},
		{"body changed", AuthRequired, tsStr, sig, tampered, AuthReasonBadSignature, false},
		{"body re-serialised with spaces", AuthRequired, tsStr, sig, []byte(strings.ReplaceAll(string(body), ":", ": ")), AuthReasonBadSignature, false},
		{"signature of another timestamp", AuthRequired, strconv.FormatInt(ts+1, 10), sig, body, AuthReasonBadSignature, false},
		{"wrong secret", AuthRequired, tsStr, SignWebhook([]byte("other"), tsStr, body), body, AuthReasonBadSignature, false},
		{"301s old", AuthRequired, pastTS, pastSig, body, AuthReasonExpired, false},
		{"300s old, on the edge", AuthRequired, edgeTS, edgeSig, body, AuthReasonNone, true},
		{"301s ahead", AuthRequired, futTS, futSig, body, AuthReasonExpired, false},
		{"300s ahead, on the edge", AuthRequired, futEdgeTS, futEdgeSig, body, AuthReasonNone, true},
		{"optional, unsigned", AuthOptional, "", "", body, AuthReasonUnsigned, true},
		{"optional, half signed", AuthOptional, tsStr, "", body, AuthReasonMissing, false},
		{"optional, bad signature", AuthOptional, tsStr, sig, tampered, AuthReasonBadSignature, false},
		{"optional, valid", AuthOptional, tsStr, sig, body, AuthReasonNone, true},
		{"off, garbage", AuthOff, "x", "y", body, AuthReasonNone, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := mustVerifier(t, tt.mode, tol, 100)
			got := v.Verify(tt.ts, tt.sig, tt.body, time.Unix(ts, 0))
			if got.Allowed != tt.wantAllow || got.Reason != tt.want {
				t.Errorf("got %+v, want allowed %v reason %q", got, tt.wantAllow, tt.want)
			}
		})
	}
}

func TestWebhookReplayRejected(t *testing.T) {
	v := mustVerifier(t, AuthRequired, 5*time.Minute, 100)
	now := time.Unix(1745287627, 0)
	body := agentKitBody(t, "agent-1")
	if got := v.Verify(specTimestamp, SignWebhook([]byte(specSecret), specTimestamp, body), body, now); !got.Allowed {
		t.Fatalf("first delivery: got %+v, want allowed", got)
	}
	steps := []struct {
		name  string
		after time.Duration
		sig   string
		want  AuthReason
	}{
		{"same delivery again", time.Second, SignWebhook([]byte(specSecret), specTimestamp, body), AuthReasonReplayed},
		{"same delivery in uppercase", 2 * time.Second, strings.ToUpper(SignWebhook([]byte(specSecret), specTimestamp, body)), AuthReasonReplayed},
		{"same delivery at the window's end", 5 * time.Minute, SignWebhook([]byte(specSecret), specTimestamp, body), AuthReasonReplayed},
		{"same delivery after the window", 5*time.Minute + time.Second, SignWebhook([]byte(specSecret), specTimestamp, body), AuthReasonExpired},
	}
	for _, s := range steps {
		if got := v.Verify(specTimestamp, s.sig, body, now.Add(s.after)); got.Allowed || got.Reason != s.want {
			t.Errorf("%s: got %+v, want refused %q", s.name, got, s.want)
		}
	}
	// Another agent's registration in the same second is not a replay.
	other := agentKitBody(t, "agent-2")
	if got := v.Verify(specTimestamp, SignWebhook([]byte(specSecret), specTimestamp, other), other, now); !got.Allowed {
		t.Errorf("a different body in the same second: got %+v, want allowed", got)
	}
}

// TestReplayCacheIsBounded fills a cache of 3 with 10 deliveries: it never
// holds more than 3, and stale entries leave as time passes.
func TestReplayCacheIsBounded(t *testing.T) {
	v := mustVerifier(t, AuthRequired, time.Minute, 3)
	now := time.Unix(1745287627, 0)
	for i := range 10 {
		body := agentKitBody(t, "agent-"+strconv.Itoa(i))
		if got := v.Verify(specTimestamp, SignWebhook([]byte(specSecret), specTimestamp, body), body, now); !got.Allowed {
			t.Fatalf("delivery %d: got %+v, want allowed", i, got)
		}
		if n := v.replay.len(); n > 3 {
			t.Fatalf("after %d deliveries: got %d remembered, want at most 3", i+1, n)
		}
	}
	// The newest is remembered; the oldest was forgotten to keep the bound.
	newest, oldest := agentKitBody(t, "agent-9"), agentKitBody(t, "agent-0")
	if got := v.Verify(specTimestamp, SignWebhook([]byte(specSecret), specTimestamp, newest), newest, now); got.Reason != AuthReasonReplayed {
		t.Errorf("newest again: got %+v, want replayed", got)
	}
	if got := v.Verify(specTimestamp, SignWebhook([]byte(specSecret), specTimestamp, oldest), oldest, now); !got.Allowed {
		t.Errorf("oldest again: got %+v, want allowed (evicted from a full cache)", got)
	}
	later := now.Add(2 * time.Minute)
	ts := strconv.FormatInt(later.Unix(), 10)
	body := agentKitBody(t, "agent-late")
	if got := v.Verify(ts, SignWebhook([]byte(specSecret), ts, body), body, later); !got.Allowed {
		t.Fatalf("late delivery: got %+v, want allowed", got)
	}
	if n := v.replay.len(); n != 1 {
		t.Errorf("after the window passed: got %d remembered, want 1 (stale entries dropped)", n)
	}
}

func TestWebhookVerifierNeedsSecret(t *testing.T) {
	cfg := DefaultWebhookAuth()
	cfg.Mode = AuthRequired
	if _, err := NewWebhookVerifier(cfg, func(string) string { return "" }); err == nil {
		t.Fatal("required mode with an unset secret: got nil error, want one")
	}
	cfg.Mode = AuthOff
	if _, err := NewWebhookVerifier(cfg, func(string) string { return "" }); err != nil {
		t.Fatalf("off mode needs no secret: got %v", err)
	}
}

// TestWebhookReloadKeepsReplayCache re-applies the same config, as a
// reload does (re-reading the secret): a delivery accepted before stays a
// replay after.
func TestWebhookReloadKeepsReplayCache(t *testing.T) {
	v := mustVerifier(t, AuthRequired, time.Minute, 10)
	now := time.Unix(1745287627, 0)
	body := agentKitBody(t, "agent-1")
	sig := SignWebhook([]byte(specSecret), specTimestamp, body)
	if got := v.Verify(specTimestamp, sig, body, now); !got.Allowed {
		t.Fatalf("first delivery: got %+v, want allowed", got)
	}
	cfg := DefaultWebhookAuth()
	cfg.Mode, cfg.Tolerance, cfg.ReplayCacheSize = AuthRequired, time.Minute, 10
	next, err := v.With(cfg, func(string) string { return specSecret })
	if err != nil {
		t.Fatal(err)
	}
	if got := next.Verify(specTimestamp, sig, body, now); got.Reason != AuthReasonReplayed {
		t.Errorf("after reload: got %+v, want replayed", got)
	}
}

// TestWebhookWithSharesReplayCache builds the next snapshot's verifier
// with With: the old one is unchanged, the replay cache is shared.
func TestWebhookWithSharesReplayCache(t *testing.T) {
	v := mustVerifier(t, AuthRequired, time.Minute, 10)
	now := time.Unix(1745287627, 0)
	body := agentKitBody(t, "agent-1")
	sig := SignWebhook([]byte(specSecret), specTimestamp, body)
	cfg := DefaultWebhookAuth()
	cfg.Mode, cfg.Tolerance, cfg.ReplayCacheSize = AuthOptional, time.Minute, 10
	next, err := v.With(cfg, func(string) string { return specSecret })
	if err != nil {
		t.Fatal(err)
	}
	if got := next.Verify(specTimestamp, sig, body, now); !got.Allowed {
		t.Fatalf("first delivery via the new verifier: got %+v, want allowed", got)
	}
	if got := v.Verify(specTimestamp, sig, body, now); got.Reason != AuthReasonReplayed {
		t.Errorf("same delivery via the old verifier: got %+v, want replayed (shared cache)", got)
	}
	if v.Mode() != AuthRequired || next.Mode() != AuthOptional {
		t.Errorf("modes: got old %s new %s, want required and optional", v.Mode(), next.Mode())
	}
}

// TestReplayCacheMatchesModel drives the cache with a seeded random mix of
// new signatures, repeats and passing time, while its ring is still
// growing and after it wraps, and compares every answer with a plain
// slice that keeps the same rules: stale entries leave from the old end,
// and a full cache forgets its oldest entry.
func TestReplayCacheMatchesModel(t *testing.T) {
	type entry struct {
		sig [32]byte
		exp int64
	}
	for _, size := range []int{1, 3, 8, 64} {
		c := newReplayCache(size)
		var model []entry
		rng := rand.New(rand.NewPCG(uint64(size), 7))
		now := int64(1745287627)
		for step := range 5000 {
			now += int64(rng.IntN(3))
			var sig [32]byte
			sig[0], sig[1] = byte(rng.IntN(40)), byte(size)
			exp := now + int64(rng.IntN(20))
			want := false
			for _, e := range model {
				if e.sig == sig && e.exp >= now {
					want = true
				}
			}
			if !want {
				for len(model) > 0 && (model[0].exp < now || len(model) == size) {
					model = model[1:]
				}
				model = append(model, entry{sig, exp})
			}
			if got := c.seen(sig, exp, 0, time.Unix(now, 0)); got != want {
				t.Fatalf("size %d step %d: seen got %v, want %v", size, step, got, want)
			}
			if c.n != len(model) || len(c.ring) > size {
				t.Fatalf("size %d step %d: got %d entries in a ring of %d, want %d in at most %d", size, step, c.n, len(c.ring), len(model), size)
			}
		}
	}
}

// TestReplayCacheGrowsWithUse: a huge replay_cache_size allocates nothing
// up front.
func TestReplayCacheGrowsWithUse(t *testing.T) {
	c := newReplayCache(1 << 30)
	if got := cap(c.ring); got > 4096 {
		t.Errorf("ring capacity of an empty cache of 2^30: got %d, want at most 4096", got)
	}
}

// reloadVerifier is v.With a config of mode required, tolerance and size,
// put in place (ResizeReplay) as a reload that succeeds does.
func reloadVerifier(t *testing.T, v *WebhookVerifier, tolerance time.Duration, size int) *WebhookVerifier {
	t.Helper()
	cfg := DefaultWebhookAuth()
	cfg.Mode, cfg.Tolerance, cfg.ReplayCacheSize = AuthRequired, tolerance, size
	next, err := v.With(cfg, func(string) string { return specSecret })
	if err != nil {
		t.Fatal(err)
	}
	next.ResizeReplay()
	return next
}

// TestWebhookReloadOfCacheSizeKeepsReplays: a reload that changes
// replay_cache_size keeps the remembered signatures (the newest ones when
// it shrinks), so a refused replay stays refused.
func TestWebhookReloadOfCacheSizeKeepsReplays(t *testing.T) {
	now := time.Unix(1745287627, 0)
	v := mustVerifier(t, AuthRequired, time.Minute, 10)
	sigs := make([]string, 5)
	bodies := make([][]byte, 5)
	for i := range sigs {
		bodies[i] = agentKitBody(t, fmt.Sprintf("agent-%d", i))
		sigs[i] = SignWebhook([]byte(specSecret), specTimestamp, bodies[i])
		if got := v.Verify(specTimestamp, sigs[i], bodies[i], now); !got.Allowed {
			t.Fatalf("delivery %d: got %+v, want allowed", i, got)
		}
	}
	grown := reloadVerifier(t, v, time.Minute, 1000)
	for i := range sigs {
		if got := grown.Verify(specTimestamp, sigs[i], bodies[i], now); got.Reason != AuthReasonReplayed {
			t.Errorf("after growing the cache, delivery %d again: got %+v, want replayed", i, got)
		}
	}
	shrunk := reloadVerifier(t, grown, time.Minute, 2)
	for i := 3; i < 5; i++ { // the two newest
		if got := shrunk.Verify(specTimestamp, sigs[i], bodies[i], now); got.Reason != AuthReasonReplayed {
			t.Errorf("after shrinking the cache to 2, newest delivery %d again: got %+v, want replayed", i, got)
		}
	}
	if n := shrunk.replay.len(); n != 2 {
		t.Errorf("after shrinking to 2: got %d remembered, want 2", n)
	}
}

// TestWebhookReloadOfToleranceKeepsReplays: a reload that widens the
// tolerance must not let a delivery accepted under the narrow one through
// again once the narrow window has passed but the wide one has not.
func TestWebhookReloadOfToleranceKeepsReplays(t *testing.T) {
	now := time.Unix(1745287627, 0)
	v := mustVerifier(t, AuthRequired, time.Minute, 10)
	body := agentKitBody(t, "agent-1")
	sig := SignWebhook([]byte(specSecret), specTimestamp, body)
	if got := v.Verify(specTimestamp, sig, body, now); !got.Allowed {
		t.Fatalf("first delivery: got %+v, want allowed", got)
	}
	wide := reloadVerifier(t, v, 10*time.Minute, 10)
	if got := wide.Verify(specTimestamp, sig, body, now.Add(3*time.Minute)); got.Reason != AuthReasonReplayed {
		t.Errorf("3m later under a 10m tolerance: got %+v, want replayed", got)
	}
	narrow := reloadVerifier(t, wide, 30*time.Second, 10)
	if got := narrow.Verify(specTimestamp, sig, body, now); got.Reason != AuthReasonReplayed {
		t.Errorf("same second under a 30s tolerance: got %+v, want replayed", got)
	}
}

// TestWebhookPrecheckNeedsNoBody: every refusal that the headers alone
// decide is final in Precheck, which asks for the body only when the
// headers are well-formed and in the window.
func TestWebhookPrecheckNeedsNoBody(t *testing.T) {
	now := time.Unix(1745287627, 0)
	v := mustVerifier(t, AuthRequired, time.Minute, 10)
	opt := mustVerifier(t, AuthOptional, time.Minute, 10)
	stale := strconv.FormatInt(now.Add(-time.Hour).Unix(), 10)
	tests := []struct {
		name     string
		v        *WebhookVerifier
		ts, sig  string
		reason   AuthReason
		allowed  bool
		needBody bool
	}{
		{"unsigned, optional", opt, "", "", AuthReasonUnsigned, true, false},
		{"unsigned, required", v, "", "", AuthReasonMissing, false, false},
		{"no signature", v, specTimestamp, "", AuthReasonMissing, false, false},
		{"bad timestamp", v, "soon", specSignature, AuthReasonBadTimestamp, false, false},
		{"stale", v, stale, specSignature, AuthReasonExpired, false, false},
		{"short signature", v, specTimestamp, "abcd", AuthReasonBadSignature, false, false},
		{"not hex", v, specTimestamp, strings.Repeat("zz", 32), AuthReasonBadSignature, false, false},
		{"well-formed", v, specTimestamp, specSignature, AuthReasonNone, false, true},
	}
	for _, tt := range tests {
		got, needBody := tt.v.Precheck(tt.ts, tt.sig, now)
		if got.Reason != tt.reason || got.Allowed != tt.allowed || needBody != tt.needBody {
			t.Errorf("%s: got %+v needBody=%v, want reason %q allowed=%v needBody=%v", tt.name, got, needBody, tt.reason, tt.allowed, tt.needBody)
		}
	}
}
