package config

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

// envTestValue returns, for a key's default value def, a different value
// of the same type and its spelling in the environment.
func envTestValue(t *testing.T, key string, def any) (string, any) {
	t.Helper()
	if d, ok := def.(time.Duration); ok {
		return (d + time.Millisecond).String(), d + time.Millisecond
	}
	v := reflect.ValueOf(def)
	out := reflect.New(v.Type()).Elem()
	switch v.Kind() {
	case reflect.Bool:
		out.SetBool(!v.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		out.SetInt(v.Int() + 3)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		out.SetUint(v.Uint() + 3)
	case reflect.Float32, reflect.Float64:
		out.SetFloat(v.Float() + 0.5)
	case reflect.String:
		out.SetString("env-" + key)
	case reflect.Slice:
		if v.Type().Elem().Kind() != reflect.String {
			t.Fatalf("%s: no environment test value for %s", key, v.Type())
		}
		out = reflect.ValueOf([]string{"10.9.0.0/16", "10.8.0.0/16"}).Convert(v.Type())
		return "10.9.0.0/16,10.8.0.0/16", out.Interface()
	default:
		t.Fatalf("%s: no environment test value for %s", key, v.Type())
	}
	return fmt.Sprint(out.Interface()), out.Interface()
}

// TestEveryKeyHasAnEnvOverride sets SIDECAR_<KEY> for every key of the
// tree, each to a value that differs from its default, and checks that
// every one reached the decoded config (validation may reject the mix;
// what is checked is the decoding).
func TestEveryKeyHasAnEnvOverride(t *testing.T) {
	want := map[string]any{}
	for key, def := range flatten(Defaults()) {
		env, val := envTestValue(t, key, def)
		t.Setenv(EnvName(key), env)
		want[key] = val
	}
	cfg, _ := LoadBytes([]byte("{}\n"), nil)
	if cfg == nil {
		t.Fatal("LoadBytes with every key overridden: got no config, want one decoded from the environment")
	}
	got := flatten(cfg)
	for key, w := range want {
		if !reflect.DeepEqual(got[key], w) {
			t.Errorf("%s (env %s): got %v, want %v", key, EnvName(key), got[key], w)
		}
	}
}

// docKey is how docs/sidecar.md spells key: route keys with <route>.
func docKey(key string) string {
	for _, name := range RouteNames {
		if p := "routes." + name + "."; strings.HasPrefix(key, p) {
			return "routes.<route>." + strings.TrimPrefix(key, p)
		}
	}
	return key
}

// TestDocsListEveryKeyWithItsEnv checks that the user documentation names
// every configuration key and its environment variable.
func TestDocsListEveryKeyWithItsEnv(t *testing.T) {
	b, err := os.ReadFile("../../docs/sidecar.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, key := range Keys() {
		k := docKey(key)
		env := EnvName(strings.ReplaceAll(k, "<route>", "<ROUTE>"))
		if !strings.Contains(doc, "`"+k+"`") {
			t.Errorf("docs/sidecar.md: key %s is not documented", k)
		}
		if !strings.Contains(doc, "`"+env+"`") {
			t.Errorf("docs/sidecar.md: key %s lacks its environment variable %s", k, env)
		}
	}
}

// TestRepoSetsOnlyKnownSidecarEnv: every SIDECAR_* name that the files
// building the sidecar's environment or telling operators what to set
// (Dockerfile, compose, harness, commands, docs) spell out is a config
// key or one of the allowed non-key names, since an unknown one is now a
// start-up error.
func TestRepoSetsOnlyKnownSidecarEnv(t *testing.T) {
	// Shown in docs/sidecar.md as the example of a misspelling.
	deliberate := map[string]bool{"SIDECAR_ROUTES_NOTIFY_WEBHOOKAUTH_MODE": true}
	var files []string
	for _, pattern := range []string{
		"../../Dockerfile", "../../docker-compose*.yml", "../../README.md", "../../docs/*.md", "../../configs/compose/*",
		"../../configs/*.yaml", "../../configs/prometheus/*.yml", "../../e2e/harness/*.go", "../../e2e/*.go", "../../e2e/loadgen/*.go",
		"../../cmd/*/*.go",
	} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) < 10 {
		t.Fatalf("found only %d files to check: %v", len(files), files)
	}
	name := regexp.MustCompile(`\bSIDECAR_[A-Z0-9_]*[A-Z0-9]\b`)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue // tests set unknown names on purpose
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, loc := range name.FindAllIndex(b, -1) {
			n := string(b[loc[0]:loc[1]])
			if loc[1] < len(b) && (b[loc[1]] == '<' || b[loc[1]] == '_') {
				continue // a pattern such as SIDECAR_ROUTES_<ROUTE>_...
			}
			if errs, _ := unknownEnv([]string{n + "=x"}); len(errs) > 0 && !deliberate[n] {
				t.Errorf("%s: %v", f, errs[0])
			}
		}
	}
}
