package proxy

import (
	"context"
	"fmt"
	"net/url"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
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
// with cfg.SampleRatio for new traces, and an OTLP/HTTP batch exporter only
// when cfg.OTLPEndpoint is set. extra options are appended (tests add a
// span recorder).
func NewTracing(ctx context.Context, cfg TracingConfig, extra ...sdktrace.TracerProviderOption) (*Tracing, error) {
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(attribute.String("service.name", cfg.ServiceName)))
	if err != nil {
		res = resource.Default()
	}
	opts := []sdktrace.TracerProviderOption{
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.SampleRatio))),
		sdktrace.WithResource(res),
	}
	if cfg.OTLPEndpoint != "" {
		exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(tracesURL(cfg.OTLPEndpoint)))
		if err != nil {
			return nil, fmt.Errorf("tracing.otlp_endpoint: %w", err)
		}
		opts = append(opts, sdktrace.WithBatcher(exp))
	}
	tp := sdktrace.NewTracerProvider(append(opts, extra...)...)
	return &Tracing{
		Provider:   tp,
		Propagator: propagation.TraceContext{},
		tracer:     tp.Tracer("opscore-sidecar/proxy"),
	}, nil
}

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
