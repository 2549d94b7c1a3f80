package otlp

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
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
	e, err := New(u, Options{LookupEnv: env(map[string]string{
		"OTEL_EXPORTER_OTLP_HEADERS":        "x-general=1, api-key = s%20ecret ",
		"OTEL_EXPORTER_OTLP_TRACES_HEADERS": "api-key=tr%2Caces,x-team=core",
	})})
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
	e, err := New(c.URL+"/v1/traces", Options{LookupEnv: env(map[string]string{"OTEL_EXPORTER_OTLP_COMPRESSION": "gzip"})})
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
	e, err := New(c.URL, Options{})
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
	e, err := New(c.URL, Options{})
	if err != nil {
		t.Fatal(err)
	}
	e.backoff = policy.NewBackoff(retryBase, retryMax, func(n int64) int64 { return n - 1 })
	var clock fakeClock
	clock.install(e)
	err = e.ExportSpans(t.Context(), oneSpan())
	if err == nil || !strings.Contains(err.Error(), "giving up after 4 tries") || !strings.Contains(err.Error(), "collector overloaded") {
		t.Fatalf("err %v, want giving up after 4 tries with the collector's text", err)
	}
	if n := c.count(); n != 4 {
		t.Errorf("%d posts, want 4", n)
	}
	if want := []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second}; !slices.Equal(clock.waits, want) {
		t.Errorf("waits %v, want %v", clock.waits, want)
	}
}

// TestExportPermanentErrors: a 4xx other than 429 is not retried; the
// error names the status and the collector's text but not the password.
func TestExportPermanentErrors(t *testing.T) {
	c := newCollector(t, reply{status: 400, body: "bad span\n"})
	e, err := New(strings.Replace(c.URL, "http://", "http://u:hunter2@", 1), Options{})
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
			e, err := New(c.URL, Options{})
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
	e, err := New(c.URL, Options{LookupEnv: env(map[string]string{"OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "50"})})
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

// fakeClock makes e's waits instant and records them; onWait, when set,
// runs at each wait and returns the channel the wait blocks on (nil: the
// wait ends at once).
type fakeClock struct {
	now    time.Time
	waits  []time.Duration
	onWait func() <-chan time.Time
}

func (f *fakeClock) install(e *Exporter) {
	f.now = time.Date(2026, 12, 3, 18, 0, 0, 0, time.UTC)
	e.now = func() time.Time { return f.now }
	e.after = func(d time.Duration) <-chan time.Time {
		f.waits = append(f.waits, d)
		if f.onWait != nil {
			if ch := f.onWait(); ch != nil {
				return ch
			}
		}
		f.now = f.now.Add(d)
		ch := make(chan time.Time, 1)
		ch <- f.now
		return ch
	}
}

// TestExportRetryAfterOnlyLengthensTheWait: the wait is the backoff or
// the collector's Retry-After, whichever is longer, so "Retry-After: 0"
// (or a date in the past) cannot make the exporter post in a loop.
func TestExportRetryAfterOnlyLengthensTheWait(t *testing.T) {
	c := newCollector(t,
		reply{status: 503, header: map[string]string{"Retry-After": "0"}},
		reply{status: 429, header: map[string]string{"Retry-After": "20"}},
		reply{status: 503, header: map[string]string{"Retry-After": "Mon, 02 Jan 2006 15:04:05 GMT"}},
		reply{status: 200},
	)
	e, err := New(c.URL, Options{})
	if err != nil {
		t.Fatal(err)
	}
	e.backoff = policy.NewBackoff(retryBase, retryMax, func(n int64) int64 { return n - 1 }) // waits at their caps
	var clock fakeClock
	clock.install(e)
	if err := e.ExportSpans(t.Context(), oneSpan()); err != nil {
		t.Fatal(err)
	}
	if want := []time.Duration{5 * time.Second, 20 * time.Second, 20 * time.Second}; !slices.Equal(clock.waits, want) {
		t.Errorf("waits %v, want %v (backoff 5 s, 10 s, 20 s; Retry-After 0, 20 s, a past date)", clock.waits, want)
	}
}

// TestExportStopsWhenTheCallerGivesUp: the batch processor's export
// timeout (ctx) ends a retry wait.
func TestExportStopsWhenTheCallerGivesUp(t *testing.T) {
	c := newCollector(t, reply{status: 503})
	e, err := New(c.URL, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	clock := fakeClock{onWait: func() <-chan time.Time { cancel(); return make(chan time.Time) }}
	clock.install(e)
	err = e.ExportSpans(ctx, oneSpan())
	if err == nil || !strings.Contains(err.Error(), "context canceled while retrying") || !strings.Contains(err.Error(), "503") {
		t.Errorf("err %v, want context canceled while retrying, with the 503", err)
	}
	if n := c.count(); n != 1 {
		t.Errorf("%d posts, want 1", n)
	}
}

// TestShutdownEndsARetryWait: Shutdown during a 30 s Retry-After ends
// ExportSpans at once, and later batches are refused.
func TestShutdownEndsARetryWait(t *testing.T) {
	c := newCollector(t, reply{status: 503, header: map[string]string{"Retry-After": "30"}})
	e, err := New(c.URL, Options{})
	if err != nil {
		t.Fatal(err)
	}
	waiting := make(chan struct{})
	e.after = func(d time.Duration) <-chan time.Time {
		close(waiting)
		return time.After(d)
	}
	done := make(chan error, 1)
	go func() { done <- e.ExportSpans(t.Context(), oneSpan()) }()
	<-waiting
	if err := e.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrShutdown) || !strings.Contains(err.Error(), "while retrying") {
			t.Errorf("err %v, want ErrShutdown while retrying", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ExportSpans still waiting 10 s after Shutdown")
	}
	if err := e.ExportSpans(t.Context(), oneSpan()); !errors.Is(err, ErrShutdown) {
		t.Errorf("after Shutdown: %v, want ErrShutdown", err)
	}
}

// TestShutdownEndsAPost: Shutdown while a post waits for the collector
// ends it, reported as a shutdown, not as a cancelled context.
func TestShutdownEndsAPost(t *testing.T) {
	c := newCollector(t, reply{waitForDone: true})
	e, err := New(c.URL, Options{})
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
		if !errors.Is(err, ErrShutdown) {
			t.Errorf("err %v, want ErrShutdown", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ExportSpans still posting 10 s after Shutdown")
	}
}

// TestExportTLSWithCertificateFromEnv: an https collector whose CA is
// given by OTEL_EXPORTER_OTLP_CERTIFICATE is reached; without it the
// certificate is refused.
func TestExportTLSWithCertificateFromEnv(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake below
	srv.StartTLS()
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	e, err := New(srv.URL, Options{LookupEnv: env(map[string]string{"OTEL_EXPORTER_OTLP_CERTIFICATE": ca})})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.ExportSpans(t.Context(), oneSpan()); err != nil {
		t.Errorf("with the CA: %v", err)
	}
	plain, err := New(srv.URL, Options{LookupEnv: env(nil)})
	if err != nil {
		t.Fatal(err)
	}
	// A certificate that does not verify is not tried again (the exporter
	// keeps its default minute of retries here).
	if err := plain.ExportSpans(t.Context(), oneSpan()); err == nil || !strings.Contains(err.Error(), "certificate") || strings.Contains(err.Error(), "giving up") {
		t.Errorf("without the CA: %v, want a certificate error at the first try", err)
	}
}

// TestExportMutualTLS: CLIENT_CERTIFICATE and CLIENT_KEY are presented to
// a collector that requires a client certificate.
func TestExportMutualTLS(t *testing.T) {
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sidecar"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	certPath, keyPath, caPath := filepath.Join(dir, "client.pem"), filepath.Join(dir, "client-key.pem"), filepath.Join(dir, "ca.pem")
	os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
	clientCert, _ := x509.ParseCertificate(der)
	clients := x509.NewCertPool()
	clients.AddCert(clientCert)

	var peer atomic.Value
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		peer.Store(r.TLS.PeerCertificates[0].Subject.CommonName)
	}))
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: clients}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake below
	srv.StartTLS()
	defer srv.Close()
	os.WriteFile(caPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600)

	e, err := New(srv.URL, Options{LookupEnv: env(map[string]string{
		"OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE": caPath,
		"OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": certPath,
		"OTEL_EXPORTER_OTLP_CLIENT_KEY":         keyPath,
	})})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.ExportSpans(t.Context(), oneSpan()); err != nil {
		t.Fatalf("with the client certificate: %v", err)
	}
	if got, _ := peer.Load().(string); got != "sidecar" {
		t.Errorf("collector saw client certificate %q, want sidecar", got)
	}
	without, err := New(srv.URL, Options{LookupEnv: env(map[string]string{"OTEL_EXPORTER_OTLP_CERTIFICATE": caPath})})
	if err != nil {
		t.Fatal(err)
	}
	without.maxElapsed = 0
	if err := without.ExportSpans(t.Context(), oneSpan()); err == nil {
		t.Errorf("without a client certificate the collector accepted the post")
	}
}

// TestNewRefusesBadSettings: every malformed setting is an error that
// names it; a header's value (often a secret) is never echoed.
func TestNewRefusesBadSettings(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	os.WriteFile(notPEM, []byte("hello"), 0o600)
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	srv.Close()
	validPEM := filepath.Join(dir, "ca.pem")
	os.WriteFile(validPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600)
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
		{"http://c", map[string]string{"OTEL_EXPORTER_OTLP_TIMEOUT": "10s"}, "OTEL_EXPORTER_OTLP_TIMEOUT=\"10s\": want whole milliseconds"},
		{"http://c", map[string]string{"OTEL_EXPORTER_OTLP_TIMEOUT": "0"}, "want whole milliseconds"},
		{"http://c", map[string]string{"OTEL_EXPORTER_OTLP_COMPRESSION": "zstd"}, "OTEL_EXPORTER_OTLP_COMPRESSION=\"zstd\": want gzip or none"},
		{"http://c", map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "a=1,api-key"}, "OTEL_EXPORTER_OTLP_HEADERS: entry 2: want key=value"},
		{"http://c", map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "Authorization: Bearer topsecret"}, "entry 1: want key=value"},
		{"http://c", map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "k=a%01topsecret"}, "header k: the value is not valid"},
		{"http://c", map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "bad key=topsecret"}, "want key=value"},
		{"http://c", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_HEADERS": "k=%zz-topsecret"}, "OTEL_EXPORTER_OTLP_TRACES_HEADERS: header k"},
		{"http://c", map[string]string{"OTEL_EXPORTER_OTLP_CERTIFICATE": filepath.Join(dir, "missing.pem")}, "OTEL_EXPORTER_OTLP_CERTIFICATE: open"},
		{"http://c", map[string]string{"OTEL_EXPORTER_OTLP_CERTIFICATE": notPEM}, "no PEM certificate"},
		{"http://c", map[string]string{"OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": notPEM}, "set without OTEL_EXPORTER_OTLP_[TRACES_]CLIENT_KEY"},
		{"http://c", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY": notPEM}, "set without"},
		{"http://c", map[string]string{"OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": notPEM, "OTEL_EXPORTER_OTLP_CLIENT_KEY": notPEM}, "CLIENT_CERTIFICATE, OTEL_EXPORTER_OTLP_CLIENT_KEY"},
		{"http://c", map[string]string{"OTEL_EXPORTER_OTLP_CERTIFICATE": validPEM}, "the endpoint \"http://c\" is not https"},
	} {
		_, err := New(tt.endpoint, Options{LookupEnv: env(tt.env)})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%q, %v): %v, want an error with %q", tt.endpoint, tt.env, err, tt.want)
		} else if strings.Contains(err.Error(), "topsecret") {
			t.Errorf("New(%q, %v): %v echoes the header value", tt.endpoint, tt.env, err)
		}
	}
	// Set but empty is unset; http/protobuf and none are accepted.
	if _, err := New("http://c", Options{LookupEnv: env(map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": " ", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_COMPRESSION": "none"})}); err != nil {
		t.Errorf("valid settings refused: %v", err)
	}
}

// TestNewWarnsOfAnIgnoredProtocol: another protocol than http/protobuf
// (e.g. grpc, set for an application in the same pod) does not stop the
// sidecar; it is logged and protobuf over HTTP is sent.
func TestNewWarnsOfAnIgnoredProtocol(t *testing.T) {
	for _, v := range []string{"grpc", "http/json"} {
		var log bytes.Buffer
		_, err := New("http://c", Options{
			LookupEnv: env(map[string]string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": v}),
			Logger:    slog.New(slog.NewTextHandler(&log, nil)),
		})
		if err != nil {
			t.Errorf("PROTOCOL=%s: %v, want a warning only", v, err)
		}
		if !strings.Contains(log.String(), "level=WARN") || !strings.Contains(log.String(), "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="+v) {
			t.Errorf("PROTOCOL=%s: log %q, want a warning naming the variable and its value", v, log.String())
		}
	}
}

// TestHeadersRepeatedKeyLastWins, as in the official exporter.
func TestHeadersRepeatedKeyLastWins(t *testing.T) {
	h := http.Header{}
	if err := parseHeaders("k=1,K=2", h); err != nil || len(h["K"]) != 1 || h.Get("K") != "2" {
		t.Errorf("headers %v (err %v), want K: 2 only", h, err)
	}
}
