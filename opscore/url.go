package opscore

import (
	"encoding/json"
	"net/url"
	"strings"
)

// maxURLLength is pydantic's HttpUrl limit.
const maxURLLength = 2083

// httpURL validates a pydantic HttpUrl member and returns it normalised the
// way pydantic stores it: lower-case scheme and host, default port dropped,
// "/" as the path when there is none.
func (v *validator) httpURL(obj map[string]json.RawMessage, parent json.RawMessage, loc []any, key string) string {
	raw, ok := v.required(obj, parent, loc, key)
	if !ok {
		return ""
	}
	loc = at(loc, key)
	var s string
	if jsonKind(raw) != '"' || json.Unmarshal(raw, &s) != nil {
		v.add("url_type", loc, "URL input should be a string or URL", raw, nil)
		return ""
	}
	if len(s) > maxURLLength {
		v.add("url_too_long", loc, "URL should have at most 2083 characters", raw,
			map[string]any{"max_length": maxURLLength})
		return ""
	}
	u, reason := parseHTTPURL(strings.TrimSpace(s))
	switch reason {
	case "":
		return u
	case "scheme":
		v.add("url_scheme", loc, "URL scheme should be 'http' or 'https'", raw,
			map[string]any{"expected_schemes": "'http' or 'https'"})
	default:
		v.add("url_parsing", loc, "Input should be a valid URL, "+reason, raw,
			map[string]any{"error": reason})
	}
	return ""
}

// parseHTTPURL returns the normalised URL, or a failure reason: "scheme"
// for a non-http(s) scheme, else the parser's message.
func parseHTTPURL(s string) (string, string) {
	if s == "" {
		return "", "input is empty"
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", "invalid URL: " + strings.TrimPrefix(err.Error(), "parse "+`"`+s+`": `)
	}
	if u.Scheme == "" {
		return "", "relative URL without a base"
	}
	u.Scheme = strings.ToLower(u.Scheme)
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", "scheme"
	}
	host := strings.ToLower(u.Hostname())
	if host == "" {
		return "", "empty host"
	}
	port := u.Port()
	if port == "80" && u.Scheme == "http" || port == "443" && u.Scheme == "https" {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	u.Host = host
	if u.Path == "" && u.RawPath == "" {
		u.Path = "/"
	}
	return u.String(), ""
}
