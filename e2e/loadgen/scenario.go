package loadgen

import (
	"fmt"
	"time"
)

// Task is one kind of request a virtual user makes after its on_start.
type Task int

// The tasks of the seed's locustfiles.
const (
	TaskPostState Task = iota // POST /v1/opscore/agent/{id}/state
	TaskGetState              // GET /v1/opscore/agent/{id}/state
	TaskWorkflow              // POST /v1/opscore/agent/{id}/workflow
)

// WeightedTask is a task and its Locust @task weight.
type WeightedTask struct {
	Task   Task
	Weight int
}

// IDStyle says how agent ids are generated.
type IDStyle int

// The agent id styles of the locustfiles.
const (
	IDDigits4 IDStyle = iota // loadtest-agent-<1000-9999> (scenario 0)
	IDDigits5                // loadtest-agent-<10000-99999> (scenarios 1, 3, 4)
	IDUUID                   // workflow-agent-<uuid4> (scenario 2)
)

// WorkflowBody says which workflow trigger body a scenario sends.
type WorkflowBody int

// The workflow bodies of scenarios 2 and 3/4.
const (
	WorkflowByID   WorkflowBody = iota // {"agentId","workflowDefinitionId":"sample_workflow_id","context"}
	WorkflowInline                     // {"workflowDefinition": <sample>}
)

// Scenario is one of the seed's load scenarios (docs/loadtest.md,
// "Scenarios"), with the plan's users, ramp and duration.
type Scenario struct {
	// ID is the scenario number, 0-4.
	ID int
	// Title describes the scenario in reports.
	Title string
	// Users is the number of virtual users to reach (scenario 4: the first
	// step).
	Users int
	// InitialUsers are started at once; the rest are spawned at SpawnRate.
	InitialUsers int
	// SpawnRate is the number of users started per second after the
	// initial ones.
	SpawnRate float64
	// Duration is the whole run, ramp included.
	Duration time.Duration
	// ThinkMin and ThinkMax bound the uniform think time drawn after each
	// task (Locust's wait_time); equal values mean constant().
	ThinkMin, ThinkMax time.Duration
	// Tasks are the weighted tasks.
	Tasks []WeightedTask
	// IDs is the agent id style.
	IDs IDStyle
	// Capabilities go into the registration.
	Capabilities []string
	// MetadataScenario adds "scenario": ID to the registration metadata.
	MetadataScenario bool
	// RegisterWithAuth sends the Bearer header on the registration too.
	RegisterWithAuth bool
	// AfterRegister is the sleep after the registration (0: none).
	AfterRegister time.Duration
	// PollEvery and PollFor configure the on_start GET state polling until
	// a 200 (0: no polling).
	PollEvery, PollFor time.Duration
	// Workflow is the workflow body style.
	Workflow WorkflowBody
	// StepUsers and StepEvery add users in steps (scenario 4).
	StepUsers int
	StepEvery time.Duration
	// StopRule enables the scenario 4 stop rule: stop when the mean
	// latency of critical requests over the last 30 s exceeds 2 s or the
	// error rate over it exceeds 5 %.
	StopRule bool
}

// Scenarios returns the five scenarios of docs/loadtest.md, "Scenarios",
// indexed by ID.
func Scenarios() []Scenario {
	s3tasks := []WeightedTask{{TaskPostState, 80}, {TaskGetState, 15}, {TaskWorkflow, 5}}
	s3caps := []string{"state_reporting", "test_capability", "another_capability"}
	return []Scenario{
		{
			ID: 0, Title: "baseline: 1->5 users over 1 min, constant(1) think, POST state",
			Users: 5, InitialUsers: 1, SpawnRate: 4.0 / 60, Duration: 5 * time.Minute,
			ThinkMin: time.Second, ThinkMax: time.Second,
			Tasks: []WeightedTask{{TaskPostState, 1}}, IDs: IDDigits4,
			Capabilities: []string{"state_reporting"}, RegisterWithAuth: true,
		},
		{
			ID: 1, Title: "state updates: 10->500 users over 5 min, 15 min hold, think 5-10 s",
			Users: 500, InitialUsers: 10, SpawnRate: 490.0 / 300, Duration: 20 * time.Minute,
			ThinkMin: 5 * time.Second, ThinkMax: 10 * time.Second,
			Tasks: []WeightedTask{{TaskPostState, 100}}, IDs: IDDigits5,
			Capabilities: []string{"state_reporting"}, MetadataScenario: true,
			AfterRegister: time.Second, PollEvery: 500 * time.Millisecond, PollFor: 10 * time.Second,
		},
		{
			ID: 2, Title: "workflows: 10->100 users over 3 min, 15 min hold, think 30-60 s",
			Users: 100, InitialUsers: 10, SpawnRate: 90.0 / 180, Duration: 18 * time.Minute,
			ThinkMin: 30 * time.Second, ThinkMax: 60 * time.Second,
			Tasks: []WeightedTask{{TaskWorkflow, 1}}, IDs: IDUUID,
			Capabilities: []string{"workflow_execution"}, MetadataScenario: true,
			AfterRegister: time.Second, PollEvery: time.Second, PollFor: 15 * time.Second,
			Workflow: WorkflowByID,
		},
		{
			ID: 3, Title: "mixed: 20->300 users over 5 min, 30 min hold, think 1-5 s",
			Users: 300, InitialUsers: 20, SpawnRate: 280.0 / 300, Duration: 35 * time.Minute,
			ThinkMin: time.Second, ThinkMax: 5 * time.Second,
			Tasks: s3tasks, IDs: IDDigits5, Capabilities: s3caps, MetadataScenario: true,
			RegisterWithAuth: true, Workflow: WorkflowInline,
		},
		{
			ID: 4, Title: "stress: 300 users, +50 every 5 min until mean latency > 2 s or errors > 5 %",
			Users: 300, InitialUsers: 0, SpawnRate: 50, Duration: 60 * time.Minute,
			ThinkMin: time.Second, ThinkMax: 5 * time.Second,
			Tasks: s3tasks, IDs: IDDigits5, Capabilities: s3caps, MetadataScenario: true,
			RegisterWithAuth: true, Workflow: WorkflowInline,
			StepUsers: 50, StepEvery: 5 * time.Minute, StopRule: true,
		},
	}
}

// ScenarioByID returns scenario id or an error naming the valid range.
func ScenarioByID(id int) (Scenario, error) {
	all := Scenarios()
	if id < 0 || id >= len(all) {
		return Scenario{}, fmt.Errorf("loadgen: scenario must be between 0 and %d, got %d", len(all)-1, id)
	}
	return all[id], nil
}

// pickTask chooses a task by weight; r is uniform in [0, total weight).
func (s *Scenario) pickTask(r int) Task {
	for _, wt := range s.Tasks {
		if r < wt.Weight {
			return wt.Task
		}
		r -= wt.Weight
	}
	return s.Tasks[len(s.Tasks)-1].Task
}

// totalWeight sums the task weights.
func (s *Scenario) totalWeight() int {
	n := 0
	for _, wt := range s.Tasks {
		n += wt.Weight
	}
	return n
}
