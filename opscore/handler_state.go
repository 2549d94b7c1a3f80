package opscore

import (
	"errors"
	"net/http"
	"time"
)

// stateRequest is the validated AgentStateUpdatePayload.
type stateRequest struct {
	AgentID   string
	Timestamp string
	State     string
	Details   []byte
}

// stateAccepted is the exact 202 body of a state update (54 bytes).
var stateAccepted = []byte(`{"status":"success","message":"State update accepted"}`)

// parseState validates the body against AgentStateUpdatePayload, the
// agentId by the agent id rules (agentid.go) and the timestamp by
// normaliseTimestamp, which it stores normalised (now standing in for an
// unparseable one).
func parseState(b requestBody, now time.Time) (stateRequest, []fieldError) {
	var v validator
	var req stateRequest
	top, ok := v.topObject(b)
	if !ok {
		return req, v.errs
	}
	loc := []any{"body"}
	parent := b.json
	req.AgentID = v.agentIDMember(top, parent, loc, "agentId", false)
	n := len(v.errs)
	req.Timestamp = v.str(top, parent, loc, "timestamp")
	if len(v.errs) == n {
		ts, err := normaliseTimestamp(req.Timestamp, now)
		if err != nil {
			v.add("value_error", at(loc, "timestamp"), "Value error, "+err.Error(), top["timestamp"],
				map[string]any{"error": map[string]any{}})
		}
		req.Timestamp = ts
	}
	req.State = v.str(top, parent, loc, "state")
	req.Details = v.dict(top, loc, "details", nil, true)
	return req, v.errs
}

// handleStateUpdate is POST /v1/opscore/agent/{agentId}/state.
func (s *Service) handleStateUpdate(w http.ResponseWriter, r *http.Request, agentID string) {
	req, ok := decodeAuthorized(s, w, r, agentID, func(b requestBody) (stateRequest, []fieldError) {
		return parseState(b, s.now())
	})
	if !ok {
		return
	}
	if req.AgentID != agentID {
		writeDetail(w, http.StatusBadRequest, "Agent ID in path does not match agent ID in payload")
		return
	}
	st := AgentState{
		AgentID:   agentID,
		State:     req.State,
		Details:   req.Details,
		Timestamp: req.Timestamp,
	}
	switch err := s.store.SetState(r.Context(), st); {
	case errors.Is(err, ErrAgentNotFound):
		writeDetail(w, http.StatusNotFound, "Agent not found: "+agentID)
	case err != nil:
		s.writeStoreError(w, r, "saving the state of agent "+agentID, err)
	default:
		writeRaw(w, http.StatusAccepted, stateAccepted)
	}
}

// handleStateGet is GET /v1/opscore/agent/{agentId}/state. Like the
// original it reads only the latest state, not the registration.
func (s *Service) handleStateGet(w http.ResponseWriter, r *http.Request, agentID string) {
	if !s.authorize(w, r) {
		return
	}
	if errs := pathAgentIDErrors(agentID); len(errs) > 0 {
		writeValidation(w, errs)
		return
	}
	st, err := s.store.GetState(r.Context(), agentID)
	switch {
	case errors.Is(err, ErrStateNotFound):
		writeDetail(w, http.StatusNotFound, "No state found for agent "+agentID)
	case err != nil:
		s.writeStoreError(w, r, "reading the state of agent "+agentID, err)
	default:
		writeJSON(w, http.StatusOK, st)
	}
}
