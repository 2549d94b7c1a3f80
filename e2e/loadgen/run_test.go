package loadgen

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeCore answers like Ops-Core: 200 on notify, 202 on POST state and
// workflow, 200 with a state on GET state.
func fakeCore(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		switch {
		case r.URL.Path == "/health":
			w.Write([]byte(`{"status":"ok"}`))
		case r.URL.Path == NameNotify:
			w.Write([]byte(`{"status":"success"}`))
		case r.Method == http.MethodGet:
			w.Write([]byte(`{"agentId":"x","state":"UNKNOWN"}`))
		default:
			w.WriteHeader(http.StatusAccepted)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

// tiny returns scenario id shrunk to a couple of seconds.
func tiny(t *testing.T, id int) Scenario {
	t.Helper()
	s, err := ScenarioByID(id)
	if err != nil {
		t.Fatal(err)
	}
	s.Users, s.InitialUsers, s.SpawnRate, s.Duration = 4, 2, 20, 1500*time.Millisecond
	s.ThinkMin, s.ThinkMax = 10*time.Millisecond, 30*time.Millisecond
	s.AfterRegister, s.PollEvery, s.PollFor = 0, 0, 0
	return s
}

func TestRunClosedCountsEveryRequestWithoutFailures(t *testing.T) {
	srv, served := fakeCore(t)
	for _, id := range []int{0, 1, 2, 3, 4} {
		served.Store(0)
		// A trailing slash on the target must not double the paths' slash.
		res, err := Run(context.Background(), Config{Scenario: tiny(t, id), Target: srv.URL + "/"})
		if err != nil {
			t.Fatal(err)
		}
		if res.Total.Failures != 0 {
			t.Errorf("scenario %d: got %d failures %+v, want 0", id, res.Total.Failures, res.Failures)
		}
		// Requests cut off by the end of the run (at most one per user)
		// are served but not recorded.
		if got, srv := int64(res.Total.Requests), served.Load(); got > srv || srv-got > 4 {
			t.Errorf("scenario %d: got %d requests recorded, want %d served minus at most 4 in flight", id, got, srv)
		}
		var regs uint64
		for _, s := range res.Stats {
			if s.Name == NameNotify {
				regs = s.Requests
			}
		}
		if regs != 4 {
			t.Errorf("scenario %d: got %d registrations, want 4 (one per user)", id, regs)
		}
	}
}

func TestRunClassifiesResetsAndServerErrors(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch n.Add(1) % 3 {
		case 0: // reset the connection without a response
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.(*net.TCPConn).SetLinger(0)
				conn.Close()
			}
		case 1:
			w.WriteHeader(http.StatusInternalServerError)
		default:
			if r.URL.Path == NameNotify {
				w.WriteHeader(http.StatusOK)
			} else {
				w.WriteHeader(http.StatusAccepted)
			}
		}
	}))
	defer srv.Close()
	res, err := Run(context.Background(), Config{Scenario: tiny(t, 1), Target: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	if res.TransportErrors() == 0 {
		t.Errorf("transport errors: got 0, want > 0; failures %+v", res.Failures)
	}
	if res.ServerErrors() == 0 {
		t.Errorf("server errors: got 0, want > 0; failures %+v", res.Failures)
	}
	for _, f := range res.Failures {
		if f.Kind == KindReset && f.Error != MsgReset && !strings.HasPrefix(f.Error, RegistrationFailurePrefix) {
			t.Errorf("reset failure message: got %q, want %q", f.Error, MsgReset)
		}
	}
}

func TestRunInterruptedStillReturnsResult(t *testing.T) {
	srv, _ := fakeCore(t)
	s := tiny(t, 1)
	s.Duration = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		time.Sleep(500 * time.Millisecond)
		cancel()
	}()
	res, err := Run(ctx, Config{Scenario: s, Target: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Interrupted {
		t.Error("Interrupted: got false, want true")
	}
	if res.Total.Requests == 0 {
		t.Error("requests: got 0, want the requests made before the interrupt")
	}
}

func TestRunOpenModel(t *testing.T) {
	srv, served := fakeCore(t)
	s := tiny(t, 3)
	res, err := Run(context.Background(), Config{Scenario: s, Target: srv.URL, Rate: 200, Connections: 8})
	if err != nil {
		t.Fatal(err)
	}
	if res.Model != "open" || res.Total.Failures != 0 || res.Total.Requests == 0 {
		t.Errorf("got model %s, %d requests, %d failures; want open, > 0, 0", res.Model, res.Total.Requests, res.Total.Failures)
	}
	if got, srv := int64(res.Total.Requests), served.Load(); got > srv || srv-got > 8 {
		t.Errorf("got %d requests recorded, want %d served minus at most 8 in flight", got, srv)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{Scenario: Scenarios()[1], Target: "http://127.0.0.1:8000"}
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"valid", func(*Config) {}, ""},
		{"bad target", func(c *Config) { c.Target = "127.0.0.1:8000" }, "--target"},
		{"zero users", func(c *Config) { c.Scenario.Users = 0 }, "--users"},
		{"too many users", func(c *Config) { c.Scenario.Users = MaxUsers + 1 }, "--users"},
		{"zero spawn rate", func(c *Config) { c.Scenario.SpawnRate = 0 }, "--spawn-rate"},
		{"short duration", func(c *Config) { c.Scenario.Duration = time.Millisecond }, "--duration"},
		{"long duration", func(c *Config) { c.Scenario.Duration = 25 * time.Hour }, "--duration"},
		{"negative rate", func(c *Config) { c.Rate = -1 }, "--rate"},
		{"open without connections", func(c *Config) { c.Rate = 10 }, "--connections"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.mutate(&c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("got %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("got %v, want an error naming %s", err, tt.want)
			}
		})
	}
}

func TestCheckTargetUnreachable(t *testing.T) {
	err := CheckTarget(context.Background(), closedPort(t))
	if err == nil || !strings.Contains(err.Error(), "unreachable") || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("got %v, want an unreachable/refused error", err)
	}
}

func TestStopRule(t *testing.T) {
	tests := []struct {
		mean  time.Duration
		ratio float64
		n     uint64
		stop  bool
	}{
		{time.Second, 0.01, 100, false},
		{3 * time.Second, 0, 100, true},
		{0, 0.06, 100, true},
		{3 * time.Second, 0.5, 0, false},
	}
	for _, tt := range tests {
		if got := stopRule(tt.mean, tt.ratio, tt.n, 300) != ""; got != tt.stop {
			t.Errorf("stopRule(%v, %v, %d): got stop %v, want %v", tt.mean, tt.ratio, tt.n, got, tt.stop)
		}
	}
}

func TestScenario4StopsOnErrorRate(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	s := tiny(t, 4)
	s.Duration = time.Minute
	res, err := Run(context.Background(), Config{Scenario: s, Target: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res.StopReason, "error rate") {
		t.Errorf("stop reason: got %q, want the error-rate rule", res.StopReason)
	}
	if res.Interrupted {
		t.Error("Interrupted: got true, want false (the stop rule is not a Ctrl-C)")
	}
}
