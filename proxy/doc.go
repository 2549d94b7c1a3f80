// Package proxy is the sidecar's HTTP pipeline: configuration (config.go,
// config_load.go, config_validate.go), the immutable config snapshot
// (snapshot.go), the route table (route.go), the handler chain assembled in
// one place (chain.go), the httputil.ReverseProxy over a tuned transport
// (proxy.go, transport.go, attempt.go), tracing and the access log
// (tracing.go, observe.go), problem+json responses (problem.go), the admin
// server, hot reload and graceful drain.
//
// The policy layers are auth, body and admission (auth.go,
// request_body.go, admission.go), middlewares in front of the proxy,
// and retry and breaker (retry_transport.go, breaker_transport.go),
// RoundTrippers under it. The config they are built from is package
// opscore-sidecar/proxy/config. Each
// layer reads the request's *RequestInfo (InfoFrom), which carries the
// route, its *RouteRuntime and the snapshot, and records its decision with
// the RequestInfo setters or WriteProblem.
package proxy
