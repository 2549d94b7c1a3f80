package opscore

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxBodyBytes is the largest request body accepted (1 MiB); larger bodies
// get 413.
const MaxBodyBytes = 1 << 20

// requestBody is a read request body in FastAPI's terms: absent, JSON, or
// bytes that were not parsed because the Content-Type is not JSON.
type requestBody struct {
	json    json.RawMessage // set when the body was parsed as JSON
	notJSON []byte          // set for a non-empty body with a non-JSON type
}

// present reports whether there is any body.
func (b requestBody) present() bool { return b.json != nil || b.notJSON != nil }

// readBody reads and pre-checks the body as FastAPI does before the auth
// dependency runs (docs/opscore.md, "Request handling order", step 1). It
// writes the error response itself and returns false when the request is
// finished: 413 for a body over MaxBodyBytes, 400 for bytes that are not
// UTF-8, 422 json_invalid for malformed JSON.
func readBody(w http.ResponseWriter, r *http.Request) (requestBody, bool) {
	if r.ContentLength > MaxBodyBytes {
		writeTooLarge(w)
		return requestBody{}, false
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeTooLarge(w)
		} else {
			writeDetail(w, http.StatusBadRequest, "There was an error parsing the body")
		}
		return requestBody{}, false
	}
	if len(data) == 0 {
		return requestBody{}, true
	}
	if !isJSONContentType(r.Header.Get("Content-Type")) {
		return requestBody{notJSON: data}, true
	}
	// Python's json.loads decodes bytes with a UTF-8 byte order mark as
	// utf-8-sig, so such bodies are valid JSON to the original.
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	if !utf8.Valid(data) {
		writeDetail(w, http.StatusBadRequest, "There was an error parsing the body")
		return requestBody{}, false
	}
	if !json.Valid(data) {
		writeValidation(w, []fieldError{jsonInvalid(data)})
		return requestBody{}, false
	}
	return requestBody{json: data}, true
}

// decodeAuthorized runs steps 1-3 of docs/opscore.md, "Request handling
// order", for an authenticated route with a body and an {agentId} path
// segment: read the body, check the bearer key, validate the path's agentID
// and the body with parse (one 422 lists the errors of both, the path's
// first). It writes the error response itself and returns false when the
// request is finished.
func decodeAuthorized[T any](s *Service, w http.ResponseWriter, r *http.Request, agentID string, parse func(requestBody) (T, []fieldError)) (T, bool) {
	var zero T
	body, ok := readBody(w, r)
	if !ok || !s.authorize(w, r) {
		return zero, false
	}
	req, errs := parse(body)
	if pathErrs := pathAgentIDErrors(agentID); len(pathErrs) > 0 {
		errs = append(pathErrs, errs...)
	}
	if len(errs) > 0 {
		writeValidation(w, errs)
		return zero, false
	}
	return req, true
}

// tooLargeDetail is the 413 detail; it names MaxBodyBytes.
var tooLargeDetail = "Request body too large: the limit is " + strconv.Itoa(MaxBodyBytes) + " bytes"

// writeTooLarge answers a body over MaxBodyBytes with 413 and
// "Connection: close": the rest of the body is never read.
func writeTooLarge(w http.ResponseWriter) {
	w.Header().Set("Connection", "close")
	writeDetail(w, http.StatusRequestEntityTooLarge, tooLargeDetail)
}

// isJSONContentType is FastAPI's rule: no Content-Type, application/json or
// application/*+json are parsed as JSON.
func isJSONContentType(ct string) bool {
	if ct == "" {
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		mt = strings.ToLower(strings.TrimSpace(strings.SplitN(ct, ";", 2)[0]))
	}
	return mt == "application/json" || strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")
}

// jsonInvalid builds the json_invalid error with the character position of
// the problem, as Python's JSONDecodeError reports it.
func jsonInvalid(data []byte) fieldError {
	var v any
	pos, msg := 0, "Expecting value"
	err := json.Unmarshal(data, &v)
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		off := int(se.Offset) - 1
		if off < 0 {
			off = 0
		}
		if off > len(data) {
			off = len(data)
		}
		pos = utf8.RuneCount(data[:off])
		if strings.Contains(se.Error(), "after top-level value") {
			msg = "Extra data"
		} else if strings.Contains(se.Error(), "unexpected end") {
			pos = utf8.RuneCount(data)
		}
	case err != nil:
		msg = err.Error()
	}
	return fieldError{
		Type: "json_invalid", Loc: []any{"body", pos}, Msg: "JSON decode error",
		Input: json.RawMessage("{}"), Ctx: map[string]any{"error": msg},
	}
}

// topObject validates that the body is a JSON object (docs/opscore.md,
// "JSON bodies") and returns its members; it adds the "missing" (absent or
// null body) or "model_attributes_type" error otherwise.
func (v *validator) topObject(b requestBody) (map[string]json.RawMessage, bool) {
	loc := []any{"body"}
	switch {
	case !b.present(), b.json != nil && jsonKind(b.json) == 'n':
		// FastAPI treats a JSON null body like an absent one.
		v.add("missing", loc, "Field required", nil, nil)
		return nil, false
	case b.notJSON != nil:
		in, _ := marshalCompact(string(b.notJSON))
		v.add("model_attributes_type", loc, "Input should be a valid dictionary or object to extract fields from", in, nil)
		return nil, false
	}
	m, ok := object(b.json)
	if !ok {
		v.add("model_attributes_type", loc, "Input should be a valid dictionary or object to extract fields from", b.json, nil)
	}
	return m, ok
}
