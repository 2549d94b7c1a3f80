package configs

import (
	"encoding/json"
	"go/version"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"opscore-sidecar/metrics"
)

// instruction is one Dockerfile instruction with its line continuations joined.
type instruction struct {
	cmd, args string
}

// parseDockerfile splits the Dockerfile into instructions, dropping comments.
func parseDockerfile(t *testing.T) []instruction {
	t.Helper()
	var out []instruction
	var cur strings.Builder
	for _, line := range strings.Split(readFile(t, "../Dockerfile"), "\n") {
		trimmed := strings.TrimSpace(line)
		if cur.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur.WriteString(strings.TrimSuffix(trimmed, "\\") + " ")
			continue
		}
		cur.WriteString(trimmed)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, instruction{strings.ToUpper(cmd), strings.TrimSpace(args)})
		cur.Reset()
	}
	return out
}

// finalStage returns the instructions after the last FROM, and that FROM.
func finalStage(ins []instruction) (string, []instruction) {
	for i := len(ins) - 1; i >= 0; i-- {
		if ins[i].cmd == "FROM" {
			return ins[i].args, ins[i+1:]
		}
	}
	return "", nil
}

// execForm decodes an exec-form (JSON array) argument list, or fails t.
func execForm(t *testing.T, what, args string) []string {
	t.Helper()
	var argv []string
	if err := json.Unmarshal([]byte(args), &argv); err != nil || len(argv) == 0 {
		t.Fatalf("%s: got %q, want exec form [\"/path\", ...] (no shell in distroless)", what, args)
	}
	return argv
}

func TestDockerfile(t *testing.T) {
	ins := parseDockerfile(t)
	from, final := finalStage(ins)
	if !strings.HasPrefix(from, "gcr.io/distroless/static") {
		t.Errorf("final stage: got FROM %q, want gcr.io/distroless/static*", from)
	}

	// Binaries copied into the final image, and the packages they are built from.
	copied := map[string]bool{}
	ignored := dockerignorePatterns(t)
	for _, in := range final {
		switch in.cmd {
		case "COPY":
			f := strings.Fields(in.args)
			if strings.HasPrefix(f[0], "--from=") {
				copied[f[len(f)-1]] = true
			} else if _, err := os.Stat(filepath.Join("..", f[0])); err != nil {
				t.Errorf("COPY %s: %v", f[0], err)
			} else if dockerIgnored(ignored, f[0]) {
				t.Errorf("COPY %s: .dockerignore keeps it out of the build context", f[0])
			}
		case "USER":
			if !regexp.MustCompile(`^[1-9][0-9]*(:[0-9]+)?$`).MatchString(in.args) {
				t.Errorf("USER: got %q, want a numeric non-root uid", in.args)
			}
		case "HEALTHCHECK":
			_, cmd, ok := strings.Cut(in.args, " CMD ")
			if !ok {
				t.Fatalf("HEALTHCHECK: got %q, want options then CMD [...]", in.args)
			}
			argv := execForm(t, "HEALTHCHECK", cmd)
			if !copied[argv[0]] || len(argv) < 2 || argv[1] != "healthcheck" {
				t.Errorf("HEALTHCHECK: got %v, want a copied binary's healthcheck subcommand", argv)
			}
		case "ENTRYPOINT":
			if argv := execForm(t, "ENTRYPOINT", in.args); !copied[argv[0]] {
				t.Errorf("ENTRYPOINT: got %v, want a binary copied into the image", argv)
			}
		}
	}
	for _, bin := range []string{"/usr/local/bin/sidecar", "/usr/local/bin/opscore"} {
		if !copied[bin] {
			t.Errorf("final image: got binaries %v, want %s", copied, bin)
		}
	}
	var build strings.Builder
	for _, in := range ins {
		if in.cmd == "RUN" || in.cmd == "ENV" {
			build.WriteString(in.args + "\n")
		}
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", `-ldflags "-s -w`, "./cmd/sidecar", "./cmd/opscore"} {
		if !strings.Contains(build.String(), want) {
			t.Errorf("build stage: got no %q, want it", want)
		}
	}
	for _, pkg := range []string{"../cmd/sidecar", "../cmd/opscore"} {
		if _, err := os.Stat(pkg); err != nil {
			t.Errorf("built package %s: %v", pkg, err)
		}
	}

	// The compose file runs the binaries the image holds, with their healthcheck subcommand.
	c := loadCompose(t)
	for _, name := range []string{"opscore", "sidecar"} {
		s := c.service(t, name)
		if len(s.Entrypoint) > 0 && !copied[s.Entrypoint[0]] {
			t.Errorf("compose %s: got entrypoint %v, want a binary of the image", name, s.Entrypoint)
		}
		test := s.Healthcheck.Test
		if len(test) < 3 || test[0] != "CMD" || !copied[test[1]] || test[2] != "healthcheck" {
			t.Errorf("compose %s: got healthcheck %v, want [CMD <image binary> healthcheck ...]", name, test)
		}
		if src := goLiterals(t, programSources[name]); !strings.Contains(src, `"healthcheck"`) {
			t.Errorf("program of %s: no \"healthcheck\" subcommand found in %v", name, programSources[name])
		}
	}
}

// dockerignorePatterns returns the patterns of .dockerignore.
func dockerignorePatterns(t *testing.T) []string {
	t.Helper()
	var ignored []string
	for _, line := range strings.Split(readFile(t, "../.dockerignore"), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			ignored = append(ignored, line)
		}
	}
	return ignored
}

// dockerIgnored reports whether the context path rel (slash-separated,
// relative to the repository root) or one of its parent directories matches
// a .dockerignore pattern. It knows the forms the file uses: a plain path or
// glob, and a leading "**/" for any depth.
func dockerIgnored(patterns []string, rel string) bool {
	parts := strings.Split(rel, "/")
	for i := 1; i <= len(parts); i++ {
		prefix := strings.Join(parts[:i], "/")
		for _, p := range patterns {
			if m, _ := path.Match(p, prefix); m {
				return true
			}
			if sub, ok := strings.CutPrefix(p, "**/"); ok {
				for j := 0; j < i; j++ {
					if m, _ := path.Match(sub, strings.Join(parts[j:i], "/")); m {
						return true
					}
				}
			}
		}
	}
	return false
}

// TestDockerignoreKeepsBuildInputs asks the go tool which of the module's
// packages and embedded files the two binaries need, and checks that the
// build context keeps each of them.
func TestDockerignoreKeepsBuildInputs(t *testing.T) {
	ignored := dockerignorePatterns(t)
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "list", "-deps", "-f", `{{if not .Standard}}{{.Dir}}{{range .EmbedFiles}} {{.}}{{end}}{{end}}`, "./cmd/sidecar", "./cmd/opscore")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	need := []string{"go.mod", "go.sum"}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		rel, err := filepath.Rel(root, f[0])
		if err != nil || strings.HasPrefix(rel, "..") {
			continue // a module dependency, downloaded by go mod download
		}
		rel = filepath.ToSlash(rel)
		need = append(need, rel+"/x.go")
		for _, e := range f[1:] {
			need = append(need, rel+"/"+e)
		}
	}
	if len(need) < 8 {
		t.Fatalf("go list: got build inputs %v, want the packages of both binaries", need)
	}
	for _, n := range need {
		if dockerIgnored(ignored, n) {
			t.Errorf(".dockerignore: %s is ignored, but the image build needs it", n)
		}
	}
	for _, want := range []string{".git", "e2e", "cmd/opscore/main_test.go", "configs/testdata/x.json"} {
		if !dockerIgnored(ignored, want) {
			t.Errorf(".dockerignore: got %q in the build context, want it kept out", want)
		}
	}
}

// TestDockerfileGoVersionBuildsTheModule: the golang images set
// GOTOOLCHAIN=local, so a builder older than go.mod's go line fails, and a
// floating tag (golang:1.26) may be an old patch in the local image cache.
func TestDockerfileGoVersionBuildsTheModule(t *testing.T) {
	var goLine string
	for _, line := range strings.Split(readFile(t, "../go.mod"), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "go "); ok {
			goLine = strings.TrimSpace(v)
		}
	}
	if goLine == "" {
		t.Fatal("go.mod: got no go line, want one")
	}
	ins := parseDockerfile(t)
	args := map[string]string{}
	var builder string
	for _, in := range ins {
		switch in.cmd {
		case "ARG":
			if k, v, ok := strings.Cut(in.args, "="); ok {
				args[k] = v
			}
		case "FROM":
			if strings.HasPrefix(in.args, "golang:") {
				builder = strings.Fields(in.args)[0]
			}
		}
	}
	tag := strings.TrimPrefix(builder, "golang:")
	tag = strings.NewReplacer("${GO_VERSION}", args["GO_VERSION"], "$GO_VERSION", args["GO_VERSION"]).Replace(tag)
	if !version.IsValid("go"+tag) || strings.Count(tag, ".") != 2 {
		t.Fatalf("builder: got %q (GO_VERSION %q), want golang:<major>.<minor>.<patch>", builder, args["GO_VERSION"])
	}
	if version.Compare("go"+tag, "go"+goLine) < 0 {
		t.Errorf("builder: got Go %s, want at least go.mod's go %s", tag, goLine)
	}

	// The version stamp names a variable that exists: -X on a missing one is silently ignored.
	_ = metrics.Version
	var build strings.Builder
	for _, in := range ins {
		build.WriteString(in.args + "\n")
	}
	if want := "-X opscore-sidecar/metrics.Version="; !strings.Contains(build.String(), want) {
		t.Errorf("sidecar build: got no %q, want the version stamped into metrics.Version", want)
	}
}
