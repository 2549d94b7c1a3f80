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
