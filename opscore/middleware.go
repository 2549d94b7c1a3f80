package opscore

import (
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
)

// serveHTTP is the whole API. It matches the path once, for both the route
// label and the dispatch, and wraps the dispatch with, from the outside in:
// panic recovery (500 {"detail":"Internal Server Error"}, as the original's
// error middleware), the X-Process-Time header, request metrics and one JSON
// log line per request.
func (s *Service) serveHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	e, id := s.match(r.URL.Path)
	route := routeName(e, r.Method)
	rw := &responseWriter{ResponseWriter: w, start: start}
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			s.log.LogAttrs(r.Context(), slog.LevelError, "panic serving request",
				slog.Any("panic", p), slog.String("stack", string(debug.Stack())))
			if !rw.wroteHeader {
				writeRaw(rw, http.StatusInternalServerError, internalErrorBody)
			}
		}
		if !rw.wroteHeader {
			rw.status = http.StatusOK
		}
		d := time.Since(start)
		s.metrics.observeRequest(route, rw.status, d)
		s.log.LogAttrs(r.Context(), slog.LevelInfo, "request",
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.String("route", route),
			slog.Int("status", rw.status),
			slog.Float64("duration_ms", float64(d.Microseconds())/1000),
			slog.Int("bytes", rw.bytes),
			slog.String("client", r.RemoteAddr),
		)
	}()
	s.route(rw, r, e, id)
}

// responseWriter records the status and size and adds X-Process-Time just
// before the header is sent. Unwrap lets http.ResponseController reach the
// underlying writer's Flush and Hijack.
type responseWriter struct {
	http.ResponseWriter
	start       time.Time
	status      int
	bytes       int
	wroteHeader bool
}

// WriteHeader implements http.ResponseWriter.
func (rw *responseWriter) WriteHeader(code int) {
	if rw.wroteHeader {
		return
	}
	rw.wroteHeader, rw.status = true, code
	rw.Header()["X-Process-Time"] = []string{pythonFloat(time.Since(rw.start).Seconds())}
	rw.ResponseWriter.WriteHeader(code)
}

// Write implements http.ResponseWriter.
func (rw *responseWriter) Write(b []byte) (int, error) {
	if !rw.wroteHeader {
		rw.WriteHeader(http.StatusOK)
	}
	n, err := rw.ResponseWriter.Write(b)
	rw.bytes += n
	return n, err
}

// Unwrap returns the wrapped writer for http.ResponseController.
func (rw *responseWriter) Unwrap() http.ResponseWriter { return rw.ResponseWriter }

// pythonFloat formats v as Python's str(float) does for the values a
// process time takes (below 1e6): the shortest representation that reads
// back as v, in exponent form below 1e-4 ("4.487e-06"), with ".0" on whole
// numbers. The original's X-Process-Time is str(time.time() - start).
func pythonFloat(v float64) string {
	s := strconv.FormatFloat(v, 'g', -1, 64)
	if !strings.ContainsAny(s, ".eN") { // N: NaN and Inf stay as they are
		s += ".0"
	}
	return s
}
