package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckConfig(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(good, []byte("upstream:\n  url: http://127.0.0.1:8000\n"), 0o644)
	os.WriteFile(bad, []byte("lisen: x\nroutes:\n  notify:\n    retry:\n      attempts: 0\n"), 0o644)
	undecodable := filepath.Join(dir, "undecodable.yaml")
	os.WriteFile(undecodable, []byte("lisen: x\nserver:\n  read_header_timeout: soon\nupstream:\n  url: ftp://x\n"), 0o644)
	bareDuration := filepath.Join(dir, "bare.yaml")
	os.WriteFile(bareDuration, []byte("routes:\n  notify:\n    retry:\n      per_try_timeout: 2\n"), 0o644)
	empty := filepath.Join(dir, "empty.yaml")
	os.WriteFile(empty, nil, 0o644)
	commentsOnly := filepath.Join(dir, "comments.yaml")
	os.WriteFile(commentsOnly, []byte("# every key at its default\n\n   \n"), 0o644)
	allDefaults := filepath.Join(dir, "defaults.yaml")
	os.WriteFile(allDefaults, []byte("{}\n"), 0o644)
	tests := []struct {
		name     string
		args     []string
		code     int
		contains []string
	}{
		{"defaults", []string{"--check-config"}, 0, []string{"configuration OK"}},
		{"reference file", []string{"--check-config", "--config", "../../configs/sidecar.yaml"}, 0, []string{"configuration OK"}},
		{"good file", []string{"--check-config", "--config", good}, 0, []string{"configuration OK"}},
		{"compose file", []string{"--check-config", "--config", "../../configs/compose/sidecar.yaml"}, 0, []string{"configuration OK"}},
		{"required webhook secret missing", []string{"--check-config", "--config", "../../configs/compose/sidecar.yaml"}, 1, []string{"OPSCORE_WEBHOOK_SECRET is empty or unset"}},
		{"every error of a bad file", []string{"--check-config", "--config", bad}, 1, []string{"lisen: unknown key", "routes.notify.retry.attempts: must be between 1 and 10, got 0"}},
		{"undecodable value among other errors", []string{"--check-config", "--config", undecodable}, 1, []string{
			"\n  lisen: unknown key\n", "\n  server.read_header_timeout: time: invalid duration, got \"soon\"\n", "\n  upstream.url: must be an http or https URL"}},
		{"bad flag value", []string{"--check-config", "--upstream-url", "ftp://x"}, 1, []string{"upstream.url: must be an http or https URL"}},
		{"missing file", []string{"--check-config", "--config", filepath.Join(dir, "none.yaml")}, 1, []string{"none.yaml"}},
		{"duration without a unit", []string{"--check-config", "--config", bareDuration}, 1, []string{`routes.notify.retry.per_try_timeout: "2" has no unit; write e.g. 2s or 250ms`}},
		{"empty file", []string{"--check-config", "--config", empty}, 1, []string{"empty.yaml is empty"}},
		{"comment-only file", []string{"--check-config", "--config", commentsOnly}, 1, []string{"comments.yaml is empty"}},
		{"explicit empty map", []string{"--check-config", "--config", allDefaults}, 0, []string{"configuration OK"}},
		{"unknown flag", []string{"--nope"}, 2, []string{"flag provided but not defined"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if strings.Contains(tt.name, "secret missing") {
				t.Setenv("OPSCORE_WEBHOOK_SECRET", "")
			} else {
				t.Setenv("OPSCORE_WEBHOOK_SECRET", "test-secret")
			}
			var out, errb bytes.Buffer
			code := run(tt.args, &out, &errb)
			if code != tt.code {
				t.Errorf("exit code: got %d, want %d (stderr %q)", code, tt.code, errb.String())
			}
			all := out.String() + errb.String()
			for _, c := range tt.contains {
				if !strings.Contains(all, c) {
					t.Errorf("output lacks %q: %q", c, all)
				}
			}
		})
	}
}

func TestEnvOverrideReachesCheckConfig(t *testing.T) {
	t.Setenv("SIDECAR_SERVER_IDLE_TIMEOUT", "1s")
	var out, errb bytes.Buffer
	if code := run([]string{"--check-config"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "server.idle_timeout: must be >= 90s") {
		t.Errorf("got exit %d %q, want 1 naming server.idle_timeout", code, errb.String())
	}
}

func TestHealthcheck(t *testing.T) {
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer ok.Close()
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) }))
	defer down.Close()
	tests := []struct {
		name string
		url  string
		code int
	}{
		{"200", ok.URL, 0},
		{"503", down.URL, 1},
		{"nothing listening", "http://127.0.0.1:1/healthz", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run([]string{"healthcheck", "--url", tt.url}, &out, &errb); code != tt.code {
				t.Errorf("exit code: got %d, want %d (%s)", code, tt.code, errb.String())
			}
		})
	}
}

// TestMisspelledEnvFailsCheckConfig: a misspelled override that used to
// leave webhook auth off in silence.
func TestMisspelledEnvFailsCheckConfig(t *testing.T) {
	t.Setenv("SIDECAR_ROUTES_NOTIFY_WEBHOOKAUTH_MODE", "required")
	var out, errb bytes.Buffer
	code := run([]string{"--check-config"}, &out, &errb)
	want := "SIDECAR_ROUTES_NOTIFY_WEBHOOKAUTH_MODE: unknown environment variable: no config key has this name; did you mean SIDECAR_ROUTES_NOTIFY_WEBHOOK_AUTH_MODE?"
	if code != 1 || !strings.Contains(errb.String(), want) {
		t.Errorf("got exit %d %q, want 1 with %q", code, errb.String(), want)
	}
}
