package opscore

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestSampleWorkflowFileMatchesBuiltIn keeps configs/sample_workflow.json
// and the built-in definition the same.
func TestSampleWorkflowFileMatchesBuiltIn(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "configs", "sample_workflow.json"))
	if err != nil {
		t.Fatalf("read configs/sample_workflow.json: %v", err)
	}
	var got bytes.Buffer
	if err := json.Compact(&got, b); err != nil {
		t.Fatalf("compact: %v", err)
	}
	if got.String() != sampleWorkflowJSON {
		t.Fatalf("configs/sample_workflow.json:\ngot  %s\nwant %s", got.String(), sampleWorkflowJSON)
	}
	defs, err := loadWorkflows(filepath.Join("..", "configs", "sample_workflow.json"))
	if err != nil || len(defs) != 1 || defs[0].ID != SampleWorkflowID || len(defs[0].Tasks) != 2 {
		t.Fatalf("loadWorkflows(file): got %+v, %v; want the sample definition", defs, err)
	}
}

func TestWorkflowFileOption(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	arr := write("two.json", `[{"id":"w1","name":"one","tasks":[{"taskId":"t","parameters":{}}]},{"id":"w2","name":"two","tasks":[]}]`)
	bad := write("bad.json", `{"id":"w3","tasks":"x"}`)

	svc, err := New(Options{APIKey: testKey, WorkflowFile: arr, Logger: discardLogger()})
	if err != nil {
		t.Fatalf("New with an array file: %v", err)
	}
	h := svc.Handler()
	mustStatus(t, "register", call(t, h, "POST", pNotify, registerBody("lt-1"), false), 200)
	mustStatus(t, "trigger w2", call(t, h, "POST", "/v1/opscore/agent/lt-1/workflow", `{"workflowDefinitionId":"w2"}`, true), 202)
	mustStatus(t, "sample not loaded", call(t, h, "POST", "/v1/opscore/agent/lt-1/workflow",
		`{"workflowDefinitionId":"sample_workflow_id"}`, true), 404)

	reg := prometheus.NewRegistry()
	if _, err := New(Options{WorkflowFile: bad, Registerer: reg, Logger: discardLogger()}); err == nil {
		t.Fatal("New with an invalid definition file: got nil error, want one")
	}
	// The refusal registered nothing: the registry takes a Service's
	// collectors (MustRegister would panic on a second set).
	if _, err := New(Options{Registerer: reg, Logger: discardLogger()}); err != nil {
		t.Fatalf("New on the registry of a refused New: %v", err)
	}
	if _, err := New(Options{WorkflowFile: filepath.Join(dir, "missing.json"), Logger: discardLogger()}); err == nil {
		t.Fatal("New with a missing file: got nil error, want one")
	}
}

// TestTriggerCreatesReadableSessionAndQueuesTask follows a trigger into the
// session read endpoint and the task queue.
func TestTriggerCreatesReadableSessionAndQueuesTask(t *testing.T) {
	tests := []struct {
		name, body, wantStatus, wantPayload string
		wantQueued                          int
	}{
		{"by id uses parameters", `{"workflowDefinitionId":"sample_workflow_id"}`, "started", `{"message":"This is the first step."}`, 1},
		{"initial payload wins", `{"workflowDefinitionId":"sample_workflow_id","initialPayload":{"x":1}}`, "started", `{"x":1}`, 1},
		{"empty initial payload ignored", `{"workflowDefinitionId":"sample_workflow_id","initialPayload":{}}`, "started", `{"message":"This is the first step."}`, 1},
		{"no tasks completes", `{"workflowDefinition":{"id":"e","name":"E","tasks":[]}}`, "completed", "", 0},
		{"bad task fails", `{"workflowDefinition":{"id":"b","name":"B","tasks":[{"parameters":{}}]}}`, "failed", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := NewMemoryStore()
			svc, _ := newTestService(t, store)
			h := svc.Handler()
			mustStatus(t, "register", call(t, h, "POST", pNotify, registerBody("lt-1"), false), 200)
			r := call(t, h, "POST", "/v1/opscore/agent/lt-1/workflow", tt.body, true)
			var sess WorkflowSession
			if tt.wantStatus == "failed" {
				mustStatus(t, "trigger", r, 400)
				for _, s := range store.sessions {
					sess = s
				}
			} else {
				mustStatus(t, "trigger", r, 202)
				var tr triggerResponse
				if err := json.Unmarshal([]byte(r.body), &tr); err != nil {
					t.Fatalf("trigger body: %v", err)
				}
				g := call(t, h, "GET", "/v1/opscore/session/"+tr.SessionID, "", true)
				mustStatus(t, "get session", g, 200)
				if err := json.Unmarshal([]byte(g.body), &sess); err != nil {
					t.Fatalf("session body %s: %v", g.body, err)
				}
			}
			if sess.Status != tt.wantStatus || sess.AgentID != "lt-1" {
				t.Fatalf("session: got %+v, want status %s for lt-1", sess, tt.wantStatus)
			}
			if (sess.EndTime != nil) != (tt.wantStatus != "started") {
				t.Fatalf("session endTime: got %v, want set only for a terminal status", sess.EndTime)
			}
			tasks := store.Tasks()
			if len(tasks) != tt.wantQueued {
				t.Fatalf("queued tasks: got %d, want %d", len(tasks), tt.wantQueued)
			}
			if tt.wantQueued == 1 && string(tasks[0].Payload) != tt.wantPayload {
				t.Fatalf("task payload: got %s, want %s", tasks[0].Payload, tt.wantPayload)
			}
		})
	}
}

// TestTaskQueueKeepsTheNewestTasks: nothing consumes the task queue yet, so
// both stores keep only the newest TaskQueueLimit tasks (lowered to 3 here)
// instead of growing without bound.
func TestTaskQueueKeepsTheNewestTasks(t *testing.T) {
	for _, sk := range storeKinds {
		t.Run(sk.name, func(t *testing.T) {
			store, raw := sk.open(t)
			ctx := context.Background()
			switch s := store.(type) {
			case *MemoryStore:
				s.taskLimit = 3
			case *RedisStore:
				s.taskLimit = 3
			}
			for i := 1; i <= 5; i++ {
				if err := store.EnqueueTask(ctx, Task{TaskID: "t" + strconv.Itoa(i)}); err != nil {
					t.Fatalf("EnqueueTask %d: %v", i, err)
				}
			}
			var got []string // oldest first
			if raw == nil {
				for _, task := range store.(*MemoryStore).Tasks() {
					got = append(got, task.TaskID)
				}
			} else {
				vals, err := raw.LRange(ctx, keyTaskQueue, 0, -1).Result()
				if err != nil {
					t.Fatalf("LRANGE: %v", err)
				}
				for i := len(vals) - 1; i >= 0; i-- {
					var task Task
					if err := json.Unmarshal([]byte(vals[i]), &task); err != nil {
						t.Fatalf("task %s: %v", vals[i], err)
					}
					got = append(got, task.TaskID)
				}
			}
			if want := []string{"t3", "t4", "t5"}; !slices.Equal(got, want) {
				t.Fatalf("queued tasks: got %v, want %v", got, want)
			}
		})
	}
}
