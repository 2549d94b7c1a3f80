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

// split counts a kind's failures inside and outside the fault window, on
// fresh and on reused keep-alive connections (only transport failures
// know the difference; the others count as fresh).
type split struct{ inNew, inReused, outNew, outReused uint64 }

func (s split) in() uint64  { return s.inNew + s.inReused }
func (s split) out() uint64 { return s.outNew + s.outReused }

// kindSplit splits kind k's failures of r by the window w.
func kindSplit(r *Result, k Kind, w faultWindow) split {
	var s split
	for _, p := range r.Timeline {
		n, reused := p.Kinds[k], p.ReusedKinds[k]
		if w.contains(p.Second) {
			s.inNew += n - reused
			s.inReused += reused
		} else {
			s.outNew += n - reused
			s.outReused += reused
		}
	}
	return s
}

// kindCounts counts failures by kind and lists the kinds, most frequent
// first.
func kindCounts(r *Result) (kinds []Kind, n map[Kind]uint64) {
	n = map[Kind]uint64{}
	for _, f := range r.Failures {
		n[f.Kind] += f.Occurrences
	}
	ks := make([]Kind, 0, len(n))
	for k := range n {
		ks = append(ks, k)
	}
	sort.Slice(ks, func(i, j int) bool { return n[ks[i]] > n[ks[j]] || (n[ks[i]] == n[ks[j]] && ks[i] < ks[j]) })
	return ks, n
}

// causeOf names the cause of one failure kind seen straight at the core.
func causeOf(r *Result, k Kind, sp split, o DebugOptions, p FaultPlan) string {
	restart := fmt.Sprintf("the core's kill -9 at %v (down %v)", p.RestartAt.Round(10*time.Millisecond), p.RestartDown)
	switch k {
	case KindReset, KindClosed:
		var parts []string
		if sp.in() > 0 {
			parts = append(parts, fmt.Sprintf("%d in the restart window: %s tore down the connections open to it (%d on reused connections) and, while it was down, toxiproxy accepted connections and dropped them (%d on fresh connections)",
				sp.in(), restart, sp.inReused, sp.inNew))
		}
		if sp.outNew > 0 {
			cause := "unexplained: no reset toxic was active"
			if p.ResetProbability > 0 {
				cause = fmt.Sprintf("toxiproxy's reset_peer on %.0f%% of new connections", 100*p.ResetProbability)
			}
			parts = append(parts, fmt.Sprintf("%d on fresh connections outside it: %s", sp.outNew, cause))
		}
		if sp.outReused > 0 {
			parts = append(parts, fmt.Sprintf("%d on reused keep-alive connections outside it: the keep-alive race, the core closes connections idle for %v while users think %v-%v, so a request meets the close (docs/loadtest.md, \"The keep-alive race\")",
				sp.outReused, o.CoreIdleTimeout, o.ThinkMin, o.ThinkMax))
		}
		return strings.Join(parts, "; ")
	case KindRefused:
		return "nothing listened on the port: " + restart
	case KindTimeout:
		return "no response within the request timeout: the core (or Redis) stalled" + redisNote(p)
	case Kind503, Kind5xx:
		return "the core answered 5xx: a storage error (Redis unavailable or timing out) or a crash inside a handler" + redisNote(p)
	case Kind4xx:
		return clientErrors(r, p)
	case Kind429:
		return "429: a rate limit refused the request"
	}
	return "unclassified transport error; see the run's error report"
}

// clientErrors explains the 4xx rows of r one by one.
func clientErrors(r *Result, p FaultPlan) string {
	lost := ""
	if p.Redis != nil && p.RedisStopAt > 0 {
		lost = ", or its registration was lost when Redis came back empty"
	}
	var parts []string
	for _, f := range r.Failures {
		if f.Kind != Kind4xx {
			continue
		}
		what := f.Method + " " + f.Name
		var cause string
		switch {
		case strings.Contains(f.Error, "404") && r.RegistrationFailures() > 0:
			cause = "the agent is unknown to the core because its registration failed (the on_start poll and the state updates of that user all get 404)" + lost
		case strings.Contains(f.Error, "404") && lost != "":
			cause = "the agent is unknown to the core:" + strings.TrimPrefix(lost, ", or")
		case strings.Contains(f.Error, "404"):
			cause = "the agent is unknown to the core although every registration succeeded (state lost, e.g. a core on memory storage restarted)"
		case strings.Contains(f.Error, "401"):
			cause = "wrong or missing API key (--api-key, OPSCORE_API_KEY)"
		case strings.Contains(f.Error, "422"), strings.Contains(f.Error, "400"):
			cause = "the core rejected the payload"
		default:
			cause = "see the error report"
		}
		parts = append(parts, fmt.Sprintf("%s x%d: %s", what, f.Occurrences, cause))
	}
	return strings.Join(parts, "; ")
}

// sidecarCause names the cause of one failure kind seen through the
// sidecar, from its access log of the same window.
func sidecarCause(r *Result, k Kind, a AccessSummary, p FaultPlan) string {
	switch k {
	case Kind503:
		return fmt.Sprintf("the sidecar refused or gave up (503): access-log outcomes %s", outcomes(a, "forwarded"))
	case Kind5xx:
		return fmt.Sprintf("502 = the core failed after every retry (attempts or retry budget used up), 504 = it timed out; access-log statuses %v, outcomes %s", a.ByStatus, outcomes(a, "forwarded"))
	case Kind429:
		return "the sidecar's rate limit refused the request"
	case Kind4xx:
		return clientErrors(r, p)
	}
	if k.Transport() {
		return "the client lost its connection to the sidecar itself (the sidecar was not listening or dropped it; it must never do this)"
	}
	return "see the run's error report"
}

// redisNote mentions a Redis pause or stop when the plan had one.
func redisNote(p FaultPlan) string {
	var b strings.Builder
	if p.Redis != nil && p.RedisPauseAt > 0 {
		fmt.Fprintf(&b, "; Redis was frozen (SIGSTOP) from %v for %v", p.RedisPauseAt, p.RedisPauseFor)
	}
	if p.Redis != nil && p.RedisStopAt > 0 {
		fmt.Fprintf(&b, "; Redis was stopped from %v for %v and came back empty", p.RedisStopAt, p.RedisStopFor)
	}
	return b.String()
}

// interrupted notes a run cut short by Ctrl-C.
func interrupted(r *Result) string {
	if !r.Interrupted {
		return ""
	}
	return fmt.Sprintf(" (interrupted after %.1f s)", r.Elapsed)
}

// Verdict explains the failures of the direct run and of the run through
// the sidecar, and says whether any registration failed through the
// sidecar. A nil side (the run was interrupted before it) gives the
// direct run's explanation and no verdict.
func Verdict(direct, side *Result, access AccessSummary, deltas []string, o DebugOptions, p FaultPlan) (lines []string, failed bool) {
	return verdictWithWindow(direct, side, access, deltas, o, p, restartWindow(p))
}

// verdictWithWindow is Verdict with the restart window given.
func verdictWithWindow(direct, side *Result, access AccessSummary, deltas []string, o DebugOptions, p FaultPlan, w faultWindow) (lines []string, failed bool) {
	lines = append(lines, fmt.Sprintf("Straight at the core (through toxiproxy)%s: %d requests, %d failures, %d failed registrations, %d transport errors, %d 5xx.",
		interrupted(direct), direct.Total.Requests, direct.Total.Failures, direct.RegistrationFailures(), direct.TransportErrors(), direct.ServerErrors()))
	kinds, _ := kindCounts(direct)
	for _, k := range kinds {
		sp := kindSplit(direct, k, w)
		lines = append(lines, fmt.Sprintf("  - %s x%d: %s.", k, sp.in()+sp.out(), causeOf(direct, k, sp, o, p)))
	}
	if n := direct.RegistrationFailures(); n > 0 {
		lines = append(lines, fmt.Sprintf("  - \"Failed to register agent: 0\" (%d of the above): the registration got no HTTP response at all; a dead or reset connection, not an application error, as in the seed's 19:10 run.", n))
	}
	if side == nil {
		return append(lines, "VERDICT: NONE: interrupted before the run through the sidecar."), false
	}
	lines = append(lines, fmt.Sprintf("Through the sidecar (same faults, default config)%s: %d requests, %d failures, %d failed registrations, %d registrations answered 202 (registered, delivered later), %d transport errors, %d 5xx.",
		interrupted(side), side.Total.Requests, side.Total.Failures, side.RegistrationFailures(), side.RegistrationsQueued(), side.TransportErrors(), side.ServerErrors()))
	if n := side.RegistrationsQueued(); n > 0 {
		lines = append(lines, fmt.Sprintf("  - 202 x%d on registrations: the core stayed unreachable past the notify hold, so the sidecar stored the webhook in its durable outbox and answered 202 (header %s); it delivers it when the core is back. Counted as registered, not as failures.", n, HeaderQueuedID))
	}
	if n := side.Total.Queued - side.RegistrationsQueued(); n > 0 {
		lines = append(lines, fmt.Sprintf("  - 202 x%d on other requests: queued behind their agent's queued registration, delivered after it.", n))
	}
	kinds, n := kindCounts(side)
	for _, k := range kinds {
		lines = append(lines, fmt.Sprintf("  - %s x%d: %s.", k, n[k], sidecarCause(side, k, access, p)))
	}
	lines = append(lines, fmt.Sprintf("  Sidecar access log: %d requests, %d needed more than one upstream attempt (max %d); outcomes %s; statuses %v.",
		access.Lines, access.Retried, access.MaxAttempt, outcomes(access, ""), access.ByStatus))
	if n := access.ByOutcome["client_closed"]; n > 0 {
		lines = append(lines, fmt.Sprintf("  client_closed x%d: requests still in flight (retrying or waiting on the core) when the run ended and the generator abandoned them; not counted as failures, as Locust does not count them.", n))
	}
	if len(deltas) > 0 {
		lines = append(lines, "  Sidecar counters that moved during the run: "+strings.Join(deltas, "; ")+".")
	}
	failed = side.RegistrationFailures() > 0
	if failed {
		lines = append(lines, fmt.Sprintf("VERDICT: FAIL: %d registrations failed through the sidecar.", side.RegistrationFailures()))
	} else if side.Total.Failures == 0 && side.Total.Queued > 0 {
		lines = append(lines, fmt.Sprintf("VERDICT: PASS: no client saw a failure; the sidecar retried or held through the faults and accepted %d requests (%d registrations) into its outbox with 202 for later delivery.", side.Total.Queued, side.RegistrationsQueued()))
	} else if side.Total.Failures == 0 {
		lines = append(lines, "VERDICT: PASS: the sidecar turned every fault into a retried, successful request; no client saw a failure.")
	} else {
		lines = append(lines, "VERDICT: PASS (registrations): no registration failed through the sidecar, but other requests did (see above).")
	}
	return lines, failed
}

// outcomes formats the access log's outcome counts, leaving out skip.
func outcomes(a AccessSummary, skip string) string {
	keys := make([]string, 0, len(a.ByOutcome))
	for k := range a.ByOutcome {
		if k != skip {
			keys = append(keys, k)
		}
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
