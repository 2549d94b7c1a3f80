package harness

import "testing"

// Two checkouts of the module build into two directories; one checkout
// always into the same.
func TestBinDirIsPerCheckout(t *testing.T) {
	a, b := binDir("/work/wt-a"), binDir("/work/wt-b")
	if a == b {
		t.Errorf("binDir gives %s for two checkouts, want one directory each", a)
	}
	if again := binDir("/work/wt-a"); again != a {
		t.Errorf("binDir(/work/wt-a) = %s, then %s; want the same", a, again)
	}
}
