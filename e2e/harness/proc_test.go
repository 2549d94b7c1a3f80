package harness

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// helperEnv makes the test binary act as a tiny HTTP server child process
// so Proc is tested without the repository's real binaries.
const helperEnv = "HARNESS_HELPER_LISTEN"

func TestMain(m *testing.M) {
	if addr := os.Getenv(helperEnv); addr != "" {
		http.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "pid %d", os.Getpid())
		})
		fmt.Println("helper listening on", addr)
		if err := http.ListenAndServe(addr, nil); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	os.Exit(m.Run())
}

func helperProc(t *testing.T) *Proc {
	t.Helper()
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	p := &Proc{
		Name: "helper", URL: "http://" + addr, Port: port,
		LogPath: filepath.Join(t.TempDir(), "helper.log"),
		bin:     os.Args[0], env: []string{helperEnv + "=" + addr},
		readyURL: "http://" + addr + "/health",
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func TestProcKillRestartKeepsPort(t *testing.T) {
	p := helperProc(t)
	first := p.PID()
	if first == 0 {
		t.Fatal("PID after start: got 0, want a pid")
	}
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	if got := p.PID(); got != 0 {
		t.Fatalf("PID after Kill: got %d, want 0", got)
	}
	if _, err := http.Get(p.URL + "/health"); err == nil {
		t.Fatal("GET after Kill: got nil error, want connection refused")
	}
	if err := p.Restart(); err != nil {
		t.Fatal(err)
	}
	if got := p.PID(); got == 0 || got == first {
		t.Fatalf("PID after Restart: got %d, want a new pid (old %d)", got, first)
	}
	resp, err := http.Get(p.URL + "/health")
	if err != nil {
		t.Fatalf("GET after Restart: %v", err)
	}
	resp.Body.Close()
	if err := p.Stop(); err != nil {
		t.Fatalf("Stop: got %v, want nil", err)
	}
	b, err := os.ReadFile(p.LogPath)
	if err != nil || len(b) == 0 {
		t.Fatalf("log file: got %d bytes, %v; want the helper's output", len(b), err)
	}
}

func TestStartCoreProcessFailsClearlyOnMissingBinary(t *testing.T) {
	_, err := StartCoreProcess(CoreOptions{Bin: filepath.Join(t.TempDir(), "nope"), Dir: t.TempDir()})
	if err == nil {
		t.Fatal("got nil error, want an exec error")
	}
}

func TestStartCoreProcessRefusesRedisWithoutURL(t *testing.T) {
	// Any error would do if the refusal were gone: the test binary is no
	// core and never gets ready. So the error must be the refusal.
	_, err := StartCoreProcess(CoreOptions{Bin: os.Args[0], Storage: "redis", Dir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "RedisURL is required") {
		t.Fatalf("got error %v, want the refusal naming RedisURL (the core would use the machine's Redis)", err)
	}
}

// TestProcRunsInItsOwnProcessGroup pins that a Ctrl-C at the terminal
// (SIGINT to the foreground process group) does not reach the children:
// the caller stops them by PID after writing its report.
func TestProcRunsInItsOwnProcessGroup(t *testing.T) {
	p := helperProc(t)
	pid := p.PID()
	pgid, err := syscall.Getpgid(pid)
	if err != nil {
		t.Fatal(err)
	}
	if pgid != pid {
		t.Errorf("child pgid: got %d, want its own pid %d (a group of its own)", pgid, pid)
	}
	if own := syscall.Getpgrp(); pgid == own {
		t.Errorf("child pgid: got %d, the caller's group; want a separate group", pgid)
	}
}
