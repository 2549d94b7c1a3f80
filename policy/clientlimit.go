package policy

import (
	"net/netip"
	"sync"
)

// ClientSlots counts, per client address, the requests holding or waiting
// for a concurrency slot, and refuses one more past the limit
// (admission.concurrency.per_client_limit). It keeps an entry only while
// a client has a request counted, so its size is bounded by the requests
// in flight. Safe for concurrent use; the limit can change at any time.
type ClientSlots struct {
	mu    sync.Mutex
	limit int
	count map[string]int
}

// NewClientSlots returns a counter with the given limit (0: no limit).
func NewClientSlots(limit int) *ClientSlots {
	return &ClientSlots{limit: limit, count: map[string]int{}}
}

// SetLimit changes the limit; requests already counted stay counted.
func (c *ClientSlots) SetLimit(limit int) {
	c.mu.Lock()
	c.limit = limit
	c.mu.Unlock()
}

// Acquire counts one more request of client. It returns false, counting
// nothing, when the client already has limit requests counted (and the
// limit is on); otherwise the caller must call Release(client) once.
func (c *ClientSlots) Acquire(client string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.count[client]
	if c.limit > 0 && n >= c.limit {
		return false
	}
	c.count[client] = n + 1
	return true
}

// Release uncounts one request of client.
func (c *ClientSlots) Release(client string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := c.count[client]; n > 1 {
		c.count[client] = n - 1
	} else {
		delete(c.count, client)
	}
}

// Held returns the requests counted for client.
func (c *ClientSlots) Held(client string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.count[client]
}

// ClientAddrKey is the per-client key of an address: the address itself,
// or for IPv6 its /64 (one host usually owns a whole /64, so counting
// single IPv6 addresses would let it take every slot). A value that is
// not an address is its own key.
func ClientAddrKey(addr string) string {
	a, err := netip.ParseAddr(addr)
	if err != nil || a.Is4() {
		return addr // ParseAddr takes only the canonical IPv4 form
	}
	a = a.Unmap()
	if a.Is4() {
		return a.String()
	}
	p, _ := a.Prefix(64)
	return p.String()
}
