package proxy

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

func TestRequestInfoDefaultsToForwardedAndIsSafeForConcurrentUse(t *testing.T) {
	ri := &RequestInfo{}
	if got := ri.View().Outcome; got != OutcomeForwarded {
		t.Errorf("outcome with none set: got %q, want forwarded", got)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			ri.AddAttempts(1)
			ri.SetUpstream(200, time.Millisecond)
			ri.AddQueueTime(time.Millisecond)
		})
	}
	wg.Wait()
	ri.SetOutcome(OutcomeShed, "queue_full")
	ri.AddShadow("rate_limit:route_rate")
	v := ri.View()
	if v.Attempts != 8 || v.UpstreamTime != 8*time.Millisecond || v.QueueTime != 8*time.Millisecond {
		t.Errorf("view: got %+v, want 8 attempts, 8ms upstream and queue time", v)
	}
	if v.Outcome != OutcomeShed || v.Reason != "queue_full" || len(v.Shadow) != 1 {
		t.Errorf("view: got %+v, want shed/queue_full with one shadow entry", v)
	}
}

func TestRetryAfterRoundsUpToWholeSeconds(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "1"}, {-time.Second, "1"}, {time.Millisecond, "1"}, {time.Second, "1"},
		{1001 * time.Millisecond, "2"}, {5 * time.Second, "5"}, {90 * time.Second, "90"},
	}
	for _, tt := range tests {
		if got := RetryAfter(tt.d); got != tt.want {
			t.Errorf("RetryAfter(%s) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

func TestWriteProblemRecordsOutcomeAndRequestID(t *testing.T) {
	info := &RequestInfo{RequestID: "r-1"}
	req := httptest.NewRequest("GET", "/", nil)
	req = req.WithContext(WithInfo(req.Context(), info))
	rec := httptest.NewRecorder()
	WriteProblem(rec, req, Problem{Status: 503, Outcome: OutcomeBreakerOpen, Reason: "open", Header: http.Header{"Retry-After": {"4"}}})
	if v := info.View(); v.Outcome != OutcomeBreakerOpen || v.Reason != "open" {
		t.Errorf("outcome: got %s/%s, want breaker_open/open", v.Outcome, v.Reason)
	}
	want := `{"type":"urn:opscore-sidecar:problem:breaker_open","title":"Service Unavailable","status":503,"detail":"","reason":"open","request_id":"r-1"}` + "\n"
	if rec.Code != 503 || rec.Body.String() != want || rec.Header().Get("Retry-After") != "4" {
		t.Errorf("got %d %q Retry-After %q, want 503 %q 4", rec.Code, rec.Body.String(), rec.Header().Get("Retry-After"), want)
	}
}

func TestResponseRecorderKeepsFlushAndStatus(t *testing.T) {
	informational := &responseRecorder{ResponseWriter: httptest.NewRecorder()}
	informational.WriteHeader(http.StatusEarlyHints)
	if informational.status != 0 {
		t.Errorf("after a 103: recorded status %d, want none (1xx is not the final status)", informational.status)
	}
	inner := httptest.NewRecorder()
	rec := &responseRecorder{ResponseWriter: inner}
	rec.WriteHeader(http.StatusAccepted)
	_, _ = rec.Write([]byte("abc"))
	if err := http.NewResponseController(rec).Flush(); err != nil {
		t.Fatalf("Flush through ResponseController: %v", err)
	}
	if !inner.Flushed || rec.status != http.StatusAccepted || rec.bytes != 3 {
		t.Errorf("got flushed=%v status=%d bytes=%d, want true 202 3", inner.Flushed, rec.status, rec.bytes)
	}
}
