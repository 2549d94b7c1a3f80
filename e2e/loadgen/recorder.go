package loadgen

import (
	"fmt"
	"io"
	"maps"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// statKey identifies a statistics row the way Locust does: method + name.
type statKey struct{ Method, Name string }

// failKey identifies a failures-table row.
type failKey struct{ Method, Name, Message string }

// entry accumulates one request name's results.
type entry struct {
	hist     *Histogram
	failures uint64
	queued   uint64 // successes that were 202s from the sidecar's outbox
}

// slot holds one second of the run for the charts and the stop rule.
type slot struct {
	requests, failures uint64
	queued             uint64
	kinds              map[Kind]uint64
	reused             map[Kind]uint64 // transport failures on reused connections
	hist               *Histogram
	users              int64
	critN              uint64
	critSum            float64 // seconds
}

// Recorder collects every request's outcome. It is safe for concurrent use.
type Recorder struct {
	start time.Time
	users atomic.Int64

	mu       sync.Mutex
	entries  map[statKey]*entry
	failures map[failKey]uint64
	kinds    map[failKey]Kind
	slots    []*slot
}

// NewRecorder returns a recorder whose timeline starts at start.
func NewRecorder(start time.Time) *Recorder {
	return &Recorder{
		start:    start,
		entries:  map[statKey]*entry{},
		failures: map[failKey]uint64{},
		kinds:    map[failKey]Kind{},
	}
}

// AddUsers changes the number of running virtual users by delta.
func (r *Recorder) AddUsers(delta int64) { r.users.Add(delta) }

// slotLocked returns the slot of instant t, growing the timeline.
func (r *Recorder) slotLocked(t time.Time) *slot {
	i := max(0, int(t.Sub(r.start)/time.Second))
	for len(r.slots) <= i {
		r.slots = append(r.slots, &slot{kinds: map[Kind]uint64{}, reused: map[Kind]uint64{}, hist: NewHistogram(4)})
	}
	return r.slots[i]
}

// Tick samples the user count into the current second; the runner calls it
// periodically so seconds without requests still show their users.
func (r *Recorder) Tick(now time.Time) {
	r.mu.Lock()
	s := r.slotLocked(now)
	s.users = max(s.users, r.users.Load())
	r.mu.Unlock()
}

// critical reports whether a request name is a critical (registration or
// workflow) request for the scenario 4 stop rule.
func critical(name string) bool { return name == NameNotify || name == NameWorkflow }

// Record adds one request that ended at end after latency; f is nil for a
// success. Latencies of failed requests count too, as in Locust. queued
// marks a success the sidecar answered with 202 from its outbox
// (ClassifyResponse); it is counted apart as well.
func (r *Recorder) Record(method, name string, end time.Time, latency time.Duration, f *Failure, queued bool) {
	us := uint64(max(0, latency.Microseconds()))
	k := statKey{method, name}
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.entries[k]
	if e == nil {
		e = &entry{hist: NewHistogram(7)}
		r.entries[k] = e
	}
	e.hist.Record(us)
	s := r.slotLocked(end)
	s.requests++
	if queued {
		e.queued++
		s.queued++
	}
	s.hist.Record(us)
	s.users = max(s.users, r.users.Load())
	if critical(name) {
		s.critN++
		s.critSum += latency.Seconds()
	}
	if f != nil {
		e.failures++
		s.failures++
		s.kinds[f.Kind]++
		if f.Reused && f.Kind.Transport() {
			s.reused[f.Kind]++
		}
		fk := failKey{method, name, f.Message}
		r.failures[fk]++
		r.kinds[fk] = f.Kind
	}
}

// window returns, over the last d before now, the mean latency of critical
// requests, the failure ratio of all requests and the request count.
func (r *Recorder) window(now time.Time, d time.Duration) (critMean time.Duration, failRatio float64, n uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	last := int(now.Sub(r.start) / time.Second)
	first := max(0, last-int(d/time.Second)+1)
	var fails, critN uint64
	var critSum float64
	for i := first; i <= last && i < len(r.slots); i++ {
		s := r.slots[i]
		n += s.requests
		fails += s.failures
		critN += s.critN
		critSum += s.critSum
	}
	if critN > 0 {
		critMean = time.Duration(critSum / float64(critN) * float64(time.Second))
	}
	if n > 0 {
		failRatio = float64(fails) / float64(n)
	}
	return critMean, failRatio, n
}

// progress prints one line: elapsed, users, requests, failures, and the
// last second's rate.
func (r *Recorder) progress(w io.Writer, now time.Time) {
	r.mu.Lock()
	var reqs, fails, last uint64
	for i, s := range r.slots {
		reqs += s.requests
		fails += s.failures
		if i == len(r.slots)-2 {
			last = s.requests
		}
	}
	r.mu.Unlock()
	fmt.Fprintf(w, "[%5.0fs] users %d, requests %d, failures %d, last second %d req/s\n",
		now.Sub(r.start).Seconds(), r.users.Load(), reqs, fails, last)
}

// ms converts microseconds to milliseconds.
func ms(us float64) float64 { return us / 1000 }

// statRow builds one table row from a histogram.
func statRow(method, name string, h *Histogram, failures uint64, elapsed float64) StatRow {
	row := StatRow{
		Method: method, Name: name, Requests: h.Count(), Failures: failures,
		AvgMs: ms(h.Mean()), MinMs: ms(float64(h.Min())), MaxMs: ms(float64(h.Max())),
		MedianMs: ms(float64(h.Percentile(50))), P90Ms: ms(float64(h.Percentile(90))),
		P95Ms: ms(float64(h.Percentile(95))), P99Ms: ms(float64(h.Percentile(99))),
		P999Ms: ms(float64(h.Percentile(99.9))),
	}
	if elapsed > 0 {
		row.RPS = float64(row.Requests) / elapsed
		row.FailuresPerSec = float64(failures) / elapsed
	}
	return row
}

// fill copies the recorded statistics into res, whose Elapsed is set.
func (r *Recorder) fill(res *Result) {
	r.mu.Lock()
	defer r.mu.Unlock()
	keys := make([]statKey, 0, len(r.entries))
	for k := range r.entries {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].Name != keys[j].Name {
			return keys[i].Name < keys[j].Name
		}
		return keys[i].Method < keys[j].Method
	})
	total := NewHistogram(7)
	var totalFail, totalQueued uint64
	res.Stats = res.Stats[:0]
	for _, k := range keys {
		e := r.entries[k]
		row := statRow(k.Method, k.Name, e.hist, e.failures, res.Elapsed)
		row.Queued = e.queued
		res.Stats = append(res.Stats, row)
		total.Merge(e.hist)
		totalFail += e.failures
		totalQueued += e.queued
	}
	res.Total = statRow("", "Aggregated", total, totalFail, res.Elapsed)
	res.Total.Queued = totalQueued
	res.Failures = res.Failures[:0]
	for fk, n := range r.failures {
		res.Failures = append(res.Failures, FailureRow{Method: fk.Method, Name: fk.Name, Error: fk.Message, Kind: r.kinds[fk], Occurrences: n})
	}
	sort.Slice(res.Failures, func(i, j int) bool {
		a, b := res.Failures[i], res.Failures[j]
		if a.Occurrences != b.Occurrences {
			return a.Occurrences > b.Occurrences
		}
		return a.Name+a.Method+a.Error < b.Name+b.Method+b.Error
	})
	res.Timeline = res.Timeline[:0]
	for i, s := range r.slots {
		p := Point{Second: i, Requests: s.requests, Failures: s.failures, Queued: s.queued, Users: s.users,
			P50Ms: ms(float64(s.hist.Percentile(50))), P99Ms: ms(float64(s.hist.Percentile(99)))}
		p.Kinds = copyKinds(s.kinds)
		p.ReusedKinds = copyKinds(s.reused)
		res.Timeline = append(res.Timeline, p)
	}
}

// copyKinds copies a per-kind count, or returns nil when it is empty.
func copyKinds(m map[Kind]uint64) map[Kind]uint64 {
	if len(m) == 0 {
		return nil
	}
	return maps.Clone(m)
}
