package policy

import (
	"crypto/sha256"
	"sync"
	"sync/atomic"
	"time"
)

// maxKeyBytes is the longest key a KeyTable stores as it is; a longer one
// (a header value or path segment can be tens of kilobytes) is stored as
// its SHA-256 digest, so max_keys keys cost at most max_keys × about
// 200 bytes whatever the clients send.
const maxKeyBytes = 64

// tableKey returns the key a KeyTable stores for key: key itself, or for a
// long one a NUL byte and its 32-byte digest (no short key starts with NUL
// and is 33 bytes long by accident in practice; a collision would only
// make two clients share a bucket).
func tableKey(key string) string {
	if len(key) <= maxKeyBytes {
		return key
	}
	sum := sha256.Sum256([]byte(key))
	return "\x00" + string(sum[:])
}

// KeyTable holds one token bucket per key (agent id, client address or a
// header value), bounded to MaxKeys: beyond it the least recently used key
// is evicted, so spraying random keys costs a fixed amount of memory and
// only resets the buckets of keys nobody used lately. Keys longer than 64
// bytes are stored as their SHA-256 digest, so long keys cannot inflate
// that amount either. Rate and size changes are applied to each bucket
// lazily, on its next use, so Update is O(1) and keeps every bucket's
// tokens. A KeyTable is safe for concurrent use.
type KeyTable struct {
	mu      sync.Mutex
	entries map[string]*keyEntry
	// head is the most recently used entry, tail the least; both nil when empty.
	head, tail *keyEntry
	maxKeys    int
	rps        float64
	burst      int
	gen        uint64
	evicted    uint64
	// size mirrors len(entries) so Len, read for a gauge on every request
	// of a keyed route, takes no lock.
	size atomic.Int64
}

type keyEntry struct {
	key        string
	bucket     *TokenBucket
	gen        uint64
	prev, next *keyEntry
}

// NewKeyTable returns an empty table of buckets of rps tokens per second
// and burst tokens (0 means max(1, ceil(rps))), holding at most maxKeys keys.
func NewKeyTable(rps float64, burst, maxKeys int) *KeyTable {
	return &KeyTable{
		entries: make(map[string]*keyEntry, min(maxKeys, 1024)),
		maxKeys: max(1, maxKeys), rps: rps, burst: burst,
	}
}

// Update changes every bucket's rate and size and the table's bound. Buckets
// keep their tokens; when the bound shrinks the least recently used keys
// are evicted at once.
func (t *KeyTable) Update(rps float64, burst, maxKeys int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if rps != t.rps || burst != t.burst {
		t.rps, t.burst = rps, burst
		t.gen++
	}
	t.maxKeys = max(1, maxKeys)
	for len(t.entries) > t.maxKeys {
		t.evictLocked()
	}
}

// Len returns the number of keys held, for the ratelimit_keys gauge.
func (t *KeyTable) Len() int { return int(t.size.Load()) }

// Evictions returns how many keys were evicted to respect the bound since
// the table was made.
func (t *KeyTable) Evictions() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.evicted
}

// peek returns key's tokens at now and its bucket, creating the bucket
// (full) when the key is new. When the table is full, an eviction may hand
// the returned bucket, refilled, to another key before the caller takes
// its token; the caller then takes one token from that new key's full
// bucket, which is harmless.
func (t *KeyTable) peek(key string, now time.Time) (*TokenBucket, float64) {
	key = tableKey(key)
	t.mu.Lock()
	e := t.entries[key]
	if e == nil {
		e = t.insertLocked(key)
	} else {
		t.moveToFrontLocked(e)
	}
	if e.gen != t.gen {
		e.bucket.SetRate(now, t.rps, t.burst)
		e.gen = t.gen
	}
	b := e.bucket
	t.mu.Unlock()
	return b, b.Tokens(now)
}

// insertLocked adds key as the most recently used entry. When the table is
// full it reuses the least recently used entry and its bucket (refilled),
// so a full table under key spraying allocates no bucket per request.
func (t *KeyTable) insertLocked(key string) *keyEntry {
	var e *keyEntry
	if len(t.entries) >= t.maxKeys {
		e = t.evictLocked()
		e.bucket.refill(t.rps, t.burst)
	} else {
		e = &keyEntry{bucket: NewTokenBucket(t.rps, t.burst)}
	}
	e.key, e.gen = key, t.gen
	t.entries[key] = e
	t.size.Store(int64(len(t.entries)))
	t.pushFrontLocked(e)
	return e
}

// evictLocked removes the least recently used entry and returns it.
func (t *KeyTable) evictLocked() *keyEntry {
	e := t.tail
	if e == nil {
		return nil
	}
	t.unlinkLocked(e)
	delete(t.entries, e.key)
	t.size.Store(int64(len(t.entries)))
	t.evicted++
	return e
}

func (t *KeyTable) pushFrontLocked(e *keyEntry) {
	e.prev, e.next = nil, t.head
	if t.head != nil {
		t.head.prev = e
	}
	t.head = e
	if t.tail == nil {
		t.tail = e
	}
}

func (t *KeyTable) unlinkLocked(e *keyEntry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		t.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		t.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

func (t *KeyTable) moveToFrontLocked(e *keyEntry) {
	if t.head == e {
		return
	}
	t.unlinkLocked(e)
	t.pushFrontLocked(e)
}
