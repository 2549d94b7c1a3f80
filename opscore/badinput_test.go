package opscore

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// snapshot renders everything a store holds as one string, so a test can
// tell whether a request wrote anything. raw is the Redis client of a Redis
// store, nil for a MemoryStore.
func snapshot(t *testing.T, store Store, raw redis.UniversalClient) string {
	t.Helper()
	if raw == nil {
		m := store.(*MemoryStore)
		m.mu.Lock()
		defer m.mu.Unlock()
		b, err := json.Marshal([]any{m.regs, m.states, m.defs, m.sessions, m.tasks})
		if err != nil {
			t.Fatalf("snapshot: %v", err)
		}
		return string(b)
	}
	ctx := context.Background()
	keys, err := raw.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatalf("KEYS: %v", err)
	}
	slices.Sort(keys)
	var sb strings.Builder
	for _, k := range keys {
		typ, err := raw.Type(ctx, k).Result()
		if err != nil {
			t.Fatalf("TYPE %s: %v", k, err)
		}
		var val any
		switch typ {
		case "string":
			val, err = raw.Get(ctx, k).Result()
		case "list":
			val, err = raw.LRange(ctx, k, 0, -1).Result()
		default:
			t.Fatalf("key %s has type %s, want string or list", k, typ)
		}
		if err != nil {
			t.Fatalf("read %s: %v", k, err)
		}
		b, _ := json.Marshal(val)
		sb.WriteString(k + "=" + string(b) + "\n")
	}
	return sb.String()
}

// badInputs are the bad inputs every route must refuse without writing.
// Each is otherwise a request that would write (a valid registration or a
// state update of the registered agent lt-1), so a missing check shows up
// as a changed store.
var badInputs = []struct {
	name, method, path, body string
	hdr                      []string
	status                   int
}{
	{"malformed JSON notify", "POST", pNotify, `{"event_type":"REGISTER",`, nil, 422},
	{"malformed JSON state", "POST", pState, `{"agentId":"lt-1","state":"x"`, nil, 422},
	{"wrong type notify", "POST", pNotify, strings.Replace(registerBody("n-1"), `"version":"1.0"`, `"version":1`, 1), nil, 422},
	{"wrong type capabilities", "POST", pNotify, strings.Replace(registerBody("n-1"), `["state_reporting"]`, `[1]`, 1), nil, 422},
	{"wrong type state", "POST", pState, `{"agentId":"lt-1","timestamp":"t","state":false}`, nil, 422},
	{"wrong type details", "POST", pState, `{"agentId":"lt-1","timestamp":"t","state":"s","details":"x"}`, nil, 422},
	{"missing field notify", "POST", pNotify, strings.Replace(registerBody("n-1"), `"agentName":"A",`, ``, 1), nil, 422},
	{"missing field state", "POST", pState, `{"agentId":"lt-1","state":"busy"}`, nil, 422},
	{"body absent", "POST", pState, ``, nil, 422},
	{"body is an array", "POST", pNotify, `[` + registerBody("n-1") + `]`, nil, 422},
	{"unknown event_type", "POST", pNotify, strings.Replace(registerBody("n-1"), "REGISTER", "REGISTRATION", 1), nil, 400},
	{"path/body agentId mismatch", "POST", pState, stateBody("other", "busy"), nil, 400},
	{"contactEndpoint not a URL", "POST", pNotify, strings.Replace(registerBody("n-1"), "http://fake-agent.local/run", "abc", 1), nil, 422},
	{"contactEndpoint not http", "POST", pNotify, strings.Replace(registerBody("n-1"), "http://fake-agent.local/run", "ftp://h/x", 1), nil, 422},
	{"contactEndpoint without host", "POST", pNotify, strings.Replace(registerBody("n-1"), "http://fake-agent.local/run", "http://", 1), nil, 422},
	{"workflow with both definitions", "POST", "/v1/opscore/agent/lt-1/workflow",
		`{"workflowDefinitionId":"sample_workflow_id","workflowDefinition":{"id":"w","name":"n","tasks":[]}}`, nil, 422},
	{"workflow with neither definition", "POST", "/v1/opscore/agent/lt-1/workflow", `{"initialPayload":{"a":1}}`, nil, 422},
	{"notify over 1 MiB", "POST", pNotify,
		strings.Replace(registerBody("n-1"), `{"scenario":1}`, `{"pad":"`+strings.Repeat("a", MaxBodyBytes)+`"}`, 1), nil, 413},
	{"state over 1 MiB", "POST", pState,
		strings.Replace(stateBody("lt-1", "busy"), `{"k":"v"}`, `{"pad":"`+strings.Repeat("a", MaxBodyBytes)+`"}`, 1), nil, 413},
	{"register id with colon", "POST", pNotify, registerBody("lt:1"), nil, 422},
	{"register id with slash", "POST", pNotify, registerBody("lt/1"), nil, 422},
	{"register empty id", "POST", pNotify, registerBody(""), nil, 400},
	{"register id with NUL", "POST", pNotify, registerBody(`lt-1\u0000`), nil, 422},
	{"register id with CR LF", "POST", pNotify, registerBody(`lt-1\r\n`), nil, 422},
	{"register id of 257 bytes", "POST", pNotify, registerBody(strings.Repeat("a", 257)), nil, 422},
	{"register id of 100 KiB", "POST", pNotify, registerBody(strings.Repeat("a", 100<<10)), nil, 422},
	{"deregister id with colon", "POST", pNotify, deregisterBody("lt-1:registration"), nil, 422},
	{"deregister id with NUL", "POST", pNotify, deregisterBody(`lt-1\u0000`), nil, 422},
	{"state for id with colon", "POST", "/v1/opscore/agent/lt:1/state", stateBody("lt:1", "busy"), nil, 422},
	{"state for id with encoded slash", "POST", "/v1/opscore/agent/lt%2F1/state", stateBody("lt/1", "busy"), nil, 404},
	{"state for id with NUL", "POST", "/v1/opscore/agent/lt-1%00/state", stateBody(`lt-1\u0000`, "busy"), nil, 422},
	{"state for id with CR LF", "POST", "/v1/opscore/agent/lt-1%0D%0A/state", stateBody(`lt-1\r\n`, "busy"), nil, 422},
	{"state for id of 257 bytes", "POST", agentPath(strings.Repeat("a", 257), "state"), stateBody(strings.Repeat("a", 257), "busy"), nil, 422},
	{"state body id with NUL", "POST", pState, stateBody(`lt-1\u0000`, "busy"), nil, 422},
	{"state timestamp before year 1 in UTC", "POST", pState, stateBodyAt("0001-01-01T00:59:59+01:00"), nil, 422},
	{"state timestamp after year 9999 in UTC", "POST", pState, stateBodyAt("9999-12-31T23:59:59-00:01"), nil, 422},
	{"workflow for id with colon", "POST", "/v1/opscore/agent/lt:1/workflow", `{"workflowDefinitionId":"sample_workflow_id"}`, nil, 422},
	{"workflow for id with LF", "POST", "/v1/opscore/agent/lt-1%0A/workflow", `{"workflowDefinitionId":"sample_workflow_id"}`, nil, 422},
	{"workflow for id of 257 bytes", "POST", agentPath(strings.Repeat("a", 257), "workflow"), `{"workflowDefinitionId":"sample_workflow_id"}`, nil, 422},
	{"non-UTF-8 notify", "POST", pNotify, strings.Replace(registerBody("n-1"), `"A"`, "\"A\xff\"", 1), nil, 400},
	{"non-UTF-8 state", "POST", pState, stateBody("lt-1", "bu\xc3sy"), nil, 400},
	{"state with a non-JSON content type", "POST", pState, stateBody("lt-1", "busy"), []string{"Content-Type", "text/plain"}, 422},
}

// TestBadInputWritesNothing sends each bad input above to a service
// whose agent lt-1 has reported a state, and checks the answer (status and
// a detail) and that the store is unchanged, on both stores.
func TestBadInputWritesNothing(t *testing.T) {
	forEachStore(t, func(t *testing.T, store Store, raw redis.UniversalClient, h http.Handler) {
		mustStatus(t, "register", call(t, h, "POST", pNotify, registerBody("lt-1"), false), 200)
		mustStatus(t, "report idle", call(t, h, "POST", pState, stateBody("lt-1", "idle"), true), 202)
		before := snapshot(t, store, raw)
		for _, tt := range badInputs {
			r := call(t, h, tt.method, tt.path, tt.body, true, tt.hdr...)
			if r.status != tt.status {
				t.Errorf("%s: got status %d (%.300s), want %d", tt.name, r.status, r.body, tt.status)
			}
			var body struct {
				Detail json.RawMessage `json:"detail"`
			}
			if err := json.Unmarshal([]byte(r.body), &body); err != nil || len(body.Detail) == 0 {
				t.Errorf("%s: got body %.300s, want a JSON object with a detail", tt.name, r.body)
			}
			if after := snapshot(t, store, raw); after != before {
				t.Fatalf("%s: the store changed:\nbefore %s\nafter  %s", tt.name, before, after)
			}
		}
	})
}
