package opscore

import (
	"bytes"
	"encoding/json"
)

// fieldError is one item of FastAPI's 422 body:
// {"type","loc","msg","input","ctx"?}. Input is compacted by encoding/json
// when the error is written, so callers pass raw values as they are.
type fieldError struct {
	Type  string          `json:"type"`
	Loc   []any           `json:"loc"`
	Msg   string          `json:"msg"`
	Input json.RawMessage `json:"input"`
	Ctx   map[string]any  `json:"ctx,omitempty"`
}

// validator collects field errors the way pydantic does: every problem of
// the body at once, each with its location.
type validator struct {
	errs []fieldError
}

func (v *validator) add(typ string, loc []any, msg string, input json.RawMessage, ctx map[string]any) {
	if input == nil {
		input = json.RawMessage("null")
	}
	v.errs = append(v.errs, fieldError{Type: typ, Loc: loc, Msg: msg, Input: input, Ctx: ctx})
}

func (v *validator) ok() bool { return len(v.errs) == 0 }

// at returns loc extended by one element, without aliasing loc.
func at(loc []any, elem any) []any {
	out := make([]any, len(loc)+1)
	copy(out, loc)
	out[len(loc)] = elem
	return out
}

// jsonKind returns the kind of a JSON value by its first byte: '{', '[',
// '"', 'n' (null), 'b' (bool) or '0' (number).
func jsonKind(raw json.RawMessage) byte {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	if len(raw) == 0 {
		return 0
	}
	switch c := raw[0]; c {
	case '{', '[', '"', 'n':
		return c
	case 't', 'f':
		return 'b'
	default:
		return '0'
	}
}

// object decodes an object's members; ok is false for any other kind.
func object(raw json.RawMessage) (map[string]json.RawMessage, bool) {
	if jsonKind(raw) != '{' {
		return nil, false
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return nil, false
	}
	return m, true
}

// model checks that raw is an object for a model field (pydantic's
// model_type) and returns its members.
func (v *validator) model(raw json.RawMessage, loc []any, class string) (map[string]json.RawMessage, bool) {
	m, ok := object(raw)
	if !ok {
		v.add("model_type", loc, "Input should be a valid dictionary or instance of "+class, raw,
			map[string]any{"class_name": class})
	}
	return m, ok
}

// required returns the member key of obj; when it is absent it adds the
// "missing" error, whose input is the whole object (parent), and returns
// false.
func (v *validator) required(obj map[string]json.RawMessage, parent json.RawMessage, loc []any, key string) (json.RawMessage, bool) {
	raw, present := obj[key]
	if !present {
		v.add("missing", at(loc, key), "Field required", parent, nil)
	}
	return raw, present
}

// str reads a required string member.
func (v *validator) str(obj map[string]json.RawMessage, parent json.RawMessage, loc []any, key string) string {
	raw, ok := v.required(obj, parent, loc, key)
	if !ok {
		return ""
	}
	return v.strValue(raw, at(loc, key))
}

// strValue checks that raw is a string (pydantic's lax mode still refuses
// numbers, booleans and null for str).
func (v *validator) strValue(raw json.RawMessage, loc []any) string {
	var s string
	if jsonKind(raw) != '"' || json.Unmarshal(raw, &s) != nil {
		v.add("string_type", loc, "Input should be a valid string", raw, nil)
		return ""
	}
	return s
}

// optStr reads an Optional[str] member: absent or null gives nil.
func (v *validator) optStr(obj map[string]json.RawMessage, loc []any, key string) *string {
	raw, present := obj[key]
	if !present || jsonKind(raw) == 'n' {
		return nil
	}
	s := v.strValue(raw, at(loc, key))
	return &s
}

// dict reads a Dict member. Absent gives def; null gives def when nullable,
// else a dict_type error. The value is returned compacted.
func (v *validator) dict(obj map[string]json.RawMessage, loc []any, key string, def json.RawMessage, nullable bool) json.RawMessage {
	raw, present := obj[key]
	if !present || nullable && jsonKind(raw) == 'n' {
		return def
	}
	if jsonKind(raw) != '{' {
		v.add("dict_type", at(loc, key), "Input should be a valid dictionary", raw, nil)
		return def
	}
	return compact(raw)
}

// strList reads a List[str] member that defaults to [] when absent.
func (v *validator) strList(obj map[string]json.RawMessage, loc []any, key string) []string {
	raw, present := obj[key]
	if !present {
		return []string{}
	}
	loc = at(loc, key)
	items, ok := v.list(raw, loc)
	if !ok {
		return []string{}
	}
	out := make([]string, 0, len(items))
	for i, it := range items {
		out = append(out, v.strValue(it, at(loc, i)))
	}
	return out
}

// list decodes the items of a list at loc, or adds the list_type error.
func (v *validator) list(raw json.RawMessage, loc []any) ([]json.RawMessage, bool) {
	var items []json.RawMessage
	if jsonKind(raw) != '[' || json.Unmarshal(raw, &items) != nil {
		v.add("list_type", loc, "Input should be a valid list", raw, nil)
		return nil, false
	}
	return items, true
}

// compact returns raw without insignificant whitespace.
func compact(raw json.RawMessage) json.RawMessage {
	var buf bytes.Buffer
	if json.Compact(&buf, raw) != nil {
		return raw
	}
	return buf.Bytes()
}

// truthy is Python's truth value of a decoded JSON value: null, false, 0,
// "", [] and {} are false.
func truthy(raw json.RawMessage) bool {
	switch jsonKind(raw) {
	case 0, 'n':
		return false
	case 'b':
		return bytes.HasPrefix(bytes.TrimSpace(raw), []byte("true"))
	case '"':
		var s string
		return json.Unmarshal(raw, &s) == nil && s != ""
	case '[':
		var a []json.RawMessage
		return json.Unmarshal(raw, &a) == nil && len(a) > 0
	case '{':
		var m map[string]json.RawMessage
		return json.Unmarshal(raw, &m) == nil && len(m) > 0
	default:
		var f float64
		return json.Unmarshal(raw, &f) == nil && f != 0
	}
}
