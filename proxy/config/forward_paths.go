package config

import (
	"fmt"
	"strings"
)

// HasDotSegment reports whether path has a segment "." or "..", with a
// slash or a backslash as separator (some servers take one for the other).
func HasDotSegment(path string) bool {
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
	case HasDotSegment(fp):
		return fmt.Errorf("must not have . or .. segments, got %q", fp)
	}
	return nil
}
