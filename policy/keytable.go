package policy

import (
	"sync"
	"time"
)

// KeyTable holds one token bucket per key (agent id, client address or a
// header value), bounded to MaxKeys: beyond it the least recently used key
// is evicted, so spraying random keys costs a fixed amount of memory and
// only resets the buckets of keys nobody used lately. Rate and size changes
// are applied to each bucket lazily, on its next use, so Update is O(1) and
// keeps every bucket's tokens. A KeyTable is safe for concurrent use.
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
func (t *KeyTable) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.entries)
}

// Evictions returns how many keys were evicted to respect the bound since
// the table was made.
func (t *KeyTable) Evictions() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.evicted
}

// peek returns key's tokens at now and its bucket, creating the bucket
// (full) when the key is new. The bucket pointer stays valid after the key
// is evicted; using it then only affects a bucket nobody else sees.
func (t *KeyTable) peek(key string, now time.Time) (*TokenBucket, float64) {
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
