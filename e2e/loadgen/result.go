package loadgen

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// StatRow is one line of the Locust-style statistics table; times are in
// milliseconds.
type StatRow struct {
	Method   string `json:"method"`
	Name     string `json:"name"`
	Requests uint64 `json:"requests"`
	Failures uint64 `json:"failures"`
	// Queued counts the successes that were the sidecar's 202 Accepted
	// from its durable outbox (delivered to the core later).
	Queued         uint64  `json:"queued_202"`
	AvgMs          float64 `json:"avg_ms"`
	MinMs          float64 `json:"min_ms"`
	MaxMs          float64 `json:"max_ms"`
	MedianMs       float64 `json:"median_ms"`
	P90Ms          float64 `json:"p90_ms"`
	P95Ms          float64 `json:"p95_ms"`
	P99Ms          float64 `json:"p99_ms"`
	P999Ms         float64 `json:"p99_9_ms"`
	RPS            float64 `json:"rps"`
	FailuresPerSec float64 `json:"failures_per_s"`
}

// FailureRow is one line of the failures table, keyed like Locust's.
type FailureRow struct {
	Method      string `json:"method"`
	Name        string `json:"name"`
	Error       string `json:"error"`
	Kind        Kind   `json:"kind"`
	Occurrences uint64 `json:"occurrences"`
}

// Point is one second of the run.
type Point struct {
	Second   int             `json:"second"`
	Requests uint64          `json:"requests"`
	Failures uint64          `json:"failures"`
	Queued   uint64          `json:"queued_202,omitempty"`
	P50Ms    float64         `json:"p50_ms"`
	P99Ms    float64         `json:"p99_ms"`
	Users    int64           `json:"users"`
	Kinds    map[Kind]uint64 `json:"failures_by_kind,omitempty"`
	// ReusedKinds counts the transport failures (of Kinds) whose request
	// went out on a reused keep-alive connection.
	ReusedKinds map[Kind]uint64 `json:"transport_failures_on_reused_conn_by_kind,omitempty"`
}

// Result is everything a run measured.
type Result struct {
	Scenario    int          `json:"scenario"`
	Title       string       `json:"title"`
	Model       string       `json:"model"`
	Target      string       `json:"target"`
	Users       int          `json:"users"`
	SpawnRate   float64      `json:"spawn_rate"`
	Think       string       `json:"think"`
	Duration    string       `json:"duration"`
	Rate        float64      `json:"rate,omitempty"`
	UniqueIDs   bool         `json:"unique_ids"`
	Started     time.Time    `json:"started"`
	Elapsed     float64      `json:"elapsed_s"`
	Interrupted bool         `json:"interrupted"`
	StopReason  string       `json:"stop_reason,omitempty"`
	Stats       []StatRow    `json:"stats"`
	Total       StatRow      `json:"total"`
	Failures    []FailureRow `json:"failures"`
	Timeline    []Point      `json:"timeline"`
	Events      []Event      `json:"events,omitempty"`
}

// Event is a fault or other happening during a run, at At seconds after
// the start.
type Event struct {
	At   float64 `json:"at_s"`
	What string  `json:"what"`
}

// FailureRatio returns failures / requests over the whole run.
func (r *Result) FailureRatio() float64 {
	if r.Total.Requests == 0 {
		return 0
	}
	return float64(r.Total.Failures) / float64(r.Total.Requests)
}

// RegistrationFailures counts failed registrations.
func (r *Result) RegistrationFailures() uint64 {
	var n uint64
	for _, f := range r.Failures {
		if strings.HasPrefix(f.Error, RegistrationFailurePrefix) {
			n += f.Occurrences
		}
	}
	return n
}

// RegistrationsQueued counts registrations answered 202 by the sidecar's
// outbox: registered, delivered to the core later; not failures.
func (r *Result) RegistrationsQueued() uint64 {
	var n uint64
	for _, s := range r.Stats {
		if s.Name == NameNotify {
			n += s.Queued
		}
	}
	return n
}

// CountKinds counts failures whose kind satisfies keep.
func (r *Result) CountKinds(keep func(Kind) bool) uint64 {
	var n uint64
	for _, f := range r.Failures {
		if keep(f.Kind) {
			n += f.Occurrences
		}
	}
	return n
}

// TransportErrors counts failures without an HTTP response (status 0).
func (r *Result) TransportErrors() uint64 { return r.CountKinds(Kind.Transport) }

// ServerErrors counts failures with a 5xx status.
func (r *Result) ServerErrors() uint64 {
	return r.CountKinds(func(k Kind) bool { return k == Kind5xx || k == Kind503 })
}

// WriteFiles writes result.json, report.txt and report.html into dir,
// creating it, and returns the paths written.
func (r *Result) WriteFiles(dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("loadgen: report dir: %w", err)
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, err
	}
	var txt strings.Builder
	r.WriteText(&txt)
	var html strings.Builder
	if err := r.WriteHTML(&html); err != nil {
		return nil, err
	}
	files := []struct {
		name string
		data []byte
	}{
		{"result.json", js},
		{"report.txt", []byte(txt.String())},
		{"report.html", []byte(html.String())},
	}
	var paths []string
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		if err := os.WriteFile(p, f.data, 0o644); err != nil {
			return paths, fmt.Errorf("loadgen: write %s: %w", p, err)
		}
		paths = append(paths, p)
	}
	return paths, nil
}
