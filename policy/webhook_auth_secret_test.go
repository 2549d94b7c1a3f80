package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSecretNeverPrinted prints a secret every way a log line or the admin
// config view could: fmt verbs, slog text and JSON, encoding/json.
func TestSecretNeverPrinted(t *testing.T) {
	const key = "super-secret-webhook-key-123"
	s := NewSecret([]byte(key))
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "%v %s %+v %#v %q %x %d|", s, s, s, s, s, s, s)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("cfg", "secret", s)
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("cfg", "secret", s, "nested", struct{ S Secret }{s})
	j, err := json.Marshal(struct {
		Secret Secret  `json:"secret"`
		Ptr    *Secret `json:"ptr"`
	}{s, &s})
	if err != nil {
		t.Fatal(err)
	}
	buf.Write(j)
	out := buf.String()
	if strings.Contains(out, key) || strings.Contains(out, fmt.Sprintf("%x", key)) {
		t.Fatalf("secret leaked: %s", out)
	}
	if got := strings.Count(out, redactedText); got < 10 {
		t.Errorf("got %d redacted markers in %s, want every print redacted", got, out)
	}
}

func TestLoadSecret(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "secret")
	if err := os.WriteFile(file, []byte("from-file\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := func(name string) string {
		if name == "SET" {
			return "from-env"
		}
		return ""
	}
	tests := []struct {
		name, file, env string
		want            string
		wantErr         error
	}{
		{"file wins over env", file, "SET", "from-file", nil},
		{"env", "", "SET", "from-env", nil},
		{"env unset", "", "UNSET", "", ErrNoSecret},
		{"empty file", empty, "SET", "", ErrNoSecret},
		{"nothing configured", "", "", "", ErrNoSecret},
		{"missing file", filepath.Join(dir, "nope"), "", "", os.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := LoadSecret(tt.file, tt.env, env)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("got error %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil || string(s.b) != tt.want {
				t.Fatalf("got %q, %v; want %q", s.b, err, tt.want)
			}
		})
	}
}
