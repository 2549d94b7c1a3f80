package outbox

import (
	"context"
	"errors"
	"net/http"
	"time"
)

// Message is one request accepted by the sidecar and not yet delivered to
// the upstream.
type Message struct {
	// ID is assigned by the store on Enqueue and orders the queue: for the
	// bolt store a zero-padded 20-digit sequence, for the Redis store the
	// stream entry id. A dead letter's ID is its key in the dead-letter
	// list, the one RetryDead takes.
	ID     string `json:"id"`
	Route  string `json:"route"` // sidecar route name ("notify", "state_update")
	Method string `json:"method"`
	// Path is the request path plus "?"+raw query when present.
	Path   string      `json:"path"`
	Header http.Header `json:"header"` // headers to replay
	Body   []byte      `json:"body"`
	// AgentID is the agent the request is about, "" when unknown; Pending
	// looks messages up by it.
	AgentID   string    `json:"agent_id"`
	RequestID string    `json:"request_id"`
	Enqueued  time.Time `json:"enqueued"`
	// Attempts is the number of failed delivery attempts recorded by
	// Release so far.
	Attempts   int    `json:"attempts"`
	LastError  string `json:"last_error,omitempty"`
	DeadReason string `json:"dead_reason,omitempty"`
}

// Size is what a message counts against Limits.MaxBytes and Stats.Bytes:
// the body, the path and every header name and value. It does not change
// when a delivery attempt is recorded.
func (m *Message) Size() int64 {
	n := int64(len(m.Body) + len(m.Path) + len(m.Method) + len(m.Route) + len(m.AgentID) + len(m.RequestID))
	for k, vs := range m.Header {
		n += int64(len(k))
		for _, v := range vs {
			n += int64(len(v))
		}
	}
	return n
}

// ErrFull is returned by Enqueue (and RetryDead) when the queue already
// holds Limits.MaxMessages messages or the message would take it past
// Limits.MaxBytes.
var ErrFull = errors.New("outbox: full")

// ErrNotFound is returned when the message named is not (or no longer) in
// the queue or the dead-letter list.
var ErrNotFound = errors.New("outbox: no such message")

// ErrClosed is returned by a store's methods after Close.
var ErrClosed = errors.New("outbox: store closed")

// Stats is a snapshot of a store.
type Stats struct {
	Depth  int       // queued messages, claimed ones included
	Bytes  int64     // sum of Message.Size over the queued messages
	Oldest time.Time // Enqueued of the head; zero when the queue is empty
	Dead   int       // dead letters
}

// Limits bound the queue (not the dead-letter list). Zero means no limit.
type Limits struct {
	MaxMessages int   // messages queued at most
	MaxBytes    int64 // sum of Message.Size at most
}

// full reports whether a message of size would exceed lim on a queue of
// depth messages and bytes.
func (lim Limits) full(depth int, bytes, size int64) bool {
	if lim.MaxMessages > 0 && depth >= lim.MaxMessages {
		return true
	}
	return lim.MaxBytes > 0 && bytes+size > lim.MaxBytes
}

// Store is a durable FIFO of messages plus a dead-letter list. Safe for
// concurrent use. See doc.go for what is durable when.
type Store interface {
	// Enqueue stores m durably (fsynced, or acknowledged by Redis) before
	// returning, and assigns m.ID and m.Enqueued (if zero).
	Enqueue(ctx context.Context, m *Message) error
	// Claim returns the oldest message this instance should deliver now,
	// or (nil, nil) when there is none (or, for a shared store, another
	// replica is the one delivering). The message stays stored until Ack
	// or DeadLetter.
	Claim(ctx context.Context) (*Message, error)
	// Release records a failed delivery attempt of a claimed message
	// (Attempts+1, LastError, on m too) and keeps it at the head.
	Release(ctx context.Context, m *Message, cause string) error
	// Ack removes a delivered message for good.
	Ack(ctx context.Context, m *Message) error
	// DeadLetter moves m to the dead-letter list with reason.
	DeadLetter(ctx context.Context, m *Message, reason string) error
	// List returns up to limit queued messages, oldest first; limit <= 0
	// means all of them.
	List(ctx context.Context, limit int) ([]Message, error)
	// Dead returns up to limit dead letters, oldest first; limit <= 0
	// means all of them.
	Dead(ctx context.Context, limit int) ([]Message, error)
	// RetryDead moves one dead letter back to the tail of the queue, with
	// a new ID; ErrNotFound when there is no such dead letter, ErrFull
	// when the queue is at its limits.
	RetryDead(ctx context.Context, id string) error
	// Pending reports whether some queued message has this AgentID.
	Pending(ctx context.Context, agentID string) (bool, error)
	Stats(ctx context.Context) (Stats, error)
	Close() error
}

// LocalIndex is implemented by a Store that answers Pending from memory,
// at once and without failing (BoltStore): the request path asks it on
// every state update and notify, and need not bound the question with a
// timeout (a context and a timer per request) as it must for a store
// across the network (RedisStore, one HGET).
type LocalIndex interface {
	PendingLocal(agentID string) bool
}
