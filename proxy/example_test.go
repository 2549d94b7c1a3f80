package proxy_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"opscore-sidecar/proxy"
)

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
