package otlp

import (
	"bytes"
	"compress/gzip"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"opscore-sidecar/policy"
)

func env(kv map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := kv[k]; return v, ok }
}

func oneSpan() []sdktrace.ReadOnlySpan {
	return tracetest.SpanStubs{{
		Name:        "one",
		SpanContext: trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1}}),
	}}.Snapshots()
}

// collector records each POST and answers with the reply for that
// POST's number (the last reply repeats).
type collector struct {
	*httptest.Server
	mu    sync.Mutex
	posts []*http.Request
	body  [][]byte
}

type reply struct {
	status      int
	header      map[string]string
	body        string
	hangUp      bool // close the connection without answering
	waitForDone bool // answer only when the client gives up
}

func newCollector(t *testing.T, replies ...reply) *collector {
	c := &collector{}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		c.mu.Lock()
		n := len(c.posts)
		c.posts = append(c.posts, r)
		c.body = append(c.body, b)
		c.mu.Unlock()
		rep := reply{status: 200}
		if len(replies) > 0 {
			rep = replies[min(n, len(replies)-1)]
		}
		if rep.hangUp {
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
			return
		}
		if rep.waitForDone {
			<-r.Context().Done()
			return
		}
		for k, v := range rep.header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(rep.status)
		io.WriteString(w, rep.body)
	}))
	t.Cleanup(c.Close)
	return c
}

func (c *collector) count() int { c.mu.Lock(); defer c.mu.Unlock(); return len(c.posts) }

// noWait makes every retry wait zero long (full jitter drawn at 0).
func noWait(e *Exporter) {
	e.backoff = policy.NewBackoff(retryBase, retryMax, func(int64) int64 { return 0 })
}

func TestExportPostsProtobufWithHeadersAndBasicAuth(t *testing.T) {
	c := newCollector(t)
	u := strings.Replace(c.URL, "http://", "http://user:p%40ss@", 1) + "/v1/traces"
	e, err := New(u, env(map[string]string{
		"OTEL_EXPORTER_OTLP_HEADERS":        "x-general=1, api-key = s%20ecret ",
		"OTEL_EXPORTER_OTLP_TRACES_HEADERS": "api-key=tr%2Caces,x-team=core",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.ExportSpans(t.Context(), oneSpan()); err != nil {
		t.Fatal(err)
	}
	r := c.posts[0]
	if r.Method != "POST" || r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
		t.Errorf("got %s %s, Content-Type %q", r.Method, r.URL.Path, r.Header.Get("Content-Type"))
	}
	// The traces-specific variable replaces the general one.
	if got := r.Header.Get("Api-Key"); got != "tr,aces" || r.Header.Get("X-Team") != "core" || r.Header.Get("X-General") != "" {
		t.Errorf("headers %v, want api-key tr,aces and x-team core only", r.Header)
	}
	if user, pass, ok := r.BasicAuth(); !ok || user != "user" || pass != "p@ss" {
		t.Errorf("basic auth %q %q %v, want the URL's user and password", user, pass, ok)
	}
	var req coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(c.body[0], &req); err != nil || req.ResourceSpans[0].ScopeSpans[0].Spans[0].Name != "one" {
		t.Errorf("body does not decode to the span: %v", err)
	}
}

func TestExportGzip(t *testing.T) {
	c := newCollector(t)
	e, err := New(c.URL+"/v1/traces", env(map[string]string{"OTEL_EXPORTER_OTLP_COMPRESSION": "gzip"}))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.ExportSpans(t.Context(), oneSpan()); err != nil {
		t.Fatal(err)
	}
	if got := c.posts[0].Header.Get("Content-Encoding"); got != "gzip" {
		t.Fatalf("Content-Encoding %q, want gzip", got)
	}
	zr, err := gzip.NewReader(bytes.NewReader(c.body[0]))
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := io.ReadAll(zr)
	if !bytes.Equal(plain, AppendRequest(nil, oneSpan())) {
		t.Errorf("gunzipped body differs from the encoded request")
	}
}

// TestExportRetries: 503 (with Retry-After), 429, a connection closed
// without an answer and 502 are all tried again, and the batch arrives.
func TestExportRetries(t *testing.T) {
	c := newCollector(t,
		reply{status: 503, header: map[string]string{"Retry-After": "0"}},
		reply{status: 429},
		reply{hangUp: true},
		reply{status: 502},
		reply{status: 200},
	)
	e, err := New(c.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	noWait(e)
	if err := e.ExportSpans(t.Context(), oneSpan()); err != nil {
		t.Fatalf("ExportSpans: %v", err)
	}
	if n := c.count(); n != 5 {
		t.Errorf("%d posts, want 5", n)
	}
	for i := 1; i < len(c.body); i++ {
		if !bytes.Equal(c.body[i], c.body[0]) {
			t.Errorf("post %d's body differs from the first", i+1)
		}
	}
}

// TestExportGivesUpAfterAMinute, in fake time: waits drawn at their cap
// (5 s, 10 s, 20 s, then 30 s) stop before a wait would end past a
// minute from the first try.
func TestExportGivesUpAfterAMinute(t *testing.T) {
	c := newCollector(t, reply{status: 503, body: "collector overloaded"})
	e, err := New(c.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.backoff = policy.NewBackoff(retryBase, retryMax, func(n int64) int64 { return n - 1 })
	now := time.Unix(1000, 0)
	var waits []time.Duration
	e.now = func() time.Time { return now }
	e.after = func(d time.Duration) <-chan time.Time {
		waits = append(waits, d)
		now = now.Add(d)
		ch := make(chan time.Time, 1)
		ch <- now
		return ch
	}
	err = e.ExportSpans(t.Context(), oneSpan())
	if err == nil || !strings.Contains(err.Error(), "giving up after 4 tries") || !strings.Contains(err.Error(), "collector overloaded") {
		t.Fatalf("err %v, want giving up after 4 tries with the collector's text", err)
	}
	if n := c.count(); n != 4 {
		t.Errorf("%d posts, want 4", n)
	}
	if want := []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second}; !slicesEqual(waits, want) {
		t.Errorf("waits %v, want %v", waits, want)
	}
}

func slicesEqual(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestExportPermanentErrors: a 4xx other than 429 is not retried; the
// error names the status and the collector's text but not the password.
func TestExportPermanentErrors(t *testing.T) {
	c := newCollector(t, reply{status: 400, body: "bad span\n"})
	e, err := New(strings.Replace(c.URL, "http://", "http://u:hunter2@", 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	noWait(e)
	err = e.ExportSpans(t.Context(), oneSpan())
	if err == nil || !strings.Contains(err.Error(), "400 Bad Request: bad span") || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("err %v, want the 400 and its text, without the password", err)
	}
	if n := c.count(); n != 1 {
		t.Errorf("%d posts, want 1", n)
	}
}

// TestExportPartialSuccess: a 2xx that reports rejected spans, in
// protobuf or JSON, is an error; an empty or unknown answer is success.
func TestExportPartialSuccess(t *testing.T) {
	pb, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{
		PartialSuccess: &coltracepb.ExportTracePartialSuccess{RejectedSpans: 3, ErrorMessage: "too old"},
	})
	empty, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{PartialSuccess: &coltracepb.ExportTracePartialSuccess{}})
	for _, tt := range []struct {
		name, ctype, body, want string
	}{
		{"protobuf", "application/x-protobuf", string(pb), "rejected 3 spans: too old"},
		{"json", "application/json; charset=utf-8", `{"partialSuccess":{"rejectedSpans":"2","errorMessage":"late"}}`, "rejected 2 spans: late"},
		{"json number", "application/json", `{"partialSuccess":{"rejectedSpans":4}}`, "rejected 4 spans"},
		{"protobuf, nothing rejected", "application/x-protobuf", string(empty), ""},
		{"json, empty", "application/json", `{}`, ""},
		{"text", "text/plain", "ok", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := newCollector(t, reply{status: 200, header: map[string]string{"Content-Type": tt.ctype}, body: tt.body})
			e, err := New(c.URL, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = e.ExportSpans(t.Context(), oneSpan())
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("err %v, want %q", err, tt.want)
			}
			if n := c.count(); n != 1 {
				t.Errorf("%d posts, want 1 (a partial success is not retried)", n)
			}
		})
	}
}

// TestExportTimeout: OTEL_EXPORTER_OTLP_TIMEOUT bounds one POST.
func TestExportTimeout(t *testing.T) {
	c := newCollector(t, reply{waitForDone: true})
	e, err := New(c.URL, env(map[string]string{"OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "50"}))
	if err != nil {
		t.Fatal(err)
	}
	e.maxElapsed = 0 // no second try
	start := time.Now()
	err = e.ExportSpans(t.Context(), oneSpan())
	if err == nil || !strings.Contains(err.Error(), "giving up after 1 tries") {
		t.Fatalf("err %v, want a timed-out POST", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v; the 50 ms timeout was not applied", d)
	}
}

// TestShutdownEndsARetryWait: Shutdown during a 30 s Retry-After ends
// ExportSpans at once, and later batches are refused.
func TestShutdownEndsARetryWait(t *testing.T) {
	c := newCollector(t, reply{status: 503, header: map[string]string{"Retry-After": "30"}})
	e, err := New(c.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- e.ExportSpans(t.Context(), oneSpan()) }()
	for c.count() == 0 {
		time.Sleep(time.Millisecond)
	}
	if err := e.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "shut down while retrying") {
			t.Errorf("err %v, want shut down while retrying", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ExportSpans still waiting 10 s after Shutdown")
	}
	if err := e.ExportSpans(t.Context(), oneSpan()); !errors.Is(err, ErrShutdown) {
		t.Errorf("after Shutdown: %v, want ErrShutdown", err)
	}
}

// TestExportTLSWithCertificateFromEnv: an https collector whose CA is
// given by OTEL_EXPORTER_OTLP_CERTIFICATE is reached; without it the
// certificate is refused.
func TestExportTLSWithCertificateFromEnv(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	e, err := New(srv.URL, env(map[string]string{"OTEL_EXPORTER_OTLP_CERTIFICATE": ca}))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.ExportSpans(t.Context(), oneSpan()); err != nil {
		t.Errorf("with the CA: %v", err)
	}
	plain, err := New(srv.URL, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	plain.maxElapsed = 0
	if err := plain.ExportSpans(t.Context(), oneSpan()); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("without the CA: %v, want a certificate error", err)
	}
}

// TestNewRefusesBadSettings: every malformed setting is an error that
// names it; a header's value (often a secret) is never echoed.
func TestNewRefusesBadSettings(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	os.WriteFile(notPEM, []byte("hello"), 0o600)
	for _, tt := range []struct {
		endpoint string
		env      map[string]string
		want     string
	}{
		{"collector:4318", nil, "want an http(s) URL"},
		{"ftp://collector", nil, "want an http(s) URL"},
		{"http://", nil, "want an http(s) URL"},
		{"http://u:topsecret@c/%zz", nil, "does not parse as a URL"},
		{"ftp://u:topsecret@c", nil, "ftp://u:xxxxx@c"},
		{"http://c", map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "OTEL_EXPORTER_OTLP_PROTOCOL=\"grpc\": the sidecar sends OTLP as http/protobuf only"},
		{"http://c", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"}, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"},
		{"http://c", map[string]string{"OTEL_EXPORTER_OTLP_TIMEOUT": "10s"}, "OTEL_EXPORTER_OTLP_TIMEOUT=\"10s\": want whole milliseconds"},
		{"http://c", map[string]string{"OTEL_EXPORTER_OTLP_TIMEOUT": "0"}, "want whole milliseconds"},
		{"http://c", map[string]string{"OTEL_EXPORTER_OTLP_COMPRESSION": "zstd"}, "OTEL_EXPORTER_OTLP_COMPRESSION=\"zstd\": want gzip or none"},
		{"http://c", map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "api-key"}, "OTEL_EXPORTER_OTLP_HEADERS: entry \"api-key\""},
		{"http://c", map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "bad key=topsecret"}, "want key=value"},
		{"http://c", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_HEADERS": "k=%zz-topsecret"}, "OTEL_EXPORTER_OTLP_TRACES_HEADERS: header k"},
		{"http://c", map[string]string{"OTEL_EXPORTER_OTLP_CERTIFICATE": filepath.Join(dir, "missing.pem")}, "OTEL_EXPORTER_OTLP_CERTIFICATE: open"},
		{"http://c", map[string]string{"OTEL_EXPORTER_OTLP_CERTIFICATE": notPEM}, "no PEM certificate"},
		{"http://c", map[string]string{"OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": notPEM}, "set without OTEL_EXPORTER_OTLP_[TRACES_]CLIENT_KEY"},
		{"http://c", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY": notPEM}, "set without"},
		{"http://c", map[string]string{"OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": notPEM, "OTEL_EXPORTER_OTLP_CLIENT_KEY": notPEM}, "CLIENT_CERTIFICATE, OTEL_EXPORTER_OTLP_CLIENT_KEY"},
	} {
		_, err := New(tt.endpoint, env(tt.env))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%q, %v): %v, want an error with %q", tt.endpoint, tt.env, err, tt.want)
		} else if strings.Contains(err.Error(), "topsecret") {
			t.Errorf("New(%q, %v): %v echoes the header value", tt.endpoint, tt.env, err)
		}
	}
	// Set but empty is unset; http/protobuf and none are accepted.
	if _, err := New("http://c", env(map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": " ", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_COMPRESSION": "none"})); err != nil {
		t.Errorf("valid settings refused: %v", err)
	}
}
