package proxy

import (
	"bytes"
	"net/http"
	"sync"
	"sync/atomic"
)

// pooledBuf is a byte buffer that goes back to bodyPools when its last
// user is done with it: the small response bodies read before the headers
// are sent (response_buffer.go). Reusing them saves an allocation of the
// body's size per request and the garbage collection it causes. Request
// bodies buffered for retries are not pooled: see retryBody.attach.
type pooledBuf struct {
	b     []byte
	class int // index in bodyPools
}

// bodyPools hold buffers by size class; a body larger than the last class
// is allocated, not pooled.
var bodyPools = [...]struct {
	size int
	pool sync.Pool
}{{size: 1 << 10}, {size: 4 << 10}, {size: 16 << 10}, {size: 64 << 10}}

// getBuf returns a buffer of length n: pooled when n fits a size class,
// with class -1 otherwise.
func getBuf(n int) *pooledBuf {
	for i := range bodyPools {
		p := &bodyPools[i]
		if n <= p.size {
			if pb, ok := p.pool.Get().(*pooledBuf); ok {
				pb.b = pb.b[:n]
				return pb
			}
			return &pooledBuf{b: make([]byte, n, p.size), class: i}
		}
	}
	return &pooledBuf{b: make([]byte, n), class: -1}
}

// putBuf hands pb back for reuse; nobody may touch pb afterwards.
func putBuf(pb *pooledBuf) {
	if pb.class >= 0 {
		bodyPools[pb.class].pool.Put(pb)
	}
}

// sharedBuf is a pooled buffer with a reference count: it goes back to
// the pool when the last reference is dropped. Whoever drops the last one
// must be sure nothing reads the buffer any more; a reference that is
// never dropped (a body some layer failed to close) only leaves the
// buffer to the garbage collector.
type sharedBuf struct {
	pb   *pooledBuf
	refs atomic.Int32
}

func (s *sharedBuf) ref() { s.refs.Add(1) }

func (s *sharedBuf) unref() {
	if s.refs.Add(-1) == 0 {
		putBuf(s.pb)
	}
}

// pooledReader reads a shared buffer and drops its reference on Close.
// Read and Close exclude each other, and a Read after Close reads
// nothing, so a caller that closes the body while another goroutine still
// reads it (as http.Transport may when an attempt is cancelled) never sees
// the buffer after it went back to the pool.
type pooledReader struct {
	mu     sync.Mutex
	r      bytes.Reader
	buf    *sharedBuf
	closed bool
}

// init makes a zero p a reader of buf's bytes that holds a reference to
// buf (taken here) until it is closed.
func (p *pooledReader) init(buf *sharedBuf) {
	buf.ref()
	p.buf = buf
	p.r.Reset(buf.pb.b)
}

func (p *pooledReader) Read(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	return p.r.Read(b)
}

func (p *pooledReader) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed {
		p.closed = true
		p.r.Reset(nil)
		p.buf.unref()
	}
	return nil
}
