package opscore

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// Values exactly as the Python Ops-Core writes them (docs/opscore.md,
// "Redis keys and values").
const (
	pyRegistration = `{"agentId":"loadtest-agent-12345","agentName":"LoadTestAgent-loadtest-agent-12345","version":"1.0","capabilities":["state_reporting"],"contactEndpoint":"http://fake-agent-loadtest-agent-12345.local/run","metadata":{"load_test_user":"loadtest-agent-12345","scenario":1},"registrationTime":"2025-04-21T22:01:40.123456Z"}`
	pyState        = `{"agentId":"loadtest-agent-12345","state":"UNKNOWN","details":{"reason":"Initial registration"},"timestamp":"2025-04-21T22:01:40.12401Z"}`
	pySession      = `{"sessionId":"6f1c0d2e-1111-4222-8333-444455556666","workflowId":"sample_workflow_id","agentId":"loadtest-agent-12345","startTime":"2025-04-21T22:01:41Z","last_updated_time":"2025-04-21T22:01:41Z","endTime":null,"status":"started","metadata":null,"result":null,"error":null}`
)

// TestReadsKeysWrittenByPythonOpsCore writes raw keys in the original's
// format with a plain client and reads them through the API.
func TestReadsKeysWrittenByPythonOpsCore(t *testing.T) {
	store, raw, _ := newRedisStore(t, time.Second)
	ctx := context.Background()
	for k, v := range map[string]string{
		"agent:loadtest-agent-12345:registration":      pyRegistration,
		"agent:loadtest-agent-12345:latest_state":      pyState,
		"session:6f1c0d2e-1111-4222-8333-444455556666": pySession,
		"agent:broken:registration":                    `{not json`,
		"agent:broken:latest_state":                    `{not json`,
		"agent:null:latest_state":                      `null`,
	} {
		if err := raw.Set(ctx, k, v, 0).Err(); err != nil {
			t.Fatalf("SET %s: %v", k, err)
		}
	}
	svc, _ := newTestService(t, store)
	h := svc.Handler()

	tests := []struct {
		name, method, path, body string
		status                   int
		wantBody                 string
	}{
		{"state written by python", "GET", "/v1/opscore/agent/loadtest-agent-12345/state", "", 200, pyState},
		{"session written by python", "GET", "/v1/opscore/session/6f1c0d2e-1111-4222-8333-444455556666", "", 200, pySession},
		{"registration written by python accepts updates", "POST", "/v1/opscore/agent/loadtest-agent-12345/state",
			stateBody("loadtest-agent-12345", "idle"), 202, ""},
		{"unparseable state is absent", "GET", "/v1/opscore/agent/broken/state", "", 404, `{"detail":"No state found for agent broken"}`},
		{"null state is absent", "GET", "/v1/opscore/agent/null/state", "", 404, `{"detail":"No state found for agent null"}`},
		{"unparseable registration is absent", "POST", "/v1/opscore/agent/broken/state", stateBody("broken", "idle"), 404,
			`{"detail":"Agent not found: broken"}`},
		{"workflow for python-registered agent", "POST", "/v1/opscore/agent/loadtest-agent-12345/workflow",
			`{"workflowDefinitionId":"sample_workflow_id"}`, 202, ""},
	}
	for _, tt := range tests {
		r := call(t, h, tt.method, tt.path, tt.body, true)
		if r.status != tt.status {
			t.Fatalf("%s: got status %d (%s), want %d", tt.name, r.status, r.body, tt.status)
		}
		if tt.wantBody != "" && r.body != tt.wantBody {
			t.Fatalf("%s: got body %s, want %s", tt.name, r.body, tt.wantBody)
		}
	}
}

// TestWritesKeysInPythonFormat registers through the API and checks the
// raw Redis values have the original's keys, field order and formats.
func TestWritesKeysInPythonFormat(t *testing.T) {
	store, raw, _ := newRedisStore(t, time.Second)
	svc, _ := newTestService(t, store)
	h := svc.Handler()
	ctx := context.Background()

	body := `{"event_type":"REGISTER","agent_details":{"agentId":"loadtest-agent-12345","agentName":"LoadTestAgent-loadtest-agent-12345","version":"1.0","capabilities":["state_reporting"],"contactEndpoint":"HTTP://Fake-Agent-Loadtest-Agent-12345.local:80/run","metadata":{"load_test_user":"loadtest-agent-12345","scenario":1}}}`
	mustStatus(t, "register", call(t, h, "POST", pNotify, body, false), 200)

	got, err := raw.Get(ctx, "agent:loadtest-agent-12345:registration").Result()
	if err != nil {
		t.Fatalf("GET registration: %v", err)
	}
	if got != pyRegistration {
		t.Fatalf("registration value:\ngot  %s\nwant %s", got, pyRegistration)
	}
	st, err := raw.Get(ctx, "agent:loadtest-agent-12345:latest_state").Result()
	if err != nil {
		t.Fatalf("GET latest_state: %v", err)
	}
	want := `{"agentId":"loadtest-agent-12345","state":"UNKNOWN","details":{"reason":"Initial registration"},"timestamp":"` + fixedStamp + `"}`
	if st != want {
		t.Fatalf("latest_state value:\ngot  %s\nwant %s", st, want)
	}

	r := call(t, h, "POST", "/v1/opscore/agent/loadtest-agent-12345/workflow", `{"workflowDefinitionId":"sample_workflow_id"}`, true)
	mustStatus(t, "trigger", r, 202)
	var tr triggerResponse
	if err := json.Unmarshal([]byte(r.body), &tr); err != nil {
		t.Fatalf("trigger body %s: %v", r.body, err)
	}
	sess, err := raw.Get(ctx, "session:"+tr.SessionID).Result()
	if err != nil {
		t.Fatalf("GET session: %v", err)
	}
	wantSess := `{"sessionId":"` + tr.SessionID + `","workflowId":"sample_workflow_id","agentId":"loadtest-agent-12345","startTime":"` +
		fixedStamp + `","last_updated_time":"` + fixedStamp + `","endTime":null,"status":"started","metadata":null,"result":null,"error":null}`
	if sess != wantSess {
		t.Fatalf("session value:\ngot  %s\nwant %s", sess, wantSess)
	}
	task, err := raw.RPop(ctx, keyTaskQueue).Result()
	if err != nil {
		t.Fatalf("RPOP %s: %v", keyTaskQueue, err)
	}
	if !strings.Contains(task, `"taskDefinitionId":"step_1","payload":{"message":"This is the first step."},"status":"pending","retryCount":0,"maxRetries":3`) {
		t.Fatalf("queued task: got %s, want the first task of the sample workflow", task)
	}
	def, err := raw.Get(ctx, "workflow_def:sample_workflow_id").Result()
	if err != nil {
		t.Fatalf("GET workflow_def: %v", err)
	}
	if def != sampleWorkflowJSON {
		t.Fatalf("workflow_def value:\ngot  %s\nwant %s", def, sampleWorkflowJSON)
	}
}

// TestRegisterReplacesUnreadableState: a state value that is not a JSON
// object (written by something else) reads as absent, so registration must
// write the initial state over it; otherwise GET state answers 404 right
// after a 200 from notify. A readable state is kept (see TestContract).
func TestRegisterReplacesUnreadableState(t *testing.T) {
	for _, bad := range []string{`{not json`, `"x"`, `[1]`, `null`, ``} {
		t.Run(bad, func(t *testing.T) {
			store, raw, _ := newRedisStore(t, time.Second)
			if err := raw.Set(context.Background(), "agent:lt-1:latest_state", bad, 0).Err(); err != nil {
				t.Fatalf("SET: %v", err)
			}
			svc, _ := newTestService(t, store)
			h := svc.Handler()
			mustStatus(t, "register", call(t, h, "POST", pNotify, registerBody("lt-1"), false), 200)
			r := call(t, h, "GET", pState, "", true)
			mustStatus(t, "state right after register", r, 200)
			if want := `"state":"UNKNOWN"`; !strings.Contains(r.body, want) {
				t.Fatalf("state right after register: got %s, want it to contain %s", r.body, want)
			}
		})
	}
}

// TestStateUpdateNeedsARegistrationObject: a registration value that is
// valid JSON but not an object is as absent to the state update as it is
// to every read.
func TestStateUpdateNeedsARegistrationObject(t *testing.T) {
	store, raw, _ := newRedisStore(t, time.Second)
	ctx := context.Background()
	if err := raw.Set(ctx, "agent:lt-1:registration", `"x"`, 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	svc, _ := newTestService(t, store)
	r := call(t, svc.Handler(), "POST", pState, stateBody("lt-1", "idle"), true)
	mustStatus(t, "state update", r, 404)
	if n, err := raw.Exists(ctx, "agent:lt-1:latest_state").Result(); err != nil || n != 0 {
		t.Fatalf("EXISTS latest_state: got %d, %v; want 0 (nothing written)", n, err)
	}
}
