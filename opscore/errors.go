package opscore

import (
	"context"
	"errors"
	"fmt"
	"net"
)

// Sentinel errors returned by every Store implementation. Handlers map them
// to 404 responses (docs/opscore.md, "API").
var (
	// ErrAgentNotFound means the agent has no (readable) registration.
	ErrAgentNotFound = errors.New("opscore: agent not found")
	// ErrStateNotFound means the agent has no (readable) latest state.
	ErrStateNotFound = errors.New("opscore: state not found")
	// ErrWorkflowNotFound means no workflow definition has the given id.
	ErrWorkflowNotFound = errors.New("opscore: workflow definition not found")
	// ErrSessionNotFound means no session has the given id.
	ErrSessionNotFound = errors.New("opscore: session not found")
	// ErrSessionExists means a session with the id already exists.
	ErrSessionExists = errors.New("opscore: session already exists")
)

// StorageError reports that the storage backend failed or timed out. The
// API answers it with 503, a Retry-After header and a detail naming the
// operation but not the backend's internals.
type StorageError struct {
	// Op is the store operation, e.g. "set_state"; it is also the "op"
	// label of the Redis metrics.
	Op string
	// Err is the underlying client error.
	Err error
}

// Error implements error.
func (e *StorageError) Error() string {
	return fmt.Sprintf("opscore: storage %s: %v", e.Op, e.Err)
}

// Unwrap returns the underlying error.
func (e *StorageError) Unwrap() error { return e.Err }

// Reason is a short, client-safe description of what went wrong.
func (e *StorageError) Reason() string {
	var ne net.Error
	switch {
	case errors.Is(e.Err, context.DeadlineExceeded), errors.As(e.Err, &ne) && ne.Timeout():
		return "timed out"
	case errors.Is(e.Err, context.Canceled):
		return "request cancelled"
	default:
		return "unreachable or failing"
	}
}
