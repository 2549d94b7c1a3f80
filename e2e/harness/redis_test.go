package harness

import (
	"net"
	"strconv"
	"testing"
	"time"
)

func TestFreePortIsBindable(t *testing.T) {
	p, err := FreePort()
	if err != nil {
		t.Fatalf("FreePort: %v", err)
	}
	if p <= 0 || p > 65535 {
		t.Fatalf("got port %d, want 1..65535", p)
	}
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
	if err != nil {
		t.Fatalf("listen on free port %d: %v", p, err)
	}
	l.Close()
}

func TestRedisLifecycle(t *testing.T) {
	r := StartRedis(t)
	if r.PID() == 0 {
		t.Fatal("got PID 0 after start, want the child's pid")
	}
	if got, err := inlineCommand(r.Addr, "SET k v", time.Second); err != nil || got != "+OK\r\n" {
		t.Fatalf("SET: got %q, %v; want +OK", got, err)
	}

	if err := r.Pause(); err != nil {
		t.Fatalf("Pause: %v", err)
	}
	if _, err := inlineCommand(r.Addr, "PING", 300*time.Millisecond); err == nil {
		t.Fatal("got a PING reply from a paused server, want a timeout")
	}
	if err := r.Resume(); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	if got, err := inlineCommand(r.Addr, "PING", time.Second); err != nil || got != "+PONG\r\n" {
		t.Fatalf("PING after Resume: got %q, %v; want +PONG", got, err)
	}

	if err := r.Kill(); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	if r.PID() != 0 {
		t.Fatalf("got PID %d after Kill, want 0", r.PID())
	}
	if _, err := inlineCommand(r.Addr, "PING", 300*time.Millisecond); err == nil {
		t.Fatal("got a PING reply after Kill, want connection refused")
	}
	if err := r.Restart(); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	if got, err := inlineCommand(r.Addr, "GET k", time.Second); err != nil || got != "$-1\r\n" {
		t.Fatalf("GET after restart: got %q, %v; want nil bulk (no persistence)", got, err)
	}
	if err := r.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := r.Restart(); err != nil {
		t.Fatalf("Restart after Stop: %v", err)
	}
	if err := r.Restart(); err == nil {
		t.Fatal("got nil error restarting a running server, want an error")
	}
}

func TestStartRedisProcessOwnsItsDirectory(t *testing.T) {
	r, err := StartRedisProcess(0)
	if err != nil {
		t.Fatalf("StartRedisProcess: %v", err)
	}
	if r.Port == 0 || r.PID() == 0 {
		t.Fatalf("got port %d pid %d, want both non-zero", r.Port, r.PID())
	}
	if err := r.Pause(); err != nil {
		t.Fatalf("Pause: %v", err)
	}
	// Stop must get through a paused server.
	if err := r.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := r.Stop(); err != nil {
		t.Fatalf("second Stop: got %v, want nil", err)
	}
}
