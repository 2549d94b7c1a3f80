package harness

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"
)

// procReadyTimeout bounds how long a start or restart waits for the
// process's readiness URL to answer 200.
const procReadyTimeout = 15 * time.Second

// procStopGrace is how long Stop waits after SIGTERM before SIGKILL.
const procStopGrace = 10 * time.Second

// Proc is a child process of the caller (core or sidecar) listening on
// 127.0.0.1. Its stdout and stderr go to LogPath. Every method is safe for
// concurrent use.
type Proc struct {
	// Name says what the process is ("opscore", "sidecar").
	Name string
	// URL is the base URL of the process's main listener.
	URL string
	// Port is the TCP port of the main listener.
	Port int
	// AdminURL is the base URL of the admin listener (sidecar only).
	AdminURL string
	// LogPath is the file that receives the process's stdout and stderr,
	// appended to across restarts.
	LogPath string

	bin      string
	args     []string
	env      []string
	readyURL string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	log  *os.File
}

// PID returns the process id, or 0 when the process is not running.
func (p *Proc) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Start launches the process and waits for its readiness URL. It also
// starts a stopped or killed process again, on the same port, without
// killing anything first (Restart does).
func (p *Proc) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return fmt.Errorf("harness: %s already running (pid %d)", p.Name, p.cmd.Process.Pid)
	}
	if p.log == nil {
		f, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("harness: %s log: %w", p.Name, err)
		}
		p.log = f
	}
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout, cmd.Stderr = p.log, p.log
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("harness: exec %s: %w", p.bin, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	p.cmd, p.done = cmd, done
	if err := waitReady(p.readyURL, done); err != nil {
		_ = cmd.Process.Kill()
		<-done
		p.cmd = nil
		return fmt.Errorf("harness: %s (%s) not ready: %w; log tail:\n%s", p.Name, p.URL, err, tail(p.LogPath, 2000))
	}
	return nil
}

// waitReady polls url until it answers 200, the process exits or the
// timeout passes.
func waitReady(url string, exited <-chan struct{}) error {
	client := &http.Client{Timeout: 500 * time.Millisecond}
	deadline := time.Now().Add(procReadyTimeout)
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				client.CloseIdleConnections()
				return nil
			}
		}
		select {
		case <-exited:
			return errors.New("process exited during start")
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer 200 within %v (last error: %v)", url, procReadyTimeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// tail returns the last n bytes of a file, for error messages.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(bytes.TrimSpace(b))
}

// Kill sends SIGKILL, as a crash would, and waits for the exit. Killing a
// stopped process is a no-op.
func (p *Proc) Kill() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return nil
	}
	_ = p.cmd.Process.Kill()
	<-p.done
	p.cmd = nil
	return nil
}

// Stop sends SIGTERM so the process drains, waits for the exit and sends
// SIGKILL after 10 s. Stopping a stopped process is a no-op.
func (p *Proc) Stop() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return nil
	}
	pid := p.cmd.Process.Pid
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	var err error
	select {
	case <-p.done:
	case <-time.After(procStopGrace):
		_ = p.cmd.Process.Kill()
		<-p.done
		err = fmt.Errorf("harness: %s pid %d ignored SIGTERM for %v, killed", p.Name, pid, procStopGrace)
	}
	p.cmd = nil
	return err
}

// Restart kills the process if it runs, then starts it again with the same
// arguments on the same port and waits until it is ready.
func (p *Proc) Restart() error {
	if err := p.Kill(); err != nil {
		return err
	}
	return p.Start()
}

// Close stops the process and closes its log file.
func (p *Proc) Close() error {
	err := p.Stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.log != nil {
		p.log.Close()
		p.log = nil
	}
	return err
}

// launch starts p and waits until it is ready; on failure it closes p's
// log file and returns the start error.
func launch(p *Proc) (*Proc, error) {
	if err := p.Start(); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// freePorts sets each port that is 0 to a free one (FreePort).
func freePorts(ports ...*int) error {
	for _, port := range ports {
		if *port == 0 {
			p, err := FreePort()
			if err != nil {
				return err
			}
			*port = p
		}
	}
	return nil
}

// defaultDir sets *dir to a new temporary directory named after prefix
// when it is empty.
func defaultDir(dir *string, prefix string) error {
	if *dir != "" {
		return nil
	}
	d, err := os.MkdirTemp("", prefix)
	if err != nil {
		return fmt.Errorf("harness: temp dir: %w", err)
	}
	*dir = d
	return nil
}

// forTest fills a test's defaults (the binary from Bins, the directory
// from tb.TempDir), starts the process with start, stops it in tb.Cleanup
// and fails tb when it does not start.
func forTest(tb testing.TB, what string, bin *string, fromBins func(Binaries) string, dir *string, start func() (*Proc, error)) *Proc {
	tb.Helper()
	if *bin == "" {
		*bin = fromBins(Bins(tb))
	}
	if *dir == "" {
		*dir = tb.TempDir()
	}
	p, err := start()
	if err != nil {
		tb.Fatalf("harness: start %s: %v", what, err)
	}
	tb.Cleanup(func() { p.Close() })
	return p
}
