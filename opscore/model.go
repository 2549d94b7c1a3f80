package opscore

import (
	"bytes"
	"encoding/json"
)

// The records below keep the field order of the Python models
// (docs/opscore.md, "Records and field order") so values stored in Redis
// look the same byte for byte where possible. Free-form objects are
// json.RawMessage so their key order and numbers survive a round trip
// unchanged.

// AgentInfo is the registration record stored under agent:{id}:registration.
type AgentInfo struct {
	AgentID          string          `json:"agentId"`
	AgentName        string          `json:"agentName"`
	Version          string          `json:"version"`
	Capabilities     []string        `json:"capabilities"`
	ContactEndpoint  string          `json:"contactEndpoint"`
	Metadata         json.RawMessage `json:"metadata"`
	RegistrationTime string          `json:"registrationTime"`
}

// AgentState is the latest state stored under agent:{id}:latest_state and
// the body of GET .../state.
type AgentState struct {
	AgentID   string          `json:"agentId"`
	State     string          `json:"state"`
	Details   json.RawMessage `json:"details"`
	Timestamp string          `json:"timestamp"`
}

// WorkflowDefinition is a workflow stored under workflow_def:{id}.
type WorkflowDefinition struct {
	ID          string            `json:"id"`
	Name        string            `json:"name"`
	Description *string           `json:"description"`
	Version     string            `json:"version"`
	Tasks       []json.RawMessage `json:"tasks"`
}

// WorkflowSession is a session stored under session:{id}. The snake_case
// last_updated_time is the original's field name and is kept on purpose.
type WorkflowSession struct {
	SessionID       string          `json:"sessionId"`
	WorkflowID      string          `json:"workflowId"`
	AgentID         string          `json:"agentId"`
	StartTime       string          `json:"startTime"`
	LastUpdatedTime string          `json:"last_updated_time"`
	EndTime         *string         `json:"endTime"`
	Status          string          `json:"status"`
	Metadata        json.RawMessage `json:"metadata"`
	Result          json.RawMessage `json:"result"`
	Error           *string         `json:"error"`
}

// Session status values written by the workflow trigger.
const (
	SessionStarted   = "started"
	SessionCompleted = "completed"
	SessionFailed    = "failed"
)

// Task is a queue item created for the first task of a triggered workflow.
type Task struct {
	TaskID           string          `json:"taskId"`
	WorkflowID       string          `json:"workflowId"`
	SessionID        string          `json:"sessionId"`
	AgentID          string          `json:"agentId"`
	TaskDefinitionID string          `json:"taskDefinitionId"`
	Payload          json.RawMessage `json:"payload"`
	Status           string          `json:"status"`
	RetryCount       int             `json:"retryCount"`
	MaxRetries       int             `json:"maxRetries"`
	CreatedAt        string          `json:"createdAt"`
	UpdatedAt        string          `json:"updatedAt"`
}

// marshalCompact encodes v as compact JSON without HTML escaping, the way
// pydantic's model_dump_json writes it.
func marshalCompact(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
