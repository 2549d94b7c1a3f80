package loadgen

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestScenariosMatchPlan pins scenarios 0-4 to the seed's plan, the table
// of docs/loadtest.md, "Scenarios":
// users, ramp, duration, think time, task weights, ids and on_start.
func TestScenariosMatchPlan(t *testing.T) {
	min, sec := time.Minute, time.Second
	s3tasks := []WeightedTask{{TaskPostState, 80}, {TaskGetState, 15}, {TaskWorkflow, 5}}
	tests := []struct {
		id                        int
		initial, users            int
		ramp, duration            time.Duration
		thinkMin, thinkMax        time.Duration
		tasks                     []WeightedTask
		ids                       IDStyle
		caps                      []string
		withAuth, metaScenario    bool
		sleep, pollEvery, pollFor time.Duration
		stepUsers                 int
		stepEvery                 time.Duration
		stopRule                  bool
	}{
		{0, 1, 5, 1 * min, 5 * min, sec, sec, []WeightedTask{{TaskPostState, 1}}, IDDigits4, []string{"state_reporting"}, true, false, 0, 0, 0, 0, 0, false},
		{1, 10, 500, 5 * min, 20 * min, 5 * sec, 10 * sec, []WeightedTask{{TaskPostState, 100}}, IDDigits5, []string{"state_reporting"}, false, true, sec, 500 * time.Millisecond, 10 * sec, 0, 0, false},
		{2, 10, 100, 3 * min, 18 * min, 30 * sec, 60 * sec, []WeightedTask{{TaskWorkflow, 1}}, IDUUID, []string{"workflow_execution"}, false, true, sec, sec, 15 * sec, 0, 0, false},
		{3, 20, 300, 5 * min, 35 * min, sec, 5 * sec, s3tasks, IDDigits5, []string{"state_reporting", "test_capability", "another_capability"}, true, true, 0, 0, 0, 0, 0, false},
		{4, 0, 300, 6 * sec, 60 * min, sec, 5 * sec, s3tasks, IDDigits5, []string{"state_reporting", "test_capability", "another_capability"}, true, true, 0, 0, 0, 50, 5 * min, true},
	}
	for _, tt := range tests {
		s, err := ScenarioByID(tt.id)
		if err != nil {
			t.Fatal(err)
		}
		ramp := time.Duration(float64(s.Users-s.InitialUsers) / s.SpawnRate * float64(time.Second)).Round(time.Second)
		got := []any{s.InitialUsers, s.Users, ramp, s.Duration, s.ThinkMin, s.ThinkMax, s.Tasks, s.IDs, s.Capabilities,
			s.RegisterWithAuth, s.MetadataScenario, s.AfterRegister, s.PollEvery, s.PollFor, s.StepUsers, s.StepEvery, s.StopRule}
		want := []any{tt.initial, tt.users, tt.ramp, tt.duration, tt.thinkMin, tt.thinkMax, tt.tasks, tt.ids, tt.caps,
			tt.withAuth, tt.metaScenario, tt.sleep, tt.pollEvery, tt.pollFor, tt.stepUsers, tt.stepEvery, tt.stopRule}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("scenario %d:\ngot  %v\nwant %v", tt.id, got, want)
		}
	}
	if s, _ := ScenarioByID(2); s.Workflow != WorkflowByID {
		t.Errorf("scenario 2 workflow body: got %d, want by id", s.Workflow)
	}
	for _, id := range []int{3, 4} {
		if s, _ := ScenarioByID(id); s.Workflow != WorkflowInline {
			t.Errorf("scenario %d workflow body: got %d, want the inline sample", id, s.Workflow)
		}
	}
}

// seen is one request a recording server received.
type seen struct {
	method, path, auth, ts, sig string
	body                        []byte
}

// recordingCore answers like Ops-Core and records every request; GET state
// answers 404 to the first notFound polls of each agent, then 200.
func recordingCore(t *testing.T, notFound int) (*httptest.Server, func() []seen) {
	t.Helper()
	var mu sync.Mutex
	var reqs []seen
	gets := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		reqs = append(reqs, seen{r.Method, r.URL.Path, r.Header.Get("Authorization"),
			r.Header.Get("X-AgentKit-Timestamp"), r.Header.Get("X-AgentKit-Signature"), body})
		gets[r.URL.Path] += map[bool]int{true: 1}[r.Method == http.MethodGet]
		n := gets[r.URL.Path]
		mu.Unlock()
		switch {
		case r.URL.Path == NameNotify:
			w.Write([]byte(`{"status":"success"}`))
		case r.Method == http.MethodGet && n <= notFound:
			w.WriteHeader(http.StatusNotFound)
		case r.Method == http.MethodGet:
			w.Write([]byte(`{"agentId":"a","state":"UNKNOWN"}`))
		default:
			w.WriteHeader(http.StatusAccepted)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, func() []seen {
		mu.Lock()
		defer mu.Unlock()
		return append([]seen(nil), reqs...)
	}
}

// TestOnStartAuthPollAndSigning runs one user of each scenario and checks
// its on_start: the registration carries the Bearer header only where the
// locustfile sends it, is signed like AgentKit when a secret is given, and
// scenarios 1 and 2 poll GET state until the first 200 before any task.
func TestOnStartAuthPollAndSigning(t *testing.T) {
	const secret, key = "s3cret", "k-123"
	for _, id := range []int{0, 1, 2, 3, 4} {
		t.Run("scenario "+strconv.Itoa(id), func(t *testing.T) {
			srv, requests := recordingCore(t, 2)
			s, _ := ScenarioByID(id)
			s.Users, s.InitialUsers, s.SpawnRate, s.Duration = 1, 1, 1, 1200*time.Millisecond
			s.ThinkMin, s.ThinkMax = 50*time.Millisecond, 50*time.Millisecond
			s.AfterRegister = min(s.AfterRegister, 10*time.Millisecond)
			s.PollEvery = min(s.PollEvery, 10*time.Millisecond)
			if _, err := Run(context.Background(), Config{Scenario: s, Target: srv.URL, APIKey: key, WebhookSecret: secret}); err != nil {
				t.Fatal(err)
			}
			reqs := requests()
			if len(reqs) < 2 || reqs[0].path != NameNotify {
				t.Fatalf("got %d requests starting with %+v, want the registration first", len(reqs), reqs)
			}
			reg := reqs[0]
			if got, want := reg.auth != "", s.RegisterWithAuth; got != want {
				t.Errorf("registration Authorization present: got %v, want %v", got, want)
			}
			mac := hmac.New(sha256.New, []byte(secret))
			mac.Write([]byte(reg.ts + "." + string(reg.body)))
			if want := hex.EncodeToString(mac.Sum(nil)); reg.ts == "" || reg.sig != want {
				t.Errorf("registration signature: got ts %q sig %q, want HMAC-SHA256(ts.body) %s", reg.ts, reg.sig, want)
			}
			polls := 0
			for _, r := range reqs[1:] {
				if r.auth != "Bearer "+key {
					t.Errorf("%s %s: got Authorization %q, want %q", r.method, r.path, r.auth, "Bearer "+key)
				}
				if r.ts != "" || r.sig != "" {
					t.Errorf("%s %s: got signature headers, want them on registrations only", r.method, r.path)
				}
			}
			for _, r := range reqs[1:] {
				if r.method != http.MethodGet {
					break
				}
				polls++
			}
			wantPolls := 0
			if s.PollEvery > 0 {
				wantPolls = 3 // 404, 404, then the 200 that ends the poll
			}
			for _, wt := range s.Tasks {
				if wt.Task == TaskGetState && wantPolls == 0 {
					return // scenarios 3/4 may draw GET state as their first task
				}
			}
			if polls != wantPolls {
				t.Errorf("GET state before the first task: got %d, want %d", polls, wantPolls)
			}
		})
	}
}

// TestOpenModelMeasuresFromScheduledSendTime pins the coordinated-omission
// fix: one request stalls the only connection for 800 ms, and the
// arrivals scheduled during the stall are charged the time they waited.
// Measured from the actual send, only the stalled request would be slow
// and p90 would stay near the loopback latency.
func TestOpenModelMeasuresFromScheduledSendTime(t *testing.T) {
	var stalled atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == NameNotify {
			w.WriteHeader(http.StatusOK)
			return
		}
		if stalled.CompareAndSwap(false, true) {
			time.Sleep(800 * time.Millisecond)
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	s, _ := ScenarioByID(1)
	s.Users, s.Duration = 1, 2*time.Second
	res, err := Run(context.Background(), Config{Scenario: s, Target: srv.URL, Rate: 50, Connections: 1})
	if err != nil {
		t.Fatal(err)
	}
	var state StatRow
	for _, r := range res.Stats {
		if r.Name == NameState {
			state = r
		}
	}
	if state.Requests < 50 {
		t.Fatalf("POST state requests: got %d, want about 100 (50/s for 2 s)", state.Requests)
	}
	if state.MaxMs < 800 {
		t.Errorf("max latency: got %.1f ms, want >= 800 (the stall)", state.MaxMs)
	}
	if state.P90Ms < 200 {
		t.Errorf("p90 latency: got %.1f ms, want >= 200 ms (requests queued behind the stall count their wait)", state.P90Ms)
	}
}
