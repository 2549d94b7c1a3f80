package harness

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"
)

// toxiToOK starts a proxy in front of an upstream that answers "ok".
func toxiToOK(t *testing.T) *Toxi {
	t.Helper()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	t.Cleanup(up.Close)
	return StartToxi(t, strings.TrimPrefix(up.URL, "http://"))
}

func TestToxiResetPeerResetsAndRemoveHeals(t *testing.T) {
	tx := toxiToOK(t)

	get := func() (string, error) {
		c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
		resp, err := c.Get(tx.URL + "/")
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	if got, err := get(); err != nil || got != "ok" {
		t.Fatalf("before toxics: got %q, %v; want \"ok\", nil", got, err)
	}
	name, err := tx.ResetPeer(1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := get(); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("with reset_peer 1.0: got error %v, want ECONNRESET", err)
	}
	if err := tx.Remove(name); err != nil {
		t.Fatal(err)
	}
	if got, err := get(); err != nil || got != "ok" {
		t.Fatalf("after Remove: got %q, %v; want \"ok\", nil", got, err)
	}
	if _, err := tx.ResetPeer(1.5); err == nil {
		t.Fatal("ResetPeer(1.5): got nil error, want a range error")
	}
}

func TestToxiLatencyDelaysResponses(t *testing.T) {
	tx := toxiToOK(t)
	if _, err := tx.Latency(300*time.Millisecond, 0); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	resp, err := http.Get(tx.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// A lower bound only: the toxic must add at least its latency.
	if got := time.Since(start); got < 300*time.Millisecond {
		t.Fatalf("latency toxic: got %v, want >= 300ms", got)
	}
}

func TestToxiTimeoutDropsTheConnectionWithoutResponse(t *testing.T) {
	tx := toxiToOK(t)
	if _, err := tx.Timeout(100*time.Millisecond, 1); err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	resp, err := c.Get(tx.URL + "/")
	if err == nil {
		resp.Body.Close()
		t.Fatalf("with a timeout toxic: got status %d, want no response", resp.StatusCode)
	}
	var ne interface{ Timeout() bool }
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("got the client's own timeout %v, want the proxy to drop the connection after 100ms", err)
	}
}

func TestToxiBandwidthCapsTheResponseRate(t *testing.T) {
	const size = 64 << 10
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(make([]byte, size))
	}))
	defer up.Close()
	tx := StartToxi(t, strings.TrimPrefix(up.URL, "http://"))
	if _, err := tx.Bandwidth(256); err != nil { // 256 KB/s: 64 KB take >= 250 ms
		t.Fatal(err)
	}
	start := time.Now()
	resp, err := http.Get(tx.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || len(b) != size {
		t.Fatalf("body: got %d bytes, %v; want %d bytes", len(b), err, size)
	}
	// A lower bound only: the cap must make the transfer take at least
	// size / rate.
	if got := time.Since(start); got < 200*time.Millisecond {
		t.Fatalf("64 KB at 256 KB/s: took %v, want >= 200ms", got)
	}
}
