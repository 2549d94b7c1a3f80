package loadgen

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"opscore-sidecar/proxy"
)

// TestQueuedHeaderMatchesTheSidecar keeps loadgen's copy of the header
// name equal to the one the sidecar sends (proxy/queue.go).
func TestQueuedHeaderMatchesTheSidecar(t *testing.T) {
	if HeaderQueuedID != proxy.HeaderQueuedID {
		t.Errorf("HeaderQueuedID: got %q, want proxy.HeaderQueuedID %q", HeaderQueuedID, proxy.HeaderQueuedID)
	}
}

func TestClassifyResponseQueued(t *testing.T) {
	queuedHdr := http.Header{HeaderQueuedID: {"01J000"}}
	tests := []struct {
		name       string
		reqName    string
		reg        bool
		status     int
		header     http.Header
		wantQueued bool
		wantKind   Kind // "" = success
	}{
		{"registration 202 queued", NameNotify, true, 202, queuedHdr, true, ""},
		{"registration 202 without the header", NameNotify, true, 202, http.Header{}, false, KindStatus},
		{"registration 200", NameNotify, true, 200, queuedHdr, false, ""},
		{"registration 503 with the header", NameNotify, true, 503, queuedHdr, false, Kind503},
		{"state update 202 queued behind", NameState, false, 202, queuedHdr, true, ""},
		{"state update 202 from the core", NameState, false, 202, http.Header{}, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, queued := ClassifyResponse(tt.reqName, tt.reg, tt.status, tt.header, nil)
			if queued != tt.wantQueued {
				t.Errorf("queued: got %v, want %v", queued, tt.wantQueued)
			}
			switch {
			case tt.wantKind == "" && f != nil:
				t.Errorf("got failure %+v, want success", f)
			case tt.wantKind != "" && (f == nil || f.Kind != tt.wantKind):
				t.Errorf("got failure %+v, want kind %s", f, tt.wantKind)
			}
		})
	}
}

// TestRunCountsQueuedRegistrationsAsRegistered runs scenario 1 against a
// server that answers every registration as the sidecar's outbox does
// (202 + X-Sidecar-Queued-Id): no failure, every registration counted as
// queued, and the text report, the HTML report and the verdict say so.
func TestRunCountsQueuedRegistrationsAsRegistered(t *testing.T) {
	var regs atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == NameNotify {
			regs.Add(1)
			w.Header().Set("Content-Type", "application/problem+json")
			w.Header().Set(HeaderQueuedID, "q-1")
			w.WriteHeader(http.StatusAccepted)
			w.Write([]byte(`{"status":202,"title":"Accepted for delivery","queued_id":"q-1"}`))
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	res, err := Run(context.Background(), Config{Scenario: tiny(t, 1), Target: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	if res.Total.Failures != 0 || res.RegistrationFailures() != 0 {
		t.Errorf("got %d failures (%d registrations) %+v, want 0: a queued 202 is registered, delivered later", res.Total.Failures, res.RegistrationFailures(), res.Failures)
	}
	if got, want := res.RegistrationsQueued(), uint64(regs.Load()); got != want || got == 0 {
		t.Errorf("queued registrations: got %d, want %d (every registration the server answered, > 0)", got, want)
	}
	if res.Total.Queued != res.RegistrationsQueued() {
		t.Errorf("total queued: got %d, want %d (only registrations were queued)", res.Total.Queued, res.RegistrationsQueued())
	}
	var sum uint64
	for _, p := range res.Timeline {
		sum += p.Queued
	}
	if sum != res.Total.Queued {
		t.Errorf("timeline queued: got %d, want %d", sum, res.Total.Queued)
	}
	var txt, html strings.Builder
	res.WriteText(&txt)
	if want := "registered, delivered later"; !strings.Contains(txt.String(), want) {
		t.Errorf("text report: want a line with %q, got\n%s", want, txt.String())
	}
	if err := res.WriteHTML(&html); err != nil {
		t.Fatal(err)
	}
	if want := "# 202 queued"; !strings.Contains(html.String(), want) {
		t.Errorf("HTML report: want the queued table (%q)", want)
	}
	lines, failed := verdictWithWindow(res, res, AccessSummary{}, nil, DebugOptions{}, FaultPlan{}, faultWindow{-1, -2})
	if failed {
		t.Errorf("verdict failed: got true, want false")
	}
	if got := verdictLine(t, lines, "Through the sidecar"); !strings.Contains(got, "registrations answered 202 (registered, delivered later)") {
		t.Errorf("verdict sidecar line: got %q, want the count of 202 registrations", got)
	}
	if got := verdictLine(t, lines, "VERDICT"); !strings.HasPrefix(got, "VERDICT: PASS") || !strings.Contains(got, "outbox") {
		t.Errorf("verdict: got %q, want PASS naming the outbox", got)
	}
}
