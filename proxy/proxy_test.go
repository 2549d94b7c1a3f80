package proxy

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"opscore-sidecar/metrics"
	"opscore-sidecar/policy"
	"opscore-sidecar/proxy/config"
	"opscore-sidecar/proxy/proxytest"
)

// problemDoc is a decoded problem+json body.
type problemDoc struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail"`
	Reason    string `json:"reason"`
	RequestID string `json:"request_id"`
}

func decodeProblem(t *testing.T, resp *http.Response, body string) problemDoc {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type: got %q, want application/problem+json (body %q)", ct, body)
	}
	var p problemDoc
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		t.Fatalf("problem body %q: %v", body, err)
	}
	return p
}

// TestUpstreamFailuresBecomeProblems: a refused, reset, closed or hung
// upstream gives the client a 503/502/504 problem+json with the request id and
// the classified cause, never a reset connection.
func TestUpstreamFailuresBecomeProblems(t *testing.T) {
	tests := []struct {
		name     string
		upstream func(t *testing.T) string
		status   int
		outcome  Outcome
		result   string
	}{
		{"refused", func(t *testing.T) string { return proxytest.RefusingURL(t) }, http.StatusServiceUnavailable, OutcomeUpstreamError, "refused"}, // never reached: 503 + Retry-After (retry_transport.go)
		{"reset", func(t *testing.T) string { return proxytest.New(t, proxytest.Reset()).URL }, http.StatusBadGateway, OutcomeUpstreamError, "reset"},
		{"closed before response", func(t *testing.T) string { return proxytest.New(t, proxytest.Close()).URL }, http.StatusBadGateway, OutcomeUpstreamError, "closed"},
		{"hang", func(t *testing.T) string { return proxytest.New(t, proxytest.Hang()).URL }, http.StatusGatewayTimeout, OutcomeUpstreamTimeout, "timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(tt.upstream(t))
			cfg.Upstream.ResponseHeaderTimeout = 200 * time.Millisecond // bounds the hang case
			env := startSidecar(t, cfg)
			req := newRequest(t, "POST", env.url+"/v1/opscore/agent/a1/state", strings.NewReader(`{"state":"idle"}`))
			req.Header.Set("X-Request-ID", "req-"+tt.name)
			resp, body := do(t, req)
			if resp.StatusCode != tt.status {
				t.Fatalf("status: got %d, want %d (body %s)", resp.StatusCode, tt.status, body)
			}
			p := decodeProblem(t, resp, body)
			if p.RequestID != "req-"+tt.name || p.Status != tt.status || p.Type != ProblemTypeBase+string(tt.outcome) {
				t.Errorf("problem: got %+v, want request_id %q, status %d, outcome %s", p, "req-"+tt.name, tt.status, tt.outcome)
			}
			if lines := env.access.lines(t); len(lines) != 1 || lines[0]["reason"] != tt.result {
				t.Errorf("access log: got %v, want one line with reason %q", lines, tt.result)
			}
			m := env.srv.Metrics
			if got := counter(t, m.UpstreamAttempts.WithLabelValues(config.RouteStateUpdate, tt.result)); got != 1 {
				t.Errorf("upstream_attempts_total{route=state_update,result=%s}: got %v, want 1", tt.result, got)
			}
			if got := counter(t, m.Requests.WithLabelValues(config.RouteStateUpdate, "bulk", statusCode(tt.status), string(tt.outcome))); got != 1 {
				t.Errorf("requests_total{code=%d,outcome=%s}: got %v, want 1", tt.status, tt.outcome, got)
			}
		})
	}
}

func TestSlowUpstreamStillAnswers(t *testing.T) {
	up := proxytest.New(t, proxytest.Respond(http.StatusAccepted, `{"status":"success"}`).Delayed(50*time.Millisecond))
	env := startSidecar(t, testConfig(up.URL))
	resp, body := do(t, newRequest(t, "POST", env.url+"/v1/opscore/agent/a1/state", strings.NewReader(`{}`)))
	if resp.StatusCode != http.StatusAccepted || body != `{"status":"success"}` {
		t.Errorf("got %d %q, want 202 with the upstream's body", resp.StatusCode, body)
	}
}

func TestUpstream5xxIsForwardedAndCounted(t *testing.T) {
	up := proxytest.New(t, proxytest.Respond(http.StatusServiceUnavailable, "busy", "Retry-After", "3"))
	env := startSidecar(t, testConfig(up.URL))
	resp, body := do(t, newRequest(t, "GET", env.url+"/v1/opscore/agent/a1/state", nil))
	if resp.StatusCode != http.StatusServiceUnavailable || body != "busy" || resp.Header.Get("Retry-After") != "3" {
		t.Errorf("got %d %q Retry-After %q, want the upstream's 503 busy 3", resp.StatusCode, body, resp.Header.Get("Retry-After"))
	}
	if got := counter(t, env.srv.Metrics.UpstreamAttempts.WithLabelValues(config.RouteStateGet, "http_5xx")); got != 1 {
		t.Errorf("upstream_attempts_total{result=http_5xx}: got %v, want 1", got)
	}
}

// TestHiddenTransportReplayIsCounted pins the honest attempt count: when a
// pooled connection dies, net/http re-sends a replayable GET on a new
// connection inside one RoundTrip; the access log must say 2 attempts.
func TestHiddenTransportReplayIsCounted(t *testing.T) {
	// First request: answered (the connection goes back to the pool).
	// Second request: the upstream closes the reused connection without
	// answering; the transport replays it on a new connection, answered.
	up := proxytest.New(t, proxytest.OK(), proxytest.Close(), proxytest.OK())
	env := startSidecar(t, testConfig(up.URL))
	for i := 0; i < 2; i++ {
		resp, body := do(t, newRequest(t, "GET", env.url+"/v1/opscore/agent/a1/state", nil))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d: got %d %q, want 200", i, resp.StatusCode, body)
		}
	}
	lines := env.access.lines(t)
	if len(lines) != 2 {
		t.Fatalf("access log: got %d lines, want 2", len(lines))
	}
	if got := lines[1]["attempts"]; got != float64(2) {
		t.Errorf("second request attempts: got %v, want 2 (one hidden transport replay)", got)
	}
	if got := counter(t, env.srv.Metrics.UpstreamAttempts.WithLabelValues(config.RouteStateGet, "closed")); got != 1 {
		t.Errorf("upstream_attempts_total{result=closed}: got %v, want 1", got)
	}
	if got := len(up.Requests()); got != 3 {
		t.Errorf("upstream saw %d requests, want 3", got)
	}
}

// TestErrorOutcomeKeepsAttemptError: the outcome the attempt layer
// classified wins over what the wrapped error alone would say (io.EOF:
// closed), for the ErrorHandler as for the layers above the attempt.
func TestErrorOutcomeKeepsAttemptError(t *testing.T) {
	want := policy.Outcome{Kind: policy.AttemptReset, Failure: metrics.ResultReset}
	err := fmt.Errorf("wrapped: %w", &AttemptError{Outcome: want, Err: io.EOF})
	if got := errorOutcome(t.Context(), err); got != want {
		t.Errorf("errorOutcome(AttemptError{reset}) = %+v, want %+v", got, want)
	}
	if got := attemptOutcome(t.Context(), nil, 0, nil, err, time.Time{}); got != want {
		t.Errorf("attemptOutcome(AttemptError{reset}) = %+v, want %+v", got, want)
	}
	if got := errorOutcome(t.Context(), io.EOF).Label(); got != metrics.ResultClosed {
		t.Errorf("errorOutcome(io.EOF) label %q, want closed", got)
	}
}

// TestBreakerCountsTheAttemptLayersOutcome: the breaker reports the
// outcome the attempt layer below it classified (on its *AttemptError, or
// recorded on the RequestInfo for a response), not its own reading of the
// raw result; only without an attempt layer below does it classify itself.
func TestBreakerCountsTheAttemptLayersOutcome(t *testing.T) {
	answer := func(req *http.Request) *http.Response {
		return &http.Response{StatusCode: 503, Header: http.Header{}, Body: http.NoBody, Request: req}
	}
	tests := []struct {
		name string
		next roundTripperFunc
		want policy.BreakerCounts
	}{
		{"response the attempt layer saw the client leave", func(req *http.Request) (*http.Response, error) {
			info := InfoFrom(req.Context())
			info.AddAttempts(1)
			info.recordAttempt(policy.Outcome{Kind: policy.AttemptCancelled, Status: 503}, 0)
			return answer(req), nil
		}, policy.BreakerCounts{Requests: 1, Ignored: 1}},
		{"error the attempt layer saw the client leave", func(req *http.Request) (*http.Response, error) {
			InfoFrom(req.Context()).AddAttempts(1)
			return nil, &AttemptError{Outcome: policy.Outcome{Kind: policy.AttemptCancelled, Failure: metrics.ResultCanceled}, Err: io.EOF}
		}, policy.BreakerCounts{Requests: 1, Ignored: 1}},
		{"no attempt layer: classified by the breaker", func(req *http.Request) (*http.Response, error) {
			return answer(req), nil
		}, policy.BreakerCounts{Requests: 1, Failures: 1, ConsecutiveFailures: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			br, err := policy.NewBreaker(config.RouteNotify, policy.DefaultBreaker(), nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			info := &RequestInfo{Route: config.RouteNotify, Runtime: &RouteRuntime{Breaker: br}}
			req := httptest.NewRequestWithContext(WithInfo(t.Context(), info), http.MethodPost, "http://upstream.test/", nil)
			resp, _ := breakerTransport{next: tt.next}.RoundTrip(req)
			if resp != nil {
				resp.Body.Close()
			}
			if got := br.Counts(); got != tt.want {
				t.Errorf("breaker counts %+v, want %+v", got, tt.want)
			}
		})
	}
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// TestShortBodyCutMidwayIs502: an upstream that dies in the middle of a
// short body (Ops-Core's JSON answers) gets the client a 502 problem, not
// a connection closed with no answer: the sidecar reads such a body in
// full before sending anything.
func TestShortBodyCutMidwayIs502(t *testing.T) {
	up := proxytest.New(t, proxytest.Truncate())
	env := startSidecar(t, testConfig(up.URL))
	resp, body := do(t, newRequest(t, "GET", env.url+"/v1/opscore/agent/a1/state", nil))
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("status: got %d %q, want 502", resp.StatusCode, body)
	}
	p := decodeProblem(t, resp, body)
	if p.Type != ProblemTypeBase+"upstream_error" || p.RequestID != resp.Header.Get(HeaderRequestID) || !strings.Contains(p.Detail, "(closed)") {
		t.Errorf("problem: got %+v, want upstream_error with the request id and the cause (closed)", p)
	}
	line := accessLine(t, env)
	if line["outcome"] != "upstream_error" || line["reason"] != "body_aborted" || line["status"] != float64(502) {
		t.Errorf("access log status/outcome/reason: got %v/%v/%v, want 502/upstream_error/body_aborted (body %s)", line["status"], line["outcome"], line["reason"], body)
	}
}

// TestLargeBodyCutMidwayIsNotLoggedAsForwarded: when the upstream dies in
// the middle of a body too large to hold, the response is already on its
// way; the client sees it cut short and the sidecar logs upstream_error.
func TestLargeBodyCutMidwayIsNotLoggedAsForwarded(t *testing.T) {
	up := proxytest.New(t, proxytest.TruncateLarge())
	env := startSidecar(t, testConfig(up.URL))
	resp, err := http.Get(env.url + "/v1/opscore/agent/a1/state")
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if err == nil {
		t.Fatal("reading a truncated response: got no error, want one")
	}
	line := accessLine(t, env)
	if line["outcome"] != "upstream_error" || line["reason"] != "body_aborted" {
		t.Errorf("access log outcome/reason: got %v/%v, want upstream_error/body_aborted", line["outcome"], line["reason"])
	}
}

// accessLine waits for the one access-log line of the test's request; it
// is written as the handler returns, which may be after the client saw
// the connection end.
func accessLine(t *testing.T, env *testEnv) map[string]any {
	t.Helper()
	for range 1000 {
		if lines := env.access.lines(t); len(lines) == 1 {
			return lines[0]
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("no access-log line")
	return nil
}

// TestBodilessResponsesWithContentLengthPassThrough: a HEAD answer or a
// 304 declares a Content-Length but has no body; the sidecar must not
// wait for one (it answered 502 when it did).
func TestBodilessResponsesWithContentLengthPassThrough(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "9")
		if r.URL.Path == "/not-modified" {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		_, _ = io.WriteString(w, "123456789")
	}))
	defer up.Close()
	cfg := testConfig(up.URL)
	route(cfg, config.RouteDefault, func(rc *config.RouteConfig) { rc.ForwardPaths = []string{"/"} })
	env := startSidecar(t, cfg)
	tests := []struct {
		method, path string
		status       int
	}{
		{"HEAD", "/x", http.StatusOK},
		{"GET", "/not-modified", http.StatusNotModified},
		{"GET", "/x", http.StatusOK},
	}
	for _, tt := range tests {
		resp, body := do(t, newRequest(t, tt.method, env.url+tt.path, nil))
		if resp.StatusCode != tt.status {
			t.Errorf("%s %s: got %d %q, want %d", tt.method, tt.path, resp.StatusCode, body, tt.status)
		}
	}
}
