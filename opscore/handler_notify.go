package opscore

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
)

// notifyRequest is the validated AgentNotificationPayload.
type notifyRequest struct {
	EventType string
	Details   AgentInfo // RegistrationTime unset
}

// initialStateDetails is the details object of the UNKNOWN state written on
// registration.
var initialStateDetails = json.RawMessage(`{"reason":"Initial registration"}`)

// parseNotify validates the body against AgentNotificationPayload and the
// agentId by the agent id rules (agentid.go), except that an empty agentId
// is left to the event's handler, which answers it with the original's 400.
func parseNotify(b requestBody) (notifyRequest, []fieldError) {
	var v validator
	var req notifyRequest
	top, ok := v.topObject(b)
	if !ok {
		return req, v.errs
	}
	loc := []any{"body"}
	req.EventType = v.str(top, b.json, loc, "event_type")
	raw, ok := v.required(top, b.json, loc, "agent_details")
	if !ok {
		return req, v.errs
	}
	loc = at(loc, "agent_details")
	d, ok := v.model(raw, loc, "AgentRegistrationDetails")
	if !ok {
		return req, v.errs
	}
	req.Details = AgentInfo{
		AgentID:         v.agentIDMember(d, raw, loc, "agentId", true),
		AgentName:       v.str(d, raw, loc, "agentName"),
		Version:         v.str(d, raw, loc, "version"),
		Capabilities:    v.strList(d, loc, "capabilities"),
		ContactEndpoint: v.httpURL(d, raw, loc, "contactEndpoint"),
		Metadata:        v.dict(d, loc, "metadata", json.RawMessage("{}"), false),
	}
	return req, v.errs
}

// handleNotify is POST /v1/opscore/internal/agent/notify, the AgentKit
// registration webhook (no auth, as in the original; the sidecar verifies
// the signature).
func (s *Service) handleNotify(w http.ResponseWriter, r *http.Request, _ string) {
	body, ok := readBody(w, r)
	if !ok {
		s.metrics.registrationFailed(regFailValidation)
		return
	}
	req, errs := parseNotify(body)
	if len(errs) > 0 {
		s.metrics.registrationFailed(regFailValidation)
		writeValidation(w, errs)
		return
	}
	switch strings.ToUpper(req.EventType) {
	case "REGISTER":
		s.register(w, r, req.Details)
	case "DEREGISTER":
		s.deregister(w, r, req.Details.AgentID)
	default:
		s.metrics.registrationFailed(regFailBadRequest)
		writeDetail(w, http.StatusBadRequest, "Unknown event type: "+req.EventType)
	}
}

// checkEventAgentID refuses the empty agentId of a notify event with the
// original's 400 (parseNotify has checked every other rule): it writes the
// answer itself and returns false when the request must stop.
func checkEventAgentID(w http.ResponseWriter, event, id string) bool {
	if id == "" {
		writeDetail(w, http.StatusBadRequest, "Missing agentId in agent_details for "+event+" event.")
		return false
	}
	return true
}

// register writes the registration and, if the agent has no state yet, the
// initial UNKNOWN state in one atomic store step.
func (s *Service) register(w http.ResponseWriter, r *http.Request, info AgentInfo) {
	id := info.AgentID
	if !checkEventAgentID(w, "REGISTER", id) {
		s.metrics.registrationFailed(regFailBadRequest)
		return
	}
	now := formatTimestamp(s.now())
	info.RegistrationTime = now
	initial := AgentState{AgentID: id, State: "UNKNOWN", Details: initialStateDetails, Timestamp: now}
	created, err := s.store.Register(r.Context(), info, initial)
	if err != nil {
		s.metrics.registrationFailed(regFailStorage)
		s.writeStoreError(w, r, "saving the registration of agent "+id, err)
		return
	}
	s.metrics.registered()
	s.log.LogAttrs(r.Context(), slog.LevelDebug, "agent registered",
		slog.String("agent_id", id), slog.Bool("initial_state_written", created))
	writeJSON(w, http.StatusOK, statusBody{Status: "success", Message: "Agent " + id + " registered successfully."})
}

// deregister deletes the registration and the state in one atomic step.
// It is idempotent: an unknown agent also gets 200.
func (s *Service) deregister(w http.ResponseWriter, r *http.Request, id string) {
	if !checkEventAgentID(w, "DEREGISTER", id) {
		return
	}
	existed, err := s.store.Deregister(r.Context(), id)
	if err != nil {
		s.writeStoreError(w, r, "deregistering agent "+id, err)
		return
	}
	msg := "Agent " + id + " deregistered successfully."
	if !existed {
		msg = "Agent " + id + " was not registered; nothing to deregister."
	}
	writeJSON(w, http.StatusOK, statusBody{Status: "success", Message: msg})
}
