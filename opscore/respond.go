package opscore

import (
	"errors"
	"log/slog"
	"net/http"
	"strconv"
)

// internalErrorBody is the body of every 500, as the original's error
// middleware writes it.
var internalErrorBody = []byte(`{"detail":"Internal Server Error"}`)

// writeJSON writes v as compact JSON with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := marshalCompact(v)
	if err != nil {
		status, b = http.StatusInternalServerError, internalErrorBody
	}
	writeRaw(w, status, b)
}

// writeRaw writes an already encoded JSON body.
func writeRaw(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h["Content-Type"] = []string{"application/json"}
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// detailBody is FastAPI's error body.
type detailBody struct {
	Detail any `json:"detail"`
}

// writeDetail writes {"detail": detail}.
func writeDetail(w http.ResponseWriter, status int, detail string) {
	writeJSON(w, status, detailBody{Detail: detail})
}

// writeValidation writes a 422 with FastAPI's list of field errors.
func writeValidation(w http.ResponseWriter, errs []fieldError) {
	writeJSON(w, http.StatusUnprocessableEntity, detailBody{Detail: errs})
}

// statusBody is the original's StatusResponse.
type statusBody struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

// writeStoreError answers a store failure: 503 with Retry-After for a
// StorageError, 500 for anything else (a bug, never a backend outage).
func (s *Service) writeStoreError(w http.ResponseWriter, r *http.Request, what string, err error) {
	var se *StorageError
	if errors.As(err, &se) {
		s.log.LogAttrs(r.Context(), slog.LevelWarn, "storage unavailable",
			slog.String("op", se.Op), slog.String("error", se.Err.Error()))
		w.Header().Set("Retry-After", "1")
		writeDetail(w, http.StatusServiceUnavailable,
			"Storage unavailable: "+what+" failed, storage "+se.Reason()+"; retry later")
		return
	}
	s.log.LogAttrs(r.Context(), slog.LevelError, "internal error", slog.String("error", err.Error()))
	writeRaw(w, http.StatusInternalServerError, internalErrorBody)
}
