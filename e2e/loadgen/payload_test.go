package loadgen

import (
	"encoding/json"
	"math/rand/v2"
	"regexp"
	"testing"
	"time"
)

func TestSignMatchesSpecVector(t *testing.T) {
	body := `{"event_type":"REGISTER","agent_details":{"agentId":"3f2b8c1e-7d4a-4e8b-9c2d-1a2b3c4d5e6f","agentName":"PingAgent","version":"1.0.0","capabilities":["ping"],"contactEndpoint":"http://ping-agent:8080/","metadata":{}}}`
	ts, sig := Sign("super-secret-webhook-key-123", []byte(body), time.Unix(1745287627, 0))
	if ts != "1745287627" {
		t.Errorf("timestamp: got %q, want %q", ts, "1745287627")
	}
	if want := "abb8011c81c37116f4b086d4fcbeffb46e17ec9c9bb238f69b43e73923656efe"; sig != want {
		t.Errorf("signature: got %s, want %s", sig, want)
	}
}

func TestRegistrationBodyMatchesLocustfile(t *testing.T) {
	s1, _ := ScenarioByID(1)
	got := string(registrationBody(&s1, "loadtest-agent-12345"))
	want := `{"event_type":"REGISTER","agent_details":{"agentId":"loadtest-agent-12345","agentName":"LoadTestAgent-loadtest-agent-12345","version":"1.0","capabilities":["state_reporting"],"contactEndpoint":"http://fake-agent-loadtest-agent-12345.local/run","metadata":{"load_test_user":"loadtest-agent-12345","scenario":1}}}`
	if got != want {
		t.Errorf("scenario 1:\ngot  %s\nwant %s", got, want)
	}
	s0, _ := ScenarioByID(0)
	got = string(registrationBody(&s0, "loadtest-agent-1234"))
	want = `{"event_type":"REGISTER","agent_details":{"agentId":"loadtest-agent-1234","agentName":"LoadTestAgent-loadtest-agent-1234","version":"1.0","capabilities":["state_reporting"],"contactEndpoint":"http://fake-agent-loadtest-agent-1234.local/run","metadata":{"load_test_user":"loadtest-agent-1234"}}}`
	if got != want {
		t.Errorf("scenario 0:\ngot  %s\nwant %s", got, want)
	}
}

func TestStateBody(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	b := stateBody("a1", time.Date(2025, 4, 21, 18, 15, 0, 123456000, time.UTC), r)
	var v struct {
		AgentID, Timestamp, State string
		Details                   map[string]any
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	if v.AgentID != "a1" || v.Timestamp != "2025-04-21T18:15:00.123456+00:00" {
		t.Errorf("got agentId %q timestamp %q, want a1 2025-04-21T18:15:00.123456+00:00", v.AgentID, v.Timestamp)
	}
	if v.Details["user"] != "user-a1" || v.Details["load_test"] != true {
		t.Errorf("details: got %v, want load_test true, user user-a1", v.Details)
	}
}

func TestAgentIDStyles(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	tests := []struct {
		style  IDStyle
		unique bool
		re     string
	}{
		{IDDigits4, false, `^loadtest-agent-[1-9]\d{3}$`},
		{IDDigits5, false, `^loadtest-agent-[1-9]\d{4}$`},
		{IDUUID, false, `^workflow-agent-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`},
		{IDDigits5, true, `^loadtest-agent-run1-\d+$`},
	}
	for _, tt := range tests {
		for range 50 {
			if got := agentID(tt.style, tt.unique, r, "run1"); !regexp.MustCompile(tt.re).MatchString(got) {
				t.Fatalf("style %d unique %v: got %q, want match %s", tt.style, tt.unique, got, tt.re)
			}
		}
	}
	if a, b := agentID(IDDigits5, true, r, "x"), agentID(IDDigits5, true, r, "x"); a == b {
		t.Errorf("unique ids: got %q twice, want different ids", a)
	}
}

func TestPickTaskFollowsWeights(t *testing.T) {
	s3, _ := ScenarioByID(3)
	counts := map[Task]int{}
	for r := 0; r < s3.totalWeight(); r++ {
		counts[s3.pickTask(r)]++
	}
	want := map[Task]int{TaskPostState: 80, TaskGetState: 15, TaskWorkflow: 5}
	for k, w := range want {
		if counts[k] != w {
			t.Errorf("task %d: got %d of 100 slots, want %d", k, counts[k], w)
		}
	}
}
