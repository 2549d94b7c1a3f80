package opscore

import "context"

// Store keeps the lifecycle data. The Redis and memory implementations have
// the same semantics, which the contract test suite checks on both.
// Every method returns a *StorageError when the backend fails or times out,
// and one of the Err* sentinels for a missing record.
type Store interface {
	// Register writes the registration record and, only when the agent has
	// no state yet, the initial state, as one atomic step. A repeated
	// registration replaces the record and keeps the existing state.
	// stateCreated reports whether initial was written.
	Register(ctx context.Context, info AgentInfo, initial AgentState) (stateCreated bool, err error)
	// Deregister deletes the registration and the state in one atomic step.
	// existed reports whether a registration was there.
	Deregister(ctx context.Context, agentID string) (existed bool, err error)
	// SetState replaces the latest state if, at that moment, the agent is
	// registered; otherwise it returns ErrAgentNotFound and writes nothing.
	SetState(ctx context.Context, st AgentState) error
	// GetState returns the latest state or ErrStateNotFound.
	GetState(ctx context.Context, agentID string) (AgentState, error)
	// GetRegistration returns the registration or ErrAgentNotFound.
	GetRegistration(ctx context.Context, agentID string) (AgentInfo, error)
	// PutWorkflowDefinitionIfAbsent stores def unless its id exists (first
	// writer wins) and reports whether it stored it.
	PutWorkflowDefinitionIfAbsent(ctx context.Context, def WorkflowDefinition) (bool, error)
	// GetWorkflowDefinition returns a definition or ErrWorkflowNotFound.
	GetWorkflowDefinition(ctx context.Context, id string) (WorkflowDefinition, error)
	// CreateSession stores a new session or returns ErrSessionExists.
	CreateSession(ctx context.Context, s WorkflowSession) error
	// UpdateSession replaces an existing session or returns
	// ErrSessionNotFound.
	UpdateSession(ctx context.Context, s WorkflowSession) error
	// GetSession returns a session or ErrSessionNotFound.
	GetSession(ctx context.Context, id string) (WorkflowSession, error)
	// EnqueueTask appends a task to the task queue (nothing consumes it yet).
	EnqueueTask(ctx context.Context, t Task) error
	// Ping checks that the backend answers; it backs /readyz.
	Ping(ctx context.Context) error
	// Close releases the backend's resources.
	Close() error
}
