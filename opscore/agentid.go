package opscore

import (
	"encoding/json"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxAgentIDBytes is the longest agent id accepted, in bytes of its UTF-8
// form (not in characters: the limit bounds Redis keys and log lines).
const MaxAgentIDBytes = 256

// agentIDTooLong is the message of an id over MaxAgentIDBytes.
var agentIDTooLong = "String should have at most " + strconv.Itoa(MaxAgentIDBytes) + " bytes (UTF-8)"

// agentIDRule is the message of the character rule of agent ids.
const agentIDRule = "an agent id must not contain control characters (NUL, CR, LF, TAB, DEL, U+0080-U+009F), " +
	"U+2028, U+2029, ':' or '/'"

// agentID is the one check of an agent id, wherever the id comes from: the
// {agentId} path segment of the state and workflow routes (loc
// ["path","agentId"]), the agentId of a state update body and the
// agent_details.agentId of every notify event. It adds a field error at loc
// unless id is in the allowed set (see docs/opscore.md, "Agent ids"):
//
//   - 1 to MaxAgentIDBytes bytes (string_too_short, string_too_long);
//   - valid UTF-8 (string_unicode; only a percent-encoded path can carry
//     other bytes, a JSON body is refused before validation);
//   - no Unicode control character (category Cc: U+0000-U+001F, U+007F-
//     U+009F, which covers NUL, CR, LF and TAB), no line or paragraph
//     separator (U+2028, U+2029), no ':' (it would make the Redis keys
//     agent:{id}:... ambiguous) and no '/' (it cannot round-trip through a
//     path segment) (value_error);
//   - not "." or "..": RFC 3986 clients (curl, browsers) remove such path
//     segments, so the agent's routes could not be reached (value_error).
//
// A path id never contains '/': the router splits on it, and "%2F" does not
// match a route (404).
func (v *validator) agentID(id string, loc []any) {
	in, _ := marshalCompact(id) // invalid UTF-8 is written as U+FFFD
	switch {
	case id == "":
		v.add("string_too_short", loc, "String should have at least 1 character", in,
			map[string]any{"min_length": 1})
	case len(id) > MaxAgentIDBytes:
		v.add("string_too_long", loc, agentIDTooLong, in,
			map[string]any{"max_length": MaxAgentIDBytes})
	case !utf8.ValidString(id):
		v.add("string_unicode", loc, "Input should be a valid string, unable to parse raw data as a unicode string", in, nil)
	case strings.IndexFunc(id, forbiddenInAgentID) >= 0:
		v.add("value_error", loc, "Value error, "+agentIDRule, in, map[string]any{"error": map[string]any{}})
	case id == "." || id == "..":
		v.add("value_error", loc, "Value error, an agent id must not be '.' or '..': clients remove such path segments", in,
			map[string]any{"error": map[string]any{}})
	}
}

// forbiddenInAgentID reports the runes an agent id must not contain.
func forbiddenInAgentID(r rune) bool {
	return r < 0x20 || r >= 0x7f && r <= 0x9f || r == '\u2028' || r == '\u2029' || r == ':' || r == '/'
}

// agentIDMember validates the required string member key of obj as an
// agent id and returns it. allowEmpty leaves an empty id to the caller
// (the notify events answer it with the original's 400).
func (v *validator) agentIDMember(obj map[string]json.RawMessage, parent json.RawMessage, loc []any, key string, allowEmpty bool) string {
	n := len(v.errs)
	id := v.str(obj, parent, loc, key)
	if len(v.errs) == n && (id != "" || !allowEmpty) {
		v.agentID(id, at(loc, key))
	}
	return id
}

// pathAgentIDErrors is the check of the {agentId} path segment, as
// FastAPI reports a constrained path parameter: its errors come first in
// the 422 list, before the body's.
func pathAgentIDErrors(id string) []fieldError {
	var v validator
	v.agentID(id, []any{"path", "agentId"})
	return v.errs
}
