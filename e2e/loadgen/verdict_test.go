package loadgen

import (
	"strings"
	"testing"
	"time"
)

// faultyDirect is a direct run with one failure of each cause: a reset on
// a fresh connection outside the restart window (toxiproxy's reset_peer),
// resets inside it, RemoteDisconnected on reused connections outside it
// (the keep-alive race), one failed registration and the 404s it causes.
func faultyDirect() *Result {
	return &Result{
		Total: StatRow{Requests: 100, Failures: 16},
		Failures: []FailureRow{
			{Method: "GET", Name: NameState, Error: httpErrorMessage(404, NameState), Kind: Kind4xx, Occurrences: 5},
			{Method: "POST", Name: NameState, Error: MsgClosed, Kind: KindClosed, Occurrences: 4},
			{Method: "POST", Name: NameState, Error: MsgReset, Kind: KindReset, Occurrences: 4},
			{Method: "POST", Name: NameNotify, Error: RegistrationFailurePrefix + "0')", Kind: KindReset, Occurrences: 1},
		},
		Timeline: []Point{
			{Second: 1, Kinds: map[Kind]uint64{KindReset: 2}},
			{Second: 4, Kinds: map[Kind]uint64{KindReset: 3}, ReusedKinds: map[Kind]uint64{KindReset: 1}},
			{Second: 8, Kinds: map[Kind]uint64{KindClosed: 4, Kind4xx: 5}, ReusedKinds: map[Kind]uint64{KindClosed: 4}},
		},
	}
}

func verdictLine(t *testing.T, lines []string, prefix string) string {
	t.Helper()
	for _, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), prefix) {
			return l
		}
	}
	t.Fatalf("no line starting with %q in\n%s", prefix, strings.Join(lines, "\n"))
	return ""
}

func TestVerdictNamesTheCauseOfEachFailureClass(t *testing.T) {
	o := DebugOptions{CoreIdleTimeout: time.Second, ThinkMin: 990 * time.Millisecond, ThinkMax: 1010 * time.Millisecond}
	plan := FaultPlan{ResetProbability: 0.2, RestartAt: 3 * time.Second, RestartDown: time.Second}
	side := &Result{Total: StatRow{Requests: 90, Failures: 1},
		Failures: []FailureRow{{Method: "POST", Name: NameState, Error: httpErrorMessage(503, NameState), Kind: Kind503, Occurrences: 1}}}
	access := AccessSummary{Lines: 90, ByOutcome: map[string]int{"forwarded": 89, "breaker_open": 1}, ByStatus: map[int]int{202: 89, 503: 1}}

	lines, failed := verdictWithWindow(faultyDirect(), side, access, nil, o, plan, faultWindow{3, 6})
	if failed {
		t.Errorf("failed: got true, want false (no registration failed through the sidecar)")
	}
	tests := []struct{ prefix, want string }{
		{"- reset x5", "3 in the restart window"},
		{"- reset x5", "1 on reused connections"},
		{"- reset x5", "2 on fresh connections outside it: toxiproxy's reset_peer on 20% of new connections"},
		{"- closed x4", "4 on reused keep-alive connections outside it: the keep-alive race"},
		{"- http_4xx x5", "GET " + NameState + " x5: the agent is unknown to the core because its registration failed"},
		{"- http_503 x1", "breaker_open=1"},
		{"VERDICT", "PASS (registrations)"},
	}
	for _, tt := range tests {
		if got := verdictLine(t, lines, tt.prefix); !strings.Contains(got, tt.want) {
			t.Errorf("line %q: got %q, want it to contain %q", tt.prefix, got, tt.want)
		}
	}
	if got := verdictLine(t, lines, "- closed x4"); strings.Contains(got, "restart window") {
		t.Errorf("closed line: got %q, want no restart-window cause (none fell in it)", got)
	}

	side.Failures = append(side.Failures, FailureRow{Method: "POST", Name: NameNotify, Error: RegistrationFailurePrefix + "502')", Kind: Kind5xx, Occurrences: 2})
	lines, failed = verdictWithWindow(faultyDirect(), side, access, nil, o, plan, faultWindow{3, 6})
	if !failed {
		t.Errorf("failed: got false, want true (2 registrations failed through the sidecar)")
	}
	if got := verdictLine(t, lines, "VERDICT"); !strings.Contains(got, "FAIL: 2 registrations") {
		t.Errorf("verdict: got %q, want FAIL: 2 registrations", got)
	}

	lines, failed = Verdict(faultyDirect(), nil, AccessSummary{}, nil, o, plan)
	if got := verdictLine(t, lines, "VERDICT"); failed || !strings.Contains(got, "NONE") {
		t.Errorf("interrupted before the sidecar run: got %q, failed %v; want VERDICT: NONE, false", got, failed)
	}
}
