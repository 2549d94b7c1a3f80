package opscore

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
)

// triggerResponse is the original's WorkflowTriggerResponse.
type triggerResponse struct {
	SessionID  string `json:"sessionId"`
	WorkflowID string `json:"workflowId"`
	Message    string `json:"message"`
}

// handleWorkflow is POST /v1/opscore/agent/{agentId}/workflow: resolve the
// definition (by id, or inline and saved first-writer-wins), check the
// agent, create a session and queue the first task.
func (s *Service) handleWorkflow(w http.ResponseWriter, r *http.Request, agentID string) {
	req, ok := decodeAuthorized(s, w, r, agentID, parseWorkflow)
	if !ok {
		return
	}
	if req.DefinitionID == "" && req.Definition == nil {
		writeDetail(w, http.StatusBadRequest, "Missing workflowDefinitionId or workflowDefinition")
		return
	}
	ctx := r.Context()
	var def WorkflowDefinition
	if req.Definition == nil {
		d, err := s.lookupWorkflow(ctx, req.DefinitionID)
		if errors.Is(err, ErrWorkflowNotFound) {
			writeDetail(w, http.StatusNotFound, "Workflow definition not found: "+req.DefinitionID)
			return
		} else if err != nil {
			s.writeStoreError(w, r, "reading workflow definition "+req.DefinitionID, err)
			return
		}
		def = d
	} else {
		def = *req.Definition
		if _, err := s.store.PutWorkflowDefinitionIfAbsent(ctx, def); err != nil {
			s.writeStoreError(w, r, "saving workflow definition "+def.ID, err)
			return
		}
	}
	if _, err := s.store.GetRegistration(ctx, agentID); errors.Is(err, ErrAgentNotFound) {
		writeDetail(w, http.StatusNotFound, "Agent not found: "+agentID)
		return
	} else if err != nil {
		s.writeStoreError(w, r, "reading the registration of agent "+agentID, err)
		return
	}

	now := formatTimestamp(s.now())
	sess := WorkflowSession{SessionID: newUUID(), WorkflowID: def.ID, AgentID: agentID,
		StartTime: now, LastUpdatedTime: now, Status: SessionStarted}
	if err := s.store.CreateSession(ctx, sess); errors.Is(err, ErrSessionExists) {
		writeDetail(w, http.StatusInternalServerError, "Storage error: Failed to save session "+sess.SessionID)
		return
	} else if err != nil {
		s.writeStoreError(w, r, "saving session "+sess.SessionID, err)
		return
	}
	resp := triggerResponse{SessionID: sess.SessionID, WorkflowID: def.ID}

	if len(def.Tasks) == 0 {
		sess.Status, sess.EndTime, sess.LastUpdatedTime = SessionCompleted, &now, now
		sess.Result = json.RawMessage(`{"message":"Workflow has no tasks"}`)
		if err := s.store.UpdateSession(ctx, sess); err != nil {
			s.writeStoreError(w, r, "updating session "+sess.SessionID, err)
			return
		}
		resp.Message = "Workflow triggered but has no tasks."
		writeJSON(w, http.StatusAccepted, resp)
		return
	}
	task, problem := newTask(def.Tasks[0], req.InitialPayload, sess, now)
	if problem != "" {
		sess.Status, sess.EndTime, sess.LastUpdatedTime, sess.Error = SessionFailed, &now, now, &problem
		if err := s.store.UpdateSession(ctx, sess); err != nil {
			s.writeStoreError(w, r, "updating session "+sess.SessionID, err)
			return
		}
		writeDetail(w, http.StatusBadRequest, "Invalid task data: "+problem)
		return
	}
	if err := s.store.EnqueueTask(ctx, task); err != nil {
		s.writeStoreError(w, r, "queueing the first task of session "+sess.SessionID, err)
		return
	}
	resp.Message = "Workflow triggered successfully"
	writeJSON(w, http.StatusAccepted, resp)
}

// newTask turns the first task of a definition into a queue item. The
// payload is initialPayload when it is a non-empty object, else the task's
// parameters ({} when absent). problem is a pydantic-style message when the
// task cannot be built.
func newTask(raw json.RawMessage, initial json.RawMessage, sess WorkflowSession, now string) (Task, string) {
	var m map[string]json.RawMessage
	_ = json.Unmarshal(raw, &m)
	var problems []string
	var defID string
	if r, ok := m["taskId"]; !ok || jsonKind(r) != '"' || json.Unmarshal(r, &defID) != nil {
		problems = append(problems, "taskDefinitionId\n  Input should be a valid string")
	}
	payload := json.RawMessage("{}")
	if truthy(initial) {
		payload = initial
	} else if p, ok := m["parameters"]; ok {
		if jsonKind(p) != '{' {
			problems = append(problems, "payload\n  Input should be a valid dictionary")
		} else {
			payload = compact(p)
		}
	}
	if len(problems) > 0 {
		n := strconv.Itoa(len(problems))
		noun := " validation error"
		if len(problems) > 1 {
			noun += "s"
		}
		return Task{}, n + noun + " for Task\n" + strings.Join(problems, "\n")
	}
	return Task{
		TaskID: "task_" + newUUID(), WorkflowID: sess.WorkflowID, SessionID: sess.SessionID,
		AgentID: sess.AgentID, TaskDefinitionID: defID, Payload: payload, Status: "pending",
		MaxRetries: 3, CreatedAt: now, UpdatedAt: now,
	}, ""
}

// newUUID returns a random (version 4) UUID in its canonical form.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:], b[10:])
	return string(out[:])
}
