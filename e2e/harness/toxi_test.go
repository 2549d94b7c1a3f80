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

func TestToxiResetPeerResetsAndRemoveHeals(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	defer up.Close()
	tx := StartToxi(t, strings.TrimPrefix(up.URL, "http://"))

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
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	defer up.Close()
	tx := StartToxi(t, strings.TrimPrefix(up.URL, "http://"))
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
