package loadgen

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"strconv"
	"sync/atomic"
	"time"

	"opscore-sidecar/configs"
	"opscore-sidecar/policy"
)

// Request names used in the statistics, as Locust names them.
const (
	NameNotify   = "/v1/opscore/internal/agent/notify"
	NameState    = "/v1/opscore/agent/[id]/state"
	NameWorkflow = "/v1/opscore/agent/[id]/workflow"
)

// sampleWorkflow is the definition scenarios 3 and 4 send inline: the
// original's docs/sample_workflow.json (docs/opscore.md, "Sample
// workflow"), as configs holds it.
var sampleWorkflow = string(configs.SampleWorkflow())

// uniqueSeq numbers agents when unique ids are asked for.
var uniqueSeq atomic.Uint64

// agentID returns an agent id in the scenario's style. With unique, the
// digit styles get a run-unique suffix instead of a random number, so no
// two users share an agent.
func agentID(style IDStyle, unique bool, r *mrand.Rand, runTag string) string {
	switch {
	case style == IDUUID:
		return "workflow-agent-" + uuid4()
	case unique:
		return fmt.Sprintf("loadtest-agent-%s-%d", runTag, uniqueSeq.Add(1))
	case style == IDDigits4:
		return "loadtest-agent-" + strconv.Itoa(1000+r.IntN(9000))
	default:
		return "loadtest-agent-" + strconv.Itoa(10000+r.IntN(90000))
	}
}

// uuid4 returns a random RFC 4122 version 4 UUID.
func uuid4() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// registrationBody is the on_start REGISTER notification (docs/loadtest.md,
// "Payloads"), with keys in the locustfiles' order.
func registrationBody(s *Scenario, id string) []byte {
	type meta struct {
		User     string `json:"load_test_user"`
		Scenario *int   `json:"scenario,omitempty"`
	}
	type details struct {
		AgentID      string   `json:"agentId"`
		AgentName    string   `json:"agentName"`
		Version      string   `json:"version"`
		Capabilities []string `json:"capabilities"`
		Contact      string   `json:"contactEndpoint"`
		Metadata     meta     `json:"metadata"`
	}
	m := meta{User: id}
	if s.MetadataScenario {
		n := s.ID
		m.Scenario = &n
	}
	b, _ := json.Marshal(struct {
		EventType string  `json:"event_type"`
		Details   details `json:"agent_details"`
	}{"REGISTER", details{id, "LoadTestAgent-" + id, "1.0", s.Capabilities, "http://fake-agent-" + id + ".local/run", m}})
	return b
}

// pythonISO formats t like Python's datetime.now(timezone.utc).isoformat().
func pythonISO(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000000") + "+00:00"
}

var states = [...]string{"idle", "active", "error", "finished"}

// stateBody is the POST state payload (docs/loadtest.md, "Payloads").
func stateBody(id string, now time.Time, r *mrand.Rand) []byte {
	b, _ := json.Marshal(struct {
		AgentID   string `json:"agentId"`
		Timestamp string `json:"timestamp"`
		State     string `json:"state"`
		Details   struct {
			LoadTest bool   `json:"load_test"`
			User     string `json:"user"`
		} `json:"details"`
	}{AgentID: id, Timestamp: pythonISO(now), State: states[r.IntN(len(states))],
		Details: struct {
			LoadTest bool   `json:"load_test"`
			User     string `json:"user"`
		}{true, "user-" + id}})
	return b
}

// workflowBody is the POST workflow payload of scenario 2 or 3/4.
func workflowBody(s *Scenario, id string) []byte {
	if s.Workflow == WorkflowInline {
		return []byte(`{"workflowDefinition":` + sampleWorkflow + `}`)
	}
	b, _ := json.Marshal(map[string]any{
		"agentId":              id,
		"workflowDefinitionId": "sample_workflow_id",
		"context":              map[string]any{"load_test": true, "user": "user-" + id, "scenario": s.ID},
	})
	return b
}

// Sign returns AgentKit's webhook signature headers for body: the
// timestamp in integer Unix seconds and the sidecar's own
// policy.SignWebhook of it (docs/admission.md, "The AgentKit signing
// recipe").
func Sign(secret string, body []byte, now time.Time) (timestamp, signature string) {
	timestamp = strconv.FormatInt(now.Unix(), 10)
	return timestamp, policy.SignWebhook([]byte(secret), timestamp, body)
}
