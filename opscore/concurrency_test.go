package opscore

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
)

// TestConcurrentRegistrationKeepsOneRecordAndState has 100 goroutines
// register one agent whose state was already reported: every call must
// answer 200, one registration must remain, and the reported state must
// not be reset to UNKNOWN (docs/opscore.md, "Registration and state
// rules").
func TestConcurrentRegistrationKeepsOneRecordAndState(t *testing.T) {
	forEachStore(t, func(t *testing.T, store Store, raw redis.UniversalClient, h http.Handler) {
		mustStatus(t, "first register", call(t, h, "POST", pNotify, registerBody("lt-1"), false), 200)
		mustStatus(t, "report idle", call(t, h, "POST", pState, stateBody("lt-1", "idle"), true), 202)

		const n = 100
		codes := make([]int, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				codes[i] = call(t, h, "POST", pNotify, registerBody("lt-1"), false).status
			}()
		}
		wg.Wait()
		for i, c := range codes {
			if c != 200 {
				t.Fatalf("registration %d: got status %d, want 200", i, c)
			}
		}
		r := call(t, h, "GET", pState, "", true)
		mustStatus(t, "state after registrations", r, 200)
		if want := `"state":"idle"`; !strings.Contains(r.body, want) {
			t.Fatalf("state after 100 registrations: got %s, want it to contain %s", r.body, want)
		}
		if raw != nil {
			keys, err := raw.Keys(context.Background(), "agent:*").Result()
			if err != nil {
				t.Fatalf("KEYS: %v", err)
			}
			if len(keys) != 2 {
				t.Fatalf("got keys %v, want exactly the registration and the state", keys)
			}
		} else if ms := store.(*MemoryStore); len(ms.regs) != 1 || len(ms.states) != 1 {
			t.Fatalf("got %d registrations and %d states, want 1 and 1", len(ms.regs), len(ms.states))
		}
	})
}

// TestConcurrentRegisterAndReadNeverSees404 races GET state against
// first-time registrations: a GET that starts after a 200 from notify must
// never answer 404 (the original's three-step registration could).
func TestConcurrentRegisterAndReadNeverSees404(t *testing.T) {
	forEachStore(t, func(t *testing.T, store Store, raw redis.UniversalClient, h http.Handler) {
		var wg sync.WaitGroup
		errs := make(chan string, 50)
		for i := range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id := "agent-" + strconv.Itoa(i)
				if r := call(t, h, "POST", pNotify, registerBody(id), false); r.status != 200 {
					errs <- "register " + id + ": " + r.body
					return
				}
				if r := call(t, h, "GET", "/v1/opscore/agent/"+id+"/state", "", true); r.status != 200 {
					errs <- "state of " + id + " right after register: " + r.body
				}
			}()
		}
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Error(e)
		}
	})
}
