package outbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Defaults of RedisOptions.
const (
	DefaultRedisStream = "sidecar:outbox"
	DefaultRedisGroup  = "sidecar"
	DefaultRedisLease  = 10 * time.Second
	// MinRedisLease is the shortest lease OpenRedis accepts: a lease
	// shorter than a few round trips would change hands while a message
	// is being delivered.
	MinRedisLease = 100 * time.Millisecond
)

// RedisOptions configure OpenRedis.
type RedisOptions struct {
	// URL is the redis:// or rediss:// URL of the server; required.
	URL string
	// Stream is the stream key; the store also uses the keys Stream
	// followed by ":dead", ":lease", ":agents", ":bytes", ":attempts" and
	// ":lasterr". For Redis Cluster give it a hash tag ("{outbox}") so
	// they share a slot. Default "sidecar:outbox".
	Stream string
	// Group is the consumer group shared by the replicas. Default "sidecar".
	Group string
	// Consumer names this replica in the group and must differ between
	// replicas. Default "<hostname>-<pid>".
	Consumer string
	// Lease is how long the delivery lease lasts without renewal: the
	// time another replica waits before it takes over from one that
	// died. Default 10s; at least 100ms.
	Lease time.Duration
	// Limits bound the shared queue.
	Limits Limits
}

// RedisStore is a Store on Redis Streams shared by several sidecar
// replicas. Messages are entries of one stream read through one consumer
// group. Only the replica holding the delivery lease (the key
// "<stream>:lease", taken with SET NX PX semantics and renewed while a
// claimed message is out) delivers, so the order of the stream is the
// order of delivery whatever the number of replicas. A replica that takes
// over the lease first claims (XAUTOCLAIM) the entries still pending to
// any consumer, oldest first, then reads new ones (XREADGROUP).
type RedisStore struct {
	c      *redis.Client
	opts   RedisOptions
	token  string // lease value: this store and no other
	keys   redisKeys
	closed atomic.Bool

	mu        sync.Mutex
	stopRenew context.CancelFunc
	renewWG   sync.WaitGroup
}

var _ Store = (*RedisStore)(nil)

type redisKeys struct {
	stream, dead, lease, agents, bytes, attempts, lasterr string
}

// OpenRedis connects to opts.URL, checks the server answers and creates
// the stream and the consumer group when missing.
func OpenRedis(ctx context.Context, opts RedisOptions) (*RedisStore, error) {
	if opts.URL == "" {
		return nil, errors.New("outbox: redis URL is empty")
	}
	if opts.Stream == "" {
		opts.Stream = DefaultRedisStream
	}
	if opts.Group == "" {
		opts.Group = DefaultRedisGroup
	}
	if opts.Consumer == "" {
		host, _ := os.Hostname()
		opts.Consumer = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	if opts.Lease == 0 {
		opts.Lease = DefaultRedisLease
	}
	if opts.Lease < MinRedisLease {
		return nil, fmt.Errorf("outbox: redis lease %v is shorter than the minimum %v", opts.Lease, MinRedisLease)
	}
	ro, err := redis.ParseURL(opts.URL)
	if err != nil {
		return nil, fmt.Errorf("outbox: redis URL: %w", err)
	}
	var tok [8]byte
	_, _ = rand.Read(tok[:])
	st := opts.Stream
	s := &RedisStore{
		c:     redis.NewClient(ro),
		opts:  opts,
		token: opts.Consumer + ":" + hex.EncodeToString(tok[:]),
		keys: redisKeys{
			stream: st, dead: st + ":dead", lease: st + ":lease", agents: st + ":agents",
			bytes: st + ":bytes", attempts: st + ":attempts", lasterr: st + ":lasterr",
		},
	}
	if err := s.ensureGroup(ctx); err != nil {
		s.c.Close()
		return nil, fmt.Errorf("outbox: redis %s: %w", ro.Addr, err)
	}
	return s, nil
}

// ensureGroup creates the stream and the group reading it from the start.
func (s *RedisStore) ensureGroup(ctx context.Context) error {
	err := s.c.XGroupCreateMkStream(ctx, s.keys.stream, s.opts.Group, "0").Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return fmt.Errorf("create group %s on %s: %w", s.opts.Group, s.keys.stream, err)
	}
	return nil
}

// Client is the store's Redis client, for health checks.
func (s *RedisStore) Client() *redis.Client { return s.c }

// Consumer is this replica's consumer name.
func (s *RedisStore) Consumer() string { return s.opts.Consumer }

func (s *RedisStore) check() error {
	if s.closed.Load() {
		return ErrClosed
	}
	return nil
}

// enqueueScript appends one message after checking the limits, and bumps
// the byte counter and the agent index, atomically.
// KEYS: stream, agents, bytes. ARGV: maxMessages, maxBytes, size, agent, payload.
// Returns the entry id, or 0 when full.
var enqueueScript = redis.NewScript(`
local maxm, maxb, size = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if maxm > 0 and redis.call('XLEN', KEYS[1]) >= maxm then return 0 end
if maxb > 0 and tonumber(redis.call('GET', KEYS[3]) or '0') + size > maxb then return 0 end
local id = redis.call('XADD', KEYS[1], '*', 'm', ARGV[5], 'size', ARGV[3], 'agent', ARGV[4])
redis.call('INCRBY', KEYS[3], size)
if ARGV[4] ~= '' then redis.call('HINCRBY', KEYS[2], ARGV[4], 1) end
return id
`)

// removeScript acks and deletes one entry, fixes the counters and the
// agent index and, when ARGV[3] is set, appends it to the dead stream.
// KEYS: stream, agents, bytes, attempts, lasterr, dead. ARGV: group, id, dead payload.
// Returns 1, or 0 when the entry is gone.
var removeScript = redis.NewScript(`
local e = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
if #e == 0 then return 0 end
local f, size, agent = e[1][2], 0, ''
for i = 1, #f, 2 do
  if f[i] == 'size' then size = tonumber(f[i+1]) or 0 elseif f[i] == 'agent' then agent = f[i+1] end
end
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('DECRBY', KEYS[3], size)
if agent ~= '' and redis.call('HINCRBY', KEYS[2], agent, -1) <= 0 then redis.call('HDEL', KEYS[2], agent) end
redis.call('HDEL', KEYS[4], ARGV[2])
redis.call('HDEL', KEYS[5], ARGV[2])
if ARGV[3] and ARGV[3] ~= '' then redis.call('XADD', KEYS[6], '*', 'm', ARGV[3]) end
return 1
`)

// releaseScript records a failed attempt of an entry still queued.
// KEYS: stream, attempts, lasterr. ARGV: id, cause. Returns the attempts, or -1.
var releaseScript = redis.NewScript(`
if #redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1]) == 0 then return -1 end
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
return redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
`)

// retryDeadScript moves a dead letter back to the tail of the stream.
// KEYS: stream, agents, bytes, dead. ARGV: maxMessages, maxBytes, dead id, payload, size, agent.
// Returns the new id, -1 when the dead letter is gone, 0 when full.
var retryDeadScript = redis.NewScript(`
if #redis.call('XRANGE', KEYS[4], ARGV[3], ARGV[3]) == 0 then return -1 end
local maxm, maxb, size = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[5])
if maxm > 0 and redis.call('XLEN', KEYS[1]) >= maxm then return 0 end
if maxb > 0 and tonumber(redis.call('GET', KEYS[3]) or '0') + size > maxb then return 0 end
local id = redis.call('XADD', KEYS[1], '*', 'm', ARGV[4], 'size', ARGV[5], 'agent', ARGV[6])
redis.call('INCRBY', KEYS[3], size)
if ARGV[6] ~= '' then redis.call('HINCRBY', KEYS[2], ARGV[6], 1) end
redis.call('XDEL', KEYS[4], ARGV[3])
return id
`)

// leaseScript takes the lease when free or renews it when ours.
// KEYS: lease. ARGV: token, ms. Returns 1 when held by us after the call.
var leaseScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if not v then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
return 0
`)

// renewScript extends the lease only when it is still ours; dropScript
// deletes it only when it is ours. KEYS: lease. ARGV: token, ms.
var (
	renewScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
`)
	dropScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)
)

// payload is the JSON kept in the stream entry: the message without its
// ID, which is the entry id.
func payload(m *Message) (string, error) {
	c := *m
	c.ID = ""
	b, err := json.Marshal(&c)
	return string(b), err
}

// Enqueue implements Store in one round trip (a Lua script).
func (s *RedisStore) Enqueue(ctx context.Context, m *Message) error {
	if m == nil {
		return errors.New("outbox: enqueue nil message")
	}
	if err := s.check(); err != nil {
		return err
	}
	if m.Enqueued.IsZero() {
		m.Enqueued = time.Now()
	}
	p, err := payload(m)
	if err != nil {
		return fmt.Errorf("outbox: enqueue: %w", err)
	}
	k := s.keys
	res, err := enqueueScript.Run(ctx, s.c, []string{k.stream, k.agents, k.bytes},
		s.opts.Limits.MaxMessages, s.opts.Limits.MaxBytes, m.Size(), m.AgentID, p).Result()
	if err != nil {
		return fmt.Errorf("outbox: enqueue: %w", err)
	}
	id, ok := res.(string)
	if !ok {
		return ErrFull
	}
	m.ID = id
	return nil
}

// Claim implements Store: nil when another replica holds the delivery
// lease. While the returned message is out (until Ack, Release or
// DeadLetter), the lease is renewed every Lease/3 until ctx ends.
func (s *RedisStore) Claim(ctx context.Context) (*Message, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	held, err := leaseScript.Run(ctx, s.c, []string{s.keys.lease}, s.token, s.opts.Lease.Milliseconds()).Int()
	if err != nil {
		return nil, fmt.Errorf("outbox: claim: lease: %w", err)
	}
	if held != 1 {
		return nil, nil
	}
	for {
		x, err := s.next(ctx)
		if err != nil || x == nil {
			return nil, err
		}
		m, err := decodeEntry(x)
		if err != nil { // the entry itself is unreadable: a dead letter
			if err := s.deadUnreadable(ctx, x, err); err != nil {
				return nil, err
			}
			continue
		}
		// A failure to read its attempts is Redis's, not the message's:
		// return it, and the message stays at the head.
		if err := s.overlay(ctx, []*Message{m}); err != nil {
			return nil, err
		}
		s.startRenew(ctx)
		return m, nil
	}
}

// next returns the oldest entry pending to any consumer (claiming it),
// else the next new entry, else nil.
func (s *RedisStore) next(ctx context.Context) (*redis.XMessage, error) {
	start := "0-0"
	for {
		msgs, cursor, err := s.c.XAutoClaim(ctx, &redis.XAutoClaimArgs{
			Stream: s.keys.stream, Group: s.opts.Group, Consumer: s.opts.Consumer,
			MinIdle: 0, Start: start, Count: 1,
		}).Result()
		if err != nil {
			if isNoGroup(err) {
				if err := s.ensureGroup(ctx); err != nil {
					return nil, fmt.Errorf("outbox: claim: %w", err)
				}
				continue
			}
			return nil, fmt.Errorf("outbox: claim: xautoclaim: %w", err)
		}
		if len(msgs) > 0 {
			return &msgs[0], nil
		}
		if cursor == "0-0" || cursor == "" || cursor == start {
			break
		}
		start = cursor // the scanned part held only deleted entries
	}
	res, err := s.c.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group: s.opts.Group, Consumer: s.opts.Consumer,
		Streams: []string{s.keys.stream, ">"}, Count: 1, Block: -1,
	}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("outbox: claim: xreadgroup: %w", err)
	}
	if len(res) == 0 || len(res[0].Messages) == 0 {
		return nil, nil
	}
	return &res[0].Messages[0], nil
}

func isNoGroup(err error) bool { return err != nil && strings.HasPrefix(err.Error(), "NOGROUP") }

func decodeEntry(x *redis.XMessage) (*Message, error) {
	raw, _ := x.Values["m"].(string)
	var m Message
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		return nil, fmt.Errorf("unreadable message %s: %w", x.ID, err)
	}
	m.ID = x.ID
	return &m, nil
}

// decodeQueued decodes a queued entry and adds the attempts recorded by
// Release.
func (s *RedisStore) decodeQueued(ctx context.Context, x *redis.XMessage) (*Message, error) {
	m, err := decodeEntry(x)
	if err != nil {
		return nil, err
	}
	ms := []*Message{m}
	if err := s.overlay(ctx, ms); err != nil {
		return nil, err
	}
	return m, nil
}

// overlay adds the attempts and last errors kept beside the stream.
func (s *RedisStore) overlay(ctx context.Context, ms []*Message) error {
	if len(ms) == 0 {
		return nil
	}
	ids := make([]string, len(ms))
	for i, m := range ms {
		ids[i] = m.ID
	}
	pipe := s.c.Pipeline()
	att := pipe.HMGet(ctx, s.keys.attempts, ids...)
	last := pipe.HMGet(ctx, s.keys.lasterr, ids...)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("outbox: read attempts: %w", err)
	}
	for i, m := range ms {
		if v, ok := att.Val()[i].(string); ok {
			n, _ := strconv.Atoi(v)
			m.Attempts += n
		}
		if v, ok := last.Val()[i].(string); ok {
			m.LastError = v
		}
	}
	return nil
}

// deadUnreadable moves an entry that does not decode to the dead stream,
// keeping its raw bytes.
func (s *RedisStore) deadUnreadable(ctx context.Context, x *redis.XMessage, cause error) error {
	raw, _ := x.Values["m"].(string)
	dm := Message{Body: []byte(raw), DeadReason: cause.Error()}
	p, err := payload(&dm)
	if err != nil {
		return err
	}
	if _, err := s.remove(ctx, x.ID, p); err != nil {
		return fmt.Errorf("outbox: dead-letter unreadable message %s: %w", x.ID, err)
	}
	return nil
}

func (s *RedisStore) remove(ctx context.Context, id, deadPayload string) (bool, error) {
	k := s.keys
	n, err := removeScript.Run(ctx, s.c, []string{k.stream, k.agents, k.bytes, k.attempts, k.lasterr, k.dead},
		s.opts.Group, id, deadPayload).Int()
	return n == 1, err
}

func (s *RedisStore) startRenew(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopRenew != nil {
		s.stopRenew()
	}
	rctx, cancel := context.WithCancel(ctx)
	s.stopRenew = cancel
	s.renewWG.Add(1)
	go func() {
		defer s.renewWG.Done()
		t := time.NewTicker(s.opts.Lease / 3)
		defer t.Stop()
		for {
			select {
			case <-rctx.Done():
				return
			case <-t.C:
				n, err := renewScript.Run(rctx, s.c, []string{s.keys.lease}, s.token, s.opts.Lease.Milliseconds()).Int()
				if err == nil && n == 0 {
					return // lost: another replica delivers now
				}
			}
		}
	}()
}

func (s *RedisStore) endRenew() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopRenew != nil {
		s.stopRenew()
		s.stopRenew = nil
	}
}

// Release implements Store.
func (s *RedisStore) Release(ctx context.Context, m *Message, cause string) error {
	s.endRenew()
	if err := s.check(); err != nil {
		return err
	}
	k := s.keys
	n, err := releaseScript.Run(ctx, s.c, []string{k.stream, k.attempts, k.lasterr}, m.ID, cause).Int()
	if err != nil {
		return fmt.Errorf("outbox: release: %w", err)
	}
	if n < 0 {
		return ErrNotFound
	}
	stored, err := s.get(ctx, m.ID)
	if err != nil {
		return err
	}
	m.Attempts, m.LastError = stored.Attempts, stored.LastError
	return nil
}

// get reads one queued message.
func (s *RedisStore) get(ctx context.Context, id string) (*Message, error) {
	xs, err := s.c.XRange(ctx, s.keys.stream, id, id).Result()
	if err != nil {
		return nil, fmt.Errorf("outbox: read %s: %w", id, err)
	}
	if len(xs) == 0 {
		return nil, ErrNotFound
	}
	return s.decodeQueued(ctx, &xs[0])
}

// Ack implements Store.
func (s *RedisStore) Ack(ctx context.Context, m *Message) error {
	s.endRenew()
	if err := s.check(); err != nil {
		return err
	}
	ok, err := s.remove(ctx, m.ID, "")
	if err != nil {
		return fmt.Errorf("outbox: ack: %w", err)
	}
	if !ok {
		return ErrNotFound
	}
	return nil
}

// DeadLetter implements Store.
func (s *RedisStore) DeadLetter(ctx context.Context, m *Message, reason string) error {
	s.endRenew()
	if err := s.check(); err != nil {
		return err
	}
	stored, err := s.get(ctx, m.ID)
	if err != nil {
		return err
	}
	stored.DeadReason = reason
	p, err := payload(stored)
	if err != nil {
		return err
	}
	ok, err := s.remove(ctx, m.ID, p)
	if err != nil {
		return fmt.Errorf("outbox: dead-letter: %w", err)
	}
	if !ok {
		return ErrNotFound
	}
	m.DeadReason = reason
	return nil
}

func (s *RedisStore) xrange(ctx context.Context, key string, limit int) ([]redis.XMessage, error) {
	if limit > 0 {
		return s.c.XRangeN(ctx, key, "-", "+", int64(limit)).Result()
	}
	return s.c.XRange(ctx, key, "-", "+").Result()
}

// decodeListed decodes a stream entry for List and Dead; an entry that
// cannot be decoded is listed with its raw value as the body and the
// decoding error as its DeadReason, so an operator can still see it.
func decodeListed(x *redis.XMessage) *Message {
	m, err := decodeEntry(x)
	if err != nil {
		raw, _ := x.Values["m"].(string)
		m = &Message{ID: x.ID, Body: []byte(raw), DeadReason: err.Error()}
	}
	return m
}

// List implements Store.
func (s *RedisStore) List(ctx context.Context, limit int) ([]Message, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	xs, err := s.xrange(ctx, s.keys.stream, limit)
	if err != nil {
		return nil, fmt.Errorf("outbox: list: %w", err)
	}
	ms := make([]*Message, len(xs))
	for i := range xs {
		ms[i] = decodeListed(&xs[i])
	}
	if err := s.overlay(ctx, ms); err != nil {
		return nil, err
	}
	out := make([]Message, len(ms))
	for i, m := range ms {
		out[i] = *m
	}
	return out, nil
}

// Dead implements Store. A dead letter's ID is its id in the dead stream.
func (s *RedisStore) Dead(ctx context.Context, limit int) ([]Message, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	xs, err := s.xrange(ctx, s.keys.dead, limit)
	if err != nil {
		return nil, fmt.Errorf("outbox: dead: %w", err)
	}
	out := make([]Message, 0, len(xs))
	for i := range xs {
		out = append(out, *decodeListed(&xs[i]))
	}
	return out, nil
}

// RetryDead implements Store.
func (s *RedisStore) RetryDead(ctx context.Context, id string) error {
	if err := s.check(); err != nil {
		return err
	}
	xs, err := s.c.XRange(ctx, s.keys.dead, id, id).Result()
	if err != nil {
		if strings.Contains(err.Error(), "Invalid stream ID") {
			return ErrNotFound
		}
		return fmt.Errorf("outbox: retry dead letter: %w", err)
	}
	if len(xs) == 0 {
		return ErrNotFound
	}
	m, err := decodeEntry(&xs[0])
	if err != nil {
		return fmt.Errorf("outbox: retry dead letter: %w", err)
	}
	m.DeadReason = ""
	p, err := payload(m)
	if err != nil {
		return err
	}
	k := s.keys
	res, err := retryDeadScript.Run(ctx, s.c, []string{k.stream, k.agents, k.bytes, k.dead},
		s.opts.Limits.MaxMessages, s.opts.Limits.MaxBytes, id, p, m.Size(), m.AgentID).Result()
	if err != nil {
		return fmt.Errorf("outbox: retry dead letter: %w", err)
	}
	switch v := res.(type) {
	case string:
		return nil
	case int64:
		if v == 0 {
			return ErrFull
		}
	}
	return ErrNotFound
}

// Pending implements Store with one HGET.
func (s *RedisStore) Pending(ctx context.Context, agentID string) (bool, error) {
	if agentID == "" {
		return false, nil
	}
	if err := s.check(); err != nil {
		return false, err
	}
	n, err := s.c.HGet(ctx, s.keys.agents, agentID).Int()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("outbox: pending: %w", err)
	}
	return n > 0, nil
}

// Stats implements Store in one round trip.
func (s *RedisStore) Stats(ctx context.Context) (Stats, error) {
	if err := s.check(); err != nil {
		return Stats{}, err
	}
	pipe := s.c.Pipeline()
	depth := pipe.XLen(ctx, s.keys.stream)
	bytes := pipe.Get(ctx, s.keys.bytes)
	head := pipe.XRangeN(ctx, s.keys.stream, "-", "+", 1)
	dead := pipe.XLen(ctx, s.keys.dead)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return Stats{}, fmt.Errorf("outbox: stats: %w", err)
	}
	st := Stats{Depth: int(depth.Val()), Dead: int(dead.Val())}
	st.Bytes, _ = bytes.Int64()
	if h := head.Val(); len(h) > 0 {
		if m, err := decodeEntry(&h[0]); err == nil {
			st.Oldest = m.Enqueued
		}
	}
	return st, nil
}

// Close stops renewing the lease, gives it up when held and closes the
// client.
func (s *RedisStore) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.endRenew()
	s.renewWG.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = dropScript.Run(ctx, s.c, []string{s.keys.lease}, s.token).Err()
	return s.c.Close()
}
