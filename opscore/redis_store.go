package opscore

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis keys, exactly as the Python Ops-Core writes them (docs/opscore.md,
// "Redis keys and values"), plus
// the task list, which the original kept in process memory.
const (
	keyTaskQueue = "opscore:tasks"
)

func keyRegistration(id string) string { return "agent:" + id + ":registration" }
func keyState(id string) string        { return "agent:" + id + ":latest_state" }
func keySession(id string) string      { return "session:" + id }
func keyWorkflow(id string) string     { return "workflow_def:" + id }

// luaIsObject is a Lua function true for a value that holds a JSON object,
// the only values getJSON can read into a record (the original treats
// anything else as absent).
const luaIsObject = `
local function isObject(v)
  return v and string.match(v, '^%s*{') ~= nil and pcall(cjson.decode, v)
end
`

// setStateScript writes the latest state only if the registration exists
// and holds a JSON object, in one atomic step, so a state can never outlive
// a DEREGISTER.
var setStateScript = redis.NewScript(luaIsObject + `
if not isObject(redis.call('GET', KEYS[1])) then return 0 end
redis.call('SET', KEYS[2], ARGV[1])
return 1`)

// registerScript writes the registration and, unless the agent has a
// readable state (the original treats unparseable JSON as absent), the
// initial state, in one atomic step: a repeated registration keeps a
// reported state, and a GET state after it never finds nothing.
var registerScript = redis.NewScript(luaIsObject + `
redis.call('SET', KEYS[1], ARGV[1])
if isObject(redis.call('GET', KEYS[2])) then return 0 end
redis.call('SET', KEYS[2], ARGV[2])
return 1`)

// RedisStore is the Store on Redis, wire-compatible with the Python
// Ops-Core's keys and JSON. Each operation is one round trip (a command, a
// MULTI/EXEC transaction or a Lua script) bounded by the operation timeout.
type RedisStore struct {
	client  redis.UniversalClient
	timeout time.Duration
	metrics atomic.Pointer[Metrics]
	// taskLimit is TaskQueueLimit; tests lower it.
	taskLimit int64
}

// RedisOption configures a RedisStore.
type RedisOption func(*RedisStore)

// WithOpTimeout bounds every store operation (default 1s).
func WithOpTimeout(d time.Duration) RedisOption {
	return func(s *RedisStore) {
		if d > 0 {
			s.timeout = d
		}
	}
}

// WithMetrics records operation latency and errors in m. New attaches the
// service's metrics automatically when the store has none.
func WithMetrics(m *Metrics) RedisOption {
	return func(s *RedisStore) { s.metrics.Store(m) }
}

// NewRedisStore returns a Store on client (see NewRedisClient). Close
// closes the client.
func NewRedisStore(client redis.UniversalClient, opts ...RedisOption) *RedisStore {
	s := &RedisStore{client: client, timeout: DefaultRedisTimeout, taskLimit: TaskQueueLimit}
	for _, o := range opts {
		o(s)
	}
	return s
}

var _ Store = (*RedisStore)(nil)

// attachMetrics sets m unless metrics were configured already.
func (s *RedisStore) attachMetrics(m *Metrics) { s.metrics.CompareAndSwap(nil, m) }

// do runs fn with the operation timeout and records latency and errors.
// redis.Nil is a normal "not found" answer, not an error; a caller that
// went away (parent context cancelled) is not counted as a Redis error.
func (s *RedisStore) do(parent context.Context, op string, fn func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(parent, s.timeout)
	defer cancel()
	start := time.Now()
	err := fn(ctx)
	if err == nil || errors.Is(err, redis.Nil) {
		s.metrics.Load().observeRedis(op, time.Since(start), false)
		return err
	}
	s.metrics.Load().observeRedis(op, time.Since(start), parent.Err() == nil)
	return &StorageError{Op: op, Err: err}
}

// Register implements Store with one Lua script (registerScript).
func (s *RedisStore) Register(ctx context.Context, info AgentInfo, initial AgentState) (bool, error) {
	reg, err := marshalCompact(info)
	if err != nil {
		return false, err
	}
	st, err := marshalCompact(initial)
	if err != nil {
		return false, err
	}
	var n int64
	err = s.do(ctx, opRegister, func(ctx context.Context) error {
		var err error
		n, err = registerScript.Run(ctx, s.client,
			[]string{keyRegistration(info.AgentID), keyState(info.AgentID)}, reg, st).Int64()
		return err
	})
	return n == 1, err
}

// Deregister implements Store: DEL both keys in one MULTI/EXEC.
func (s *RedisStore) Deregister(ctx context.Context, agentID string) (bool, error) {
	var deleted *redis.IntCmd
	err := s.do(ctx, opDeregister, func(ctx context.Context) error {
		_, err := s.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
			deleted = p.Del(ctx, keyRegistration(agentID))
			p.Del(ctx, keyState(agentID))
			return nil
		})
		return err
	})
	if err != nil {
		return false, err
	}
	return deleted.Val() > 0, nil
}

// SetState implements Store with a Lua script (check and set in one step).
func (s *RedisStore) SetState(ctx context.Context, st AgentState) error {
	b, err := marshalCompact(st)
	if err != nil {
		return err
	}
	var n int64
	err = s.do(ctx, opSetState, func(ctx context.Context) error {
		var err error
		n, err = setStateScript.Run(ctx, s.client,
			[]string{keyRegistration(st.AgentID), keyState(st.AgentID)}, b).Int64()
		return err
	})
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrAgentNotFound
	}
	return nil
}

// getJSON reads key into v; a missing key or a value that is not a JSON
// object is notFound, as in the original.
func (s *RedisStore) getJSON(ctx context.Context, op, key string, v any, notFound error) error {
	var b []byte
	err := s.do(ctx, op, func(ctx context.Context) error {
		var err error
		b, err = s.client.Get(ctx, key).Bytes()
		return err
	})
	if errors.Is(err, redis.Nil) {
		return notFound
	}
	if err != nil {
		return err
	}
	if jsonKind(b) != '{' || json.Unmarshal(b, v) != nil {
		return notFound // null would decode into an empty record
	}
	return nil
}

// GetState implements Store.
func (s *RedisStore) GetState(ctx context.Context, agentID string) (AgentState, error) {
	var st AgentState
	err := s.getJSON(ctx, opGetState, keyState(agentID), &st, ErrStateNotFound)
	return st, err
}

// GetRegistration implements Store.
func (s *RedisStore) GetRegistration(ctx context.Context, agentID string) (AgentInfo, error) {
	var info AgentInfo
	err := s.getJSON(ctx, opGetReg, keyRegistration(agentID), &info, ErrAgentNotFound)
	return info, err
}

// setJSON writes v under key with SET NX (nx) or SET XX (!nx) and reports
// whether Redis wrote it.
func (s *RedisStore) setJSON(ctx context.Context, op, key string, v any, nx bool) (bool, error) {
	b, err := marshalCompact(v)
	if err != nil {
		return false, err
	}
	var ok bool
	err = s.do(ctx, op, func(ctx context.Context) error {
		var err error
		if nx {
			ok, err = s.client.SetNX(ctx, key, b, 0).Result()
		} else {
			ok, err = s.client.SetXX(ctx, key, b, 0).Result()
		}
		return err
	})
	return ok, err
}

// PutWorkflowDefinitionIfAbsent implements Store with SET NX.
func (s *RedisStore) PutWorkflowDefinitionIfAbsent(ctx context.Context, def WorkflowDefinition) (bool, error) {
	return s.setJSON(ctx, opPutWorkflow, keyWorkflow(def.ID), def, true)
}

// GetWorkflowDefinition implements Store.
func (s *RedisStore) GetWorkflowDefinition(ctx context.Context, id string) (WorkflowDefinition, error) {
	var def WorkflowDefinition
	err := s.getJSON(ctx, opGetWorkflow, keyWorkflow(id), &def, ErrWorkflowNotFound)
	return def, err
}

// CreateSession implements Store with SET NX.
func (s *RedisStore) CreateSession(ctx context.Context, sess WorkflowSession) error {
	ok, err := s.setJSON(ctx, opCreateSession, keySession(sess.SessionID), sess, true)
	if err == nil && !ok {
		return ErrSessionExists
	}
	return err
}

// UpdateSession implements Store with SET XX: the whole record is written
// by the request that owns the session, so no merge is needed.
func (s *RedisStore) UpdateSession(ctx context.Context, sess WorkflowSession) error {
	ok, err := s.setJSON(ctx, opUpdateSession, keySession(sess.SessionID), sess, false)
	if err == nil && !ok {
		return ErrSessionNotFound
	}
	return err
}

// GetSession implements Store.
func (s *RedisStore) GetSession(ctx context.Context, id string) (WorkflowSession, error) {
	var sess WorkflowSession
	err := s.getJSON(ctx, opGetSession, keySession(id), &sess, ErrSessionNotFound)
	return sess, err
}

// EnqueueTask implements Store: LPUSH of the task JSON onto opscore:tasks,
// so a future consumer takes the oldest task with RPOP/BRPOP, and LTRIM to
// the newest TaskQueueLimit tasks in the same MULTI/EXEC, so the list that
// nothing consumes yet cannot grow without bound.
func (s *RedisStore) EnqueueTask(ctx context.Context, t Task) error {
	b, err := marshalCompact(t)
	if err != nil {
		return err
	}
	return s.do(ctx, opEnqueueTask, func(ctx context.Context) error {
		_, err := s.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.LPush(ctx, keyTaskQueue, b)
			p.LTrim(ctx, keyTaskQueue, 0, s.taskLimit-1)
			return nil
		})
		return err
	})
}

// Ping implements Store.
func (s *RedisStore) Ping(ctx context.Context) error {
	return s.do(ctx, opPing, func(ctx context.Context) error {
		return s.client.Ping(ctx).Err()
	})
}

// Close implements Store and closes the client.
func (s *RedisStore) Close() error { return s.client.Close() }
