package loadgen

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// StartTrivialServer serves 200 "ok" for every request on a free
// 127.0.0.1 port, the trivial loopback server used to measure the
// generator itself. It returns the base URL and a stop function.
func StartTrivialServer() (string, func(), error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	ok := []byte(`{"status":"ok"}`)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Write(ok)
	}), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(l)
	return "http://" + l.Addr().String(), func() { srv.Close() }, nil
}

// cmdSelftest measures the generator's own ceiling: the open model at a
// fixed rate against an in-process trivial server.
func cmdSelftest(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("selftest", flag.ContinueOnError)
	rate := fs.Float64("rate", 20000, "requests per second to offer")
	duration := fs.Duration("duration", 10*time.Second, "length of the measurement")
	conns := fs.Int("connections", 16, "concurrent senders and connections")
	if !parse(fs, args, stderr) {
		return ExitUsage
	}
	url, stop, err := StartTrivialServer()
	if err != nil {
		fmt.Fprintf(stderr, "loadtest selftest: %v\n", err)
		return ExitRuntime
	}
	defer stop()
	s, _ := ScenarioByID(1)
	s.Users, s.Duration = 100, *duration
	cfg := Config{Scenario: s, Target: url, Rate: *rate, Connections: *conns, UniqueIDs: true}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "loadtest selftest: %v\n", err)
		return ExitUsage
	}
	res, err := Run(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "loadtest selftest: %v\n", err)
		return ExitRuntime
	}
	var state StatRow
	for _, r := range res.Stats {
		if r.Name == NameState {
			state = r
		}
	}
	achieved := float64(state.Requests) / duration.Seconds()
	fmt.Fprintf(stdout, "offered %.0f req/s for %v over %d connections: sent %d requests, %.0f req/s, %d failures, latency from schedule p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
		*rate, *duration, *conns, state.Requests, achieved, state.Failures, state.MedianMs, state.P99Ms, state.MaxMs)
	if achieved < 0.97*(*rate) || state.Failures > 0 {
		fmt.Fprintln(stdout, "the generator did NOT sustain the offered rate")
		return ExitFailed
	}
	fmt.Fprintln(stdout, "the generator sustained the offered rate")
	return ExitOK
}
