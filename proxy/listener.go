package proxy

import (
	"net"
	"sync"
	"sync/atomic"
)

// limitListener is the server.max_connections cap: it counts the client
// connections open at once and closes a connection accepted beyond the
// cap at once, unread, instead of letting it wait. A waiting connection
// would sit in the kernel's accept queue with its client's timer running
// while the slow or idle connections that filled the cap decide when it is
// served; closed, its client learns at once and can retry (another
// replica, or later). The accept loop keeps draining the kernel's queue,
// so a flood costs one accept and one close per connection.
type limitListener struct {
	net.Listener
	max     int64
	open    atomic.Int64
	refused func() // counts a refused connection; may be nil
}

// limitListen caps ln at max open connections; max 0 means no cap.
func limitListen(ln net.Listener, max int, refused func()) net.Listener {
	if max <= 0 {
		return ln
	}
	return &limitListener{Listener: ln, max: int64(max), refused: refused}
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Add(1) <= l.max {
			return &limitConn{Conn: c, release: func() { l.open.Add(-1) }}, nil
		}
		l.open.Add(-1)
		_ = c.Close()
		if l.refused != nil {
			l.refused()
		}
	}
}

// limitConn gives its place back once, on the first Close.
type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// CloseWrite half-closes a TCP connection: net/http does so before closing
// a connection it refuses a request on (431, 400), so that the client
// reads the response instead of a reset.
func (c *limitConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
