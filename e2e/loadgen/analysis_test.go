package loadgen

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestSummarizeAccessLogFromOffset(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sidecar.log")
	old := `{"route":"notify","status":200,"outcome":"forwarded","attempts":1}` + "\n"
	lines := old +
		`{"level":"INFO","msg":"listening"}` + "\n" +
		`{"route":"notify","status":200,"outcome":"forwarded","attempts":3}` + "\n" +
		`{"route":"state_update","status":503,"outcome":"breaker_open","attempts":1}` + "\n" +
		"not json\n"
	if err := os.WriteFile(path, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := SummarizeAccessLog(path, int64(len(old)))
	if err != nil {
		t.Fatal(err)
	}
	want := AccessSummary{Lines: 2, ByOutcome: map[string]int{"forwarded": 1, "breaker_open": 1},
		ByStatus: map[int]int{200: 1, 503: 1}, Retried: 1, MaxAttempt: 3}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestScrapeCountersAndDeltas(t *testing.T) {
	body := `# HELP opscore_sidecar_retries_total Retries.
# TYPE opscore_sidecar_retries_total counter
opscore_sidecar_retries_total{reason="reset",route="notify"} 7
opscore_sidecar_requests_total{code="200",route="notify"} 12 # {trace_id="abc"} 1 1.7e9
opscore_sidecar_inflight_requests{route="notify"} 3
go_memstats_frees_total 99
`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(body)) }))
	defer srv.Close()
	after, err := ScrapeCounters(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	before := map[string]float64{`opscore_sidecar_requests_total{code="200",route="notify"}`: 2}
	got := CounterDeltas(before, after, "opscore_sidecar_")
	want := []string{
		`opscore_sidecar_requests_total{code="200",route="notify"} 10`,
		`opscore_sidecar_retries_total{reason="reset",route="notify"} 7`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestVerdictNamesCausesAndFailsOnSidecarRegistrationFailure(t *testing.T) {
	mk := func(kinds map[int]map[Kind]uint64, failures []FailureRow) *Result {
		r := &Result{Failures: failures}
		for sec := 0; sec < 10; sec++ {
			r.Timeline = append(r.Timeline, Point{Second: sec, Kinds: kinds[sec]})
		}
		for _, f := range failures {
			r.Total.Failures += f.Occurrences
		}
		r.Total.Requests = 100
		return r
	}
	direct := mk(map[int]map[Kind]uint64{1: {KindClosed: 2}, 3: {KindReset: 4}}, []FailureRow{
		{Method: "POST", Name: NameState, Error: MsgClosed, Kind: KindClosed, Occurrences: 2},
		{Method: "POST", Name: NameNotify, Error: RegistrationFailurePrefix + "0')", Kind: KindReset, Occurrences: 4},
	})
	o := DebugOptions{CoreIdleTimeout: time.Second, ThinkMin: 990 * time.Millisecond, ThinkMax: 1010 * time.Millisecond}
	p := FaultPlan{Core: nil, ResetProbability: 0.2, RestartAt: 3 * time.Second, RestartDown: time.Second}
	lines, failed := Verdict(direct, mk(nil, nil), AccessSummary{}, nil, o, p)
	text := strings.Join(lines, "\n")
	for _, want := range []string{"keep-alive race", "reset_peer on 20%", "Failed to register agent: 0", "VERDICT: PASS"} {
		if !strings.Contains(text, want) {
			t.Errorf("verdict: missing %q in\n%s", want, text)
		}
	}
	if failed {
		t.Error("failed: got true, want false (no failure through the sidecar)")
	}
	side := mk(map[int]map[Kind]uint64{2: {Kind503: 1}}, []FailureRow{
		{Method: "POST", Name: NameNotify, Error: RegistrationFailurePrefix + "503')", Kind: Kind503, Occurrences: 1},
	})
	lines, failed = Verdict(direct, side, AccessSummary{ByOutcome: map[string]int{"breaker_open": 1}}, nil, o, p)
	if !failed || !strings.Contains(strings.Join(lines, "\n"), "breaker_open=1") {
		t.Errorf("got failed %v, verdict\n%s\nwant a failing verdict naming breaker_open", failed, strings.Join(lines, "\n"))
	}
}
