package harness

import (
	"bytes"
	"errors"
	"fmt"
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
// ./cmd/loadtest of the module into dir. The build output is part of the
// error when it fails.
func BuildBinaries(dir string) (Binaries, error) {
	root, err := ModuleRoot()
	if err != nil {
		return Binaries{}, err
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
		cmd := exec.Command("go", "build", "-o", t.out, t.pkg)
		cmd.Dir = root
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return Binaries{}, fmt.Errorf("harness: go build %s: %w\n%s", t.pkg, err, out.String())
		}
	}
	return b, nil
}

var (
	binsOnce sync.Once
	bins     Binaries
	binsErr  error
)

// Bins builds the binaries once per test process (into a directory that
// lives as long as the process) and returns them; it fails tb when the
// build fails.
func Bins(tb testing.TB) Binaries {
	tb.Helper()
	binsOnce.Do(func() {
		dir, err := os.MkdirTemp("", "harness-bin-")
		if err != nil {
			binsErr = fmt.Errorf("harness: temp dir: %w", err)
			return
		}
		bins, binsErr = BuildBinaries(dir)
	})
	if binsErr != nil {
		tb.Fatalf("harness: build binaries: %v", binsErr)
	}
	return bins
}

// CleanupBins removes the directory Bins built into. Call it from TestMain
// after m.Run; it is a no-op when Bins was never called.
func CleanupBins() {
	if bins.Dir != "" {
		os.RemoveAll(bins.Dir)
	}
}
