package outbox

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// memStore is an in-memory Store for the deliverer's tests (it runs in a
// testing/synctest bubble, where the real stores' I/O does not belong).
// It passes the contract suite too, so it behaves like the real ones.
type memStore struct {
	mu     sync.Mutex
	lim    Limits
	seq    int
	queue  []Message
	dead   []Message
	closed bool

	claims int // Claim calls, for tests
}

var _ Store = (*memStore)(nil)

func newMemStore(lim Limits) *memStore { return &memStore{lim: lim} }

func memBackend() backend {
	return backend{"mem", func(t *testing.T) opener {
		var s *memStore
		return func(t *testing.T, lim Limits) Store {
			if s == nil {
				s = newMemStore(lim)
			} else {
				s.mu.Lock()
				s.lim, s.closed = lim, false
				s.mu.Unlock()
			}
			return s
		}
	}}
}

func (s *memStore) bytes() (n int64) {
	for i := range s.queue {
		n += s.queue[i].Size()
	}
	return n
}

func (s *memStore) Enqueue(_ context.Context, m *Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.lim.full(len(s.queue), s.bytes(), m.Size()) {
		return ErrFull
	}
	if m.Enqueued.IsZero() {
		m.Enqueued = time.Now()
	}
	s.seq++
	m.ID = fmt.Sprintf("%020d", s.seq)
	s.queue = append(s.queue, *m)
	return nil
}

func (s *memStore) Claim(context.Context) (*Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	s.claims++
	if len(s.queue) == 0 {
		return nil, nil
	}
	m := s.queue[0]
	return &m, nil
}

func (s *memStore) find(id string) int {
	return slices.IndexFunc(s.queue, func(m Message) bool { return m.ID == id })
}

func (s *memStore) Release(_ context.Context, m *Message, cause string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := s.find(m.ID)
	if i < 0 {
		return ErrNotFound
	}
	s.queue[i].Attempts++
	s.queue[i].LastError = cause
	m.Attempts, m.LastError = s.queue[i].Attempts, cause
	return nil
}

func (s *memStore) Ack(_ context.Context, m *Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := s.find(m.ID)
	if i < 0 {
		return ErrNotFound
	}
	s.queue = slices.Delete(s.queue, i, i+1)
	return nil
}

func (s *memStore) DeadLetter(_ context.Context, m *Message, reason string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := s.find(m.ID)
	if i < 0 {
		return ErrNotFound
	}
	d := s.queue[i]
	d.DeadReason = reason
	s.dead = append(s.dead, d)
	s.queue = slices.Delete(s.queue, i, i+1)
	m.DeadReason = reason
	return nil
}

func head(ms []Message, limit int) []Message {
	if limit > 0 && limit < len(ms) {
		ms = ms[:limit]
	}
	return slices.Clone(ms)
}

func (s *memStore) List(_ context.Context, limit int) ([]Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return head(s.queue, limit), nil
}

func (s *memStore) Dead(_ context.Context, limit int) ([]Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return head(s.dead, limit), nil
}

func (s *memStore) RetryDead(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.IndexFunc(s.dead, func(m Message) bool { return m.ID == id })
	if i < 0 {
		return ErrNotFound
	}
	m := s.dead[i]
	if s.lim.full(len(s.queue), s.bytes(), m.Size()) {
		return ErrFull
	}
	s.seq++
	m.ID, m.DeadReason = fmt.Sprintf("%020d", s.seq), ""
	s.queue = append(s.queue, m)
	s.dead = slices.Delete(s.dead, i, i+1)
	return nil
}

func (s *memStore) Pending(_ context.Context, agent string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return agent != "" && slices.ContainsFunc(s.queue, func(m Message) bool { return m.AgentID == agent }), nil
}

func (s *memStore) Stats(context.Context) (Stats, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{Depth: len(s.queue), Bytes: s.bytes(), Dead: len(s.dead)}
	if len(s.queue) > 0 {
		st.Oldest = s.queue[0].Enqueued
	}
	return st, nil
}

func (s *memStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}
