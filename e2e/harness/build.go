package harness

import (
	"bytes"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Binaries holds the paths of the repository's programs built by
// BuildBinaries.
type Binaries struct {
	// Dir is the directory that holds the three binaries.
	Dir string
	// Core is the path of the cmd/opscore binary.
	Core string
	// Sidecar is the path of the cmd/sidecar binary.
	Sidecar string
	// Loadtest is the path of the cmd/loadtest binary.
	Loadtest string
}

// ModuleRoot returns the directory of the go.mod of the module the current
// directory belongs to, as `go env GOMOD` reports it.
func ModuleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("harness: go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("harness: not inside a Go module (go env GOMOD is empty)")
	}
	return filepath.Dir(gomod), nil
}

// BuildBinaries runs `go build` for ./cmd/opscore, ./cmd/sidecar and
// ./cmd/loadtest of the module into dir. Each binary is built under a
// temporary name and renamed into place, so processes that build into the
// same directory at once, or still run an older binary, do not collide.
// The build output is part of the error when it fails.
func BuildBinaries(dir string) (Binaries, error) {
	root, err := ModuleRoot()
	if err != nil {
		return Binaries{}, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Binaries{}, fmt.Errorf("harness: bin dir: %w", err)
	}
	b := Binaries{
		Dir:      dir,
		Core:     filepath.Join(dir, "opscore"),
		Sidecar:  filepath.Join(dir, "sidecar"),
		Loadtest: filepath.Join(dir, "loadtest"),
	}
	for _, t := range []struct{ pkg, out string }{
		{"./cmd/opscore", b.Core},
		{"./cmd/sidecar", b.Sidecar},
		{"./cmd/loadtest", b.Loadtest},
	} {
		tmp := fmt.Sprintf("%s.%d.tmp", t.out, os.Getpid())
		cmd := exec.Command("go", "build", "-o", tmp, t.pkg)
		cmd.Dir = root
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			os.Remove(tmp)
			return Binaries{}, fmt.Errorf("harness: go build %s: %w\n%s", t.pkg, err, out.String())
		}
		if err := os.Rename(tmp, t.out); err != nil {
			os.Remove(tmp)
			return Binaries{}, fmt.Errorf("harness: install %s: %w", t.out, err)
		}
	}
	return b, nil
}

var (
	binsOnce sync.Once
	bins     Binaries
	binsErr  error
)

// Bins builds the binaries once per test process and returns them; it
// fails tb when the build fails. They go to one directory per user and
// module checkout under os.TempDir() (binDir) that every test process of
// that checkout reuses (go build's cache keeps a rebuild fast), so test
// runs leave nothing behind.
func Bins(tb testing.TB) Binaries {
	tb.Helper()
	binsOnce.Do(func() {
		root, err := ModuleRoot()
		if err != nil {
			binsErr = err
			return
		}
		bins, binsErr = BuildBinaries(binDir(root))
	})
	if binsErr != nil {
		tb.Fatalf("harness: build binaries: %v", binsErr)
	}
	return bins
}

// binDir is the directory Bins builds into for the module checked out at
// root. Each checkout (a git worktree, say) gets its own, so that tests
// of two checkouts running at once never start each other's binaries: a
// shared directory let one checkout's build replace the binary another
// was about to start.
func binDir(root string) string {
	h := fnv.New32a()
	h.Write([]byte(root))
	return filepath.Join(os.TempDir(), fmt.Sprintf("opscore-sidecar-e2e-bin-%d-%08x", os.Getuid(), h.Sum32()))
}
