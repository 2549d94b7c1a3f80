package configs

import (
	"bytes"
	_ "embed"
	"encoding/json"
)

//go:embed sample_workflow.json
var sampleWorkflowJSON []byte

// SampleWorkflow returns sample_workflow.json, compacted: the workflow
// definition Ops-Core preloads by default (a test in package opscore keeps
// the two equal), which load scenarios 3 and 4 send inline.
func SampleWorkflow() []byte {
	var b bytes.Buffer
	if err := json.Compact(&b, sampleWorkflowJSON); err != nil {
		panic("configs: sample_workflow.json: " + err.Error())
	}
	return b.Bytes()
}
