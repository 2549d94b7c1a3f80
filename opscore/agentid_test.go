package opscore

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// deregisterBody is a DEREGISTER webhook body for id (id is JSON string
// content, so escapes such as \u0000 are sent as they are).
func deregisterBody(id string) string {
	return strings.Replace(registerBody(id), "REGISTER", "DEREGISTER", 1)
}

// stateBodyAt is a state update of lt-1 with the given timestamp.
func stateBodyAt(ts string) string {
	return `{"agentId":"lt-1","timestamp":"` + ts + `","state":"busy","details":{"k":"v"}}`
}

// agentPath is the path of an agent's route (tail "state" or "workflow")
// for a raw id, percent-encoded as a client would send it.
func agentPath(id, tail string) string {
	return "/v1/opscore/agent/" + url.PathEscape(id) + "/" + tail
}

// refusal422 is one refused request of TestAgentIDAndTimestampRules and
// the first field error its 422 must carry.
var refusal422 = []struct {
	name, method, path, body string
	loc                      string // JSON of the first error's loc
	typ                      string // its type
}{
	{"register id with NUL", "POST", pNotify, registerBody(`a\u0000b`), `["body","agent_details","agentId"]`, "value_error"},
	{"register id with CR LF", "POST", pNotify, registerBody(`a\r\nX-Injected: 1`), `["body","agent_details","agentId"]`, "value_error"},
	{"register id with a tab", "POST", pNotify, registerBody(`a\tb`), `["body","agent_details","agentId"]`, "value_error"},
	{"register id with DEL", "POST", pNotify, registerBody(`a\u007fb`), `["body","agent_details","agentId"]`, "value_error"},
	{"register id with C1 NEL", "POST", pNotify, registerBody(`a\u0085b`), `["body","agent_details","agentId"]`, "value_error"},
	{"register id with U+2028", "POST", pNotify, registerBody(`a\u2028b`), `["body","agent_details","agentId"]`, "value_error"},
	{"register id with colon", "POST", pNotify, registerBody("a:b"), `["body","agent_details","agentId"]`, "value_error"},
	{"register id with slash", "POST", pNotify, registerBody("a/b"), `["body","agent_details","agentId"]`, "value_error"},
	{"register id dot", "POST", pNotify, registerBody("."), `["body","agent_details","agentId"]`, "value_error"},
	{"register id dot dot", "POST", pNotify, registerBody(".."), `["body","agent_details","agentId"]`, "value_error"},
	{"register id of 257 bytes", "POST", pNotify, registerBody(strings.Repeat("a", 257)),
		`["body","agent_details","agentId"]`, "string_too_long"},
	{"register id of 258 bytes in 129 runes", "POST", pNotify, registerBody(strings.Repeat("é", 129)),
		`["body","agent_details","agentId"]`, "string_too_long"},
	{"register id of 100 KiB", "POST", pNotify, registerBody(strings.Repeat("a", 100<<10)),
		`["body","agent_details","agentId"]`, "string_too_long"},
	{"unknown event with a bad id", "POST", pNotify, strings.Replace(registerBody(`a\nb`), "REGISTER", "UPDATE", 1),
		`["body","agent_details","agentId"]`, "value_error"},
	{"deregister id with NUL", "POST", pNotify, deregisterBody(`lt-1\u0000`), `["body","agent_details","agentId"]`, "value_error"},
	{"deregister id of 300 bytes", "POST", pNotify, deregisterBody(strings.Repeat("a", 300)),
		`["body","agent_details","agentId"]`, "string_too_long"},
	{"state POST path id with NUL", "POST", agentPath("lt-1\x00", "state"), `{"agentId":"lt-1\u0000","timestamp":"t","state":"s"}`,
		`["path","agentId"]`, "value_error"},
	{"state POST path id with CR LF", "POST", agentPath("lt-1\r\n", "state"), `{"agentId":"lt-1\r\n","timestamp":"t","state":"s"}`,
		`["path","agentId"]`, "value_error"},
	{"state POST path id of 257 bytes", "POST", agentPath(strings.Repeat("a", 257), "state"),
		stateBody(strings.Repeat("a", 257), "busy"), `["path","agentId"]`, "string_too_long"},
	{"state POST body id with NUL", "POST", pState, stateBody(`lt-1\u0000`, "busy"), `["body","agentId"]`, "value_error"},
	{"state POST body id empty", "POST", pState, stateBody("", "busy"), `["body","agentId"]`, "string_too_short"},
	{"state POST path id with colon", "POST", agentPath("lt:1", "state"), stateBody("lt:1", "busy"), `["path","agentId"]`, "value_error"},
	{"state GET path id with NUL", "GET", agentPath("lt-1\x00", "state"), "", `["path","agentId"]`, "value_error"},
	{"state GET path id with LF", "GET", agentPath("lt-1\n", "state"), "", `["path","agentId"]`, "value_error"},
	{"state GET path id not UTF-8", "GET", "/v1/opscore/agent/lt-%FF/state", "", `["path","agentId"]`, "string_unicode"},
	{"state GET path id of 257 bytes", "GET", agentPath(strings.Repeat("a", 257), "state"), "", `["path","agentId"]`, "string_too_long"},
	{"workflow path id with LF", "POST", agentPath("lt-1\n", "workflow"), `{"workflowDefinitionId":"sample_workflow_id"}`,
		`["path","agentId"]`, "value_error"},
	{"workflow path id of 257 bytes", "POST", agentPath(strings.Repeat("a", 257), "workflow"),
		`{"workflowDefinitionId":"sample_workflow_id"}`, `["path","agentId"]`, "string_too_long"},
	{"workflow path id with colon", "POST", agentPath("lt:1", "workflow"), `{"workflowDefinitionId":"sample_workflow_id"}`,
		`["path","agentId"]`, "value_error"},
	{"timestamp before year 1 in UTC", "POST", pState, stateBodyAt("0001-01-01T00:30:00+01:00"), `["body","timestamp"]`, "value_error"},
	{"timestamp after year 9999 in UTC", "POST", pState, stateBodyAt("9999-12-31T23:30:00-01:00"), `["body","timestamp"]`, "value_error"},
	{"basic-format timestamp after year 9999", "POST", pState, stateBodyAt("99991231T233000-0100"), `["body","timestamp"]`, "value_error"},
}

// TestAgentIDAndTimestampRules sends each refused id or timestamp through
// the HTTP handlers of a service whose agent lt-1 has a state, and checks
// the 422 (FastAPI's list, the first error at the wanted loc with the
// wanted type) and that the store is unchanged, on both stores.
func TestAgentIDAndTimestampRules(t *testing.T) {
	forEachStore(t, func(t *testing.T, store Store, raw redis.UniversalClient, h http.Handler) {
		mustStatus(t, "register", call(t, h, "POST", pNotify, registerBody("lt-1"), false), 200)
		mustStatus(t, "report idle", call(t, h, "POST", pState, stateBody("lt-1", "idle"), true), 202)
		before := snapshot(t, store, raw)
		for _, tt := range refusal422 {
			r := call(t, h, tt.method, tt.path, tt.body, true)
			checkFirstFieldError(t, tt.name, r, tt.loc, tt.typ)
			if after := snapshot(t, store, raw); after != before {
				t.Fatalf("%s: the store changed:\nbefore %s\nafter  %s", tt.name, before, after)
			}
		}
	})
}

// checkFirstFieldError fails t unless r is a 422 with FastAPI's list of
// field errors whose first one has the wanted loc (as JSON) and type.
func checkFirstFieldError(t *testing.T, name string, r response, loc, typ string) {
	t.Helper()
	if r.status != http.StatusUnprocessableEntity {
		t.Errorf("%s: got status %d (%.300s), want 422", name, r.status, r.body)
		return
	}
	var body struct {
		Detail []struct {
			Type string          `json:"type"`
			Loc  json.RawMessage `json:"loc"`
			Msg  string          `json:"msg"`
		} `json:"detail"`
	}
	if err := json.Unmarshal([]byte(r.body), &body); err != nil || len(body.Detail) == 0 {
		t.Errorf("%s: got body %.300s (%v), want FastAPI's list of field errors", name, r.body, err)
		return
	}
	if e := body.Detail[0]; string(e.Loc) != loc || e.Type != typ || e.Msg == "" {
		t.Errorf("%s: got first error %s %s %q, want loc %s type %s and a message", name, e.Loc, e.Type, e.Msg, loc, typ)
	}
}

// TestAgentIDEdgesAccepted drives ids at the edges of the allowed set
// through every route that takes one, on both stores: each must register,
// report, read back, trigger a workflow and deregister.
func TestAgentIDEdgesAccepted(t *testing.T) {
	ids := []string{
		strings.Repeat("a", 256),
		strings.Repeat("é", 128), // 256 bytes, 128 runes
		"agent 1 (α) ✓",
		"a%b?c#d",
		"...",
		".a",
		"x",
	}
	forEachStore(t, func(t *testing.T, store Store, raw redis.UniversalClient, h http.Handler) {
		for _, id := range ids {
			js, _ := json.Marshal(id)
			inner := string(js[1 : len(js)-1])
			mustStatus(t, "register "+id, call(t, h, "POST", pNotify, registerBody(inner), false), 200)
			mustStatus(t, "state "+id, call(t, h, "POST", agentPath(id, "state"),
				`{"agentId":`+string(js)+`,"timestamp":"0001-01-01T05:00:00+05:00","state":"s"}`, true), 202)
			r := call(t, h, "GET", agentPath(id, "state"), "", true)
			mustStatus(t, "get "+id, r, 200)
			want := `{"agentId":` + string(js) + `,"state":"s","details":null,"timestamp":"0001-01-01T00:00:00Z"}`
			if r.body != want {
				t.Errorf("get %s: got %s, want %s", id, r.body, want)
			}
			mustStatus(t, "workflow "+id, call(t, h, "POST", agentPath(id, "workflow"),
				`{"workflowDefinitionId":"sample_workflow_id"}`, true), 202)
			mustStatus(t, "deregister "+id, call(t, h, "POST", pNotify, deregisterBody(inner), false), 200)
		}
		mustStatus(t, "register lt-1", call(t, h, "POST", pNotify, registerBody("lt-1"), false), 200)
		mustStatus(t, "last second of 9999", call(t, h, "POST", pState, stateBodyAt("9999-12-31T23:59:59.9999999Z"), true), 202)
		r := call(t, h, "GET", pState, "", true)
		if !strings.Contains(r.body, `"timestamp":"9999-12-31T23:59:59.999999Z"`) {
			t.Errorf("read back the last second of 9999: got %s", r.body)
		}
	})
}
