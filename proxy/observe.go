package proxy

import (
	"context"
	"crypto/rand"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"opscore-sidecar/proxy/config"
)

// HeaderRequestID is the request-id header: kept when the caller sends
// one, minted otherwise, returned to the caller and forwarded upstream.
// It is spelled in net/http's canonical form (header names are
// case-insensitive; this is also how it goes on the wire) so that reading
// and setting it does not allocate a canonicalized copy per request.
const HeaderRequestID = "X-Request-Id"

// maxRequestIDLen bounds a caller's request id; a longer one is replaced.
const maxRequestIDLen = 200

// observeLayer is the trace step (step 2 of chain.go): it takes or mints the
// request id, continues or starts the W3C trace with a server span,
// creates the RequestInfo, and when the request ends (even by a panic such
// as http.ErrAbortHandler) counts it, observes its latency with a trace-id
// exemplar and writes one JSON access-log line.
func (s *Sidecar) observeLayer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		reqID := r.Header.Get(HeaderRequestID)
		if reqID == "" || len(reqID) > maxRequestIDLen {
			reqID = rand.Text()
			// The request and the response share the one-value slice:
			// both are only read or replaced, never written in place.
			id := []string{reqID}
			r.Header[HeaderRequestID] = id
			w.Header()[HeaderRequestID] = id
		} else {
			w.Header().Set(HeaderRequestID, reqID)
		}

		ctx := s.tracing.Propagator.Extract(r.Context(), headerCarrier(r.Header))
		ctx, span := s.tracing.tracer.Start(ctx, r.Method, serverSpan...)
		sc := span.SpanContext()
		// The RequestInfo and the recorder live and die with the request:
		// one allocation holds both.
		st := &struct {
			info RequestInfo
			rec  responseRecorder
		}{
			info: RequestInfo{RequestID: reqID, TraceID: sc.TraceID().String(), Method: r.Method, Path: r.URL.Path, Route: config.RouteDefault, Start: start},
			rec:  responseRecorder{ResponseWriter: w},
		}
		info, rec := &st.info, &st.rec
		// bytes_in is the declared Content-Length; only a body of unknown
		// length (chunked) is wrapped to count it, saving an allocation on
		// the common path.
		var body *countingBody
		if r.ContentLength < 0 && r.Body != nil && r.Body != http.NoBody {
			body = &countingBody{ReadCloser: r.Body}
			r.Body = body
		}
		defer func() {
			if p := recover(); p != nil {
				// httputil.ReverseProxy panics with http.ErrAbortHandler when
				// copying the response body fails after the headers were sent:
				// the client got a truncated response, which must not be
				// logged as forwarded. The panic is re-raised for net/http.
				defer panic(p)
				switch {
				case r.Context().Err() != nil:
					info.SetOutcome(OutcomeClientClosed, "")
				case p == http.ErrAbortHandler:
					info.SetOutcome(OutcomeUpstreamError, "body_aborted")
				}
				if rec.status == 0 {
					rec.status = http.StatusInternalServerError
					if p == http.ErrAbortHandler {
						rec.status = StatusClientClosed
					}
				}
			}
			if rec.status == 0 {
				rec.status = http.StatusOK
			}
			bytesIn := max(r.ContentLength, 0)
			if body != nil {
				bytesIn = body.n
			}
			s.finish(ctx, span, info, rec, bytesIn, time.Since(start))
		}()
		next.ServeHTTP(rec, r.WithContext(WithInfo(ctx, info)))
	})
}

// finish records a finished request: metrics, span and access log.
func (s *Sidecar) finish(ctx context.Context, span trace.Span, info *RequestInfo, rec *responseRecorder, bytesIn int64, d time.Duration) {
	v := info.View()
	class := string(info.Class)
	m := s.deps.Metrics
	m.RequestsChild(info.Route, class, statusCode(rec.status), string(v.Outcome)).Inc()
	exemplar := ""
	if span.SpanContext().IsSampled() {
		exemplar = info.TraceID
	}
	m.ObserveRequestDuration(info.Route, string(v.Outcome), d, exemplar, time.Now())

	if span.IsRecording() { // not without an exporter (see NewTracing): skip building what nobody reads
		span.SetName(info.Method + " " + info.Route)
		span.SetAttributes(
			attribute.String("http.request.method", info.Method),
			attribute.String("http.route", info.Route),
			attribute.Int("http.response.status_code", rec.status),
			attribute.String("opscore.outcome", string(v.Outcome)),
			attribute.String("opscore.request_id", info.RequestID),
		)
		if rec.status >= 500 {
			span.SetStatus(codes.Error, string(v.Outcome))
		}
	}
	span.End()

	if !s.accessLog.Enabled(ctx, slog.LevelInfo) || (info.Snapshot != nil && !info.Snapshot.Config.Log.Access) {
		return
	}
	attrs := make([]slog.Attr, 0, 18)
	attrs = append(attrs,
		slog.String("request_id", info.RequestID),
		slog.String("trace_id", info.TraceID),
		slog.String("route", info.Route),
		slog.String("class", class),
		slog.String("method", info.Method),
		slog.String("path", info.Path),
		slog.Int("status", rec.status),
		slog.String("outcome", string(v.Outcome)),
		slog.Int("attempts", v.Attempts),
		slog.Int("upstream_status", v.UpstreamStatus),
		slog.Float64("duration_ms", ms(d)),
		slog.Float64("upstream_ms", ms(v.UpstreamTime)),
		slog.Int64("bytes_in", bytesIn),
		slog.Int64("bytes_out", rec.bytes),
	)
	if v.Reason != "" {
		attrs = append(attrs, slog.String("reason", v.Reason))
	}
	if v.QueueTime > 0 {
		attrs = append(attrs, slog.Float64("queue_ms", ms(v.QueueTime)))
	}
	if len(v.Shadow) > 0 {
		attrs = append(attrs, slog.Any("shadow", v.Shadow))
	}
	s.accessLog.LogAttrs(ctx, slog.LevelInfo, "request", attrs...)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// statusCodes holds the label value of every status code, so that
// labelling a request does not allocate.
var statusCodes = func() []string {
	s := make([]string, 600)
	for i := range s {
		s[i] = strconv.Itoa(i)
	}
	return s
}()

func statusCode(code int) string {
	if code >= 0 && code < len(statusCodes) {
		return statusCodes[code]
	}
	return strconv.Itoa(code)
}
