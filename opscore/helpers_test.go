package opscore

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"opscore-sidecar/e2e/harness"
)

// testKey is the API key of test services.
const testKey = "k-123"

// fixedNow is the clock of test services, so bodies can be compared exactly.
var fixedNow = time.Date(2025, 4, 21, 22, 1, 40, 123456000, time.UTC)

// fixedStamp is fixedNow as the service writes it.
const fixedStamp = "2025-04-21T22:01:40.123456Z"

// storeKind names a store implementation for the shared suites.
type storeKind struct {
	name string
	// open returns a fresh, empty store and, for Redis, a raw client on it.
	open func(t *testing.T) (Store, redis.UniversalClient)
}

// storeKinds are the implementations every contract test runs against.
var storeKinds = []storeKind{
	{"memory", func(t *testing.T) (Store, redis.UniversalClient) { return NewMemoryStore(), nil }},
	{"redis", func(t *testing.T) (Store, redis.UniversalClient) {
		t.Helper()
		rs, raw, _ := newRedisStore(t, time.Second)
		return rs, raw
	}},
}

// forEachStore runs fn as a subtest for every store kind, on a fresh store
// and a test service over it. raw is the Redis client of a Redis store,
// nil for memory.
func forEachStore(t *testing.T, fn func(t *testing.T, store Store, raw redis.UniversalClient, h http.Handler)) {
	t.Helper()
	for _, sk := range storeKinds {
		t.Run(sk.name, func(t *testing.T) {
			store, raw := sk.open(t)
			svc, _ := newTestService(t, store)
			fn(t, store, raw, svc.Handler())
		})
	}
}

// newRedisStore starts a private redis-server and returns a store on it
// with the given operation timeout, a raw client for inspection, and the
// server for fault injection.
func newRedisStore(t testing.TB, timeout time.Duration) (*RedisStore, redis.UniversalClient, *harness.Redis) {
	t.Helper()
	srv := harness.StartRedis(t)
	client, err := NewRedisClient(RedisConfig{URL: "redis://" + srv.Addr, Timeout: timeout})
	if err != nil {
		t.Fatalf("NewRedisClient: %v", err)
	}
	raw := redis.NewClient(&redis.Options{Addr: srv.Addr, DialTimeout: time.Second, ReadTimeout: time.Second})
	store := NewRedisStore(client, WithOpTimeout(timeout))
	t.Cleanup(func() {
		_ = raw.Close()
		_ = store.Close()
	})
	return store, raw, srv
}

// newTestService builds a Service on store with the test key, a fixed clock
// and a private registry.
func newTestService(t testing.TB, store Store) (*Service, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	svc, err := New(Options{
		Store: store, APIKey: testKey, Registerer: reg,
		Logger: discardLogger(), Now: func() time.Time { return fixedNow },
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return svc, reg
}

// response is a recorded answer.
type response struct {
	status int
	body   string
	header http.Header
}

// call sends one request through h. Bodies are sent as application/json
// unless the header map says otherwise; auth adds the test bearer key.
func call(t testing.TB, h http.Handler, method, path, body string, auth bool, hdr ...string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequestWithContext(context.Background(), method, path, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth {
		req.Header.Set("Authorization", "Bearer "+testKey)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return response{status: rec.Code, body: rec.Body.String(), header: rec.Header()}
}

// registerBody is a REGISTER webhook body for id.
func registerBody(id string) string {
	return `{"event_type":"REGISTER","agent_details":{"agentId":"` + id +
		`","agentName":"A","version":"1.0","capabilities":["state_reporting"],` +
		`"contactEndpoint":"http://fake-agent.local/run","metadata":{"scenario":1}}}`
}

// stateBody is a state update body.
func stateBody(id, state string) string {
	return `{"agentId":"` + id + `","timestamp":"2025-04-21T18:15:00.5+00:00","state":"` + state + `","details":{"k":"v"}}`
}

// mustStatus fails t unless r has the wanted status.
func mustStatus(t testing.TB, what string, r response, want int) {
	t.Helper()
	if r.status != want {
		t.Fatalf("%s: got status %d (%s), want %d", what, r.status, r.body, want)
	}
}

// discardLogger is the logger of test services.
func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
