package loadgen

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"testing"
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
