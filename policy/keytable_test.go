package policy

import (
	"strconv"
	"strings"
	"testing"
)

// TestKeyTableEvictsLeastRecentlyUsed checks which key goes when the
// table is full, and that a key coming back gets a full bucket.
func TestKeyTableEvictsLeastRecentlyUsed(t *testing.T) {
	tab := NewKeyTable(0.001, 1, 2)
	take := func(key string) bool {
		t.Helper()
		b, tokens := tab.peek(key, rlT0)
		return tokens >= 1 && b.Take(rlT0)
	}
	steps := []struct {
		key  string
		want bool
	}{
		{"a", true},  // a new, full: taken
		{"b", true},  // b new
		{"a", false}, // a empty; a is now the most recent
		{"c", true},  // full table: evicts b, the least recently used
		{"a", false}, // a survived the eviction, still empty
		{"b", true},  // b comes back with a full bucket, evicting c
		{"a", false}, // a is still held and empty
		{"c", true},  // c comes back full, evicting b
	}
	for i, s := range steps {
		if got := take(s.key); got != s.want {
			t.Fatalf("step %d (%s): got allowed %v, want %v", i, s.key, got, s.want)
		}
		if got := tab.Len(); got > 2 {
			t.Fatalf("step %d: got %d keys, want at most 2", i, got)
		}
	}
	if got := tab.Evictions(); got != 3 {
		t.Errorf("Evictions: got %d, want 3", got)
	}
}

func TestKeyTableUpdateShrinksAndKeepsTokens(t *testing.T) {
	tab := NewKeyTable(1, 1, 10)
	for _, k := range []string{"a", "b", "c", "d"} {
		b, _ := tab.peek(k, rlT0)
		b.Take(rlT0)
	}
	tab.Update(1, 5, 2)
	if got := tab.Len(); got != 2 {
		t.Fatalf("Len after shrinking to 2: got %d, want 2", got)
	}
	// c and d were used last and stay; both still empty despite the larger burst.
	for _, k := range []string{"d", "c"} {
		if _, tokens := tab.peek(k, rlT0); tokens >= 1 {
			t.Errorf("key %s after Update: got %.2f tokens, want < 1 (no refill on reload)", k, tokens)
		}
	}
	b, tokens := tab.peek("d", rlT0)
	if b.Burst() != 5 || tokens != 0 {
		t.Errorf("key d: got burst %d tokens %.2f, want burst 5 tokens 0", b.Burst(), tokens)
	}
}

// TestKeyTableLongKeysCostFixedMemory sprays keys of 16 KiB (a header
// value can be that long): each is stored as a short digest, so a full
// table holds max_keys small keys, and one long key still has one bucket.
func TestKeyTableLongKeysCostFixedMemory(t *testing.T) {
	const maxKeys = 100
	tab := NewKeyTable(0.001, 1, maxKeys)
	long := func(i int) string { return strings.Repeat("k", 16<<10) + strconv.Itoa(i) }
	for i := range 1000 {
		if _, tokens := tab.peek(long(i), rlT0); tokens < 1 {
			t.Fatalf("key %d: got %v tokens, want a full bucket", i, tokens)
		}
	}
	tab.mu.Lock()
	var held int
	for k := range tab.entries {
		held += len(k)
	}
	tab.mu.Unlock()
	if want := maxKeys * (1 + 32); held != want {
		t.Errorf("key bytes held: got %d, want %d (digests, not the 16 KiB keys)", held, want)
	}
	b, tokens := tab.peek(long(999), rlT0)
	if tokens < 1 || !b.Take(rlT0) {
		t.Fatalf("long key 999: got %v tokens, want 1", tokens)
	}
	if _, tokens := tab.peek(long(999), rlT0); tokens >= 1 {
		t.Errorf("long key 999 after a take: got %v tokens, want < 1 (the same bucket)", tokens)
	}
	if _, tokens := tab.peek(long(998), rlT0); tokens < 1 {
		t.Errorf("long key 998: got %v tokens, want its own full bucket", tokens)
	}
}
