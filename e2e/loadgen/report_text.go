package loadgen

import (
	"fmt"
	"io"
	"strings"
)

// WriteText prints the run the way Locust's headless summary does: the
// statistics table, the response-time percentiles and the error report.
func (r *Result) WriteText(w io.Writer) {
	fmt.Fprintf(w, "Scenario %d (plan: %s)\n", r.Scenario, r.Title)
	fmt.Fprintf(w, "This run: %s model, target %s, %d users at %.3g/s, ", r.Model, r.Target, r.Users, r.SpawnRate)
	if r.Rate > 0 {
		fmt.Fprintf(w, "arrival rate %g/s, ", r.Rate)
	} else {
		fmt.Fprintf(w, "think %s, ", r.Think)
	}
	fmt.Fprintf(w, "duration %s, unique ids %v\n", r.Duration, r.UniqueIDs)
	fmt.Fprintf(w, "Started %s, ran %.1f s", r.Started.UTC().Format("2006-01-02T15:04:05Z"), r.Elapsed)
	if r.Interrupted {
		fmt.Fprint(w, " (interrupted)")
	}
	if r.StopReason != "" {
		fmt.Fprintf(w, ", stopped: %s", r.StopReason)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w)

	fmt.Fprintf(w, "%-8s %-40s %9s %16s | %7s %7s %7s %7s | %8s %11s\n",
		"Type", "Name", "# reqs", "# fails", "Avg", "Min", "Max", "Med", "req/s", "failures/s")
	sep := strings.Repeat("-", 8) + "|" + strings.Repeat("-", 41) + "|" + strings.Repeat("-", 10) + "|" +
		strings.Repeat("-", 18) + "|" + strings.Repeat("-", 33) + "|" + strings.Repeat("-", 21)
	fmt.Fprintln(w, sep)
	for _, s := range append(r.Stats, r.Total) {
		fmt.Fprintf(w, "%-8s %-40s %9d %16s | %7.0f %7.0f %7.0f %7.0f | %8.2f %11.2f\n",
			s.Method, s.Name, s.Requests, failCell(s), s.AvgMs, s.MinMs, s.MaxMs, s.MedianMs, s.RPS, s.FailuresPerSec)
	}
	fmt.Fprintln(w)
	writeQueued(w, r)

	fmt.Fprintln(w, "Response time percentiles (ms)")
	fmt.Fprintf(w, "%-8s %-40s %7s %7s %7s %7s %7s %7s %9s\n", "Type", "Name", "50%", "90%", "95%", "99%", "99.9%", "100%", "# reqs")
	fmt.Fprintln(w, strings.Repeat("-", 8)+"|"+strings.Repeat("-", 41)+"|"+strings.Repeat("-", 48)+"|"+strings.Repeat("-", 9))
	for _, s := range append(r.Stats, r.Total) {
		fmt.Fprintf(w, "%-8s %-40s %7.0f %7.0f %7.0f %7.0f %7.0f %7.0f %9d\n",
			s.Method, s.Name, s.MedianMs, s.P90Ms, s.P95Ms, s.P99Ms, s.P999Ms, s.MaxMs, s.Requests)
	}
	fmt.Fprintln(w)

	if len(r.Events) > 0 {
		fmt.Fprintln(w, "Events")
		for _, e := range r.Events {
			fmt.Fprintf(w, "  %6.2fs  %s\n", e.At, e.What)
		}
		fmt.Fprintln(w)
	}

	fmt.Fprintln(w, "Error report")
	fmt.Fprintf(w, "%-14s %s\n", "# occurrences", "Error")
	fmt.Fprintln(w, strings.Repeat("-", 14)+"|"+strings.Repeat("-", 80))
	for _, f := range r.Failures {
		fmt.Fprintf(w, "%-14d %s %s: %s\n", f.Occurrences, f.Method, f.Name, f.Error)
	}
	if len(r.Failures) == 0 {
		fmt.Fprintln(w, "(none)")
	}
}

// writeQueued lists, when there are any, the requests the sidecar
// answered 202 from its outbox: successes, delivered to the core later.
func writeQueued(w io.Writer, r *Result) {
	if r.Total.Queued == 0 {
		return
	}
	fmt.Fprintln(w, "Accepted with 202 by the sidecar's outbox (counted as successes, delivered to the core later)")
	for _, s := range r.Stats {
		if s.Queued == 0 {
			continue
		}
		what := "queued"
		if s.Name == NameNotify {
			what = "registered, delivered later"
		}
		fmt.Fprintf(w, "  %-8s %-40s %9d  %s\n", s.Method, s.Name, s.Queued, what)
	}
	fmt.Fprintln(w)
}

// failCell formats "13(0.03%)".
func failCell(s StatRow) string {
	pct := 0.0
	if s.Requests > 0 {
		pct = 100 * float64(s.Failures) / float64(s.Requests)
	}
	return fmt.Sprintf("%d(%.2f%%)", s.Failures, pct)
}
