package loadgen

import (
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func sampleResult() *Result {
	rec := NewRecorder(time.Unix(1000, 0))
	for i := range 100 {
		end := time.Unix(1000+int64(i/40), 0)
		var f *Failure
		if i%25 == 0 {
			f = Classify(NameState, false, 0, io.EOF)
		}
		rec.Record("POST", NameState, end, time.Duration(i+1)*time.Millisecond, f, false)
	}
	rec.Record("POST", NameNotify, time.Unix(1000, 0), time.Millisecond, Classify(NameNotify, true, 503, nil), false)
	res := &Result{Scenario: 1, Title: "t", Model: "closed", Target: "http://127.0.0.1:1", Elapsed: 3}
	rec.fill(res)
	return res
}

func TestResultFromRecorder(t *testing.T) {
	res := sampleResult()
	if got, want := res.Total.Requests, uint64(101); got != want {
		t.Errorf("total requests: got %d, want %d", got, want)
	}
	if got, want := res.Total.Failures, uint64(5); got != want {
		t.Errorf("total failures: got %d, want %d", got, want)
	}
	if got, want := res.RegistrationFailures(), uint64(1); got != want {
		t.Errorf("registration failures: got %d, want %d", got, want)
	}
	if got, want := res.TransportErrors(), uint64(4); got != want {
		t.Errorf("transport errors: got %d, want %d", got, want)
	}
	if got, want := res.ServerErrors(), uint64(1); got != want {
		t.Errorf("server errors: got %d, want %d", got, want)
	}
	if got, want := len(res.Timeline), 3; got != want {
		t.Errorf("timeline seconds: got %d, want %d", got, want)
	}
	var state StatRow
	for _, s := range res.Stats {
		if s.Name == NameState {
			state = s
		}
	}
	// Percentiles are bucket upper bounds: within 1 % above the true value.
	for _, c := range []struct{ got, want float64 }{{state.MedianMs, 50}, {state.P90Ms, 90}, {state.MaxMs, 100}} {
		if c.got < c.want || math.Abs(c.got-c.want) > c.want/100 {
			t.Errorf("POST state percentile: got %v ms, want %v ms within +1%%", c.got, c.want)
		}
	}
}

func TestWriteFilesSelfContainedHTML(t *testing.T) {
	dir := t.TempDir()
	paths, err := sampleResult().WriteFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 3 {
		t.Fatalf("files: got %v, want 3", paths)
	}
	html, _ := os.ReadFile(filepath.Join(dir, "report.html"))
	h := string(html)
	for _, want := range []string{"<svg", "Requests per second", "Response time", "Failures per second by kind", "Virtual users", "RemoteDisconnected", "plan: t", "this run: closed model"} {
		if !strings.Contains(h, want) {
			t.Errorf("report.html: missing %q", want)
		}
	}
	for _, bad := range []string{"<script", "<link", "src=", "https://"} {
		if strings.Contains(h, bad) {
			t.Errorf("report.html: contains %q, want a self-contained page", bad)
		}
	}
	txt, _ := os.ReadFile(filepath.Join(dir, "report.txt"))
	for _, want := range []string{"Aggregated", "4(4.00%)", "CatchResponseError('Failed to register agent: 503')", "Error report"} {
		if !strings.Contains(string(txt), want) {
			t.Errorf("report.txt: missing %q\n%s", want, txt)
		}
	}
}
