package harness

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// redisInstallHint is the message given when redis-server is not on PATH.
const redisInstallHint = "redis-server not found on PATH; install it: apt-get install -y redis-server"

// startTimeout bounds how long StartRedisProcess and Restart wait for PING.
const startTimeout = 10 * time.Second

// stopGrace is how long Stop waits after SIGTERM before sending SIGKILL.
const stopGrace = 5 * time.Second

// FreePort returns a TCP port on 127.0.0.1 that was free when it was asked
// for. Another process may take it before the caller binds it, which is
// rare enough for tests.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("harness: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Redis is a redis-server child process bound to 127.0.0.1 on its own port,
// with persistence disabled and a private working directory.
type Redis struct {
	// Addr is "127.0.0.1:Port", ready for a redis client.
	Addr string
	// Port is the TCP port the server listens on.
	Port int

	mu     sync.Mutex
	dir    string
	ownDir bool
	cmd    *exec.Cmd
	done   chan struct{} // closed when cmd has been waited for
}

// StartRedis starts a redis-server for the test and stops it (by PID) in
// t.Cleanup. It fails tb when redis-server is missing or does not start.
func StartRedis(tb testing.TB) *Redis {
	tb.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		tb.Fatal(redisInstallHint)
	}
	r, err := startRedis(0, tb.TempDir(), false)
	if err != nil {
		tb.Fatalf("harness: start redis: %v", err)
	}
	tb.Cleanup(func() {
		if err := r.Stop(); err != nil {
			tb.Errorf("harness: stop redis: %v", err)
		}
	})
	return r
}

// StartRedisProcess starts a redis-server on port (0 picks a free port)
// outside of a test, for tools such as cmd/loadtest. The caller must call
// Stop or Kill; the working directory is removed by Stop and Kill.
func StartRedisProcess(port int) (*Redis, error) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		return nil, errors.New(redisInstallHint)
	}
	dir, err := os.MkdirTemp("", "harness-redis-")
	if err != nil {
		return nil, fmt.Errorf("harness: temp dir: %w", err)
	}
	r, err := startRedis(port, dir, true)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return r, nil
}

// freePortAttempts is how many free ports startRedis tries when the caller
// lets it choose: another process may take a port between FreePort and
// redis-server's bind.
const freePortAttempts = 3

func startRedis(port int, dir string, ownDir bool) (*Redis, error) {
	attempts := 1
	if port == 0 {
		attempts = freePortAttempts
	}
	var lastErr error
	for range attempts {
		p := port
		if p == 0 {
			fp, err := FreePort()
			if err != nil {
				return nil, err
			}
			p = fp
		}
		r := &Redis{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(p)), Port: p, dir: dir, ownDir: ownDir}
		r.mu.Lock()
		lastErr = r.startLocked()
		r.mu.Unlock()
		if lastErr == nil {
			return r, nil
		}
	}
	return nil, lastErr
}

// startLocked launches the process and waits until it answers PING.
func (r *Redis) startLocked() error {
	cmd := exec.Command("redis-server",
		"--port", strconv.Itoa(r.Port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", r.dir,
	)
	cmd.Stdout = nil
	cmd.Stderr = nil
	cmd.SysProcAttr = childAttr() // as the core and sidecar: own group, dies with us
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("harness: exec redis-server: %w", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	r.cmd, r.done = cmd, done
	deadline := time.Now().Add(startTimeout)
	for {
		if ping(r.Addr) == nil {
			return nil
		}
		select {
		case <-done:
			r.cmd = nil
			return fmt.Errorf("harness: redis-server on port %d exited during start (port taken?)", r.Port)
		default:
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-done
			r.cmd = nil
			return fmt.Errorf("harness: redis-server on port %d did not answer PING within %v", r.Port, startTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ping sends an inline PING and expects +PONG.
func ping(addr string) error {
	line, err := inlineCommand(addr, "PING", 500*time.Millisecond)
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("unexpected reply %q", line)
	}
	return nil
}

// inlineCommand sends one inline command on a new connection and returns
// the first reply line; timeout bounds the dial and the exchange each.
func inlineCommand(addr, cmd string, timeout time.Duration) (string, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte(cmd + "\r\n")); err != nil {
		return "", err
	}
	return bufio.NewReader(c).ReadString('\n')
}

// PID returns the process id of the running server, or 0 when stopped.
func (r *Redis) PID() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil || r.cmd.Process == nil {
		return 0
	}
	return r.cmd.Process.Pid
}

func (r *Redis) signal(sig syscall.Signal) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return errors.New("harness: redis is not running")
	}
	if err := r.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("harness: signal %v to redis pid %d: %w", sig, r.cmd.Process.Pid, err)
	}
	return nil
}

// Pause freezes the server with SIGSTOP: connections stay open but nothing
// answers, which is how a hung Redis looks to a client.
func (r *Redis) Pause() error { return r.signal(syscall.SIGSTOP) }

// Resume continues a paused server with SIGCONT.
func (r *Redis) Resume() error { return r.signal(syscall.SIGCONT) }

// Stop sends SIGTERM (after SIGCONT, in case it is paused), waits for the
// exit and sends SIGKILL if it takes longer than 5 s. Stopping a stopped
// server is a no-op.
func (r *Redis) Stop() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		r.cleanupLocked()
		return nil
	}
	p, done := r.cmd.Process, r.done
	_ = p.Signal(syscall.SIGCONT)
	_ = p.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(stopGrace):
		_ = p.Kill()
		<-done
	}
	r.cmd = nil
	r.cleanupLocked()
	return nil
}

// Kill sends SIGKILL and waits for the exit. Killing a stopped server is a
// no-op.
func (r *Redis) Kill() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		r.cleanupLocked()
		return nil
	}
	_ = r.cmd.Process.Kill()
	<-r.done
	r.cmd = nil
	r.cleanupLocked()
	return nil
}

// Restart starts the server again on the same port after Stop or Kill. The
// data is gone (persistence is off), as after a real crash without a disk.
func (r *Redis) Restart() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil {
		return errors.New("harness: redis is still running; Stop or Kill it first")
	}
	if r.ownDir {
		if err := os.MkdirAll(r.dir, 0o700); err != nil {
			return fmt.Errorf("harness: temp dir: %w", err)
		}
	}
	return r.startLocked()
}

// cleanupLocked removes a directory created by StartRedisProcess; a test's
// TempDir is removed by the testing package instead.
func (r *Redis) cleanupLocked() {
	if r.ownDir {
		_ = os.RemoveAll(r.dir)
	}
}
