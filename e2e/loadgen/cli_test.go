package loadgen

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func runMain(ctx context.Context, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := Main(ctx, args, &out, &errb)
	return code, out.String(), errb.String()
}

// closedPort returns the URL of a 127.0.0.1 port that was just bound and
// released, so nothing listens on it.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

func TestMainRejectsBadInput(t *testing.T) {
	srv, _ := fakeCore(t)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no command", nil, "usage"},
		{"unknown command", []string{"fly"}, "unknown command"},
		{"unknown flag", []string{"run", "--bogus"}, "bogus"},
		{"scenario out of range", []string{"run", "--scenario", "7", "--target", srv.URL}, "--scenario"},
		{"negative users", []string{"run", "--users", "-3", "--target", srv.URL}, "--users"},
		{"too many users", []string{"run", "--users", "1000000", "--target", srv.URL}, "--users"},
		{"negative duration", []string{"run", "--duration", "-1s", "--target", srv.URL}, "--duration"},
		{"ratio above 1", []string{"run", "--max-failure-ratio", "2", "--target", srv.URL}, "--max-failure-ratio"},
		{"target not a URL", []string{"run", "--target", "localhost:8000"}, "--target"},
		{"unreachable target", []string{"run", "--target", closedPort(t), "--duration", "2s"}, "unreachable"},
		{"extra argument", []string{"run", "--target", srv.URL, "now"}, "unexpected arguments"},
		{"debug duration", []string{"debug-registration", "--duration", "1ms"}, "--duration"},
		{"debug reset", []string{"debug-registration", "--reset", "1.5"}, "--reset"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			code, _, stderr := runMain(context.Background(), tt.args...)
			if code != ExitUsage {
				t.Errorf("exit: got %d, want %d", code, ExitUsage)
			}
			if !strings.Contains(stderr, tt.want) {
				t.Errorf("stderr: got %q, want it to mention %q", stderr, tt.want)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("took %v, want a fast failure", d)
			}
		})
	}
}

func TestMainRunExitStatusFollowsMaxFailureRatio(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == NameNotify || r.URL.Path == "/health" {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	args := []string{"run", "--scenario", "0", "--target", srv.URL, "--users", "2", "--spawn-rate", "10",
		"--duration", "1s", "--think-min", "50ms", "--think-max", "50ms", "--quiet"}
	dir := t.TempDir()
	code, stdout, _ := runMain(context.Background(), append(args, "--report", dir)...)
	if code != ExitFailed {
		t.Errorf("with 503s and the default ratio 0: got exit %d, want %d", code, ExitFailed)
	}
	if !strings.Contains(stdout, "HTTPError('503 Server Error: Service Unavailable") {
		t.Errorf("stdout: want the 503 failure row, got\n%s", stdout)
	}
	for _, f := range []string{"result.json", "report.txt", "report.html"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("report file %s: %v", f, err)
		}
	}
	if code, _, _ := runMain(context.Background(), append(args, "--max-failure-ratio", "1")...); code != ExitOK {
		t.Errorf("with --max-failure-ratio 1: got exit %d, want %d", code, ExitOK)
	}
}

func TestMainRunInterruptedWritesReport(t *testing.T) {
	srv, _ := fakeCore(t)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(700*time.Millisecond, cancel)
	code, stdout, _ := runMain(ctx, "run", "--scenario", "0", "--target", srv.URL, "--users", "2",
		"--spawn-rate", "10", "--duration", "1h", "--think-min", "20ms", "--think-max", "20ms", "--report", dir, "--quiet")
	if code != ExitOK {
		t.Errorf("exit: got %d, want %d", code, ExitOK)
	}
	if !strings.Contains(stdout, "(interrupted)") {
		t.Errorf("stdout: want the run marked interrupted, got\n%s", stdout)
	}
	b, err := os.ReadFile(filepath.Join(dir, "result.json"))
	if err != nil || !strings.Contains(string(b), `"interrupted": true`) {
		t.Errorf("result.json: got %v / %.200s, want an interrupted result", err, b)
	}
}
