package otlp

import (
	"bytes"
	"cmp"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
)

// testSpans covers every field AppendRequest writes: two resources (one
// with a schema URL), scopes with and without version, attributes and
// schema URL, the zero scope, a remote and a local parent, tracestate,
// every kind, every status, events, links, dropped counts and every
// attribute type, including the zero values a oneof must still carry.
func testSpans(t *testing.T) []sdktrace.ReadOnlySpan {
	t.Helper()
	resA := resource.NewWithAttributes("https://opentelemetry.io/schemas/1.26.0",
		attribute.String("service.name", "opscore-sidecar"), attribute.Int("pid", 42))
	resB := resource.NewSchemaless(attribute.String("service.name", "other"))
	ts, err := trace.ParseTraceState("vendor=abc,other=1")
	if err != nil {
		t.Fatal(err)
	}
	sc := func(tid, sid byte, flags trace.TraceFlags, remote bool, state trace.TraceState) trace.SpanContext {
		return trace.NewSpanContext(trace.SpanContextConfig{
			TraceID: trace.TraceID{tid, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
			SpanID:  trace.SpanID{sid, 1, 2, 3, 4, 5, 6, 7}, TraceFlags: flags, Remote: remote, TraceState: state,
		})
	}
	every := []attribute.KeyValue{
		attribute.String("s", "v"), attribute.String("s0", ""),
		attribute.Bool("b", true), attribute.Bool("b0", false),
		attribute.Int64("i", -7), attribute.Int64("i0", 0), attribute.Int64("imax", 1<<62),
		attribute.Float64("f", 1.5), attribute.Float64("f0", 0),
		attribute.ByteSlice("bytes", []byte{0, 1, 255}), attribute.ByteSlice("bytes0", []byte{}),
		attribute.BoolSlice("bs", []bool{true, false}), attribute.Int64Slice("is", []int64{0, 3, -1}),
		attribute.Float64Slice("fs", []float64{0, 2.25}), attribute.StringSlice("ss", []string{"", "x"}),
		attribute.StringSlice("ss0", nil),
		attribute.Slice("mixed", attribute.StringValue("a"), attribute.IntValue(0), attribute.SliceValue(attribute.BoolValue(false))),
		attribute.Map("m", attribute.String("k", "v"), attribute.Map("inner", attribute.Int("n", 1))),
		{Key: "empty"},
	}
	t0 := time.Date(2026, 12, 3, 18, 0, 0, 123456789, time.UTC)
	scopeFull := instrumentation.Scope{Name: "opscore-sidecar/proxy", Version: "1.2.3", SchemaURL: "https://example/s",
		Attributes: attribute.NewSet(attribute.String("scope.attr", "x"))}
	stubs := tracetest.SpanStubs{
		{
			Name: "POST state_update", SpanContext: sc(1, 1, trace.FlagsSampled, false, ts), Parent: sc(1, 9, trace.FlagsSampled, true, ts),
			SpanKind: trace.SpanKindServer, StartTime: t0, EndTime: t0.Add(1500 * time.Microsecond),
			Attributes: every, Status: sdktrace.Status{Code: codes.Error, Description: "upstream 503"},
			Events: []sdktrace.Event{
				{Name: "retry", Time: t0.Add(time.Millisecond), Attributes: []attribute.KeyValue{attribute.Int("attempt", 2)}, DroppedAttributeCount: 3},
				{Name: "bare", Time: t0},
			},
			Links: []sdktrace.Link{
				{SpanContext: sc(7, 7, 0, true, trace.TraceState{}), Attributes: []attribute.KeyValue{attribute.String("why", "outbox")}, DroppedAttributeCount: 1},
				{SpanContext: sc(8, 8, trace.FlagsSampled, false, trace.TraceState{})},
			},
			DroppedAttributes: 2, DroppedEvents: 4, DroppedLinks: 5,
			Resource: resA, InstrumentationScope: scopeFull,
		},
		{
			Name: "attempt", SpanContext: sc(1, 2, trace.FlagsSampled, false, trace.TraceState{}), Parent: sc(1, 1, trace.FlagsSampled, false, trace.TraceState{}),
			SpanKind: trace.SpanKindClient, StartTime: t0, EndTime: t0.Add(time.Millisecond),
			Status: sdktrace.Status{Code: codes.Ok}, Resource: resA, InstrumentationScope: instrumentation.Scope{Name: "opscore-sidecar/proxy"},
		},
		{
			Name: "no scope", SpanContext: sc(2, 3, 0, false, trace.TraceState{}), SpanKind: trace.SpanKindInternal,
			StartTime: t0, EndTime: t0, Resource: resA,
		},
		{
			Name: "other resource", SpanContext: sc(3, 4, trace.FlagsSampled, false, trace.TraceState{}), SpanKind: trace.SpanKindProducer,
			StartTime: t0, EndTime: t0, Resource: resB, InstrumentationScope: scopeFull,
		},
		{
			Name: "consumer, same scope again", SpanContext: sc(1, 5, trace.FlagsSampled, false, trace.TraceState{}), SpanKind: trace.SpanKindConsumer,
			StartTime: time.Unix(0, 0).Add(-time.Second), EndTime: t0, Resource: resA, InstrumentationScope: scopeFull,
		},
		{
			Name: "unspecified", SpanContext: sc(4, 6, 0, false, trace.TraceState{}), StartTime: t0, EndTime: t0, Resource: resB,
		},
	}
	return stubs.Snapshots()
}

// officialRequest posts spans with the official OTLP/HTTP exporter to a
// test collector and returns the request it received.
func officialRequest(t *testing.T, spans []sdktrace.ReadOnlySpan) *coltracepb.ExportTraceServiceRequest {
	t.Helper()
	var mu sync.Mutex
	var body []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		body = b
		mu.Unlock()
	}))
	defer srv.Close()
	exp, err := otlptracehttp.New(t.Context(), otlptracehttp.WithEndpointURL(srv.URL+"/v1/traces"))
	if err != nil {
		t.Fatal(err)
	}
	if err := exp.ExportSpans(t.Context(), spans); err != nil {
		t.Fatalf("official exporter: %v", err)
	}
	_ = exp.Shutdown(t.Context())
	mu.Lock()
	defer mu.Unlock()
	var req coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(body, &req); err != nil {
		t.Fatalf("official exporter's body: %v", err)
	}
	return &req
}

// TestAppendRequestMatchesTheOfficialExporter decodes what AppendRequest
// writes with the generated OTLP types and compares it, message for
// message, with what the official exporter posts for the same spans. The
// official exporter orders resources by map iteration, so resources are
// compared in a sorted order. It also leaves a link's tracestate out,
// which AppendRequest writes: the links here have none, and
// TestAppendRequestLinkTraceState checks one that has.
func TestAppendRequestMatchesTheOfficialExporter(t *testing.T) {
	spans := testSpans(t)
	want := officialRequest(t, spans)

	raw := AppendRequest(nil, spans)
	var got coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(raw, &got); err != nil {
		t.Fatalf("AppendRequest wrote what does not decode: %v", err)
	}
	// Field order and minimal varints: the generated code's deterministic
	// encoding of the decoded message is the same bytes.
	if again, err := (proto.MarshalOptions{Deterministic: true}).Marshal(&got); err != nil || !bytes.Equal(again, raw) {
		t.Errorf("AppendRequest's bytes are not the canonical encoding of what they decode to (err %v)", err)
	}
	// Resources and scopes come in the order of their first span.
	if len(got.ResourceSpans) != 2 || len(got.ResourceSpans[0].ScopeSpans) != 3 {
		t.Fatalf("got %d resources, want 2, the first with 3 scopes", len(got.ResourceSpans))
	}
	if first := got.ResourceSpans[0]; first.SchemaUrl == "" || first.ScopeSpans[0].Scope.GetVersion() != "1.2.3" ||
		first.ScopeSpans[1].Scope.GetVersion() != "" || first.ScopeSpans[2].Scope != nil || len(first.ScopeSpans[0].Spans) != 2 {
		t.Errorf("first resource's groups out of order: %s", prototext.Format(first))
	}
	for _, rs := range got.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				for _, l := range s.Links {
					if l.TraceState != "" {
						t.Errorf("link of %q: tracestate %q, want none (the linked contexts have none)", s.Name, l.TraceState)
					}
				}
			}
		}
	}
	sortResources := func(r *coltracepb.ExportTraceServiceRequest) {
		slices.SortFunc(r.ResourceSpans, func(a, b *tracepb.ResourceSpans) int {
			return cmp.Compare(prototext.Format(a.Resource), prototext.Format(b.Resource))
		})
	}
	sortResources(want)
	sortResources(&got)
	if !proto.Equal(want, &got) {
		t.Errorf("AppendRequest differs from the official exporter:\n got: %s\nwant: %s", prototext.Format(&got), prototext.Format(want))
	}
}

// TestAppendRequestLinkTraceState: a link's tracestate is written (trace.proto
// has the field; the official exporter leaves it out).
func TestAppendRequestLinkTraceState(t *testing.T) {
	ts, _ := trace.ParseTraceState("k=v")
	link := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1}, TraceState: ts})
	spans := tracetest.SpanStubs{{
		Name: "x", SpanContext: trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{2}, SpanID: trace.SpanID{2}}),
		Links: []sdktrace.Link{{SpanContext: link}}, Resource: resource.Empty(),
	}}.Snapshots()
	var got coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(AppendRequest(nil, spans), &got); err != nil {
		t.Fatal(err)
	}
	if l := got.ResourceSpans[0].ScopeSpans[0].Spans[0].Links[0]; l.TraceState != "k=v" {
		t.Errorf("link tracestate %q, want k=v", l.TraceState)
	}
}

// TestAppendRequestNilResource: a span without a resource gets no
// resource field, as from the official exporter.
func TestAppendRequestNilResource(t *testing.T) {
	spans := tracetest.SpanStubs{{
		Name: "no resource", SpanContext: trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{3}, SpanID: trace.SpanID{3}}),
		InstrumentationScope: instrumentation.Scope{Name: "s"},
	}}.Snapshots()
	if spans[0].Resource() != nil {
		t.Fatal("the stub's snapshot has a resource; this test needs one without")
	}
	want := officialRequest(t, spans)
	var got coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(AppendRequest(nil, spans), &got); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(want, &got) || got.ResourceSpans[0].Resource != nil {
		t.Errorf("differs from the official exporter:\n got: %s\nwant: %s", prototext.Format(&got), prototext.Format(want))
	}
}

func TestAppendRequestEmpty(t *testing.T) {
	if b := AppendRequest(nil, nil); len(b) != 0 {
		t.Errorf("no spans: %d bytes, want none", len(b))
	}
	if b := AppendRequest(nil, []sdktrace.ReadOnlySpan{nil}); len(b) != 0 {
		t.Errorf("a nil span: %d bytes, want none", len(b))
	}
}
