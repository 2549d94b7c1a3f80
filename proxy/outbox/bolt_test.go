package outbox

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// crashChildEnv names the bolt file the child process of
// TestBoltCrashKeepsEveryAcknowledgedMessage enqueues into.
const crashChildEnv = "OUTBOX_CRASH_CHILD_PATH"

func TestMain(m *testing.M) {
	if path := os.Getenv(crashChildEnv); path != "" {
		crashChild(path)
	}
	os.Exit(m.Run())
}

// crashChild is the child process: it enqueues until it is killed,
// printing each ID once Enqueue has returned.
func crashChild(path string) {
	s, err := OpenBolt(path, Limits{})
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(2)
	}
	for i := 0; i < 100000; i++ {
		m := msg(fmt.Sprintf("agent%d", i%7), fmt.Sprintf("r%d", i))
		if err := s.Enqueue(context.Background(), m); err != nil {
			fmt.Println("ERR", err)
			os.Exit(2)
		}
		fmt.Println("ID", m.ID, m.AgentID)
	}
	os.Exit(3) // never reached in time: the parent kills it
}

func TestBoltCrashKeepsEveryAcknowledgedMessage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	const killAfter = 200
	printed := map[string]string{}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) > 0 && f[0] == "ERR" {
			t.Fatalf("child: %s", sc.Text())
		}
		if len(f) == 3 && f[0] == "ID" {
			printed[f[1]] = f[2]
			if len(printed) == killAfter {
				if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				break
			}
		}
	}
	// Lines already written by the child before it died count too.
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 3 && f[0] == "ID" {
			printed[f[1]] = f[2]
		}
	}
	werr := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(werr, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die of SIGKILL: %v", werr)
	}
	if len(printed) < killAfter {
		t.Fatalf("child printed %d ids, want at least %d", len(printed), killAfter)
	}

	s, err := OpenBolt(path, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ms, err := s.List(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for i, m := range ms {
		found[m.ID] = true
		if i > 0 && m.ID <= ms[i-1].ID {
			t.Fatalf("ids out of order after reopen: %s after %s", m.ID, ms[i-1].ID)
		}
	}
	for id, agent := range printed {
		if !found[id] {
			t.Fatalf("id %s was printed after Enqueue returned but is gone after SIGKILL (%d printed, %d stored)", id, len(printed), len(ms))
		}
		if !pending(t, s, agent) {
			t.Fatalf("Pending(%s) false after reopen", agent)
		}
	}
	if st := stats(t, s); st.Depth != len(ms) || st.Dead != 0 {
		t.Fatalf("Stats after reopen = %+v, want depth %d", st, len(ms))
	}
	t.Logf("%d ids printed, %d stored after SIGKILL", len(printed), len(ms))
}

func TestBoltUnreadableMessageGoesToDeadLetters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	s, err := OpenBolt(path, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	m1, m2 := msg("a", "r1"), msg("b", "r2")
	mustEnqueue(t, s, m1, m2)
	s.Close()

	// Corrupt r1 on disk.
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	k, _ := keyOf(m1.ID)
	if err := db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketQueue).Put([]byte("odd"), []byte(`{}`)); err != nil { // a key of the wrong length
			return err
		}
		return tx.Bucket(bucketQueue).Put(k, []byte(`{"id": garbage`))
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s, err = OpenBolt(path, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	dead, err := s.Dead(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) != 2 || dead[0].ID != m1.ID || string(dead[0].Body) != `{"id": garbage` || !strings.Contains(dead[0].DeadReason, "unreadable message") {
		t.Fatalf("Dead = %+v, want the raw corrupt record with a reason", dead)
	}
	if dead[1].ID != "x6f6464" || string(dead[1].Body) != `{}` || !strings.Contains(dead[1].DeadReason, "not an 8-byte sequence") {
		t.Fatalf("Dead[1] = %+v, want the record under a bad key", dead[1])
	}
	if st := stats(t, s); st.Depth != 1 || st.Dead != 2 || st.Bytes != m2.Size() {
		t.Fatalf("Stats = %+v", st)
	}
	if pending(t, s, "a") || !pending(t, s, "b") {
		t.Fatal("Pending index counts the unreadable message")
	}
	if h := mustClaim(t, s); h == nil || h.ID != m2.ID {
		t.Fatalf("Claim = %+v, want r2", h)
	}
	// An operator can still requeue the record under a bad key; it gets a proper ID.
	if err := s.RetryDead(context.Background(), "x6f6464"); err != nil {
		t.Fatal(err)
	}
	if ms, _ := s.List(context.Background(), 0); len(ms) != 2 || len(ms[1].ID) != 20 {
		t.Fatalf("List after RetryDead = %+v", ms)
	}
	if h := mustClaim(t, s); h == nil || h.ID != m2.ID {
		t.Fatalf("Claim = %+v, want r2", h)
	}
}

func TestBoltClaimMovesUnreadableHead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	s, err := OpenBolt(path, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m1, m2 := msg("a", "r1"), msg("b", "r2")
	mustEnqueue(t, s, m1, m2)
	k, _ := keyOf(m1.ID)
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketQueue).Put(k, []byte(`not json`)) }); err != nil {
		t.Fatal(err)
	}
	if h := mustClaim(t, s); h == nil || h.ID != m2.ID {
		t.Fatalf("Claim = %+v, want r2 past the unreadable head", h)
	}
	dead, _ := s.Dead(context.Background(), 0)
	if len(dead) != 1 || string(dead[0].Body) != "not json" {
		t.Fatalf("Dead = %+v", dead)
	}
	if st := stats(t, s); st.Depth != 1 || st.Dead != 1 {
		t.Fatalf("Stats = %+v", st)
	}
}

func TestBoltSecondOpenFailsClearly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "b", "outbox.db")
	s, err := OpenBolt(path, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fi, err := os.Stat(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Fatalf("parent dir mode = %v, want 0700", fi.Mode().Perm())
	}
	_, err = OpenBolt(path, Limits{})
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "locked by another process") {
		t.Fatalf("second OpenBolt = %v, want a lock error naming %s", err, path)
	}
	if _, err := OpenBolt("", Limits{}); err == nil {
		t.Fatal("OpenBolt(\"\") succeeded")
	}
}

func TestBoltIDIsZeroPaddedSequence(t *testing.T) {
	s, err := OpenBolt(filepath.Join(t.TempDir(), "o.db"), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m := msg("a", "r1")
	mustEnqueue(t, s, m)
	if m.ID != "00000000000000000001" {
		t.Fatalf("first ID = %q", m.ID)
	}
	var stored Message
	if err := s.db.View(func(tx *bolt.Tx) error {
		return json.Unmarshal(tx.Bucket(bucketQueue).Get(key(1)), &stored)
	}); err != nil {
		t.Fatal(err)
	}
	if stored.RequestID != "r1" || !stored.Enqueued.Equal(m.Enqueued) {
		t.Fatalf("stored = %+v", stored)
	}
}
