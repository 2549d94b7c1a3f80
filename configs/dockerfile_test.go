package configs

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
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
	for _, in := range final {
		switch in.cmd {
		case "COPY":
			f := strings.Fields(in.args)
			if strings.HasPrefix(f[0], "--from=") {
				copied[f[len(f)-1]] = true
			} else if _, err := os.Stat(filepath.Join("..", f[0])); err != nil {
				t.Errorf("COPY %s: %v", f[0], err)
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

func TestDockerignoreKeepsBuildInputs(t *testing.T) {
	var ignored []string
	for _, line := range strings.Split(readFile(t, "../.dockerignore"), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			ignored = append(ignored, line)
		}
	}
	for _, need := range []string{"go.mod", "go.sum", "cmd", "configs", "proxy", "opscore", "policy", "metrics"} {
		if slices.Contains(ignored, need) {
			t.Errorf(".dockerignore: got %q ignored, want it in the build context", need)
		}
	}
	for _, want := range []string{".git", "e2e"} {
		if !slices.Contains(ignored, want) {
			t.Errorf(".dockerignore: got %q not ignored, want it kept out of the build context", want)
		}
	}
}
