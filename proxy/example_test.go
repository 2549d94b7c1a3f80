package proxy_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"opscore-sidecar/proxy"
)

// A partial file is merged with the defaults; every error names its key.
func ExampleLoadBytes() {
	cfg, err := proxy.LoadBytes([]byte("routes:\n  notify:\n    retry:\n      attempts: 2\n"), nil)
	fmt.Println(cfg.Routes["notify"].Retry.Attempts, cfg.Routes["state_get"].Retry.Attempts, err)

	_, err = proxy.LoadBytes([]byte("routes:\n  notify:\n    retry:\n      attempts: 0\n"), nil)
	fmt.Println(err)
	// Output:
	// 2 4 <nil>
	// routes.notify.retry.attempts: must be between 1 and 10, got 0
}

// A policy layer refuses a request with a problem+json response.
func ExampleWriteProblem() {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("POST", "/v1/opscore/agent/a1/state", nil)
	proxy.WriteProblem(rec, req, proxy.Problem{
		Status: http.StatusTooManyRequests, Outcome: proxy.OutcomeRateLimited, Reason: "route_rate",
		Title: "Too many requests", Detail: "route state_update allows 100 requests per second",
		Header: http.Header{"Retry-After": {proxy.RetryAfter(1500 * time.Millisecond)}},
	})
	fmt.Println(rec.Code, rec.Header().Get("Content-Type"), rec.Header().Get("Retry-After"))
	fmt.Print(rec.Body.String())
	// Output:
	// 429 application/problem+json 2
	// {"type":"urn:opscore-sidecar:problem:rate_limited","title":"Too many requests","status":429,"detail":"route state_update allows 100 requests per second","reason":"route_rate"}
}
