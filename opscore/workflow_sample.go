package opscore

import (
	"encoding/json"
	"fmt"
	"os"
)

// SampleWorkflowID is the id of the workflow definition preloaded at start,
// which the load tests' Scenario 2 triggers by id.
const SampleWorkflowID = "sample_workflow_id"

// sampleWorkflowJSON is the definition the original tries to load from
// its docs/sample_workflow.json (docs/opscore.md, "Sample workflow").
// configs/sample_workflow.json holds the same text for the
// OPSCORE_WORKFLOW_FILE option; a test keeps the two equal.
const sampleWorkflowJSON = `{"id":"sample_workflow_id","name":"Sample Load Test Workflow","description":"A simple workflow for performance testing.","version":"1.0","tasks":[{"taskId":"step_1","name":"First Step","agentCapability":"test_capability","parameters":{"message":"This is the first step."},"nextTaskId":"step_2"},{"taskId":"step_2","name":"Second Step","agentCapability":"another_capability","parameters":{"value":123},"nextTaskId":null}]}`

// loadWorkflows returns the definitions to preload: the built-in sample
// when file is empty, else the file's content, which is one definition
// object or an array of them. Each definition is validated like an inline
// one.
func loadWorkflows(file string) ([]WorkflowDefinition, error) {
	data := []byte(sampleWorkflowJSON)
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("opscore: workflow file: %w", err)
		}
		data = b
	}
	raws := []json.RawMessage{data}
	if jsonKind(data) == '[' {
		if err := json.Unmarshal(data, &raws); err != nil {
			return nil, fmt.Errorf("opscore: workflow file %s: %w", file, err)
		}
	}
	defs := make([]WorkflowDefinition, 0, len(raws))
	for i, raw := range raws {
		var v validator
		def, ok := v.workflowDefinition(raw, []any{i})
		if !ok || !v.ok() {
			b, _ := marshalCompact(v.errs)
			return nil, fmt.Errorf("opscore: workflow file %q: definition %d invalid: %s", file, i, b)
		}
		defs = append(defs, *def)
	}
	return defs, nil
}
