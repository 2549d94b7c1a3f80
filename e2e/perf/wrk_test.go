package perf

import (
	"strings"
	"testing"
	"time"
)

func TestParseWrk(t *testing.T) {
	const head = "Running 3s test @ http://127.0.0.1:1/v1/opscore/agent/perf-agent/state\n" +
		"  1 threads and 64 connections\n" +
		"  Thread Stats   Avg      Stdev     Max   +/- Stdev\n" +
		"    Latency     3.72ms    3.05ms  24.49ms   84.49%\n" +
		"    Req/Sec     1.18k   375.67     1.87k    70.00%\n"
	const tail = "Requests/sec:   1173.75\nTransfer/sec:    636.16KB\n"
	for _, c := range []struct {
		name, body string
		requests   int
		elapsed    time.Duration
		err        string
	}{
		{"ok", "  11790 requests in 3.01s, 639.01KB read\n", 11790, 3010 * time.Millisecond, ""},
		{"minutes", "  700000 requests in 1.50m, 63.01MB read\n", 700000, 90 * time.Second, ""},
		{"milliseconds", "  12 requests in 950.12ms, 1.01KB read\n", 12, 950120 * time.Microsecond, ""},
		{"non-2xx", "  1179 requests in 1.00s, 639.01KB read\n  Non-2xx or 3xx responses: 1179\n", 0, 0, "1179 responses were not 2xx or 3xx"},
		{"socket errors", "  1179 requests in 1.00s, 639.01KB read\n  Socket errors: connect 0, read 3, write 0, timeout 0\n", 0, 0, "socket errors: connect 0, read 3"},
		{"no summary", "", 0, 0, "no \"N requests in X\" line"},
		{"nothing", "  0 requests in 1.00s, 0.00B read\n", 0, 0, "0 requests"},
	} {
		t.Run(c.name, func(t *testing.T) {
			n, d, err := parseWrk(head + c.body + tail)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want one containing %q", err, c.err)
				}
				return
			}
			if err != nil || n != c.requests || d != c.elapsed {
				t.Fatalf("got %d requests in %v (%v), want %d in %v", n, d, err, c.requests, c.elapsed)
			}
		})
	}
}
