package opscore

import (
	"context"
	"sync"
)

// TaskQueueLimit bounds the task queue of both stores; the oldest tasks
// are dropped first, since nothing consumes the queue yet.
const TaskQueueLimit = 10000

// MemoryStore is a process-local Store with the same semantics as
// RedisStore. Every operation runs under one mutex, which makes the
// registration and deregistration steps atomic. It is the zero-setup
// default and the store of the sidecar's embedded core.
type MemoryStore struct {
	mu       sync.Mutex
	regs     map[string]AgentInfo
	states   map[string]AgentState
	defs     map[string]WorkflowDefinition
	sessions map[string]WorkflowSession
	tasks    []Task
	// taskLimit is TaskQueueLimit; tests lower it.
	taskLimit int
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{
		regs:      make(map[string]AgentInfo),
		states:    make(map[string]AgentState),
		defs:      make(map[string]WorkflowDefinition),
		sessions:  make(map[string]WorkflowSession),
		taskLimit: TaskQueueLimit,
	}
}

var _ Store = (*MemoryStore)(nil)

// Register implements Store.
func (m *MemoryStore) Register(_ context.Context, info AgentInfo, initial AgentState) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.regs[info.AgentID] = info
	if _, ok := m.states[info.AgentID]; ok {
		return false, nil
	}
	m.states[info.AgentID] = initial
	return true, nil
}

// Deregister implements Store.
func (m *MemoryStore) Deregister(_ context.Context, agentID string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, existed := m.regs[agentID]
	delete(m.regs, agentID)
	delete(m.states, agentID)
	return existed, nil
}

// SetState implements Store.
func (m *MemoryStore) SetState(_ context.Context, st AgentState) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.regs[st.AgentID]; !ok {
		return ErrAgentNotFound
	}
	m.states[st.AgentID] = st
	return nil
}

// GetState implements Store.
func (m *MemoryStore) GetState(_ context.Context, agentID string) (AgentState, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	st, ok := m.states[agentID]
	if !ok {
		return AgentState{}, ErrStateNotFound
	}
	return st, nil
}

// GetRegistration implements Store.
func (m *MemoryStore) GetRegistration(_ context.Context, agentID string) (AgentInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	info, ok := m.regs[agentID]
	if !ok {
		return AgentInfo{}, ErrAgentNotFound
	}
	return info, nil
}

// PutWorkflowDefinitionIfAbsent implements Store.
func (m *MemoryStore) PutWorkflowDefinitionIfAbsent(_ context.Context, def WorkflowDefinition) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.defs[def.ID]; ok {
		return false, nil
	}
	m.defs[def.ID] = def
	return true, nil
}

// GetWorkflowDefinition implements Store.
func (m *MemoryStore) GetWorkflowDefinition(_ context.Context, id string) (WorkflowDefinition, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	def, ok := m.defs[id]
	if !ok {
		return WorkflowDefinition{}, ErrWorkflowNotFound
	}
	return def, nil
}

// CreateSession implements Store.
func (m *MemoryStore) CreateSession(_ context.Context, s WorkflowSession) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.sessions[s.SessionID]; ok {
		return ErrSessionExists
	}
	m.sessions[s.SessionID] = s
	return nil
}

// UpdateSession implements Store.
func (m *MemoryStore) UpdateSession(_ context.Context, s WorkflowSession) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.sessions[s.SessionID]; !ok {
		return ErrSessionNotFound
	}
	m.sessions[s.SessionID] = s
	return nil
}

// GetSession implements Store.
func (m *MemoryStore) GetSession(_ context.Context, id string) (WorkflowSession, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.sessions[id]
	if !ok {
		return WorkflowSession{}, ErrSessionNotFound
	}
	return s, nil
}

// EnqueueTask implements Store. The queue keeps the newest TaskQueueLimit
// tasks.
func (m *MemoryStore) EnqueueTask(_ context.Context, t Task) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.tasks) >= m.taskLimit {
		m.tasks = append(m.tasks[:0], m.tasks[len(m.tasks)-m.taskLimit+1:]...)
	}
	m.tasks = append(m.tasks, t)
	return nil
}

// Tasks returns a copy of the queued tasks, oldest first.
func (m *MemoryStore) Tasks() []Task {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Task(nil), m.tasks...)
}

// Ping implements Store; memory always answers.
func (m *MemoryStore) Ping(context.Context) error { return nil }

// Close implements Store; it keeps the data.
func (m *MemoryStore) Close() error { return nil }
