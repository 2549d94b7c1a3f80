package harness

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBinDirIsPerCheckout: two worktrees of the module get two build
// directories, so their tests never run each other's binaries; one
// checkout always gets the same one, under os.TempDir().
func TestBinDirIsPerCheckout(t *testing.T) {
	a, b := binDir("/work/wt-a"), binDir("/work/wt-b")
	if a == b {
		t.Fatalf("binDir: both worktrees build into %s, want one directory each", a)
	}
	if again := binDir("/work/wt-a"); again != a {
		t.Errorf("binDir: got %s then %s for one checkout, want the same", a, again)
	}
	if filepath.Dir(a) != filepath.Clean(os.TempDir()) || !strings.HasPrefix(filepath.Base(a), "opscore-sidecar-e2e-bin-") {
		t.Errorf("binDir: got %s, want opscore-sidecar-e2e-bin-* under %s", a, os.TempDir())
	}
}
