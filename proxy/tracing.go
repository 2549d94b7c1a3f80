package proxy

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"

	"opscore-sidecar/proxy/config"
	"opscore-sidecar/proxy/otlp"
)

// Tracing holds the sidecar's OpenTelemetry pieces. The W3C trace-context
// propagator is always present, exporter or not, so an incoming
// traceparent is continued and forwarded even when nothing is exported.
// The sidecar uses these instances, never only the globals.
type Tracing struct {
	// Provider creates the spans; Shutdown flushes them.
	Provider *sdktrace.TracerProvider
	// Propagator reads and writes traceparent/tracestate.
	Propagator propagation.TextMapPropagator
	tracer     trace.Tracer
}

// NewTracing builds the tracer provider for cfg: a parent-based sampler
// with cfg.SampleRatio for new traces, and an OTLP/HTTP batch exporter
// (proxy/otlp, which also reads the OTEL_EXPORTER_OTLP_* variables) only
// when cfg.OTLPEndpoint is set; its warnings and failed exports go to
// logger (nil: discarded). extra options are appended (tests add a span
// recorder).
//
// Without an exporter and without extra options no span would ever leave
// the process, so the request path uses idTracer instead of the SDK's
// tracer: the same trace ids, span ids and sampled flags (the traceparent
// sent upstream, the trace_id of the access log and of the exemplars), but
// no span is recorded, which saved about 15 allocations per request (see
// docs/performance.md).
func NewTracing(ctx context.Context, cfg config.TracingConfig, logger *slog.Logger, extra ...sdktrace.TracerProviderOption) (*Tracing, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(attribute.String("service.name", cfg.ServiceName)))
	if err != nil {
		res = resource.Default()
	}
	sampler := sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.SampleRatio))
	opts := []sdktrace.TracerProviderOption{
		sdktrace.WithSampler(sampler),
		sdktrace.WithResource(res),
	}
	exporting := cfg.OTLPEndpoint != ""
	if exporting {
		exp, err := otlp.New(tracesURL(cfg.OTLPEndpoint), otlp.Options{Logger: logger})
		if err != nil {
			return nil, fmt.Errorf("tracing.otlp_endpoint: %w", err)
		}
		// The batch processor hands a failed export to OpenTelemetry's
		// global error handler, which would print it with the standard
		// log package; it goes to the sidecar's own log instead.
		otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
			logger.Warn("tracing: span export failed", "error", err)
		}))
		opts = append(opts, sdktrace.WithBatcher(exp))
	}
	tp := sdktrace.NewTracerProvider(append(opts, extra...)...)
	var tracer trace.Tracer = idTracer{sampler: sampler}
	if exporting || len(extra) > 0 {
		tracer = tp.Tracer("opscore-sidecar/proxy")
	}
	return &Tracing{
		Provider:   tp,
		Propagator: propagation.TraceContext{},
		tracer:     tracer,
	}, nil
}

// idTracer starts spans that are never recorded but carry a real span
// context, as the SDK's tracer does for a span whose provider has no span
// processor: the parent's trace id or a new one, a new span id, and the
// sampled flag the sampler decides (with the parent's tracestate). Start
// options are ignored: the sampler in use (parent-based, trace-id ratio)
// reads neither the kind nor attributes, and the sidecar never asks for a
// new root.
type idTracer struct {
	embedded.Tracer
	sampler sdktrace.Sampler
}

func (t idTracer) Start(ctx context.Context, name string, _ ...trace.SpanStartOption) (context.Context, trace.Span) {
	psc := trace.SpanContextFromContext(ctx)
	tid := psc.TraceID()
	if !tid.IsValid() {
		tid = newTraceID()
	}
	res := t.sampler.ShouldSample(sdktrace.SamplingParameters{ParentContext: ctx, TraceID: tid, Name: name})
	flags := psc.TraceFlags() &^ trace.FlagsSampled
	if res.Decision == sdktrace.RecordAndSample {
		flags |= trace.FlagsSampled
	}
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: newSpanID(), TraceFlags: flags, TraceState: res.Tracestate})
	ctx = trace.ContextWithSpanContext(ctx, sc)
	return ctx, trace.SpanFromContext(ctx)
}

// newTraceID and newSpanID return random non-zero ids. Like the SDK's
// default generator they use a fast non-cryptographic source: ids must be
// unique, not secret.
func newTraceID() trace.TraceID {
	var id trace.TraceID
	for !id.IsValid() {
		hi, lo := rand.Uint64(), rand.Uint64()
		for i := range 8 {
			id[i], id[8+i] = byte(hi>>(56-8*i)), byte(lo>>(56-8*i))
		}
	}
	return id
}

func newSpanID() trace.SpanID {
	var id trace.SpanID
	for !id.IsValid() {
		v := rand.Uint64()
		for i := range 8 {
			id[i] = byte(v >> (56 - 8*i))
		}
	}
	return id
}

// headerCarrier is propagation.HeaderCarrier with the W3C trace-context
// fields stored under their canonical keys directly: http.Header's Get
// and Set canonicalize "traceparent" into a new string on every call.
type headerCarrier http.Header

const (
	keyTraceparent = "Traceparent" // http.CanonicalHeaderKey("traceparent")
	keyTracestate  = "Tracestate"  // http.CanonicalHeaderKey("tracestate")
)

func (c headerCarrier) canonical(key string) string {
	switch key {
	case "traceparent":
		return keyTraceparent
	case "tracestate":
		return keyTracestate
	}
	return http.CanonicalHeaderKey(key)
}

func (c headerCarrier) Get(key string) string {
	if v := c[c.canonical(key)]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func (c headerCarrier) Set(key, value string) { c[c.canonical(key)] = []string{value} }

func (c headerCarrier) Keys() []string { return propagation.HeaderCarrier(c).Keys() }

// tracesURL returns the URL spans are posted to. A collector base URL
// without a path (http://127.0.0.1:4318) gets the OTLP traces path, as
// OTEL_EXPORTER_OTLP_ENDPOINT does; the exporter would otherwise post to
// "/", which collectors answer with 404. A URL with a path is used as given.
func tracesURL(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Path != "" && u.Path != "/") {
		return endpoint
	}
	u.Path = "/v1/traces"
	return u.String()
}

// Shutdown flushes and stops the exporter.
func (t *Tracing) Shutdown(ctx context.Context) error { return t.Provider.Shutdown(ctx) }
