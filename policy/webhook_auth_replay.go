package policy

import (
	"sync"
	"time"
)

// replayCache remembers the signatures accepted within the tolerance
// window, so a captured webhook cannot be delivered twice. It is bounded:
// entries live until their timestamp leaves the window, and when the cache
// is full the oldest entry is forgotten first (a ring in insertion order).
// A signature is its 32 HMAC bytes, so entries need no string allocation.
// The ring grows with use up to size, so a large replay_cache_size costs
// memory only when that many deliveries arrive within the window.
type replayCache struct {
	mu     sync.Mutex
	size   int
	expiry map[[32]byte]int64 // signature → Unix second after which it is stale
	// ring holds the entries in insertion order: ring[head], ... (n of
	// them, wrapping only once len(ring) == size); while it grows, the
	// entries are ring[head:head+n] and the slots after them are free.
	ring    []replayEntry
	head, n int
}

type replayEntry struct {
	sig [32]byte
	exp int64
}

func newReplayCache(size int) *replayCache {
	size = max(1, size)
	return &replayCache{size: size, expiry: make(map[[32]byte]int64, min(size, 4096)), ring: make([]replayEntry, 0, min(size, 4096))}
}

// seen records sig, valid until expires (Unix seconds), and reports
// whether it was already recorded and still valid at now.
func (c *replayCache) seen(sig [32]byte, expires int64, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	nowSec := now.Unix()
	if exp, ok := c.expiry[sig]; ok && exp >= nowSec {
		return true
	}
	// Forget stale entries at the old end, then make room.
	for c.n > 0 {
		if c.ring[c.head].exp >= nowSec && c.n < c.size {
			break
		}
		c.popOldest()
	}
	e := replayEntry{sig: sig, exp: expires}
	if len(c.ring) < c.size && c.head+c.n == len(c.ring) {
		c.ring = append(c.ring, e)
	} else {
		c.ring[(c.head+c.n)%len(c.ring)] = e
	}
	c.n++
	c.expiry[sig] = expires
	return false
}

func (c *replayCache) popOldest() {
	old := c.ring[c.head]
	// A signature recorded again after going stale has two ring slots and
	// one map entry; only the slot that wrote the entry removes it.
	if c.expiry[old.sig] == old.exp {
		delete(c.expiry, old.sig)
	}
	c.head = (c.head + 1) % len(c.ring)
	c.n--
}

// len returns the number of signatures remembered.
func (c *replayCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.expiry)
}
