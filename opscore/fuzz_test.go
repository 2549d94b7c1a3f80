package opscore

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
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
		if path == pState {
			checkStoredTimestamp(t, h, body)
		}
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

// checkStoredTimestamp fails t unless the state of lt-1, just accepted
// from body, has a timestamp written as RFC 3339 in UTC with a year in
// 0001-9999 (Go would write year 0 as "0000" and year 10000 as "10000").
func checkStoredTimestamp(t *testing.T, h http.Handler, body string) {
	t.Helper()
	g := call(t, h, "GET", pState, "", true)
	var st AgentState
	if g.status != 200 || json.Unmarshal([]byte(g.body), &st) != nil {
		t.Fatalf("body %q: accepted, then GET state got %d %s", body, g.status, g.body)
	}
	ts, err := time.Parse(time.RFC3339Nano, st.Timestamp)
	if err != nil || ts.Year() < 1 || !strings.HasSuffix(st.Timestamp, "Z") {
		t.Fatalf("body %q: stored timestamp %q (%v), want RFC 3339 in UTC with a year in 0001-9999", body, st.Timestamp, err)
	}
}

// FuzzNotifyBody feeds arbitrary bodies to the registration webhook.
func FuzzNotifyBody(f *testing.F) {
	for _, s := range []string{
		registerBody("lt-1"), registerBody(""), registerBody("a:b"), `{}`, `[]`, `null`, `"x"`, `{"event_type":`,
		`{"event_type":"DEREGISTER","agent_details":{"agentId":"lt-1","agentName":"n","version":"1","contactEndpoint":"http://[::1]:0"}}`,
		`{"event_type":"REGISTER","agent_details":{"agentId":"x","agentName":"n","version":"1","contactEndpoint":"http://a","capabilities":null,"metadata":[]}}`,
		"{\"event_type\":\"\xff\"}",
		registerBody(`lt-1\u0000`), registerBody(`lt-1\r\nX: 1`), registerBody(`a\u2028b`), registerBody(`a\u0085b`),
		registerBody(strings.Repeat("a", 256)), registerBody(strings.Repeat("a", 257)), registerBody(strings.Repeat("é", 129)),
		registerBody(strings.Repeat("a", 100<<10)), registerBody("."), registerBody(".."), deregisterBody(`lt-1\u0000`),
		deregisterBody(strings.Repeat("a", 300)), strings.Replace(registerBody(`a\nb`), "REGISTER", "UPDATE", 1),
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
		stateBodyAt("0001-01-01T00:30:00+01:00"), stateBodyAt("0001-01-01T01:00:00+01:00"), stateBodyAt("9999-12-31T23:30:00-01:00"),
		stateBodyAt("99991231T235959.999999-0001"), stateBodyAt("9999-12-31T23:59:59.9999999Z"), stateBodyAt("0000-01-01"),
		stateBody(`lt-1\u0000`, "s"), stateBody("", "s"), `{"agentId":"lt-1\n","timestamp":"0001-01-01T00:00:00+00:01","state":1}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) { fuzzCheck(t, pState, body) })
}

// FuzzAgentIDRoundTrip registers arbitrary agent ids. An id the webhook
// accepts must be within the documented rules and reachable through the
// path routes (read back, updated, deregistered, leaving the store as it
// was); the original stored a 100 KiB id that could never be read back. A
// refused id must change nothing, and its path routes must refuse it too.
func FuzzAgentIDRoundTrip(f *testing.F) {
	for _, id := range []string{
		"lt-1", "a b", "agent 1 (α) ✓", "a%b?c#d", "...", "", "a\x00b", "a\r\nb", "a\tb", "a\x7fb", "a\u0085b", "a\u2028b",
		"a:b", "a/b", ".", "..", "\xff", strings.Repeat("a", 256), strings.Repeat("a", 257), strings.Repeat("é", 128),
		strings.Repeat("é", 129),
	} {
		f.Add(id)
	}
	f.Fuzz(func(t *testing.T, id string) {
		js, err := json.Marshal(id)
		if err != nil {
			t.Fatalf("marshal %q: %v", id, err)
		}
		var sent string // what the service decodes: invalid UTF-8 became U+FFFD
		if err := json.Unmarshal(js, &sent); err != nil {
			t.Fatalf("unmarshal %s: %v", js, err)
		}
		inner := string(js[1 : len(js)-1])
		store := NewMemoryStore()
		svc, _ := newTestService(t, store)
		h := svc.Handler()
		before := snapshot(t, store, nil)

		r := call(t, h, "POST", pNotify, registerBody(inner), false)
		if r.status != 200 {
			if r.status < 400 || r.status >= 500 {
				t.Fatalf("register %q: got %d %s, want 200 or 4xx", sent, r.status, r.body)
			}
			if after := snapshot(t, store, nil); after != before {
				t.Fatalf("register %q: got %d and a changed store", sent, r.status)
			}
			if g := call(t, h, "GET", agentPath(sent, "state"), "", true); g.status != 422 && g.status != 404 {
				t.Fatalf("GET state of refused id %q: got %d %s, want 422 (or 404 when no route matches)", sent, g.status, g.body)
			}
			return
		}
		if len(sent) > MaxAgentIDBytes || strings.ContainsAny(sent, "\x00\r\n:/") {
			t.Fatalf("register %q: got 200, want the id refused", sent)
		}
		g := call(t, h, "GET", agentPath(sent, "state"), "", true)
		var st AgentState
		if g.status != 200 || json.Unmarshal([]byte(g.body), &st) != nil || st.AgentID != sent {
			t.Fatalf("GET state of registered id %q: got %d %s, want 200 with the id", sent, g.status, g.body)
		}
		u := call(t, h, "POST", agentPath(sent, "state"), `{"agentId":`+string(js)+`,"timestamp":"t","state":"s"}`, true)
		mustStatus(t, "update "+sent, u, 202)
		mustStatus(t, "deregister "+sent, call(t, h, "POST", pNotify, deregisterBody(inner), false), 200)
		if after := snapshot(t, store, nil); after != before {
			t.Fatalf("deregister %q: the store kept something:\nbefore %s\nafter  %s", sent, before, after)
		}
	})
}
