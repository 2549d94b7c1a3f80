package proxy

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"opscore-sidecar/proxy/config"
)

// headerTimeoutRig is a sidecar in fake time whose state_update route
// sends one attempt with a per-try timeout of 5s, and whose
// upstream.response_header_timeout is rht.
func headerTimeoutRig(t *testing.T, rht time.Duration, mutate func(*config.RouteConfig)) *retryRig {
	return newRetryRig(t, "http://upstream.test", func(cfg *config.Config) {
		cfg.Upstream.ResponseHeaderTimeout = rht
		route(cfg, config.RouteStateUpdate, func(rc *config.RouteConfig) {
			rc.Retry.Attempts = 1
			rc.Retry.PerTryTimeout, rc.Retry.Deadline = 5*time.Second, 8*time.Second
			if mutate != nil {
				mutate(rc)
			}
		})
	})
}

// upstream.response_header_timeout ends an attempt whose upstream takes
// the request and never answers, well before the per-try timeout, as a
// timeout (504).
func TestResponseHeaderTimeoutEndsTheAttempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rig := headerTimeoutRig(t, 300*time.Millisecond, nil)
		stop := pipeUpstream(rig, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			<-r.Context().Done() // never answers
		}))
		defer stop()
		start := time.Now()
		rec := rig.do(t, context.Background(), "POST", pathState, `{"state":"idle"}`)
		took := time.Since(start)
		if rec.Code != http.StatusGatewayTimeout {
			t.Fatalf("got %d %s, want 504", rec.Code, rec.Body)
		}
		if took < 300*time.Millisecond || took >= 5*time.Second {
			t.Errorf("the attempt ended after %s, want at the 300ms response header timeout (per-try timeout 5s)", took)
		}
	})
}

// The response header timeout counts from the end of the request's write:
// a streamed body that takes longer than it to arrive from the client
// (and so to be written upstream) is not cut off, and the answer that
// follows at once gets through. The response body is not timed either.
func TestResponseHeaderTimeoutCountsFromTheWrite(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rig := headerTimeoutRig(t, 300*time.Millisecond, func(rc *config.RouteConfig) {
			rc.Retry.BufferLimit = 16 // the rest of the body is streamed during the attempt
		})
		const answer = `{"status":"success","message":"State update accepted"}`
		stop := pipeUpstream(rig, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, err := io.ReadAll(r.Body)
			if err != nil || len(body) != 100 {
				http.Error(w, "short body", http.StatusBadRequest)
				return
			}
			w.Header().Set("Content-Length", strconv.Itoa(len(answer)))
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			time.Sleep(time.Second) // the response body takes longer than the header timeout
			_, _ = io.WriteString(w, answer)
		}))
		defer stop()
		req := httptest.NewRequest("POST", pathState, &slowReader{left: 100, chunk: 10, every: 100 * time.Millisecond})
		rec := httptest.NewRecorder()
		rig.s.Handler().ServeHTTP(rec, req)
		if rec.Code != http.StatusOK || rec.Body.String() != answer {
			t.Fatalf("got %d %q, want 200 with the whole answer", rec.Code, rec.Body)
		}
	})
}

// When http.Transport replays a body-less request on a new connection
// after the pooled one died, the replay gets the whole response header
// timeout from its own write, as with the transport's own
// ResponseHeaderTimeout: the dead connection takes 150ms to close, the
// replay is answered 100ms after its write, the header timeout is 200ms.
func TestResponseHeaderTimeoutRestartsOnHiddenReplay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rig := newRetryRig(t, "http://upstream.test", func(cfg *config.Config) {
			cfg.Upstream.ResponseHeaderTimeout = 200 * time.Millisecond
			route(cfg, config.RouteStateGet, func(rc *config.RouteConfig) {
				rc.Retry.Attempts = 1
				rc.Retry.PerTryTimeout, rc.Retry.Deadline = 5*time.Second, 8*time.Second
			})
		})
		var n atomic.Int32
		stop := pipeUpstream(rig, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch n.Add(1) {
			case 1: // answered: the connection goes back to the pool
			case 2: // the pooled connection dies 150ms after the request was written
				time.Sleep(150 * time.Millisecond)
				if c, _, err := w.(http.Hijacker).Hijack(); err == nil {
					c.Close()
				}
				return
			default: // the replay, on a new connection, answered after 100ms
				select {
				case <-time.After(100 * time.Millisecond):
				case <-r.Context().Done():
					return
				}
			}
			w.WriteHeader(http.StatusOK)
		}))
		defer stop()
		if rec := rig.do(t, context.Background(), "GET", pathState, ""); rec.Code != http.StatusOK {
			t.Fatalf("first request: %d", rec.Code)
		}
		rec := rig.do(t, context.Background(), "GET", pathState, "")
		if rec.Code != http.StatusOK {
			t.Errorf("replayed GET: got %d %s (attempts %s), want 200", rec.Code, rec.Body, rec.Header().Get(HeaderAttempts))
		}
		if got := n.Load(); got != 3 {
			t.Errorf("upstream saw %d requests, want 3 (one hidden replay)", got)
		}
	})
}

// With the defaults the response header timeout (10s) is longer than the
// per-try timeout (2s), so it can never end an attempt first: no hook is
// installed on the attempt's trace.
func TestResponseHeaderTimeoutHookOnlyWhenItCanFire(t *testing.T) {
	d := config.Defaults()
	limit := d.Routes[config.RouteStateUpdate].Retry.PerTryTimeout
	noop := func(error) {}
	if r := newAttemptRun(noop, limit, nil, d.Upstream.ResponseHeaderTimeout); r.trace.WroteRequest != nil {
		t.Errorf("defaults (per-try %s, header timeout %s): a WroteRequest hook is installed", limit, d.Upstream.ResponseHeaderTimeout)
	} else {
		r.stop()
	}
	if r := newAttemptRun(noop, limit, nil, limit/2); r.trace.WroteRequest == nil {
		t.Errorf("header timeout %s under the per-try limit %s: no WroteRequest hook", limit/2, limit)
	} else {
		r.stop()
	}
}

// slowReader gives left bytes of 'x', chunk at a time, sleeping every
// before each chunk (fake time inside synctest).
type slowReader struct {
	left, chunk int
	every       time.Duration
}

func (s *slowReader) Read(p []byte) (int, error) {
	if s.left == 0 {
		return 0, io.EOF
	}
	time.Sleep(s.every)
	n := min(len(p), s.chunk, s.left)
	copy(p, strings.Repeat("x", n))
	s.left -= n
	return n, nil
}
