package proxy

import (
	"fmt"
	"strings"
)

// This file decides what the default route forwards: only the paths listed
// in routes.default.forward_paths (see RouteConfig.ForwardPaths and
// docs/sidecar.md, "Security"). Everything else the named routes do not
// match is answered 404 by the sidecar, so the public port does not expose
// the core's /metrics, /readyz or whatever else it serves.

// forwardedPath reports whether the default route forwards path under the
// list fps. A path with a "." or ".." segment is never forwarded: the
// upstream may resolve it out of the listed prefix (/v1/opscore/../metrics).
// It does not allocate.
func forwardedPath(fps []string, path string) bool {
	if hasDotSegment(path) {
		return false
	}
	for _, fp := range fps {
		if strings.HasSuffix(fp, "/") {
			if strings.HasPrefix(path, fp) {
				return true
			}
			continue
		}
		if rest, ok := strings.CutPrefix(path, fp); ok && (rest == "" || rest[0] == '/') {
			return true
		}
	}
	return false
}

// hasDotSegment reports whether path has a segment "." or "..", with a
// slash or a backslash as separator (some servers take one for the other).
func hasDotSegment(path string) bool {
	start := 0
	for i := 0; i <= len(path); i++ {
		if i < len(path) && path[i] != '/' && path[i] != '\\' {
			continue
		}
		if seg := path[start:i]; seg == "." || seg == ".." {
			return true
		}
		start = i + 1
	}
	return false
}

// validForwardPath accepts an absolute path without query, fragment,
// wildcards or dot segments.
func validForwardPath(fp string) error {
	switch {
	case fp == "" || fp[0] != '/':
		return fmt.Errorf("must start with /, got %q", fp)
	case strings.ContainsAny(fp, "?#{}\\"):
		return fmt.Errorf("must be a plain path (no ?, #, {}, or backslash), got %q", fp)
	case hasDotSegment(fp):
		return fmt.Errorf("must not have . or .. segments, got %q", fp)
	}
	return nil
}
