package opscore

import (
	"crypto/sha256"
	"crypto/subtle"
	"strings"
	"testing"
)

// TestAPIKeyComparisonIsFixedSize checks that authorize compares inputs of
// one fixed size whatever the lengths of the key and of the presented
// token: subtle.ConstantTimeCompare returns at once when the lengths
// differ, which tells a client the key's length by timing.
func TestAPIKeyComparisonIsFixedSize(t *testing.T) {
	type lens struct{ x, y int }
	var seen []lens
	constantTimeCompare = func(x, y []byte) int {
		seen = append(seen, lens{len(x), len(y)})
		return subtle.ConstantTimeCompare(x, y)
	}
	t.Cleanup(func() { constantTimeCompare = subtle.ConstantTimeCompare })

	for _, key := range []string{"k", testKey, strings.Repeat("K", 300)} {
		svc, err := New(Options{APIKey: key, Logger: discardLogger()})
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		h := svc.Handler()
		for _, tok := range []string{"x", key[:len(key)-1], key + "x", strings.Repeat("a", len(key)), strings.Repeat("z", 4096), key} {
			if tok == "" {
				continue // refused before any comparison, whatever the key
			}
			seen = seen[:0]
			want := 401
			if tok == key {
				want = 404 // authorised; lt-1 has no state
			}
			r := call(t, h, "GET", pState, "", false, "Authorization", "Bearer "+tok)
			mustStatus(t, "authorize", r, want)
			if len(seen) != 1 {
				t.Fatalf("key of %d bytes, token of %d bytes: got %d comparisons, want 1", len(key), len(tok), len(seen))
			}
			if seen[0] != (lens{sha256.Size, sha256.Size}) {
				t.Errorf("key of %d bytes, token of %d bytes: compared %d with %d bytes, want %d with %d",
					len(key), len(tok), seen[0].x, seen[0].y, sha256.Size, sha256.Size)
			}
		}
	}
}
