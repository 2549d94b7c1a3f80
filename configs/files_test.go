package configs

import (
	"os"
	"testing"

	"gopkg.in/yaml.v3"
)

// readFile returns the content of path (relative to configs/) or fails t.
func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return string(b)
}

// readYAML decodes the YAML file at path into v or fails t.
func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	if err := yaml.Unmarshal([]byte(readFile(t, path)), v); err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
}
