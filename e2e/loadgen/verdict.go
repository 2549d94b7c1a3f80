package loadgen

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// faultWindow is the span in which failures are attributed to the core
// restart: from the kill to a couple of seconds after the restart.
type faultWindow struct{ from, to int }

func (w faultWindow) contains(sec int) bool { return sec >= w.from && sec <= w.to }

// restartWindow derives the window from the plan.
func restartWindow(p FaultPlan) faultWindow {
	if p.Core == nil || p.RestartAt <= 0 {
		return faultWindow{-1, -2}
	}
	from := int(p.RestartAt / time.Second)
	return faultWindow{from, int((p.RestartAt+p.RestartDown)/time.Second) + 2}
}

// kindSplit counts a kind's failures inside and outside the window.
func kindSplit(r *Result, k Kind, w faultWindow) (in, out uint64) {
	for _, p := range r.Timeline {
		if w.contains(p.Second) {
			in += p.Kinds[k]
		} else {
			out += p.Kinds[k]
		}
	}
	return in, out
}

// kindCounts counts failures by kind, most frequent first.
func kindCounts(r *Result) []Kind {
	n := map[Kind]uint64{}
	for _, f := range r.Failures {
		n[f.Kind] += f.Occurrences
	}
	ks := make([]Kind, 0, len(n))
	for k := range n {
		ks = append(ks, k)
	}
	sort.Slice(ks, func(i, j int) bool { return n[ks[i]] > n[ks[j]] || (n[ks[i]] == n[ks[j]] && ks[i] < ks[j]) })
	return ks
}

// causeOf names the cause of one failure kind seen straight at the core.
func causeOf(k Kind, in, out uint64, o DebugOptions, p FaultPlan) string {
	restart := fmt.Sprintf("the core's kill -9 at %v (down %v): connections open to it were torn down", p.RestartAt.Round(10*time.Millisecond), p.RestartDown)
	switch k {
	case KindReset:
		return fmt.Sprintf("%d during the restart window (%s), %d outside it: toxiproxy's reset_peer on %.0f%% of new connections and the keep-alive race (a request written into a connection the core is closing draws an RST)",
			in, restart, out, 100*p.ResetProbability)
	case KindClosed:
		return fmt.Sprintf("%d during the restart window (while the core was down the proxy accepted and closed connections), %d outside it: keep-alive race, the core closes connections idle for %v while users think %v-%v, so a request races the close (spec 6.4)",
			in, out, o.CoreIdleTimeout, o.ThinkMin, o.ThinkMax)
	case KindRefused:
		return "nothing listened on the port: " + restart
	case KindTimeout:
		return "no response within the request timeout: the core (or Redis) stalled" + redisNote(p)
	case Kind503, Kind5xx:
		return "the core answered 5xx: a storage error (Redis unavailable or timing out) or a crash inside a handler" + redisNote(p)
	case Kind4xx:
		return "4xx from the core: 404 when polling GET state for an agent whose registration never arrived (on_start polls every 0.5 s for 10 s and every try counts, a consequence of the failed registrations) or 401 for a wrong API key"
	case Kind429:
		return "429: a rate limit refused the request"
	}
	return "unclassified transport error; see the run's error report"
}

// redisNote mentions a Redis pause when the plan had one.
func redisNote(p FaultPlan) string {
	if p.Redis == nil || p.RedisPauseAt <= 0 {
		return ""
	}
	return fmt.Sprintf("; Redis was frozen (SIGSTOP) from %v for %v", p.RedisPauseAt, p.RedisPauseFor)
}

// Verdict explains the failures of the direct run and of the run through
// the sidecar, and says whether any registration failed through the
// sidecar.
func Verdict(direct, side *Result, access AccessSummary, deltas []string, o DebugOptions, p FaultPlan) (lines []string, failed bool) {
	w := restartWindow(p)
	lines = append(lines, fmt.Sprintf("Straight at the core (through toxiproxy): %d requests, %d failures, %d failed registrations, %d transport errors, %d 5xx.",
		direct.Total.Requests, direct.Total.Failures, direct.RegistrationFailures(), direct.TransportErrors(), direct.ServerErrors()))
	for _, k := range kindCounts(direct) {
		in, out := kindSplit(direct, k, w)
		lines = append(lines, fmt.Sprintf("  - %s x%d: %s.", k, in+out, causeOf(k, in, out, o, p)))
	}
	if n := direct.RegistrationFailures(); n > 0 {
		lines = append(lines, fmt.Sprintf("  - \"Failed to register agent: 0\" (%d of the above): the registration got no HTTP response at all; a dead or reset connection, not an application error, as in the seed's 19:10 run.", n))
	}
	lines = append(lines, fmt.Sprintf("Through the sidecar (same faults): %d requests, %d failures, %d failed registrations, %d transport errors, %d 5xx.",
		side.Total.Requests, side.Total.Failures, side.RegistrationFailures(), side.TransportErrors(), side.ServerErrors()))
	for _, k := range kindCounts(side) {
		var n uint64
		for _, f := range side.Failures {
			if f.Kind == k {
				n += f.Occurrences
			}
		}
		lines = append(lines, fmt.Sprintf("  - %s x%d: sidecar access-log outcomes in the window: %s.", k, n, outcomes(access)))
	}
	lines = append(lines, fmt.Sprintf("  Sidecar access log: %d requests, %d needed more than one upstream attempt (max %d); outcomes %s; statuses %v.",
		access.Lines, access.Retried, access.MaxAttempt, outcomes(access), access.ByStatus))
	if n := access.ByOutcome["client_closed"]; n > 0 {
		lines = append(lines, fmt.Sprintf("  client_closed x%d: requests still in flight (retrying or waiting on the core) when the run ended and the generator abandoned them; not counted as failures, as Locust does not count them.", n))
	}
	if len(deltas) > 0 {
		lines = append(lines, "  Sidecar counters that moved during the run: "+strings.Join(deltas, "; ")+".")
	}
	failed = side.RegistrationFailures() > 0
	if failed {
		lines = append(lines, fmt.Sprintf("VERDICT: FAIL: %d registrations failed through the sidecar.", side.RegistrationFailures()))
	} else if side.Total.Failures == 0 {
		lines = append(lines, "VERDICT: PASS: the sidecar turned every fault into a retried, successful request; no client saw a failure.")
	} else {
		lines = append(lines, "VERDICT: PASS (registrations): no registration failed through the sidecar, but other requests did (see above).")
	}
	return lines, failed
}

// outcomes formats the access log's outcome counts.
func outcomes(a AccessSummary) string {
	keys := make([]string, 0, len(a.ByOutcome))
	for k := range a.ByOutcome {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, a.ByOutcome[k]))
	}
	if len(parts) == 0 {
		return "(none)"
	}
	return strings.Join(parts, " ")
}
