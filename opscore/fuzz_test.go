package opscore

import (
	"encoding/json"
	"testing"
)

// fuzzCheck sends body to path and fails on a 5xx (a panic would fail the
// fuzz run by itself), on a refusal that is not a JSON object with a
// detail, and on a refusal that changed the store.
func fuzzCheck(t *testing.T, path, body string) {
	t.Helper()
	store := NewMemoryStore()
	svc, _ := newTestService(t, store)
	h := svc.Handler()
	mustStatus(t, "seed register", call(t, h, "POST", pNotify, registerBody("lt-1"), false), 200)
	before := snapshot(t, store, nil)
	r := call(t, h, "POST", path, body, true)
	if r.status < 200 || r.status >= 500 {
		t.Fatalf("body %q: got status %d (%s), want 2xx or 4xx", body, r.status, r.body)
	}
	if r.status < 400 {
		return
	}
	var refusal struct {
		Detail json.RawMessage `json:"detail"`
	}
	if err := json.Unmarshal([]byte(r.body), &refusal); err != nil || len(refusal.Detail) == 0 {
		t.Fatalf("body %q: got %d %s, want a JSON object with a detail", body, r.status, r.body)
	}
	if after := snapshot(t, store, nil); after != before {
		t.Fatalf("body %q: got %d and a changed store:\nbefore %s\nafter  %s", body, r.status, before, after)
	}
}

// FuzzNotifyBody feeds arbitrary bodies to the registration webhook.
func FuzzNotifyBody(f *testing.F) {
	for _, s := range []string{
		registerBody("lt-1"), registerBody(""), registerBody("a:b"), `{}`, `[]`, `null`, `"x"`, `{"event_type":`,
		`{"event_type":"DEREGISTER","agent_details":{"agentId":"lt-1","agentName":"n","version":"1","contactEndpoint":"http://[::1]:0"}}`,
		`{"event_type":"REGISTER","agent_details":{"agentId":"x","agentName":"n","version":"1","contactEndpoint":"http://a","capabilities":null,"metadata":[]}}`,
		"{\"event_type\":\"\xff\"}",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) { fuzzCheck(t, pNotify, body) })
}

// FuzzStateBody feeds arbitrary bodies to the state update.
func FuzzStateBody(f *testing.F) {
	for _, s := range []string{
		stateBody("lt-1", "idle"), stateBody("x", "idle"), `{}`, `[1,2]`, `{"agentId":1}`,
		`{"agentId":"lt-1","timestamp":"2025-02-30T25:61:00+99:99","state":"s","details":null}`,
		`{"agentId":"lt-1","timestamp":"20250101T101010,5-0130","state":"s","details":{"a":[1,{"b":null}]}}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) { fuzzCheck(t, pState, body) })
}
