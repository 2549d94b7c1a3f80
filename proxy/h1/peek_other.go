//go:build !linux

package h1

// peekOpen trusts a pooled connection where there is no non-blocking peek
// (see peek_linux.go): one the upstream closed is then found by the
// request sent on it, which is replayed as described in transport.go.
func (c *conn) peekOpen() bool { return true }

// peekFD is not used off Linux.
func (c *conn) peekFD(uintptr) bool { return true }
