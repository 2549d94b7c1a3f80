package loadgen

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// TestRequestsAreNeverReplayed pins the generator's python-requests
// behaviour: when the server closes a reused keep-alive connection after
// reading a request, net/http would silently resend a replayable request
// on a new connection and hide the seed's RemoteDisconnected; ours fail.
func TestRequestsAreNeverReplayed(t *testing.T) {
	for _, method := range []string{http.MethodPost, http.MethodGet} {
		t.Run(method, func(t *testing.T) {
			var served atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if served.Add(1) == 2 {
					conn, _, err := http.NewResponseController(w).Hijack()
					if err == nil {
						conn.Close()
					}
					return
				}
				w.WriteHeader(http.StatusAccepted)
			}))
			defer srv.Close()
			rec := NewRecorder(time.Now())
			cl := &caller{client: &http.Client{Transport: newTransport(1)}, target: srv.URL, rec: rec}
			c := call{method: method, name: NameState, path: "/v1/opscore/agent/a/state", auth: true}
			if method == http.MethodPost {
				c.body = []byte(`{"agentId":"a"}`)
			}
			if _, _, f := cl.do(context.Background(), c, time.Time{}); f != nil {
				t.Fatalf("first request: got failure %+v, want success", f)
			}
			_, _, f := cl.do(context.Background(), c, time.Time{})
			if f == nil || f.Kind != KindClosed {
				t.Fatalf("second request on the reused connection: got %+v, want a %s failure", f, KindClosed)
			}
			if !f.Reused {
				t.Errorf("second request: got Reused false, want true (it went out on the kept-alive connection)")
			}
			if got := served.Load(); got != 2 {
				t.Errorf("requests the server saw: got %d, want 2 (no silent replay)", got)
			}
		})
	}
}

// TestFailureOnFreshConnectionIsNotReused pins the flag the verdict uses to
// tell an injected reset on a new connection from the keep-alive race.
func TestFailureOnFreshConnectionIsNotReused(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			conn.Close()
		}
	}))
	defer srv.Close()
	rec := NewRecorder(time.Now())
	cl := &caller{client: &http.Client{Transport: newTransport(1)}, target: srv.URL, rec: rec}
	_, _, f := cl.do(context.Background(), call{method: http.MethodGet, name: NameState, path: "/x"}, time.Time{})
	if f == nil || f.Kind != KindClosed || f.Reused {
		t.Fatalf("got %+v, want a %s failure with Reused false", f, KindClosed)
	}
	res := &Result{}
	rec.fill(res)
	if len(res.Timeline) == 0 || res.Timeline[0].Kinds[KindClosed] != 1 || res.Timeline[0].ReusedKinds[KindClosed] != 0 {
		t.Errorf("timeline: got %+v, want 1 closed failure, 0 on a reused connection", res.Timeline)
	}
}

// TestObserveSeesEveryExchange pins Config.Observe: a run calls it for
// each request with the status, the response header and the send time.
func TestObserveSeesEveryExchange(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Sidecar-Queued-Id", "q1")
		if r.URL.Path == NameNotify {
			w.WriteHeader(http.StatusAccepted)
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	s, err := ScenarioByID(0)
	if err != nil {
		t.Fatal(err)
	}
	s.Users, s.InitialUsers, s.SpawnRate, s.Duration = 2, 2, 1, 1200*time.Millisecond
	s.ThinkMin, s.ThinkMax = 100*time.Millisecond, 100*time.Millisecond
	var regs, states, bad atomic.Int64
	start := time.Now()
	res, err := Run(context.Background(), Config{Scenario: s, Target: srv.URL, UniqueIDs: true, Observe: func(x Exchange) {
		if x.Sent.Before(start) || x.End.Before(x.Sent) || x.Header.Get("X-Sidecar-Queued-Id") != "q1" || x.Err != nil {
			bad.Add(1)
		}
		switch {
		case x.Registration && x.Status == http.StatusAccepted && x.Path == NameNotify && len(x.Body) > 0:
			regs.Add(1)
		case !x.Registration && x.Status == http.StatusServiceUnavailable:
			states.Add(1)
		default:
			bad.Add(1)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if regs.Load() != 2 || states.Load() == 0 || bad.Load() != 0 {
		t.Errorf("observed %d registrations (want 2), %d state requests (want > 0), %d unexpected", regs.Load(), states.Load(), bad.Load())
	}
	if got := uint64(regs.Load() + states.Load()); got != res.Total.Requests {
		t.Errorf("observed %d exchanges, the result counts %d requests", got, res.Total.Requests)
	}
}

// TestObserveHeaderNilWithErr pins Exchange's rule that Header is nil when
// Err is set: a response whose body is cut short (Content-Length 10, 3
// bytes, then the connection closes) is a transport error with no header
// and status 0.
func TestObserveHeaderNilWithErr(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		buf.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 10\r\nX-Test: 1\r\n\r\nabc")
		buf.Flush()
		conn.Close()
	}))
	defer srv.Close()
	var got []Exchange
	cl := &caller{client: &http.Client{Transport: newTransport(1)}, target: srv.URL, rec: NewRecorder(time.Now()),
		observe: func(x Exchange) { got = append(got, x) }}
	_, _, f := cl.do(context.Background(), call{method: http.MethodGet, name: NameState, path: "/x"}, time.Time{})
	if f == nil {
		t.Fatal("a truncated body: got no failure, want a transport failure")
	}
	if len(got) != 1 || got[0].Err == nil || got[0].Header != nil || got[0].Status != 0 {
		t.Fatalf("observed %+v, want one exchange with Err set, Status 0 and a nil Header", got)
	}
}
