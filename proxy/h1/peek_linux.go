package h1

import (
	"syscall"
	"unsafe"
)

// peekOpen reports whether the pooled connection is still open and quiet:
// a non-blocking MSG_PEEK of one byte finds nothing to read (EAGAIN).
// net/http's Transport learns the same from the read goroutine it keeps
// on every idle connection; a peek costs one system call instead. A
// connection the upstream closed (0: FIN, or an error such as ECONNRESET),
// or on which it sent something unasked (a 408 before closing), is not
// used.
func (c *conn) peekOpen() bool {
	if c.raw == nil {
		return true
	}
	c.peekAlive = false
	if err := c.raw.Read(c.peek); err != nil {
		return false
	}
	return c.peekAlive
}

// peekFD is the peek on the connection's descriptor; it never waits.
func (c *conn) peekFD(fd uintptr) bool {
	_, _, errno := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&c.peekBuf[0])), 1,
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	c.peekAlive = errno == syscall.EAGAIN
	return true
}
