// Package otlp sends the sidecar's spans to an OpenTelemetry collector
// over OTLP/HTTP in the binary protobuf encoding, the one encoding every
// OTLP/HTTP receiver must accept.
//
// It replaces the official exporter (otlptracehttp) for one reason: that
// exporter links the generated OTLP collector package, which brings all of
// gRPC, grpc-gateway and the protobuf runtime into the binary, 16 MB of
// executable and about 4 MiB of resident memory that the sidecar paid for
// whether or not tracing.otlp_endpoint was set (docs/performance.md, "Third
// round"). The encoding (encode.go) writes the same messages with
// protowire alone, and encode_test.go checks it field for field against the
// official exporter's output. The OTEL_EXPORTER_OTLP_* variables the
// official exporter reads are read here too, see New; the batching stays
// with the SDK's BatchSpanProcessor.
package otlp

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/protobuf/encoding/protowire"

	"opscore-sidecar/policy"
)

// Defaults, as the official exporter has them.
const (
	// DefaultTimeout bounds one POST (OTEL_EXPORTER_OTLP_TIMEOUT).
	DefaultTimeout = 10 * time.Second
	// Retries of a batch wait with full jitter up to 5 s, doubling to at
	// most 30 s, and stop once a minute has passed since the first try.
	retryBase       = 5 * time.Second
	retryMax        = 30 * time.Second
	retryMaxElapsed = time.Minute
	// maxResponseBody is as much of a collector's answer as is read: a
	// partial-success message or an error text.
	maxResponseBody = 64 << 10
)

// ErrShutdown is returned by ExportSpans after Shutdown, and when Shutdown
// ends a batch that was being sent.
var ErrShutdown = errors.New("otlp: exporter is shut down")

// Options are New's optional inputs.
type Options struct {
	// LookupEnv reads the environment; nil means os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// Logger receives the warnings of New (a variable that is ignored);
	// nil discards them.
	Logger *slog.Logger
}

// Exporter is an sdktrace.SpanExporter that posts each batch as one
// ExportTraceServiceRequest. It is safe for concurrent use.
type Exporter struct {
	url      string // as configured; the request URL
	redacted string // for errors: without a password
	client   *http.Client
	headers  http.Header
	gzip     bool

	backoff    *policy.Backoff
	maxElapsed time.Duration
	now        func() time.Time
	after      func(time.Duration) <-chan time.Time

	stop   context.Context // cancelled by Shutdown: ends a retry wait or a POST
	cancel context.CancelFunc
}

// New returns an exporter posting to endpoint, a full http(s) URL such as
// http://127.0.0.1:4318/v1/traces. A user and password in the URL are
// sent as basic authentication.
//
// These variables are honoured, each OTEL_EXPORTER_OTLP_TRACES_<X> over
// its OTEL_EXPORTER_OTLP_<X>:
//
//   - HEADERS: key=value pairs separated by commas, values URL-encoded,
//     sent with every POST (e.g. an API key);
//   - TIMEOUT: milliseconds one POST may take (default 10000);
//   - COMPRESSION: gzip or none (default none);
//   - CERTIFICATE: a PEM file of the CAs that verify an https collector;
//   - CLIENT_CERTIFICATE and CLIENT_KEY: PEM files of the client
//     certificate for mutual TLS, both or neither;
//   - PROTOCOL: any other value than http/protobuf is logged and ignored,
//     as the official exporter does with grpc: the endpoint is an HTTP URL,
//     and every OTLP/HTTP receiver accepts protobuf.
//
// The ENDPOINT and INSECURE variables are not read: tracing.otlp_endpoint
// is the endpoint, with its scheme. A malformed value is an error that
// names the variable, never ignored; so are certificates for an http://
// endpoint.
func New(endpoint string, opts Options) (*Exporter, error) {
	lookupEnv := opts.LookupEnv
	if lookupEnv == nil {
		lookupEnv = os.LookupEnv
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		// Not echoed: it may hold a password that url.Redacted cannot find.
		return nil, errors.New("otlp: the endpoint does not parse as a URL; want an http(s) URL")
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("otlp: endpoint %q: want an http(s) URL", u.Redacted())
	}
	e := &Exporter{
		url:        endpoint,
		redacted:   u.Redacted(),
		headers:    http.Header{},
		backoff:    policy.NewBackoff(retryBase, retryMax, nil),
		maxElapsed: retryMaxElapsed,
		now:        time.Now,
		after:      time.After,
	}
	env := func(name string) (value, key string, ok bool) {
		for _, k := range []string{"OTEL_EXPORTER_OTLP_TRACES_" + name, "OTEL_EXPORTER_OTLP_" + name} {
			if v, ok := lookupEnv(k); ok && strings.TrimSpace(v) != "" {
				return strings.TrimSpace(v), k, true
			}
		}
		return "", "", false
	}
	if v, k, ok := env("PROTOCOL"); ok && v != "http/protobuf" {
		logger.Warn("tracing: "+k+" is ignored; the sidecar sends OTLP as http/protobuf, which every OTLP/HTTP receiver accepts", k, v)
	}
	if v, k, ok := env("HEADERS"); ok {
		if err := parseHeaders(v, e.headers); err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
	}
	timeout := DefaultTimeout
	if v, k, ok := env("TIMEOUT"); ok {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil || ms <= 0 || ms > int64(time.Hour/time.Millisecond) {
			return nil, fmt.Errorf("%s=%q: want whole milliseconds, 1 to 3600000", k, v)
		}
		timeout = time.Duration(ms) * time.Millisecond
	}
	if v, k, ok := env("COMPRESSION"); ok {
		switch v {
		case "gzip":
			e.gzip = true
		case "none":
		default:
			return nil, fmt.Errorf("%s=%q: want gzip or none", k, v)
		}
	}
	tlsConf, err := tlsFromEnv(env)
	if err != nil {
		return nil, err
	}
	if tlsConf != nil && u.Scheme != "https" {
		return nil, fmt.Errorf("otlp: certificates are set in OTEL_EXPORTER_OTLP_[TRACES_]CERTIFICATE or CLIENT_*, but the endpoint %q is not https", u.Redacted())
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	if tlsConf != nil {
		transport.TLSClientConfig = tlsConf
	}
	e.client = &http.Client{Transport: transport, Timeout: timeout}
	e.stop, e.cancel = context.WithCancel(context.Background())
	return e, nil
}

// parseHeaders reads OTEL_EXPORTER_OTLP_HEADERS' format into h. A value
// is not echoed in an error: it is often a secret.
func parseHeaders(v string, h http.Header) error {
	n := 0
	for pair := range strings.SplitSeq(v, ",") {
		if strings.TrimSpace(pair) == "" {
			continue
		}
		n++
		key, value, found := strings.Cut(pair, "=")
		key = strings.TrimSpace(key)
		if !found || !validHeaderName(key) {
			// The entry is named by its place: without a valid key=value
			// split, any part of it may be the secret.
			return fmt.Errorf("entry %d: want key=value with a header name as key", n)
		}
		dec, err := url.PathUnescape(strings.TrimSpace(value))
		if err != nil || !validHeaderValue(dec) {
			return fmt.Errorf("header %s: the value is not valid URL-encoded text without control characters", key)
		}
		h.Set(key, dec) // a repeated key: the last one counts
	}
	return nil
}

// validHeaderValue: no control character but horizontal tab, as RFC 9110
// and net/http's transport ask; anything else would fail every post.
func validHeaderValue(s string) bool {
	for _, c := range []byte(s) {
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func tlsFromEnv(env func(string) (string, string, bool)) (*tls.Config, error) {
	var conf *tls.Config
	if path, k, ok := env("CERTIFICATE"); ok {
		pem, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s=%q: no PEM certificate in the file", k, path)
		}
		conf = &tls.Config{RootCAs: pool}
	}
	cert, kc, okc := env("CLIENT_CERTIFICATE")
	key, kk, okk := env("CLIENT_KEY")
	switch {
	case okc && okk:
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("%s, %s: %w", kc, kk, err)
		}
		if conf == nil {
			conf = &tls.Config{}
		}
		conf.Certificates = []tls.Certificate{pair}
	case okc:
		return nil, fmt.Errorf("%s is set without OTEL_EXPORTER_OTLP_[TRACES_]CLIENT_KEY", kc)
	case okk:
		return nil, fmt.Errorf("%s is set without OTEL_EXPORTER_OTLP_[TRACES_]CLIENT_CERTIFICATE", kk)
	}
	return conf, nil
}

// ExportSpans posts spans as one request. A collector that answers 429,
// 502, 503 or 504, or that cannot be reached, is tried again after a
// backoff (lengthened to its Retry-After) until a minute has passed, ctx
// ends or the exporter shuts down. With the SDK's batch processor ctx
// ends first: its export timeout is 30 s (OTEL_BSP_EXPORT_TIMEOUT). Any
// other answer than 2xx is an error with the collector's text; a 2xx that
// reports rejected spans (partial success) is an error too, so that the
// SDK reports it.
func (e *Exporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	if e.stopping() {
		return ErrShutdown
	}
	body := AppendRequest(nil, spans)
	if len(body) == 0 {
		return nil
	}
	if e.gzip {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		if _, err := zw.Write(body); err != nil {
			return err
		}
		if err := zw.Close(); err != nil {
			return err
		}
		body = buf.Bytes()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(e.stop, cancel)()

	start := e.now()
	for attempt := 1; ; attempt++ {
		err := e.post(ctx, body)
		if err != nil && e.stopping() {
			return fmt.Errorf("%w: %w", ErrShutdown, err)
		}
		var re *retryableError
		if err == nil || !errors.As(err, &re) {
			return err
		}
		// A collector's Retry-After can lengthen the wait, never shorten
		// it: "Retry-After: 0" must not make the loop spin.
		wait := e.backoff.Delay(attempt)
		if re.hasAfter {
			wait = max(wait, re.after)
		}
		if e.now().Add(wait).Sub(start) > e.maxElapsed {
			return fmt.Errorf("otlp: giving up after %d tries: %w", attempt, re.err)
		}
		select {
		case <-e.after(wait):
		case <-ctx.Done():
			if e.stopping() {
				return fmt.Errorf("%w while retrying: %w", ErrShutdown, re.err)
			}
			return fmt.Errorf("otlp: %w while retrying: %w", ctx.Err(), re.err)
		}
	}
}

// certificateError says err is a TLS certificate that did not verify.
func certificateError(err error) bool {
	var ve *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	return errors.As(err, &ve) || errors.As(err, &ua) || errors.As(err, &he) || errors.As(err, &ci)
}

// retryableError is a failed POST that may succeed later.
type retryableError struct {
	err      error
	after    time.Duration
	hasAfter bool
}

func (r *retryableError) Error() string { return r.err.Error() }
func (r *retryableError) Unwrap() error { return r.err }

func (e *Exporter) post(ctx context.Context, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("otlp: %w", err)
	}
	for k, v := range e.headers {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	if e.gzip {
		req.Header.Set("Content-Encoding", "gzip")
	}
	req.Header.Set("User-Agent", "opscore-sidecar OTLP exporter")
	resp, err := e.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("otlp: post to %s: %w", e.redacted, ctx.Err())
		}
		// The url.Error names the URL, which may hold a password.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		err = fmt.Errorf("otlp: post to %s: %w", e.redacted, err)
		if certificateError(err) {
			return err // the same certificate fails the same way again
		}
		// Refused, reset or timed out: the collector may be restarting.
		return &retryableError{err: err}
	}
	defer resp.Body.Close()
	text, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	if err != nil && resp.StatusCode/100 != 2 {
		text = nil
	}
	if resp.StatusCode/100 == 2 {
		return partialSuccess(resp.Header.Get("Content-Type"), text)
	}
	msg := strings.TrimSpace(string(text))
	if msg == "" {
		msg = "(empty)"
	}
	err = fmt.Errorf("otlp: post to %s: %s: %s", e.redacted, resp.Status, truncate(msg, 512))
	switch resp.StatusCode {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		re := &retryableError{err: err}
		re.after, re.hasAfter = policy.ParseRetryAfter(resp.Header.Get("Retry-After"), e.now())
		return re
	}
	return err
}

// partialSuccess reads an ExportTraceServiceResponse, in protobuf or
// JSON, and returns an error when it reports rejected spans or a message.
// An answer in another type (or none) is a plain success.
func partialSuccess(contentType string, body []byte) error {
	if len(body) == 0 {
		return nil
	}
	var rejected int64
	var msg string
	switch strings.TrimSpace(strings.Split(contentType, ";")[0]) {
	case "application/x-protobuf":
		ps, ok := protoField(body, fResponsePartialSuccess, protowire.BytesType)
		if !ok {
			return nil
		}
		if v, ok := protoField(ps, fPartialRejectedSpans, protowire.VarintType); ok {
			n, _ := protowire.ConsumeVarint(v)
			rejected = int64(n)
		}
		if v, ok := protoField(ps, fPartialErrorMessage, protowire.BytesType); ok {
			msg = string(v)
		}
	case "application/json":
		var r struct {
			PartialSuccess struct {
				RejectedSpans json.RawMessage `json:"rejectedSpans"`
				ErrorMessage  string          `json:"errorMessage"`
			} `json:"partialSuccess"`
		}
		if err := json.Unmarshal(body, &r); err != nil {
			return fmt.Errorf("otlp: the collector's JSON answer: %w", err)
		}
		// proto3 JSON writes an int64 as a string; a number is accepted too.
		rejected, _ = strconv.ParseInt(strings.Trim(string(r.PartialSuccess.RejectedSpans), `"`), 10, 64)
		msg = r.PartialSuccess.ErrorMessage
	default:
		return nil
	}
	if rejected == 0 && msg == "" {
		return nil
	}
	return fmt.Errorf("otlp: the collector rejected %d spans: %s", rejected, truncate(msg, 512))
}

// protoField returns the content of the last field num of wire type typ
// in a protobuf message (for a varint, its encoded bytes), skipping all
// others. Malformed input ends the search.
func protoField(b []byte, num protowire.Number, typ protowire.Type) ([]byte, bool) {
	var found []byte
	ok := false
	for len(b) > 0 {
		n, t, tagLen := protowire.ConsumeTag(b)
		if tagLen < 0 {
			break
		}
		valLen := protowire.ConsumeFieldValue(n, t, b[tagLen:])
		if valLen < 0 {
			break
		}
		if n == num && t == typ {
			v := b[tagLen : tagLen+valLen]
			if t == protowire.BytesType {
				v, _ = protowire.ConsumeBytes(v)
			}
			found, ok = v, true
		}
		b = b[tagLen+valLen:]
	}
	return found, ok
}

// Shutdown stops the exporter: a batch being sent or waiting to be sent
// again is abandoned, and later calls to ExportSpans fail. The SDK's
// batch processor flushes its queue through ExportSpans before it calls
// Shutdown.
func (e *Exporter) Shutdown(context.Context) error {
	e.cancel()
	e.client.CloseIdleConnections()
	return nil
}

// stopping says Shutdown has been called.
func (e *Exporter) stopping() bool { return e.stop.Err() != nil }
