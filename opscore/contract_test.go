package opscore

import (
	"net/http"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// contractStep is one request of the contract suite and what must come
// back. Steps run in order on one service, so later steps see earlier
// writes.
type contractStep struct {
	name     string
	method   string
	path     string
	body     string
	auth     bool
	hdr      []string
	status   int
	wantBody string   // exact body when set
	contains string   // substring of the body when set
	wantHdr  []string // header name, value pairs the answer must carry
}

const (
	pNotify = "/v1/opscore/internal/agent/notify"
	pState  = "/v1/opscore/agent/lt-1/state"
)

var contractSteps = []contractStep{
	{name: "health", method: "GET", path: "/health", status: 200, wantBody: `{"status":"ok"}`},
	{name: "unknown path", method: "GET", path: "/nope", status: 404, wantBody: `{"detail":"Not Found"}`},
	{name: "wrong method", method: "DELETE", path: pState, auth: true, status: 405, wantBody: `{"detail":"Method Not Allowed"}`,
		wantHdr: []string{"Allow", "GET, HEAD, POST"}},
	{name: "GET on the webhook", method: "GET", path: pNotify, status: 405, wantBody: `{"detail":"Method Not Allowed"}`,
		wantHdr: []string{"Allow", "POST"}},
	{name: "HEAD where GET is allowed", method: "HEAD", path: "/health", status: 200},
	{name: "trailing slash redirects", method: "GET", path: "/health/", status: 307, wantHdr: []string{"Location", "/health"}},
	{name: "trailing slashes redirect with the query", method: "POST", path: pState + "//?a=1", status: 307,
		wantHdr: []string{"Location", pState + "?a=1"}},
	{name: "state of unknown agent", method: "GET", path: pState, auth: true, status: 404,
		wantBody: `{"detail":"No state found for agent lt-1"}`},
	{name: "update for unregistered agent", method: "POST", path: pState, auth: true, body: stateBody("lt-1", "idle"),
		status: 404, wantBody: `{"detail":"Agent not found: lt-1"}`},
	{name: "register", method: "POST", path: pNotify, body: registerBody("lt-1"), status: 200,
		wantBody: `{"status":"success","message":"Agent lt-1 registered successfully."}`},
	{name: "initial state right after register", method: "GET", path: pState, auth: true, status: 200,
		wantBody: `{"agentId":"lt-1","state":"UNKNOWN","details":{"reason":"Initial registration"},"timestamp":"` + fixedStamp + `"}`},
	{name: "auth missing", method: "GET", path: pState, status: 401, wantBody: `{"detail":"Authorization header missing"}`},
	{name: "auth wrong key", method: "GET", path: pState, hdr: []string{"Authorization", "Bearer nope"}, status: 401,
		wantBody: `{"detail":"Invalid authentication credentials"}`},
	{name: "auth wrong scheme", method: "GET", path: pState, hdr: []string{"Authorization", "Basic " + testKey}, status: 401,
		wantBody: `{"detail":"Invalid authentication credentials"}`},
	{name: "auth two spaces", method: "GET", path: pState, hdr: []string{"Authorization", "Bearer  " + testKey}, status: 401},
	{name: "auth lower-case scheme", method: "GET", path: pState, hdr: []string{"Authorization", "bearer " + testKey}, status: 200},
	{name: "malformed JSON before auth", method: "POST", path: pState, body: `{"agentId":`, status: 422,
		wantBody: `{"detail":[{"type":"json_invalid","loc":["body",11],"msg":"JSON decode error","input":{},"ctx":{"error":"Expecting value"}}]}`},
	{name: "invalid UTF-8", method: "POST", path: pState, body: "{\"agentId\":\"\xff\"}", auth: true, status: 400,
		wantBody: `{"detail":"There was an error parsing the body"}`},
	{name: "auth before validation", method: "POST", path: pState, body: `{}`, status: 401},
	{name: "state body missing", method: "POST", path: pState, auth: true, status: 422,
		wantBody: `{"detail":[{"type":"missing","loc":["body"],"msg":"Field required","input":null}]}`},
	{name: "state wrong types", method: "POST", path: pState, auth: true,
		body: `{"agentId":"lt-1","timestamp":"t","state":123,"details":[]}`, status: 422,
		wantBody: `{"detail":[{"type":"string_type","loc":["body","state"],"msg":"Input should be a valid string","input":123},` +
			`{"type":"dict_type","loc":["body","details"],"msg":"Input should be a valid dictionary","input":[]}]}`},
	{name: "state null body is missing", method: "POST", path: pState, auth: true, body: `null`, status: 422,
		wantBody: `{"detail":[{"type":"missing","loc":["body"],"msg":"Field required","input":null}]}`},
	{name: "state array body", method: "POST", path: pState, auth: true, body: `[1]`, status: 422, contains: `"model_attributes_type"`},
	{name: "state form content type", method: "POST", path: pState, auth: true, body: stateBody("lt-1", "idle"),
		hdr: []string{"Content-Type", "text/plain"}, status: 422, contains: `"model_attributes_type"`},
	{name: "state id mismatch", method: "POST", path: pState, auth: true, body: stateBody("other", "idle"), status: 400,
		wantBody: `{"detail":"Agent ID in path does not match agent ID in payload"}`},
	{name: "state update", method: "POST", path: pState, auth: true, body: stateBody("lt-1", "idle"), status: 202,
		wantBody: `{"status":"success","message":"State update accepted"}`},
	{name: "state update with a UTF-8 byte order mark", method: "POST", path: pState, auth: true,
		body: "\xef\xbb\xbf" + stateBody("lt-1", "idle"), status: 202},
	{name: "state read back in UTC", method: "GET", path: pState, auth: true, status: 200,
		wantBody: `{"agentId":"lt-1","state":"idle","details":{"k":"v"},"timestamp":"2025-04-21T18:15:00.5Z"}`},
	{name: "re-register keeps state", method: "POST", path: pNotify, body: registerBody("lt-1"), status: 200},
	{name: "state survives re-register", method: "GET", path: pState, auth: true, status: 200, contains: `"state":"idle"`},
	{name: "state null details, bad timestamp", method: "POST", path: pState, auth: true,
		body: `{"agentId":"lt-1","timestamp":"yesterday","state":"active","details":null}`, status: 202},
	{name: "bad timestamp becomes now", method: "GET", path: pState, auth: true, status: 200,
		wantBody: `{"agentId":"lt-1","state":"active","details":null,"timestamp":"` + fixedStamp + `"}`},
	{name: "register empty id", method: "POST", path: pNotify, body: registerBody(""), status: 400,
		wantBody: `{"detail":"Missing agentId in agent_details for REGISTER event."}`},
	{name: "register id with colon", method: "POST", path: pNotify, body: registerBody("a:b"), status: 422,
		wantBody: `{"detail":[{"type":"value_error","loc":["body","agent_details","agentId"],"msg":"Value error, ` + agentIDRule +
			`","input":"a:b","ctx":{"error":{}}}]}`},
	{name: "register id with slash", method: "POST", path: pNotify, body: registerBody("a/b"), status: 422, contains: `must not contain`},
	{name: "register id too long", method: "POST", path: pNotify, body: registerBody(strings.Repeat("a", 257)), status: 422,
		contains: `"type":"string_too_long","loc":["body","agent_details","agentId"],"msg":"String should have at most 256 bytes (UTF-8)"`},
	{name: "get id with colon", method: "GET", path: "/v1/opscore/agent/a:b/state", auth: true, status: 422,
		contains: `"loc":["path","agentId"]`},
	{name: "get id with NUL", method: "GET", path: "/v1/opscore/agent/a%00b/state", auth: true, status: 422,
		wantBody: `{"detail":[{"type":"value_error","loc":["path","agentId"],"msg":"Value error, ` + agentIDRule +
			`","input":"a\u0000b","ctx":{"error":{}}}]}`},
	{name: "get bad id needs auth first", method: "GET", path: "/v1/opscore/agent/a%00b/state", status: 401},
	{name: "state path and body errors in one list", method: "POST", path: "/v1/opscore/agent/a%0Ab/state", auth: true,
		body: `{"agentId":"a\nb","timestamp":"9999-12-31T23:00:00-01:00","state":1}`, status: 422,
		contains: `"loc":["path","agentId"]`},
	{name: "timestamp past 9999", method: "POST", path: pState, auth: true,
		body: stateBodyAt("9999-12-31T23:00:00-01:00"), status: 422,
		wantBody: `{"detail":[{"type":"value_error","loc":["body","timestamp"],"msg":"Value error, timestamp is outside the years 0001-9999 once converted to UTC",` +
			`"input":"9999-12-31T23:00:00-01:00","ctx":{"error":{}}}]}`},
	{name: "unknown event", method: "POST", path: pNotify, body: strings.Replace(registerBody("x"), "REGISTER", "UPDATE", 1),
		status: 400, wantBody: `{"detail":"Unknown event type: UPDATE"}`},
	{name: "notify missing details", method: "POST", path: pNotify, body: `{"event_type":"REGISTER"}`, status: 422,
		wantBody: `{"detail":[{"type":"missing","loc":["body","agent_details"],"msg":"Field required","input":{"event_type":"REGISTER"}}]}`},
	{name: "notify bad URL", method: "POST", path: pNotify,
		body:   `{"event_type":"REGISTER","agent_details":{"agentId":"x","agentName":"n","version":"1","contactEndpoint":"abc"}}`,
		status: 422, contains: `"type":"url_parsing","loc":["body","agent_details","contactEndpoint"],"msg":"Input should be a valid URL, relative URL without a base"`},
	{name: "notify null metadata", method: "POST", path: pNotify,
		body:   `{"event_type":"REGISTER","agent_details":{"agentId":"x","agentName":"n","version":"1","contactEndpoint":"http://a","metadata":null}}`,
		status: 422, contains: `"type":"dict_type"`},
	{name: "body over 1 MiB", method: "POST", path: pNotify, body: `{"pad":"` + strings.Repeat("a", MaxBodyBytes) + `"}`,
		status: 413, contains: `"detail"`},
	{name: "workflow neither", method: "POST", path: "/v1/opscore/agent/lt-1/workflow", auth: true, body: `{"initialPayload":{}}`,
		status: 422, contains: `Either workflowDefinitionId or workflowDefinition must be provided`},
	{name: "workflow both", method: "POST", path: "/v1/opscore/agent/lt-1/workflow", auth: true,
		body:   `{"workflowDefinitionId":"x","workflowDefinition":{"id":"w","name":"n","tasks":[]}}`,
		status: 422, contains: `not both`},
	{name: "workflow null id", method: "POST", path: "/v1/opscore/agent/lt-1/workflow", auth: true,
		body: `{"workflowDefinitionId":null}`, status: 400,
		wantBody: `{"detail":"Missing workflowDefinitionId or workflowDefinition"}`},
	{name: "workflow empty inline", method: "POST", path: "/v1/opscore/agent/lt-1/workflow", auth: true,
		body: `{"workflowDefinitionId":"x","workflowDefinition":{}}`, status: 422, contains: `["body","workflowDefinition","tasks"]`},
	{name: "workflow unknown id", method: "POST", path: "/v1/opscore/agent/lt-1/workflow", auth: true,
		body: `{"workflowDefinitionId":"nope"}`, status: 404, wantBody: `{"detail":"Workflow definition not found: nope"}`},
	{name: "workflow unknown agent", method: "POST", path: "/v1/opscore/agent/ghost/workflow", auth: true,
		body: `{"workflowDefinitionId":"sample_workflow_id"}`, status: 404, wantBody: `{"detail":"Agent not found: ghost"}`},
	{name: "workflow by id", method: "POST", path: "/v1/opscore/agent/lt-1/workflow", auth: true,
		body: `{"workflowDefinitionId":"sample_workflow_id","initialPayload":null}`, status: 202,
		contains: `"workflowId":"sample_workflow_id","message":"Workflow triggered successfully"}`},
	{name: "workflow inline no tasks", method: "POST", path: "/v1/opscore/agent/lt-1/workflow", auth: true,
		body: `{"workflowDefinition":{"id":"empty","name":"E","tasks":[]},"agentId":"ignored"}`, status: 202,
		contains: `"workflowId":"empty","message":"Workflow triggered but has no tasks."}`},
	{name: "inline definition saved for later by id", method: "POST", path: "/v1/opscore/agent/lt-1/workflow", auth: true,
		body: `{"workflowDefinitionId":"empty"}`, status: 202, contains: `"workflowId":"empty"`},
	{name: "workflow bad first task", method: "POST", path: "/v1/opscore/agent/lt-1/workflow", auth: true,
		body: `{"workflowDefinition":{"id":"bad","name":"B","tasks":[{"name":"no id","parameters":null}]}}`, status: 400,
		wantBody: `{"detail":"Invalid task data: 2 validation errors for Task\ntaskDefinitionId\n  Input should be a valid string\npayload\n  Input should be a valid dictionary"}`},
	{name: "session unknown", method: "GET", path: "/v1/opscore/session/nope", auth: true, status: 404,
		wantBody: `{"detail":"Session not found: nope"}`},
	{name: "session needs auth", method: "GET", path: "/v1/opscore/session/nope", status: 401},
	{name: "deregister", method: "POST", path: pNotify, body: strings.Replace(registerBody("lt-1"), "REGISTER", "deregister", 1),
		status: 200, wantBody: `{"status":"success","message":"Agent lt-1 deregistered successfully."}`},
	{name: "state gone after deregister", method: "GET", path: pState, auth: true, status: 404},
	{name: "update after deregister", method: "POST", path: pState, auth: true, body: stateBody("lt-1", "idle"), status: 404,
		wantBody: `{"detail":"Agent not found: lt-1"}`},
	{name: "deregister again is idempotent", method: "POST", path: pNotify,
		body: strings.Replace(registerBody("lt-1"), "REGISTER", "DEREGISTER", 1), status: 200, contains: `was not registered`},
	{name: "readyz", method: "GET", path: "/readyz", status: 200, wantBody: `{"status":"ready"}`},
}

// TestContract runs the API contract (docs/opscore.md, "API" and "Wire
// contract", with its "Deliberate differences") against every store.
func TestContract(t *testing.T) {
	forEachStore(t, func(t *testing.T, store Store, raw redis.UniversalClient, h http.Handler) {
		for _, st := range contractSteps {
			r := call(t, h, st.method, st.path, st.body, st.auth, st.hdr...)
			if r.status != st.status {
				t.Fatalf("%s: got status %d (%s), want %d", st.name, r.status, r.body, st.status)
			}
			if st.wantBody != "" && r.body != st.wantBody {
				t.Fatalf("%s: got body\n%s\nwant\n%s", st.name, r.body, st.wantBody)
			}
			if st.contains != "" && !strings.Contains(r.body, st.contains) {
				t.Fatalf("%s: got body %s, want it to contain %s", st.name, r.body, st.contains)
			}
			for i := 0; i+1 < len(st.wantHdr); i += 2 {
				if got := r.header.Get(st.wantHdr[i]); got != st.wantHdr[i+1] {
					t.Fatalf("%s: got %s %q, want %q", st.name, st.wantHdr[i], got, st.wantHdr[i+1])
				}
			}
			if r.header.Get("X-Process-Time") == "" {
				t.Fatalf("%s: got no X-Process-Time header, want one", st.name)
			}
			if r.status >= 400 && r.header.Get("Content-Type") != "application/json" {
				t.Fatalf("%s: got Content-Type %q, want application/json", st.name, r.header.Get("Content-Type"))
			}
		}
	})
}
