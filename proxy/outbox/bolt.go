package outbox

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// boltLockTimeout bounds how long OpenBolt waits for the file lock held
// by another process.
const boltLockTimeout = time.Second

var (
	bucketQueue = []byte("queue")
	bucketDead  = []byte("dead")
)

// BoltStore is a Store in one bbolt file, for a single sidecar process.
// Every write is one transaction fsynced on commit. Keys are the
// big-endian sequence of the message (its ID is the zero-padded decimal
// of the same number), values are the JSON of the Message. The depth,
// byte count and per-agent index are kept in memory, rebuilt on open.
type BoltStore struct {
	db     *bolt.DB
	path   string
	lim    Limits
	closed atomic.Bool

	writeMu sync.Mutex // serialises writes so the counters follow the commits in order

	mu     sync.Mutex // guards the fields below
	depth  int
	bytes  int64
	dead   int
	agents map[string]int
}

var _ Store = (*BoltStore)(nil)

// OpenBolt opens (creating it and its parent directory, mode 0o700, when
// missing) the outbox file at path. It fails after one second with an
// error naming path when another process holds the file. Queued messages
// that cannot be decoded are moved to the dead-letter list with the
// decode error as reason.
func OpenBolt(path string, lim Limits) (*BoltStore, error) {
	if path == "" {
		return nil, errors.New("outbox: bolt path is empty")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("outbox: create directory for %s: %w", path, err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: boltLockTimeout})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("outbox: %s is locked by another process (waited %v): %w", path, boltLockTimeout, err)
		}
		return nil, fmt.Errorf("outbox: open %s: %w", path, err)
	}
	s := &BoltStore{db: db, path: path, lim: lim, agents: map[string]int{}}
	if err := s.load(); err != nil {
		db.Close()
		return nil, fmt.Errorf("outbox: load %s: %w", path, err)
	}
	return s, nil
}

// load creates the buckets, moves unreadable messages to the dead
// letters and rebuilds the counters and the agent index.
func (s *BoltStore) load() error {
	return s.db.Update(func(tx *bolt.Tx) error {
		q, err := tx.CreateBucketIfNotExists(bucketQueue)
		if err != nil {
			return err
		}
		d, err := tx.CreateBucketIfNotExists(bucketDead)
		if err != nil {
			return err
		}
		var bad [][]byte
		c := q.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			m, err := decode(k, v)
			if err != nil {
				bad = append(bad, k)
				continue
			}
			s.add(m, 1)
		}
		for _, k := range bad {
			if err := moveUnreadable(q, d, k); err != nil {
				return err
			}
		}
		s.dead = 0
		dc := d.Cursor()
		for k, _ := dc.First(); k != nil; k, _ = dc.Next() {
			s.dead++
		}
		return nil
	})
}

// add changes the counters by one message (sign +1 or -1). Callers hold
// s.mu or own s exclusively.
func (s *BoltStore) add(m *Message, sign int) {
	s.depth += sign
	s.bytes += int64(sign) * m.Size()
	if m.AgentID != "" {
		n := s.agents[m.AgentID] + sign
		if n <= 0 {
			delete(s.agents, m.AgentID)
		} else {
			s.agents[m.AgentID] = n
		}
	}
}

func key(seq uint64) []byte {
	k := make([]byte, 8)
	binary.BigEndian.PutUint64(k, seq)
	return k
}

// idOf is the ID of key k; a key of another length (never written by this
// package) shows as "x" and hex so that it can still be listed, dead-lettered
// and retried.
func idOf(k []byte) string {
	if len(k) != 8 {
		return fmt.Sprintf("x%x", k)
	}
	return fmt.Sprintf("%020d", binary.BigEndian.Uint64(k))
}

// keyOf parses an ID back into its key.
func keyOf(id string) ([]byte, bool) {
	if strings.HasPrefix(id, "x") {
		k, err := hex.DecodeString(id[1:])
		return k, err == nil && len(k) > 0
	}
	if len(id) != 20 {
		return nil, false
	}
	n, err := strconv.ParseUint(id, 10, 64)
	if err != nil {
		return nil, false
	}
	return key(n), true
}

// decode decodes a queued message: its key must be a sequence.
func decode(k, v []byte) (*Message, error) {
	if len(k) != 8 {
		return nil, fmt.Errorf("unreadable message %s: key is not an 8-byte sequence", idOf(k))
	}
	return decodeValue(k, v)
}

// decodeValue decodes a value of either bucket, whatever its key.
func decodeValue(k, v []byte) (*Message, error) {
	var m Message
	if err := json.Unmarshal(v, &m); err != nil {
		return nil, fmt.Errorf("unreadable message %s: %w", idOf(k), err)
	}
	m.ID = idOf(k)
	return &m, nil
}

// moveUnreadable moves the raw value at k from q to d, wrapped in a
// Message whose Body is the raw bytes and whose DeadReason says why.
func moveUnreadable(q, d *bolt.Bucket, k []byte) error {
	raw := q.Get(k)
	_, derr := decode(k, raw)
	m := Message{ID: idOf(k), Body: append([]byte(nil), raw...), DeadReason: derr.Error()}
	v, err := json.Marshal(&m)
	if err != nil {
		return err
	}
	if err := d.Put(k, v); err != nil {
		return err
	}
	return q.Delete(k)
}

func (s *BoltStore) check() error {
	if s.closed.Load() {
		return ErrClosed
	}
	return nil
}

// beginWrite takes the write lock of a store that is still open (ErrClosed
// otherwise); the caller defers the unlock it returns.
func (s *BoltStore) beginWrite() (unlock func(), err error) {
	s.writeMu.Lock()
	if err := s.check(); err != nil {
		s.writeMu.Unlock()
		return nil, err
	}
	return s.writeMu.Unlock, nil
}

// Enqueue implements Store.
func (s *BoltStore) Enqueue(ctx context.Context, m *Message) error {
	if m == nil {
		return errors.New("outbox: enqueue nil message")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	unlock, err := s.beginWrite()
	if err != nil {
		return err
	}
	defer unlock()
	size := m.Size()
	s.mu.Lock()
	full := s.lim.full(s.depth, s.bytes, size)
	s.mu.Unlock()
	if full {
		return ErrFull
	}
	if m.Enqueued.IsZero() {
		m.Enqueued = time.Now()
	}
	var id string
	err = s.db.Update(func(tx *bolt.Tx) error {
		q := tx.Bucket(bucketQueue)
		seq, err := q.NextSequence()
		if err != nil {
			return err
		}
		k := key(seq)
		c := *m
		c.ID = idOf(k)
		v, err := json.Marshal(&c)
		if err != nil {
			return err
		}
		id = c.ID
		return q.Put(k, v)
	})
	if err != nil {
		return fmt.Errorf("outbox: enqueue: %w", err)
	}
	m.ID = id
	s.mu.Lock()
	s.add(m, 1)
	s.mu.Unlock()
	return nil
}

// Claim implements Store: it returns the head of the queue, the same one
// until it is acked or dead-lettered.
func (s *BoltStore) Claim(ctx context.Context) (*Message, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := s.check(); err != nil {
		return nil, err
	}
	var m *Message
	var badKey []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		k, v := tx.Bucket(bucketQueue).Cursor().First()
		if k == nil {
			return nil
		}
		var err error
		if m, err = decode(k, v); err != nil {
			badKey = append([]byte(nil), k...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("outbox: claim: %w", err)
	}
	if badKey != nil {
		// Written by this process, so not expected; never drop it.
		if err := s.deadUnreadable(badKey); err != nil {
			return nil, err
		}
		return s.Claim(ctx)
	}
	return m, nil
}

func (s *BoltStore) deadUnreadable(k []byte) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	moved := false
	err := s.db.Update(func(tx *bolt.Tx) error {
		q, d := tx.Bucket(bucketQueue), tx.Bucket(bucketDead)
		if q.Get(k) == nil {
			return nil // already moved: the counters were adjusted then
		}
		moved = true
		return moveUnreadable(q, d, k)
	})
	if err != nil {
		return fmt.Errorf("outbox: dead-letter unreadable message: %w", err)
	}
	if moved {
		s.mu.Lock()
		s.depth--
		s.dead++
		s.mu.Unlock()
	}
	return nil
}

// update runs fn on the stored copy of the queued message id inside one
// write transaction; fn returns the new value to store or nil to delete.
func (s *BoltStore) update(ctx context.Context, id string, fn func(tx *bolt.Tx, k []byte, stored *Message) (*Message, error)) (*Message, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	k, ok := keyOf(id)
	if !ok {
		return nil, ErrNotFound
	}
	var stored *Message
	err := s.db.Update(func(tx *bolt.Tx) error {
		q := tx.Bucket(bucketQueue)
		v := q.Get(k)
		if v == nil {
			return ErrNotFound
		}
		var err error
		if stored, err = decode(k, v); err != nil {
			return err
		}
		nm, err := fn(tx, k, stored)
		if err != nil {
			return err
		}
		if nm == nil {
			return q.Delete(k)
		}
		nv, err := json.Marshal(nm)
		if err != nil {
			return err
		}
		return q.Put(k, nv)
	})
	return stored, err
}

// Release implements Store.
func (s *BoltStore) Release(ctx context.Context, m *Message, cause string) error {
	unlock, err := s.beginWrite()
	if err != nil {
		return err
	}
	defer unlock()
	_, err = s.update(ctx, m.ID, func(_ *bolt.Tx, _ []byte, st *Message) (*Message, error) {
		st.Attempts++
		st.LastError = cause
		m.Attempts, m.LastError = st.Attempts, st.LastError
		return st, nil
	})
	return wrap("release", err)
}

// Ack implements Store.
func (s *BoltStore) Ack(ctx context.Context, m *Message) error {
	unlock, err := s.beginWrite()
	if err != nil {
		return err
	}
	defer unlock()
	st, err := s.update(ctx, m.ID, func(*bolt.Tx, []byte, *Message) (*Message, error) { return nil, nil })
	if err != nil {
		return wrap("ack", err)
	}
	s.mu.Lock()
	s.add(st, -1)
	s.mu.Unlock()
	return nil
}

// DeadLetter implements Store.
func (s *BoltStore) DeadLetter(ctx context.Context, m *Message, reason string) error {
	unlock, err := s.beginWrite()
	if err != nil {
		return err
	}
	defer unlock()
	st, err := s.update(ctx, m.ID, func(tx *bolt.Tx, k []byte, st *Message) (*Message, error) {
		st.DeadReason = reason
		v, err := json.Marshal(st)
		if err != nil {
			return nil, err
		}
		return nil, tx.Bucket(bucketDead).Put(k, v)
	})
	if err != nil {
		return wrap("dead-letter", err)
	}
	m.DeadReason = reason
	s.mu.Lock()
	s.add(st, -1)
	s.dead++
	s.mu.Unlock()
	return nil
}

func wrap(op string, err error) error {
	if err == nil || errors.Is(err, ErrNotFound) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("outbox: %s: %w", op, err)
}

func (s *BoltStore) list(ctx context.Context, bucket []byte, limit int) ([]Message, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := s.check(); err != nil {
		return nil, err
	}
	var out []Message
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucket).Cursor()
		dec := decode
		if string(bucket) == string(bucketDead) {
			dec = decodeValue
		}
		for k, v := c.First(); k != nil && (limit <= 0 || len(out) < limit); k, v = c.Next() {
			m, err := dec(k, v)
			if err != nil {
				// Shown, not hidden: the raw bytes and why.
				m = &Message{ID: idOf(k), Body: append([]byte(nil), v...), DeadReason: err.Error()}
			}
			out = append(out, *m)
		}
		return nil
	})
	return out, wrap("list", err)
}

// List implements Store.
func (s *BoltStore) List(ctx context.Context, limit int) ([]Message, error) {
	return s.list(ctx, bucketQueue, limit)
}

// Dead implements Store.
func (s *BoltStore) Dead(ctx context.Context, limit int) ([]Message, error) {
	return s.list(ctx, bucketDead, limit)
}

// RetryDead implements Store.
func (s *BoltStore) RetryDead(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	unlock, err := s.beginWrite()
	if err != nil {
		return err
	}
	defer unlock()
	dk, ok := keyOf(id)
	if !ok {
		return ErrNotFound
	}
	var moved *Message
	err = s.db.Update(func(tx *bolt.Tx) error {
		q, d := tx.Bucket(bucketQueue), tx.Bucket(bucketDead)
		v := d.Get(dk)
		if v == nil {
			return ErrNotFound
		}
		m, err := decodeValue(dk, v)
		if err != nil {
			return err
		}
		s.mu.Lock()
		full := s.lim.full(s.depth, s.bytes, m.Size())
		s.mu.Unlock()
		if full {
			return ErrFull
		}
		seq, err := q.NextSequence()
		if err != nil {
			return err
		}
		k := key(seq)
		m.ID, m.DeadReason = idOf(k), ""
		nv, err := json.Marshal(m)
		if err != nil {
			return err
		}
		if err := q.Put(k, nv); err != nil {
			return err
		}
		moved = m
		return d.Delete(dk)
	})
	if err != nil {
		if errors.Is(err, ErrFull) {
			return ErrFull
		}
		return wrap("retry dead letter", err)
	}
	s.mu.Lock()
	s.add(moved, 1)
	s.dead--
	s.mu.Unlock()
	return nil
}

// Pending implements Store from the in-memory index, in O(1).
func (s *BoltStore) Pending(ctx context.Context, agentID string) (bool, error) {
	return s.PendingLocal(agentID), nil
}

var _ LocalIndex = (*BoltStore)(nil)

// PendingLocal implements LocalIndex.
func (s *BoltStore) PendingLocal(agentID string) bool {
	if agentID == "" {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.agents[agentID] > 0
}

// Stats implements Store.
func (s *BoltStore) Stats(ctx context.Context) (Stats, error) {
	if err := s.check(); err != nil {
		return Stats{}, err
	}
	var st Stats
	err := s.db.View(func(tx *bolt.Tx) error {
		k, v := tx.Bucket(bucketQueue).Cursor().First()
		if k != nil {
			if m, err := decode(k, v); err == nil {
				st.Oldest = m.Enqueued
			}
		}
		return nil
	})
	s.mu.Lock()
	st.Depth, st.Bytes, st.Dead = s.depth, s.bytes, s.dead
	s.mu.Unlock()
	return st, wrap("stats", err)
}

// Path is the file the store lives in.
func (s *BoltStore) Path() string { return s.path }

// Close closes the file; later calls return ErrClosed.
func (s *BoltStore) Close() error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if s.closed.Swap(true) {
		return nil
	}
	return s.db.Close()
}
