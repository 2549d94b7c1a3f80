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
//
// An entry holds the delivery's timestamp, not an expiry: the window is
// the verifier's tolerance at the time of the check, so a reload that
// widens the tolerance cannot let an old delivery through again. A reload
// that changes the size resizes the cache in place (resize), keeping the
// newest entries.
type replayCache struct {
	mu    sync.Mutex
	size  int
	stamp map[[32]byte]int64 // signature → its X-AgentKit-Timestamp, Unix seconds
	// ring holds the entries in insertion order: ring[head], ... (n of
	// them, wrapping only once len(ring) == size); while it grows, the
	// entries are ring[head:head+n] and the slots after them are free.
	ring    []replayEntry
	head, n int
}

type replayEntry struct {
	sig [32]byte
	ts  int64
}

func newReplayCache(size int) *replayCache {
	size = max(1, size)
	return &replayCache{size: size, stamp: make(map[[32]byte]int64, min(size, 4096)), ring: make([]replayEntry, 0, min(size, 4096))}
}

// windowSeconds is tolerance in whole seconds, rounded up.
func windowSeconds(tolerance time.Duration) int64 {
	return int64((tolerance + time.Second - 1) / time.Second)
}

// seen records sig with its timestamp ts (Unix seconds) and reports
// whether it was already recorded with a timestamp still inside the
// window (tolerance) at now.
func (c *replayCache) seen(sig [32]byte, ts int64, tolerance time.Duration, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	nowSec, win := now.Unix(), windowSeconds(tolerance)
	if old, ok := c.stamp[sig]; ok && old+win >= nowSec {
		return true
	}
	// Forget stale entries at the old end, then make room.
	for c.n > 0 {
		if c.ring[c.head].ts+win >= nowSec && c.n < c.size {
			break
		}
		c.popOldest()
	}
	e := replayEntry{sig: sig, ts: ts}
	if len(c.ring) < c.size && c.head+c.n == len(c.ring) {
		c.ring = append(c.ring, e)
	} else {
		c.ring[(c.head+c.n)%len(c.ring)] = e
	}
	c.n++
	c.stamp[sig] = ts
	return false
}

func (c *replayCache) popOldest() {
	old := c.ring[c.head]
	// A signature recorded again after going stale has two ring slots and
	// one map entry; only the slot that wrote the entry removes it.
	if c.stamp[old.sig] == old.ts {
		delete(c.stamp, old.sig)
	}
	c.head = (c.head + 1) % len(c.ring)
	c.n--
}

// resize changes the bound to size (at least 1), keeping the newest
// entries that fit.
func (c *replayCache) resize(size int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	size = max(1, size)
	if size == c.size {
		return
	}
	keep := min(c.n, size)
	ring := make([]replayEntry, 0, max(keep, min(size, 4096)))
	for i := c.n - keep; i < c.n; i++ {
		ring = append(ring, c.ring[(c.head+i)%len(c.ring)])
	}
	stamp := make(map[[32]byte]int64, max(keep, min(size, 4096)))
	for _, e := range ring {
		stamp[e.sig] = e.ts // in insertion order: the newest entry of a signature wins
	}
	c.size, c.ring, c.stamp, c.head, c.n = size, ring, stamp, 0, keep
}

// len returns the number of signatures remembered.
func (c *replayCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.stamp)
}
