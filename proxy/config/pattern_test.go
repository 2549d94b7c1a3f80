package config

import "testing"

func TestCompilePatternRejects(t *testing.T) {
	for _, p := range []string{"", "x", "/a?b", "/a#b", "/{}", "/a{b}", "/{a}/{a}", "/{a{b}}"} {
		if _, err := CompilePattern(p); err == nil {
			t.Errorf("CompilePattern(%q) = nil error, want one", p)
		}
	}
}
