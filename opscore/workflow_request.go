package opscore

import (
	"encoding/json"
)

// workflowRequest is the validated WorkflowTriggerRequest.
type workflowRequest struct {
	DefinitionID   string              // "" when absent or null
	Definition     *WorkflowDefinition // nil when absent or null
	InitialPayload json.RawMessage     // nil when absent or null
}

// parseWorkflow validates the body against WorkflowTriggerRequest. The
// either/or rule runs first on the raw object, as the original's
// "before" model validator does, and stops validation when it fails.
func parseWorkflow(b requestBody) (workflowRequest, []fieldError) {
	var v validator
	var req workflowRequest
	top, ok := v.topObject(b)
	if !ok {
		return req, v.errs
	}
	loc := []any{"body"}
	idRaw, hasID := top["workflowDefinitionId"]
	defRaw, hasDef := top["workflowDefinition"]
	switch {
	case !hasID && !hasDef:
		v.add("value_error", loc, "Value error, Either workflowDefinitionId or workflowDefinition must be provided",
			b.json, map[string]any{"error": map[string]any{}})
		return req, v.errs
	case hasID && hasDef && truthy(idRaw) && truthy(defRaw):
		v.add("value_error", loc, "Value error, Provide either workflowDefinitionId or workflowDefinition, not both",
			b.json, map[string]any{"error": map[string]any{}})
		return req, v.errs
	}
	if id := v.optStr(top, loc, "workflowDefinitionId"); id != nil {
		req.DefinitionID = *id
	}
	if hasDef && jsonKind(defRaw) != 'n' {
		req.Definition, _ = v.workflowDefinition(defRaw, at(loc, "workflowDefinition"))
	}
	req.InitialPayload = v.dict(top, loc, "initialPayload", nil, true)
	return req, v.errs
}

// workflowDefinition validates a WorkflowDefinition object at loc.
func (v *validator) workflowDefinition(raw json.RawMessage, loc []any) (*WorkflowDefinition, bool) {
	m, ok := v.model(raw, loc, "WorkflowDefinition")
	if !ok {
		return nil, false
	}
	def := &WorkflowDefinition{
		ID:          v.str(m, raw, loc, "id"),
		Name:        v.str(m, raw, loc, "name"),
		Description: v.optStr(m, loc, "description"),
		Version:     "1.0",
	}
	if r, ok := m["version"]; ok {
		def.Version = v.strValue(r, at(loc, "version"))
	}
	tasksRaw, ok := v.required(m, raw, loc, "tasks")
	if !ok {
		return def, false
	}
	tloc := at(loc, "tasks")
	items, ok := v.list(tasksRaw, tloc)
	if !ok {
		return def, false
	}
	def.Tasks = make([]json.RawMessage, 0, len(items))
	for i, it := range items {
		if jsonKind(it) != '{' {
			v.add("dict_type", at(tloc, i), "Input should be a valid dictionary", it, nil)
			continue
		}
		def.Tasks = append(def.Tasks, compact(it))
	}
	return def, true
}
